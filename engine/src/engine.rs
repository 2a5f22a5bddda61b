//! The engine: its options, what it shares between its clones (the store, the
//! registered projections, subscribers, the checkpoint worker) and closes with the last
//! of them, and its operations: appends, subscriptions, checkpoints, rebuilds, loads,
//! status and verification. Building it is `builder.rs`; reads go through `handle.rs`.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use highwater_store::{AppendOutcome, Store};
use nostr::prelude::Event;
use parking_lot::Mutex;

use crate::checkpoints::{CheckpointRequest, write_checkpoints};
use crate::error::EngineError;
use crate::rebuild::{RebuildOptions, rebuild_all};
use crate::registry::Projections;
use crate::relay_wide::ErasedRelayWide;
use crate::runtime::ErasedRuntime;
use crate::status::{GroupStatus, LoadState, ProjectionStatus, RebuildReport, RelayWideStatus};
use crate::subscribe::{Channel, Subscription};

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Write a group's checkpoint once it has folded this many events since its last
    /// one (0: only on demand and at close).
    pub checkpoint_every: u64,
    /// Write checkpoints of every changed group when the engine closes.
    pub checkpoint_on_close: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: 1_000,
            checkpoint_on_close: true,
        }
    }
}

/// How many notifications a [`Subscription`] from [`Engine::subscribe`] may hold
/// before it counts as lagged.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 4096;

/// What every clone of an [`Engine`] shares; dropping the last one closes the
/// engine (observer removed, subscribers closed, checkpoint worker joined, checkpoints
/// written at close).
pub(crate) struct EngineShared {
    pub(crate) store: Store,
    pub(crate) options: EngineOptions,
    pub(crate) projections: Projections,
    pub(crate) subscribers: Arc<Mutex<Vec<Arc<Channel>>>>,
    pub(crate) observer_id: u64,
    pub(crate) checkpoint_tx: Option<Sender<CheckpointRequest>>,
    pub(crate) worker: Option<JoinHandle<()>>,
}

impl Drop for EngineShared {
    fn drop(&mut self) {
        self.store.remove_observer(self.observer_id);
        for channel in self.subscribers.lock().drain(..) {
            channel.close();
        }
        drop(self.checkpoint_tx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        if self.options.checkpoint_on_close
            && !self.store.is_read_only()
            && let Err(error) = write_checkpoints(&self.store, &self.projections, None)
        {
            tracing::warn!(%error, "checkpoints at close failed; the next open rebuilds from the log");
        }
    }
}

/// The projection engine over one store. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<EngineShared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.shared.runtimes().iter().map(|r| r.name()).collect();
        let relay_wide: Vec<&str> = (self.shared.projections.relay_wide.iter())
            .map(|r| r.name())
            .collect();
        f.debug_struct("Engine")
            .field("store", &self.shared.store)
            .field("projections", &names)
            .field("relay_wide", &relay_wide)
            .finish()
    }
}

impl Engine {
    /// The underlying log.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Names of the registered per-group projections, in registration order.
    pub fn projections(&self) -> Vec<String> {
        self.shared
            .runtimes()
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    }

    /// Names of the registered relay-wide projections, in registration order.
    pub fn relay_wide_projections(&self) -> Vec<String> {
        self.shared
            .projections
            .relay_wide
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    }

    /// The name of a registered projection (per group or relay-wide) that folds `kind`.
    pub(crate) fn folding_projection(&self, kind: u16) -> Option<&str> {
        let projections = &self.shared.projections;
        (projections
            .per_group
            .iter()
            .map(|r| (r.folds(kind), r.name())))
        .chain(
            projections
                .relay_wide
                .iter()
                .map(|r| (r.folds(kind), r.name())),
        )
        .find_map(|(folds, name)| folds.then_some(name))
    }

    fn relay_wide(&self, name: &str) -> Option<&Arc<dyn ErasedRelayWide>> {
        self.shared
            .projections
            .relay_wide
            .iter()
            .find(|r| r.name() == name)
    }

