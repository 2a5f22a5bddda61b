//! A NIP-29 relay over WebSocket on the highwater engine (`highwater relay`).
//!
//! NIP-01 (`EVENT`/`OK`, `REQ`/`EVENT`/`EOSE`, `CLOSE`/`CLOSED`, `NOTICE`, live events
//! after `EOSE`), NIP-11 (the information document over HTTP for
//! `Accept: application/nostr+json`), NIP-42 (`AUTH`) and NIP-29:
//!
//! - **Writes**: validate (id hash, signature, limits, group tag) on a blocking thread →
//!   [`AccessPolicy::check_write`](highwater_projections::AccessPolicy::check_write) on
//!   one sequencer thread, in arrival order → durable append (group commit) → `OK`.
//!   The relay's answer to a join or leave request (a 9000 for an accepted 9021, a 9001
//!   for a 9022) is signed with the relay key and committed in the same transaction as
//!   the request, so neither is ever in the log without the other.
//! - **Reads**: `#h` through the store's group index, ids through the id index, the
//!   state kinds 39000–39005 (`#d`, or every group) rendered from the engine's
//!   projections at the head of the answer (never stored, so never stale); anything
//!   else by a scan of the log. Events a 9005 of their own group hid and events of an
//!   earlier life of their group are left out; private groups' events (and their member
//!   lists) are readable only by members authenticated with NIP-42; a hidden group does
//!   not exist for anyone but its members.
//! - **Live**: subscriptions confined to groups are indexed by group, so a commit wakes
//!   only its group's subscribers; each connection's outbox is bounded and a client that
//!   lets it fill is disconnected.
//!
//! ## Why tokio-tungstenite and not rust-nostr's relay builder
//!
//! `nostr-relay-builder` (0.44, the newest release; 0.45 exists only as alphas) hands its
//! write and query policies the event or filter and the peer's socket address
//! (`admit_event(&Event, &SocketAddr)`, `admit_query(&Filter, &SocketAddr)`), never the
//! NIP-42 authenticated pubkey, so it cannot decide "may this member read this private
//! group". It also stores events in its own database and wakes every connection for every
//! stored event. The relay is therefore built on tokio and tokio-tungstenite (the
//! WebSocket implementation most of the Rust ecosystem uses), with nostr's own message
//! types for parsing and serialising.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use highwater_engine::{Engine, EngineOptions};
//! use highwater_projections::{Groups, Nip29Config};
//! use highwater_relay::{Relay, RelayOptions};
//! use highwater_store::{Store, StoreOptions};
//! use nostr::prelude::Keys;
//!
//! let keys = Keys::generate();
//! let store = Store::open("relay.lmdb", StoreOptions::default())?;
//! let mut builder = Engine::builder(store, EngineOptions::default());
//! let groups = Groups::register(&mut builder, Nip29Config::new(keys.public_key()))?;
//! let engine = builder.build()?;
//! let relay = Relay::new(engine, groups, keys, RelayOptions::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7777").await?;
//! relay.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::missing_errors_doc, clippy::missing_panics_doc)]

mod access;
mod broadcast;
mod conn;
mod delivery;
mod error;
mod feed;
mod filter;
mod handoff;
mod hosts;
mod http;
mod hub;
mod index;
mod log_streams;
mod metrics;
mod negentropy;
mod nip43;
mod nip86;
mod options;
mod ratelimit;
mod reads;
mod replica;
mod replication;
mod retention;
mod service;
mod shared;
mod state;
mod stream;
mod writes;

use std::future::Future;
use std::sync::Arc;

use highwater_engine::Engine;
use highwater_projections::{AccessPolicy, Groups, Policy};
use nostr::prelude::{Keys, PublicKey};
use tokio::net::TcpListener;

pub use crate::error::RelayError;
pub use crate::hosts::{VirtualRelay, host_name, serve_hosts};
pub use crate::nip43::SPACE_KINDS;
pub use crate::options::{
    ConnectionLimits, Rate, RateLimits, RelayInfo, RelayMembership, RelayOptions, ReplicaOf,
    RetentionSchedule,
};
pub use crate::replica::ReplicaStatus;
pub use crate::service::{ClientAddr, RelayService};

#[cfg(feature = "test-support")]
pub use crate::hub::OutboxStats;

use crate::hub::Hub;
use crate::index::ServedIndex;
use crate::shared::{LivePolicy, LiveRetention, Shared};

/// A NIP-29 relay over an engine with the NIP-29 projections registered.
#[derive(Debug)]
pub struct Relay {
    shared: Arc<Shared>,
}

