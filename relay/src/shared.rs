//! What every connection and the write path share.

use std::sync::atomic::AtomicBool;

use highwater_engine::Engine;
use highwater_projections::AccessPolicy;
use highwater_store::Store;
use nostr::prelude::Keys;

use crate::feed::Feed;
use crate::hub::Hub;
use crate::index::ServedIndex;
use crate::options::RelayOptions;
use crate::state::Rendered;

/// The relay's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) engine: Engine,
    pub(crate) policy: AccessPolicy,
    pub(crate) keys: Keys,
    pub(crate) options: RelayOptions,
    pub(crate) index: ServedIndex,
    pub(crate) rendered: Rendered,
    pub(crate) hub: Hub,
    /// How far live subscriptions have been fed.
    pub(crate) feed: Feed,
    /// Set when the relay stops: background threads return.
    pub(crate) stopping: AtomicBool,
    /// Prometheus metrics (`GET /metrics`).
    pub(crate) metrics: crate::metrics::Metrics,
    /// Per-IP and per-pubkey rate limits.
    pub(crate) limiters: crate::ratelimit::Limiters,
    /// Set when a commit failed because the store's writer is gone: `/health` then
    /// answers 503.
    pub(crate) writer_failed: AtomicBool,
    /// Configured replicas' live log streams.
    pub(crate) log_streams: crate::replication::LogStreams,
}
