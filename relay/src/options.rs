//! Relay configuration: policy, limits and the information document's texts.

use highwater_projections::Policy;

/// Per-connection and per-request limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest WebSocket message accepted from a client, in bytes.
    pub max_message_bytes: usize,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Filters per `REQ`.
    pub max_filters: usize,
    /// Largest `limit` honoured; larger ones are lowered to it.
    pub max_limit: usize,
    /// Stored events returned for a filter without `limit`.
    pub default_limit: usize,
    /// Messages queued for one client; a client that lets its queue fill is disconnected.
    pub send_queue: usize,
    /// `EVENT`s of one connection being processed at once; further ones wait.
    pub max_inflight_writes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024,
            max_subscriptions: 64,
            max_filters: 16,
            max_limit: 5_000,
            default_limit: 500,
            send_queue: 4_096,
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
    /// NIP-11 `name`.
    pub name: String,
    /// NIP-11 `description`.
    pub description: String,
    /// Limits.
    pub limits: Limits,
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
            name: "highwater".into(),
            description: "A NIP-29 group relay on the highwater engine".into(),
            limits: Limits::default(),
        }
    }
}
