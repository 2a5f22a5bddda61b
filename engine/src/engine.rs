//! The engine: registered projections, live folds on commit, checkpoint policy,
//! subscribers, and the typed handles a caller reads through.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use highwater_store::{AppendOutcome, CommitObserver, Committed, Store};
use nostr::prelude::Event;
use parking_lot::Mutex;

use crate::error::EngineError;
use crate::projection::Projection;
use crate::rebuild::RebuildOptions;
use crate::relay_wide::{ErasedRelayWide, RelayWideHandle, RelayWideProjection, RelayWideRuntime};
use crate::runtime::{ErasedRuntime, Runtime};
use crate::status::{FoldCounters, GroupStatus, ProjectionStatus, RebuildReport, RelayWideStatus};
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

/// Registers projections, then starts the engine.
pub struct EngineBuilder {
    store: Store,
    options: EngineOptions,
    runtimes: Vec<Arc<dyn ErasedRuntime>>,
    relay_wide: Vec<Arc<dyn ErasedRelayWide>>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("projections", &self.runtimes.len())
            .field("relay_wide", &self.relay_wide.len())
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The store the engine is built over (for projections' query layers that read
    /// the log directly, e.g. a relay-wide index).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Registers a projection and returns the typed handle to read it through.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] when the name is empty, longer than 64 bytes,
    /// not `[A-Za-z0-9_-]`, or already registered.
    pub fn add<P: Projection>(&mut self, projection: P) -> Result<Handle<P>, EngineError> {
        self.check_name(projection.name())?;
        let runtime = Arc::new(Runtime::new(projection, self.store.clone()));
        self.runtimes.push(runtime.clone());
        Ok(Handle { runtime })
    }

    /// Registers a relay-wide projection (one state for the whole log) and returns the
    /// typed handle to read it through.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] when the name is empty, longer than 64 bytes,
    /// not `[A-Za-z0-9_-]`, or already registered (per-group projections included).
    pub fn add_relay_wide<P: RelayWideProjection>(
        &mut self,
        projection: P,
    ) -> Result<RelayWideHandle<P>, EngineError> {
        self.check_name(projection.name())?;
        let runtime = Arc::new(RelayWideRuntime::new(projection, self.store.clone()));
        self.relay_wide.push(runtime.clone());
        Ok(RelayWideHandle { runtime })
    }

    fn check_name(&self, name: &str) -> Result<(), EngineError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let taken = self.runtimes.iter().any(|r| r.name() == name)
            || self.relay_wide.iter().any(|r| r.name() == name);
        if !valid || taken {
            return Err(EngineError::UnknownProjection(format!(
                "{name} (invalid or already registered)"
            )));
        }
        Ok(())
    }

    /// Starts the engine: it begins folding commits into loaded groups. Over a
    /// writable store, the relay-wide projections are made current here (checkpoint
    /// plus log tail), so this process's commits fold into them as they are made and
    /// the checkpoints it writes cover them; a load that had to pass a long tail writes
    /// their checkpoints at once. A failed load is logged and retried by the next read.
    ///
    /// # Errors
    ///
    /// [`EngineError::Thread`] when the checkpoint thread cannot be started.
    pub fn build(self) -> Result<Engine, EngineError> {
        let projections = Projections {
            per_group: self.runtimes.into(),
            relay_wide: self.relay_wide.into(),
        };
        let (checkpoint_tx, checkpoint_rx) = crossbeam_channel::unbounded();
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        let observer = Arc::new(Observer {
            projections: projections.clone(),
            subscribers: subscribers.clone(),
            checkpoint_tx: checkpoint_tx.clone(),
            checkpoint_every: self.options.checkpoint_every,
        });
        let observer_id = self.store.add_observer(observer);
        let worker = {
            let store = self.store.clone();
            let projections = projections.clone();
            std::thread::Builder::new()
                .name("highwater-checkpoints".into())
                .spawn(move || checkpoint_worker(&store, &projections, &checkpoint_rx))
                .map_err(|source| EngineError::Thread {
                    context: "starting the checkpoint thread",
                    source,
                })?
        };
        if !self.store.is_read_only() {
            let mut long_tail = false;
            for r in projections.relay_wide.iter() {
                match r.make_current() {
                    Ok(records) => {
                        long_tail |= r.long_tail(records, self.options.checkpoint_every);
                    }
                    Err(error) => {
                        tracing::warn!(projection = r.name(), %error, "loading a relay-wide projection failed; its next read tries again");
                    }
                }
            }
            if long_tail && let Err(error) = write_checkpoints(&self.store, &projections, None) {
                tracing::warn!(%error, "checkpoints after a long relay-wide catch-up failed; the next open folds the tail again");
            }
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                store: self.store,
                options: self.options,
                projections,
                subscribers,
                observer_id,
                checkpoint_tx: Some(checkpoint_tx),
                worker: Some(worker),
            }),
        })
    }
}