    fn runtime(&self, name: &str) -> Result<&Arc<dyn ErasedRuntime>, EngineError> {
        self.shared
            .runtimes()
            .iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| EngineError::UnknownProjection(name.to_owned()))
    }

    /// Appends an event; it is durable, and folded into loaded groups, on return.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`]: the event was rejected ([`StoreError::Invalid`](highwater_store::StoreError::Invalid)) or its
    /// commit failed (map or disk full, I/O); nothing was written.
    pub fn append(&self, event: &Event) -> Result<AppendOutcome, EngineError> {
        Ok(self.shared.store.append(event)?)
    }

    /// Appends a batch: one commit up to `StoreOptions::append_chunk` events, larger
    /// batches in chunks committed in order (see [`Store::append_batch`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when a commit failed: nothing of that chunk or of any
    /// later one was written, earlier chunks are durable (a retry reports them as
    /// duplicates); a batch of one chunk is all or nothing. Per-event rejections are
    /// the inner results.
    pub fn append_batch(
        &self,
        events: &[Event],
    ) -> Result<Vec<Result<AppendOutcome, highwater_store::StoreError>>, EngineError> {
        Ok(self.shared.store.append_batch(events)?)
    }

    /// Receives every later commit, in sequence order, through a bounded queue of
    /// [`DEFAULT_SUBSCRIPTION_CAPACITY`] notifications (see
    /// [`subscribe_with_capacity`](Self::subscribe_with_capacity)).
    pub fn subscribe(&self) -> Subscription {
        self.subscribe_with_capacity(DEFAULT_SUBSCRIPTION_CAPACITY)
    }

    /// Receives every later commit, in sequence order, through a queue of at most
    /// `capacity` notifications (at least 1). A subscriber that falls further behind
    /// is told so ([`RecvError::Lagged`](crate::RecvError::Lagged), with the sequence
    /// number to re-read the log from); the writer never waits for it.
    pub fn subscribe_with_capacity(&self, capacity: usize) -> Subscription {
        let channel = Channel::new(capacity);
        self.shared.subscribers.lock().push(channel.clone());
        Subscription::new(channel, self.shared.store.clone())
    }

    /// Writes checkpoints of every loaded group whose state changed since its last
    /// one, and of every relay-wide projection whose watermark moved since its last
    /// one, in one transaction. Returns how many were written.
    ///
    /// # Errors
    ///
    /// [`EngineError::Codec`] when a state cannot be encoded; [`EngineError::Store`]
    /// when the write fails (no checkpoint of the call is written).
    pub fn checkpoint(&self) -> Result<usize, EngineError> {
        if self.shared.store.is_read_only() {
            return Err(highwater_store::StoreError::ReadOnly.into());
        }
        write_checkpoints(&self.shared.store, &self.shared.projections, None)
    }

    /// Rebuilds one projection (or all) from sequence 1, for all groups or one, and
    /// replaces its checkpoints. Reads keep being served from memory meanwhile. A full
    /// rebuild uses every core ([`RebuildOptions::default`]; see
    /// [`rebuild_with`](Self::rebuild_with)). A rebuild of every group also rebuilds
    /// the relay-wide projections (each with one walk of the log, reading the bodies of
    /// its kinds only), and `projection` may name one of them (`group` is then
    /// ignored: its state is the whole log's).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] for an unknown name; [`EngineError::Store`]
    /// when the log cannot be read or the checkpoints cannot be written.
    pub fn rebuild(
        &self,
        projection: Option<&str>,
        group: Option<&str>,
    ) -> Result<Vec<RebuildReport>, EngineError> {
        self.rebuild_with(projection, group, &RebuildOptions::default())
    }

    /// [`Engine::rebuild`] with explicit options. A full rebuild folds whole groups on
    /// `options.threads` threads (largest groups first), reading only the records of
    /// kinds the projections being rebuilt fold; the result does not depend on the
    /// number of threads. A one-group rebuild runs on the calling thread.
    ///
    /// # Errors
    ///
    /// As [`Engine::rebuild`].
    pub fn rebuild_with(
        &self,
        projection: Option<&str>,
        group: Option<&str>,
        options: &RebuildOptions,
    ) -> Result<Vec<RebuildReport>, EngineError> {
        if let Some(relay_wide) = projection.and_then(|name| self.relay_wide(name)) {
            return Ok(vec![relay_wide.rebuild()?]);
        }
        let runtimes: Vec<&Arc<dyn ErasedRuntime>> = match projection {
            Some(name) => vec![self.runtime(name)?],
            None => self.shared.runtimes().iter().collect(),
        };
        if let Some(g) = group {
            let Some((no, _)) = self.shared.store.group_no_head(g)? else {
                return Ok(Vec::new());
            };
            return runtimes.into_iter().map(|r| r.rebuild_group(no)).collect();
        }
        let sinks = runtimes.into_iter().map(|r| r.full_rebuild()).collect();
        let mut reports = rebuild_all(&self.shared.store, sinks, options)?;
        if projection.is_none() {
            for r in self.shared.projections.relay_wide.iter() {
                reports.push(r.rebuild()?);
            }
        }
        Ok(reports)
    }

    /// Loads a group in every projection (checkpoint plus tail) without reading it.
    ///
    /// # Errors
    ///
    /// As [`Handle::read`](crate::Handle::read), for the first projection that fails.
    pub fn load_group(&self, group: &str) -> Result<(), EngineError> {
        let Some((no, _)) = self.shared.store.group_no_head(group)? else {
            return Ok(());
        };
        self.shared
            .runtimes()
            .iter()
            .try_for_each(|r| r.ensure_loaded(no))
    }

    pub(crate) fn load_group_no(&self, no: u32) -> Result<(), EngineError> {
        self.shared
            .runtimes()
            .iter()
            .try_for_each(|r| r.ensure_loaded(no))
    }

    /// Per-projection summary.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the checkpoint table cannot be read.
    pub fn status(&self) -> Result<Vec<ProjectionStatus>, EngineError> {
        self.shared.runtimes().iter().map(|r| r.status()).collect()
    }

    /// The relay-wide projections' states, watermarks and checkpoints.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the log head or a checkpoint cannot be read.
    pub fn relay_wide_status(&self) -> Result<Vec<RelayWideStatus>, EngineError> {
        (self.shared.projections.relay_wide.iter())
            .map(|r| r.status())
            .collect()
    }

    /// Compares the state a relay-wide projection serves (checkpoint plus tail) with a
    /// full replay of the log up to the same position. `Some(diff)` when they differ.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] for an unknown name; [`EngineError::Store`]
    /// or [`EngineError::Failed`] when either side cannot be computed.
    pub fn verify_relay_wide(&self, projection: &str) -> Result<Option<String>, EngineError> {
        self.relay_wide(projection)
            .ok_or_else(|| EngineError::UnknownProjection(projection.to_owned()))?
            .verify()
    }

    /// One (projection, group).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] for an unknown name.
    pub fn group_status(&self, projection: &str, group: &str) -> Result<GroupStatus, EngineError> {
        let runtime = self.runtime(projection)?;
        Ok(match self.shared.store.group_no_head(group)? {
            Some((no, _)) => runtime.group_status(no),
            None => GroupStatus {
                state: LoadState::Loaded,
                ..GroupStatus::default()
            },
        })
    }

    /// Compares, for one group and projection, the state the engine serves
    /// (checkpoint plus tail) with a full replay. `Some(diff)` when they differ; an
    /// error when the log cannot be read (a corrupted record fails both the same way,
    /// which is not agreement).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] for an unknown name; [`EngineError::Store`]
    /// or [`EngineError::Failed`] when either side cannot be computed.
    pub fn verify_group(
        &self,
        projection: &str,
        group: &str,
    ) -> Result<Option<String>, EngineError> {
        let runtime = self.runtime(projection)?;
        match self.shared.store.group_no_head(group)? {
            Some((no, _)) => runtime.verify_group(no),
            None => Ok(None),
        }
    }

    /// Drops every in-memory state (as after a restart); the next reads reload from
    /// checkpoints and the log.
    pub fn evict_all(&self) {
        for runtime in self.shared.runtimes() {
            runtime.evict_all();
        }
        for runtime in self.shared.projections.relay_wide.iter() {
            runtime.evict_all();
        }
    }
}

impl EngineShared {
    fn runtimes(&self) -> &[Arc<dyn ErasedRuntime>] {
        &self.projections.per_group
    }
}
