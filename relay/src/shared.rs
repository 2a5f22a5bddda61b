//! What every connection and the write path share: the state each part of the relay
//! keeps (its type comes from that part's module) and the settings a reloaded
//! configuration replaces while the relay serves ([`LivePolicy`], [`LiveRetention`]).
//!
//! This module uses only the modules of the state it holds; the work that reads the whole
//! of [`Shared`] (delivering the live feed, serving a replica's log, compacting) lives in
//! modules of its own that use this one, so no two modules import each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use highwater_engine::Engine;
use highwater_projections::{AccessPolicy, Error, Groups, Policy};
use highwater_store::Store;
use nostr::prelude::{Keys, PublicKey};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::feed::Feed;
use crate::hub::Hub;
use crate::index::ServedIndex;
use crate::log_streams::LogStreams;
use crate::metrics::{Gauges, Metrics};
use crate::options::{RelayInfo, RelayOptions, RetentionSchedule};
use crate::ratelimit::Limiters;
use crate::state::Rendered;

/// The relay's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) engine: Engine,
    /// The access policy, replaced when the configuration is reloaded.
    pub(crate) policy: LivePolicy,
    /// The information document's texts, replaced when the configuration is reloaded
    /// (`options.info` is what the relay started with).
    pub(crate) info: RwLock<Arc<RelayInfo>>,
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
    pub(crate) metrics: Metrics,
    /// Per-IP and per-pubkey rate limits.
    pub(crate) limiters: Limiters,
    /// Set when a commit failed because the store's writer is gone: `/health` then
    /// answers 503.
    pub(crate) writer_failed: AtomicBool,
    /// Configured replicas' live log streams.
    pub(crate) log_streams: LogStreams,
    /// The retention schedule, replaced when the configuration is reloaded
    /// (`options.retention` is what the relay started with).
    pub(crate) retention: LiveRetention,
}

impl Shared {
    /// What the metrics' gauges show now; `healthy` is what `/health` would answer.
    pub(crate) fn gauges(&self, healthy: bool) -> Gauges {
        let meter = &self.hub.meter;
        let lags = self.engine.relay_wide_status().map_or_else(
            |_| Vec::new(),
            |statuses| {
                statuses
                    .into_iter()
                    .map(|s| {
                        (
                            s.name,
                            s.head.saturating_sub(s.checkpoint.unwrap_or_default()),
                        )
                    })
                    .collect()
            },
        );
        Gauges {
            connections: meter.connections.load(Ordering::Relaxed),
            subscriptions: self.hub.len(),
            queued: meter.queued.load(Ordering::Relaxed),
            groups: self.store.groups().len(),
            head: self.store.head(),
            lags,
            healthy,
        }
    }
}

/// The access policy the relay decides with, replaceable while it serves. Each call
/// decides under one policy from start to end; a replacement takes effect for the
/// decisions asked after it (a write already decided stays decided: the folds never
/// read the policy, so no stored state changes).
#[derive(Debug)]
pub(crate) struct LivePolicy {
    groups: Groups,
    current: RwLock<Arc<AccessPolicy>>,
}

/// The policy one answer was read from.
#[derive(Debug)]
pub(crate) struct PolicyRead(Arc<AccessPolicy>);

impl std::ops::Deref for PolicyRead {
    type Target = Policy;

    fn deref(&self) -> &Policy {
        self.0.policy()
    }
}

impl LivePolicy {
    pub(crate) fn new(access: AccessPolicy) -> Self {
        Self {
            groups: access.groups().clone(),
            current: RwLock::new(Arc::new(access)),
        }
    }

    /// The access policy in force, for a whole decision.
    pub(crate) fn access(&self) -> Arc<AccessPolicy> {
        self.current()
    }

    fn current(&self) -> Arc<AccessPolicy> {
        self.current.read().clone()
    }

    /// Decides later writes and reads under `policy`.
    pub(crate) fn replace(&self, policy: Policy) {
        *self.current.write() = Arc::new(AccessPolicy::new(self.groups.clone(), policy));
    }

    /// The queries the policy answers from (they never change).
    pub(crate) fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The configuration in force.
    pub(crate) fn policy(&self) -> PolicyRead {
        PolicyRead(self.current())
    }

    pub(crate) fn can_read(&self, pubkey: Option<&PublicKey>, group: &str) -> Result<bool, Error> {
        self.current().can_read(pubkey, group)
    }

    pub(crate) fn has_access(
        &self,
        pubkey: Option<&PublicKey>,
        group: &str,
    ) -> Result<bool, Error> {
        self.current().has_access(pubkey, group)
    }
}

/// The retention schedule in force (`None`: the relay removes nothing), replaced when
/// the configuration is reloaded; the compaction task (`retention.rs`) watches it.
#[derive(Debug)]
pub(crate) struct LiveRetention(watch::Sender<Option<RetentionSchedule>>);

impl LiveRetention {
    pub(crate) fn new(schedule: Option<RetentionSchedule>) -> Self {
        Self(watch::Sender::new(schedule))
    }

    pub(crate) fn get(&self) -> Option<RetentionSchedule> {
        self.0.borrow().clone()
    }

    /// Replaces the schedule; the task wakes only when it differs.
    pub(crate) fn set(&self, schedule: Option<RetentionSchedule>) {
        self.0.send_if_modified(|current| {
            let changed = *current != schedule;
            *current = schedule;
            changed
        });
    }

    /// Watches the schedule in force (the compaction task).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<RetentionSchedule>> {
        self.0.subscribe()
    }
}