impl Relay {
    /// A relay over `engine` and its `groups`, signing with `keys`, which must be the
    /// relay key `groups` was configured with. Makes the relay-wide `deletions`
    /// projection current (its checkpoint and the log tail after it; no group is
    /// folded).
    ///
    /// # Errors
    ///
    /// [`RelayError::WrongKey`] when `keys` are not the configured relay key;
    /// [`RelayError::Engine`] when the `deletions` projection cannot be read.
    pub fn new(
        engine: Engine,
        groups: Groups,
        keys: Keys,
        options: RelayOptions,
    ) -> Result<Self, RelayError> {
        let relay = groups.config().relay_pubkey;
        // A replica signs nothing with the relay key (it does not hold it); its `keys`
        // are its own, for authenticating to the primary.
        let signs_as = match &options.replica_of {
            Some(of) => of.primary,
            None => keys.public_key(),
        };
        if signs_as != relay {
            return Err(RelayError::WrongKey {
                expected: relay.to_hex(),
            });
        }
        let store = engine.store().clone();
        let store_head = store.head();
        let index = ServedIndex::new(groups.deletions_projection().clone())?;
        let policy = LivePolicy::new(AccessPolicy::new(groups, options.policy.clone()));
        let info = parking_lot::RwLock::new(Arc::new(options.info.clone()));
        let limiters = ratelimit::Limiters::new(options.rate_limits);
        let retention = LiveRetention::new(options.retention.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                engine,
                policy,
                info,
                keys,
                options,
                index,
                rendered: state::Rendered::default(),
                hub: Hub::default(),
                feed: feed::Feed::new(store_head),
                stopping: std::sync::atomic::AtomicBool::new(false),
                metrics: metrics::Metrics::default(),
                limiters,
                writer_failed: std::sync::atomic::AtomicBool::new(false),
                log_streams: log_streams::LogStreams::default(),
                retention,
            }),
        })
    }

    /// The relay's public key (a replica's own key, which it authenticates to its
    /// primary with).
    pub fn public_key(&self) -> PublicKey {
        self.shared.keys.public_key()
    }

    /// A handle that changes the policy, the information document and the retention
    /// schedule while the relay serves (a reloaded configuration), without dropping
    /// connections.
    pub fn control(&self) -> RelayControl {
        RelayControl {
            shared: self.shared.clone(),
        }
    }

    /// The outboxes' counters (queued bytes, the largest outbox, slow disconnects), live
    /// while the relay serves.
    #[cfg(feature = "test-support")]
    pub fn outbox_stats(&self) -> OutboxStats {
        OutboxStats(self.shared.hub.meter.clone())
    }

    /// The NIP-11 information document.
    pub fn information(&self) -> serde_json::Value {
        http::nip11(&self.shared)
    }

    /// Serves connections on `listener` until `shutdown` resolves; then stops
    /// accepting, answers the writes in flight, closes every connection, drains the
    /// write path and writes checkpoints.
    ///
    /// # Errors
    ///
    /// [`RelayError::Io`] when accepting on `listener` fails, and the engine's or the
    /// store's error when the final drain or checkpoints fail.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RelayError> {
        let relay = self.public_key();
        let service = self.service()?;
        tokio::pin!(shutdown);
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, %relay, "relay listening");
        }
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        service.track(service::serve_tcp(service.clone(), stream, peer));
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                },
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down");
        drop(listener);
        service.shutdown().await
    }

    /// Starts the relay's write path and returns it as an HTTP service, for a server
    /// that routes the relay's URL to it beside other routes (an axum router, a hyper
    /// server); see [`RelayService`] and `relay/examples/axum_router.rs`.
    ///
    /// # Errors
    ///
    /// [`RelayError::Thread`] when the write path's threads cannot be started.
    pub fn service(self) -> Result<RelayService, RelayError> {
        let replica_of = self.shared.options.replica_of.clone();
        let shared = self.shared.clone();
        let service = RelayService::start(self.shared)?;
        if let Some(of) = replica_of {
            let shutdown = service.ctx().shutdown.clone();
            service.track(replica::follow(shared.clone(), of, shutdown));
        }
        let shutdown = service.ctx().shutdown.clone();
        service.track(retention::run(shared, shutdown));
        Ok(service)
    }
}

/// Changes a relay's policy, information document and retention schedule while it
/// serves. Each write is decided under one policy; a replaced one takes effect for the
/// writes and reads asked after it. The folds never read the policy, so nothing stored
/// changes.
#[derive(Debug, Clone)]
pub struct RelayControl {
    shared: Arc<Shared>,
}

impl RelayControl {
    /// The policy in force.
    pub fn policy(&self) -> Policy {
        Policy::clone(&self.shared.policy.policy())
    }

    /// Decides later writes and reads under `policy`.
    pub fn set_policy(&self, policy: Policy) {
        self.shared.policy.replace(policy);
    }

    /// The information document's texts in force.
    pub fn info(&self) -> RelayInfo {
        RelayInfo::clone(&self.shared.info.read())
    }

    /// Answers later NIP-11 requests with `info`.
    pub fn set_info(&self, info: RelayInfo) {
        *self.shared.info.write() = Arc::new(info);
    }

    /// The retention schedule in force (`None`: the relay removes nothing).
    pub fn retention(&self) -> Option<RetentionSchedule> {
        self.shared.retention.get()
    }

    /// Compacts under `schedule` from now on (`None` stops compacting): its first
    /// compaction runs one interval after this call. A compaction under way finishes
    /// under the schedule it started with.
    pub fn set_retention(&self, schedule: Option<RetentionSchedule>) {
        self.shared.retention.set(schedule);
    }
}