/// A group resolved by [`Handle::resolve`]: its number and the head that reads of it
/// must reach, for several reads that look the group up once.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedGroup<'a> {
    store: &'a Store,
    /// The group's number and head; `None` when no event of the group is in the log.
    at: Option<(u32, u64)>,
}

impl ResolvedGroup<'_> {
    /// The head the reads of this group reach at least (0 for a group with no event).
    pub fn head(&self) -> u64 {
        self.at.map_or(0, |(_, head)| head)
    }
}

/// A typed handle to one projection: the fully-loaded read goes through it.
pub struct Handle<P: Projection> {
    runtime: Arc<Runtime<P>>,
}

impl<P: Projection> Clone for Handle<P> {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
        }
    }
}

impl<P: Projection> std::fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("projection", &self.runtime.name())
            .finish()
    }
}

impl<P: Projection> Handle<P> {
    /// Calls `f` with the group's state once the group is fully loaded (its watermark
    /// has reached the group's head as committed by any process at the start of this
    /// call), catching it up first if needed. A group absent from the log answers with
    /// the initial state.
    ///
    /// The closure's contract: it may do anything — append (to this group too), read
    /// other groups or this one again, block — without deadlocking the engine. While it
    /// runs, the group's read lock is held: the writer never waits for it (a commit
    /// then leaves this group's live fold to its next read), and only a catch-up of this
    /// same group waits for the closure to return.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when a fold of this (projection, group) failed;
    /// [`EngineError::Store`] when the log or a checkpoint cannot be read.
    pub fn read<R>(&self, group: &str, f: impl FnOnce(&P::State) -> R) -> Result<R, EngineError> {
        self.runtime.read(group, f)
    }

    /// [`Handle::read`], also returning the sequence number the state was folded to.
    ///
    /// # Errors
    ///
    /// As [`Handle::read`].
    pub fn read_at<R>(
        &self,
        group: &str,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<(R, u64), EngineError> {
        self.runtime.read_at(group, f)
    }

    /// Resolves `group` once for several reads ([`Handle::read_resolved`]), of this
    /// projection or of others registered on the same engine: the group's number and
    /// its head as committed by any process at the start of this call. Each read then
    /// answers from state folded at least to that head, so a query made of several
    /// reads looks for other processes' commits and looks the group up once, and all
    /// its reads reach the same position of the log.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when other processes' commits cannot be taken in.
    pub fn resolve(&self, group: &str) -> Result<ResolvedGroup<'_>, EngineError> {
        Ok(ResolvedGroup {
            store: &self.runtime.store,
            at: self.runtime.store.group_no_head(group)?,
        })
    }

    /// [`Handle::read`] of a group resolved by [`Handle::resolve`] (of any handle of
    /// the same engine).
    ///
    /// # Errors
    ///
    /// As [`Handle::read`].
    ///
    /// # Panics
    ///
    /// When `group` was resolved by a handle of an engine over another store.
    pub fn read_resolved<R>(
        &self,
        group: ResolvedGroup<'_>,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<R, EngineError> {
        assert!(
            group.store.same_store(&self.runtime.store),
            "a group resolved by an engine over another store"
        );
        self.runtime.read_resolved(group.at, f).map(|(r, _)| r)
    }

    /// How this projection's groups were advanced so far (see [`FoldCounters`]).
    pub fn fold_counters(&self) -> FoldCounters {
        self.runtime.counters()
    }

    /// The group's state by a full replay from sequence 1, ignoring memory and
    /// checkpoints: the reference the engine's answers must equal.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when the fold fails; [`EngineError::Store`] when the log
    /// cannot be read.
    pub fn replay(&self, group: &str) -> Result<P::State, EngineError> {
        self.runtime.replay_group(group)
    }

    /// The projection itself.
    pub fn projection(&self) -> &P {
        &self.runtime.projection
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        self.runtime.name()
    }
}

/// Every registered projection, per group and relay-wide.
#[derive(Clone)]
struct Projections {
    per_group: Arc<[Arc<dyn ErasedRuntime>]>,
    relay_wide: Arc<[Arc<dyn ErasedRelayWide>]>,
}

struct Inner {
    store: Store,
    options: EngineOptions,
    projections: Projections,
    subscribers: Arc<Mutex<Vec<Arc<Channel>>>>,
    observer_id: u64,
    checkpoint_tx: Option<Sender<WorkerMessage>>,
    worker: Option<JoinHandle<()>>,
}

