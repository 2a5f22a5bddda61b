//! Relay configuration: policy, limits, the information document's texts, replication,
//! relay membership and the retention schedule.

use std::time::Duration;

use highwater_engine::RetentionPolicy;
use highwater_projections::Policy;

/// Per-connection and per-request limits.
///
/// What one connection can make the relay hold is bounded in bytes: its outbox
/// ([`max_queue_bytes`](Self::max_queue_bytes), or one larger frame alone); its open
/// subscriptions' filters (from `REQ`s of at most
/// [`max_subscription_bytes`](Self::max_subscription_bytes) together); a `REQ` answer
/// paused for a client that does not read (the ids of at most
/// [`max_limit`](Self::max_limit) events); one incoming message
/// ([`max_message_bytes`](Self::max_message_bytes)); and, while the write path answers
/// them, its writes in flight ([`max_inflight_writes`](Self::max_inflight_writes) events
/// of at most [`max_message_bytes`](Self::max_message_bytes)). ARCHITECTURE.md states
/// the relay's total under [`max_connections`](Self::max_connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Largest WebSocket message accepted from a client, in bytes (tungstenite refuses a
    /// larger message or frame and the connection is closed).
    pub max_message_bytes: usize,
    /// Open connections (WebSocket or HTTP); one more is answered `503` and closed.
    pub max_connections: usize,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Longest subscription id, in bytes; a `REQ` with a longer one is answered
    /// `CLOSED` with `invalid: subscription id longer than N bytes`. NIP-01 sets no
    /// bound; the id is repeated in every `EVENT` the subscription receives.
    pub max_subscription_id_bytes: usize,
    /// Bytes of the `REQ` messages a connection's open subscriptions came from, together
    /// (what their filters hold grows with it); a `REQ` past it is answered `CLOSED`
    /// with `restricted: this connection's subscriptions would exceed N bytes of filters`.
    pub max_subscription_bytes: usize,
    /// Filters per `REQ`.
    pub max_filters: usize,
    /// Largest `limit` honoured, and the most stored events one `REQ` returns over all
    /// of its filters: each filter's `limit` is lowered to what the filters before it
    /// left.
    pub max_limit: usize,
    /// Stored events returned for a filter without `limit`.
    pub default_limit: usize,
    /// Bytes of frames queued for one client and not yet written to its socket. A live
    /// event, `OK` or `NOTICE` that would take the queue past this disconnects the client
    /// (a frame larger than the bound is queued only onto an empty queue). A `REQ`'s
    /// stored events never disconnect: they are queued while the queue is under half
    /// this bound and otherwise wait for the client to read, keeping the other half for
    /// live events.
    pub max_queue_bytes: usize,
    /// `EVENT`s of one connection being processed at once; further ones wait.
    pub max_inflight_writes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024,
            max_connections: 1_024,
            max_subscriptions: 64,
            max_subscription_id_bytes: 256,
            max_subscription_bytes: 1024 * 1024,
            max_filters: 16,
            max_limit: 5_000,
            default_limit: 500,
            max_queue_bytes: 1024 * 1024,
            max_inflight_writes: 256,
        }
    }
}

/// How the relay behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOptions {
    /// The NIP-29 access policy (relay admins, open reads, auto-join).
    pub policy: Policy,
    /// Accept events that name no group (else refused with `restricted:`).
    pub allow_ungrouped: bool,
    /// The relay's public URL; when set, NIP-42 `AUTH` events must name it.
    pub public_url: Option<String>,
    /// The information document's texts (NIP-11).
    pub info: RelayInfo,
    /// Limits of each connection, and how many may be open.
    pub limits: ConnectionLimits,
    /// Late publication (NIP-29 "Relays should prevent late publication"): a group
    /// event whose `created_at` is more than this many seconds before the relay's clock
    /// is refused with `invalid:`. `None` accepts any date (a relay open to a group
    /// forked or moved from another relay). Only events sent to the relay are checked:
    /// `highwater import` and other processes writing the log are exempt. Default: one
    /// hour.
    pub late_publication_secs: Option<u64>,
    /// Per-IP and per-pubkey rate limits; over them, an `EVENT` is answered `OK` false
    /// and a `REQ` `CLOSED`, both with `rate-limited:`. Off by default.
    pub rate_limits: RateLimits,
    /// Take the client's address from the `X-Forwarded-For` header (its last entry,
    /// the one the proxy in front of the relay added) instead of the socket's peer: for
    /// a relay reachable only through that proxy. Off by default: a client could
    /// otherwise claim any address and escape its per-IP limit.
    pub trust_proxy: bool,
    /// The keys of this relay's read replicas: a client authenticated (NIP-42) with one
    /// of them reads every group, reconciles (NIP-77) and streams the whole log.
    pub replicas: Vec<nostr::prelude::PublicKey>,
    /// Makes this relay a read replica of another (`highwater relay --replica-of`): it
    /// follows the primary's log, serves reads and refuses writes naming the primary.
    pub replica_of: Option<ReplicaOf>,
    /// Relay membership (NIP-43): who may join, and what membership is needed for.
    /// The default admits anyone and asks membership for nothing.
    pub membership: RelayMembership,
    /// Retention: compact the log on an interval while serving (`highwater relay
    /// --retention-every`, zooid's `[groups.retention]`). `None`, the default: the
    /// relay removes nothing (`highwater compact` can, from another process).
    pub retention: Option<RetentionSchedule>,
}