impl Drop for Inner {
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
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.inner.runtimes().iter().map(|r| r.name()).collect();
        let relay_wide: Vec<&str> = (self.inner.projections.relay_wide.iter())
            .map(|r| r.name())
            .collect();
        f.debug_struct("Engine")
            .field("store", &self.inner.store)
            .field("projections", &names)
            .field("relay_wide", &relay_wide)
            .finish()
    }
}

impl Engine {
    /// Starts registering projections over `store`.
    pub fn builder(store: Store, options: EngineOptions) -> EngineBuilder {
        EngineBuilder {
            store,
            options,
            runtimes: Vec::new(),
            relay_wide: Vec::new(),
        }
    }

    /// The underlying log.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Names of the registered per-group projections, in registration order.
    pub fn projections(&self) -> Vec<String> {
        self.inner
            .runtimes()
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    }

    /// Names of the registered relay-wide projections, in registration order.
    pub fn relay_wide_projections(&self) -> Vec<String> {
        self.inner
            .projections
            .relay_wide
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    }

    /// The name of a registered projection (per group or relay-wide) that folds `kind`.
    pub(crate) fn folding_projection(&self, kind: u16) -> Option<&str> {
        let projections = &self.inner.projections;
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
        self.inner
            .projections
            .relay_wide
            .iter()
            .find(|r| r.name() == name)
    }