/// A token bucket: `per_second` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained rate.
    pub per_second: std::num::NonZeroU32,
    /// Largest burst.
    pub burst: std::num::NonZeroU32,
}

/// The relay's rate limits (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// `EVENT`s and `REQ`s of all the connections of one client address together, and
    /// NIP-86 requests from it.
    pub per_ip: Option<Rate>,
    /// `EVENT`s signed by one pubkey, whichever connection sends them.
    pub per_pubkey: Option<Rate>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            policy: Policy {
                open_reads: true,
                ..Policy::default()
            },
            allow_ungrouped: false,
            public_url: None,
            info: RelayInfo::default(),
            limits: ConnectionLimits::default(),
            late_publication_secs: Some(3_600),
            rate_limits: RateLimits::default(),
            trust_proxy: false,
            replicas: Vec::new(),
            replica_of: None,
            membership: RelayMembership::default(),
            retention: None,
        }
    }
}

/// The texts of the NIP-11 information document; `None` leaves a field out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayInfo {
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `pubkey`: the operator's key, for contact (hex). `None`: the relay's own key.
    pub pubkey: Option<String>,
    /// `contact`: an alternative contact (a URI).
    pub contact: Option<String>,
    /// `icon`: an image URL.
    pub icon: Option<String>,
    /// `banner`: an image URL.
    pub banner: Option<String>,
    /// `terms_of_service`: a URL.
    pub terms_of_service: Option<String>,
}

impl Default for RelayInfo {
    fn default() -> Self {
        Self {
            name: "highwater".into(),
            description: "A NIP-29 group relay on the highwater engine".into(),
            pubkey: None,
            contact: None,
            icon: None,
            banner: None,
            terms_of_service: None,
        }
    }
}

/// Relay membership options (NIP-43; zooid's `public_join`, `[roles]` `can_invite`).
///
/// The default keeps NIP-29's relay: anyone may join (a 28934 without a code is
/// honoured) and membership is needed for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMembership {
    /// A join request without a valid invite is honoured (zooid's `public_join`). Off,
    /// the relay admits by invitation only.
    pub public_join: bool,
    /// Creating groups (9007) and storing [`SPACE_KINDS`](crate::SPACE_KINDS) need relay membership (zooid's
    /// members-only relay). Relay admins are never asked.
    pub members_only: bool,
    /// Keys that may ask for invite codes (zooid's roles with `can_invite`), besides
    /// the relay key and relay admins.
    pub inviters: Vec<nostr::prelude::PublicKey>,
}

impl Default for RelayMembership {
    fn default() -> Self {
        Self {
            public_join: true,
            members_only: false,
            inviters: Vec::new(),
        }
    }
}

/// The primary a replica follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaOf {
    /// The primary's WebSocket URL (`ws://…` or `wss://…`).
    pub url: String,
    /// The primary's relay key (public): its state events and answers are signed with it.
    pub primary: nostr::prelude::PublicKey,
}

/// How often the relay compacts its log, and what expires
/// ([`RelayOptions::retention`](crate::RelayOptions::retention)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSchedule {
    /// Time between the end of one compaction and the start of the next (the first
    /// runs one interval after the relay starts, or after the schedule is replaced).
    pub every: Duration,
    /// The durations: a group's own, else the default; see
    /// [`Engine::compact`](highwater_engine::Engine::compact).
    pub policy: RetentionPolicy,
}