    fn runtime(&self, name: &str) -> Result<&Arc<dyn ErasedRuntime>, EngineError> {
        self.inner
            .runtimes()
            .iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| EngineError::UnknownProjection(name.to_owned()))
    }

    /// Appends an event; it is durable, and folded into loaded groups, on return.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`]: the event was rejected ([`StoreError::Rejected`](highwater_store::StoreError::Rejected)) or its
    /// commit failed (map or disk full, I/O); nothing was written.
    pub fn append(&self, event: &Event) -> Result<AppendOutcome, EngineError> {
        Ok(self.inner.store.append(event)?)
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
        Ok(self.inner.store.append_batch(events)?)
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
        self.inner.subscribers.lock().push(channel.clone());
        Subscription::new(channel, self.inner.store.clone())
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
        if self.inner.store.is_read_only() {
            return Err(highwater_store::StoreError::ReadOnly.into());
        }
        write_checkpoints(&self.inner.store, &self.inner.projections, None)
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
            None => self.inner.runtimes().iter().collect(),
        };
        if let Some(g) = group {
            let Some((no, _)) = self.inner.store.group_no_head(g)? else {
                return Ok(Vec::new());
            };
            return runtimes.into_iter().map(|r| r.rebuild_group(no)).collect();
        }
        let sinks = runtimes.into_iter().map(|r| r.full_rebuild()).collect();
        let mut reports = crate::rebuild::rebuild_all(&self.inner.store, sinks, options)?;
        if projection.is_none() {
            for r in self.inner.projections.relay_wide.iter() {
                reports.push(r.rebuild()?);
            }
        }
        Ok(reports)
    }

    /// Loads a group in every projection (checkpoint plus tail) without reading it.
    ///
    /// # Errors
    ///
    /// As [`Handle::read`], for the first projection that fails.
    pub fn load_group(&self, group: &str) -> Result<(), EngineError> {
        let Some((no, _)) = self.inner.store.group_no_head(group)? else {
            return Ok(());
        };
        self.inner
            .runtimes()
            .iter()
            .try_for_each(|r| r.ensure_loaded(no))
    }

    pub(crate) fn load_group_no(&self, no: u32) -> Result<(), EngineError> {
        self.inner
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
        self.inner.runtimes().iter().map(|r| r.status()).collect()
    }

    /// The relay-wide projections' states, watermarks and checkpoints.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the log head or a checkpoint cannot be read.
    pub fn relay_wide_status(&self) -> Result<Vec<RelayWideStatus>, EngineError> {
        (self.inner.projections.relay_wide.iter())
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
        Ok(match self.inner.store.group_no_head(group)? {
            Some((no, _)) => runtime.group_status(no),
            None => GroupStatus {
                state: crate::status::LoadState::Loaded,
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
        match self.inner.store.group_no_head(group)? {
            Some((no, _)) => runtime.verify_group(no),
            None => Ok(None),
        }
    }

    /// Drops every in-memory state (as after a restart); the next reads reload from
    /// checkpoints and the log.
    pub fn evict_all(&self) {
        for runtime in self.inner.runtimes() {
            runtime.evict_all();
        }
        for runtime in self.inner.projections.relay_wide.iter() {
            runtime.evict_all();
        }
    }
}

/// Folds commits into loaded groups and feeds subscribers; runs on the writer thread.
struct Observer {
    projections: Projections,
    subscribers: Arc<Mutex<Vec<Arc<Channel>>>>,
    checkpoint_tx: Sender<WorkerMessage>,
    checkpoint_every: u64,
}

impl CommitObserver for Observer {
    fn on_commit(&self, batch: &[Committed<'_>]) {
        let mut due = Vec::new();
        for (index, runtime) in self.projections.per_group.iter().enumerate() {
            runtime.on_commit(batch, self.checkpoint_every, &mut due);
            if !due.is_empty() {
                let _ = self
                    .checkpoint_tx
                    .send(WorkerMessage::Due(index, std::mem::take(&mut due)));
            }
        }
        for (index, runtime) in self.projections.relay_wide.iter().enumerate() {
            if runtime.on_commit(batch, self.checkpoint_every) {
                let _ = self.checkpoint_tx.send(WorkerMessage::RelayWideDue(index));
            }
        }
        let mut subscribers = self.subscribers.lock();
        if subscribers.is_empty() {
            return;
        }
        // Only (sequence number, group) is queued here: the subscriber reads the event
        // back on its own thread, so nothing is converted (or lost) on the writer.
        for c in batch {
            let group: Option<Arc<str>> = c.group.map(|(name, _)| Arc::from(name));
            subscribers.retain(|s| s.push(c.seq, group.as_ref()));
        }
    }
}

enum WorkerMessage {
    Due(usize, Vec<u32>),
    RelayWideDue(usize),
}

/// What a periodic checkpoint writes: groups per per-group runtime, and which
/// relay-wide runtimes.
struct Due {
    groups: Vec<Vec<u32>>,
    relay_wide: Vec<bool>,
}

/// Writes policy-due checkpoints off the writer thread, batching what has queued.
fn checkpoint_worker(store: &Store, projections: &Projections, rx: &Receiver<WorkerMessage>) {
    while let Ok(first) = rx.recv() {
        let mut due = Due {
            groups: vec![Vec::new(); projections.per_group.len()],
            relay_wide: vec![false; projections.relay_wide.len()],
        };
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                WorkerMessage::Due(index, groups) => due.groups[index].extend(groups),
                WorkerMessage::RelayWideDue(index) => due.relay_wide[index] = true,
            }
        }
        for groups in &mut due.groups {
            groups.sort_unstable();
            groups.dedup();
        }
        if let Err(error) = write_checkpoints(store, projections, Some(&due)) {
            tracing::warn!(%error, "periodic checkpoint failed; groups stay correct and are retried later");
        }
    }
}

/// Collects changed groups (all, or `only.groups[i]` for runtime i) and relay-wide
/// states (all, or those `only` marks), writes them in one transaction, then records
/// what each checkpoint covers.
fn write_checkpoints(
    store: &Store,
    projections: &Projections,
    only: Option<&Due>,
) -> Result<usize, EngineError> {
    let started = std::time::Instant::now();
    let _span = tracing::debug_span!("checkpoint", periodic = only.is_some()).entered();
    let mut writes = Vec::new();
    let mut marks = Vec::new();
    for (index, runtime) in projections.per_group.iter().enumerate() {
        let filter = only.map(|o| o.groups[index].as_slice());
        if filter.is_some_and(<[u32]>::is_empty) {
            continue;
        }
        for (write, events) in runtime.collect_checkpoints(filter)? {
            marks.push((index, write.group, events));
            writes.push(write);
        }
    }
    let mut relay_wide_marks = Vec::new();
    for (index, runtime) in projections.relay_wide.iter().enumerate() {
        if only.is_some_and(|o| !o.relay_wide[index]) {
            continue;
        }
        if let Some((write, covered)) = runtime.collect_checkpoint()? {
            relay_wide_marks.push((index, covered));
            writes.push(write);
        }
    }
    let count = writes.len();
    if count == 0 {
        return Ok(0);
    }
    store.write_checkpoints(writes, None)?;
    for (index, no, events) in marks {
        projections.per_group[index].mark_checkpointed(no, events);
    }
    for (index, covered) in relay_wide_marks {
        projections.relay_wide[index].mark_checkpointed(covered);
    }
    tracing::debug!(
        count,
        micros = started.elapsed().as_micros() as u64,
        "checkpoints written"
    );
    Ok(count)
}

impl Inner {
    fn runtimes(&self) -> &[Arc<dyn ErasedRuntime>] {
        &self.projections.per_group
    }
}
