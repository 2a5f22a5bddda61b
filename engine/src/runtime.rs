//! One projection's runtime: per-group slots (state, watermark, status), the
//! fully-loaded read, catch-up from checkpoint plus tail, live folds, rebuild.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use highwater_store::{Checkpoint, CheckpointWrite, Committed, EventRef, Store, StoreError};
use parking_lot::{Mutex, RwLock};

use crate::slots::SlotTable;

use crate::error::EngineError;
use crate::projection::{KindSet, Projection};
use crate::status::{FoldCounters, GroupStatus, LoadState, ProjectionStatus, RebuildReport};

/// Why a (projection, group) stopped folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) seq: u64,
    pub(crate) message: String,
}

#[derive(Debug, Clone)]
enum Status {
    NotLoaded,
    Loaded,
    Failed(Arc<Failure>),
}

struct SlotState<S> {
    value: S,
    /// Last sequence number folded (kept or skipped by kind).
    watermark: u64,
    /// The group's events folded (kept or skipped) up to `watermark`.
    events: u64,
    /// `events` at the last checkpoint written or loaded.
    checkpointed_events: u64,
    status: Status,
    /// The runtime's eviction epoch this status belongs to: a slot of an older epoch
    /// is not loaded, whatever its status says (see `Runtime::evict_all`).
    epoch: u64,
}

impl<S> SlotState<S> {
    /// The status, as of eviction epoch `epoch`.
    fn status(&self, epoch: u64) -> &Status {
        if self.epoch == epoch {
            &self.status
        } else {
            &Status::NotLoaded
        }
    }
}

/// Slots by group number, created on first use and never removed.
type Slots<S> = SlotTable<Slot<S>>;

struct Slot<S> {
    state: RwLock<SlotState<S>>,
    /// Single flight: the one thread loading or catching up this group holds it.
    flight: Mutex<()>,
}

/// What the engine needs of a runtime, without its state type.
pub(crate) trait ErasedRuntime: Send + Sync {
    fn name(&self) -> &str;
    /// Whether this projection folds `kind` (retention never removes such records).
    fn folds(&self, kind: u16) -> bool;
    fn on_commit(&self, batch: &[Committed<'_>], checkpoint_every: u64, due: &mut Vec<u32>);
    fn ensure_loaded(&self, no: u32) -> Result<(), EngineError>;
    fn collect_checkpoints(
        &self,
        only: Option<&[u32]>,
    ) -> Result<Vec<(CheckpointWrite, u64)>, EngineError>;
    fn mark_checkpointed(&self, no: u32, events: u64);
    fn rebuild_group(&self, no: u32) -> Result<RebuildReport, EngineError>;
    fn full_rebuild(&self) -> Box<dyn crate::rebuild::RebuildSink + '_>;
    fn status(&self) -> Result<ProjectionStatus, EngineError>;
    fn group_status(&self, no: u32) -> GroupStatus;
    fn verify_group(&self, no: u32) -> Result<Option<String>, EngineError>;
    fn evict_all(&self);
    fn counters(&self) -> FoldCounters;
}

pub(crate) struct Runtime<P: Projection> {
    pub(crate) projection: P,
    pub(crate) name: String,
    version: u64,
    pub(crate) kinds: KindSet,
    pub(crate) store: Store,
    slots: Slots<P::State>,
    /// Bumped by `evict_all`: every slot of an older epoch reads as not loaded.
    epoch: AtomicU64,
    empty: P::State,
    counters: Counters,
}

/// How often each way of advancing a slot ran (see [`FoldCounters`]).
#[derive(Default)]
struct Counters {
    live_folds: AtomicU64,
    busy_skips: AtomicU64,
    loads: AtomicU64,
    tail_folds: AtomicU64,
}

/// Applies one event, turning an error or a panic into a failure at `seq`.
pub(crate) fn apply_guarded<P: Projection>(
    p: &P,
    state: &mut P::State,
    seq: u64,
    event: EventRef<'_>,
) -> Result<(), Failure> {
    guarded(seq, || p.apply(state, &event))
}

/// Runs one fold step, turning an error or a panic into a failure at `seq`.
pub(crate) fn guarded(
    seq: u64,
    apply: impl FnOnce() -> Result<(), crate::projection::ApplyError>,
) -> Result<(), Failure> {
    match catch_unwind(AssertUnwindSafe(apply)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure { seq, message: e.0 }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(Failure {
                seq,
                message: format!("panicked: {message}"),
            })
        }
    }
}

impl<P: Projection> Runtime<P> {
    pub(crate) fn new(projection: P, store: Store) -> Self {
        let name = projection.name().to_owned();
        let version = projection.version();
        let kinds = KindSet::new(&projection.kinds());
        let empty = projection.init();
        Self {
            projection,
            name,
            version,
            kinds,
            store,
            slots: SlotTable::default(),
            epoch: AtomicU64::new(0),
            empty,
            counters: Counters::default(),
        }
    }

    pub(crate) fn group_name(&self, no: u32) -> String {
        self.store
            .group_by_no(no)
            .map_or_else(|| format!("#{no}"), |g| g.name.to_string())
    }

    fn failed(&self, no: u32, failure: &Failure) -> EngineError {
        EngineError::Failed {
            projection: self.name.clone(),
            group: self.group_name(no),
            seq: failure.seq,
            message: failure.message.clone(),
        }
    }

    /// Answers from the group's state once it is fully loaded: its watermark has
    /// reached the group's head as committed by any process at the start of this call.
    pub(crate) fn read<R>(
        &self,
        group: &str,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<R, EngineError> {
        self.read_at(group, f).map(|(r, _)| r)
    }

    /// [`Runtime::read`], also returning the watermark the answer was folded to.
    ///
    /// The closure runs holding only this slot's read lock (taken re-entrantly), never
    /// the slot table's: the writer's commit hook only tries the slot's write lock and
    /// skips a busy slot (its next read catches up), so a closure may append, read other
    /// groups, or read this one again. A nested read of this same slot that needs a
    /// catch-up answers from a private copy instead of waiting for its own lock.
    pub(crate) fn read_at<R>(
        &self,
        group: &str,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<(R, u64), EngineError> {
        let at = self.store.group_no_head(group)?;
        self.read_resolved(at, f)
    }

    /// [`Runtime::read_at`] for a group already resolved to its number and the head
    /// the answer must reach (`None`: no event of the group is in the log).
    pub(crate) fn read_resolved<R>(
        &self,
        at: Option<(u32, u64)>,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<(R, u64), EngineError> {
        let Some((no, head)) = at else {
            // No event of this group is in the log: the fold of nothing.
            return Ok((f(&self.empty), 0));
        };
        let mut f = Some(f);
        loop {
            if let Some(slot) = self.slots.get(no) {
                let (_held, nested) = held::enter(slot);
                let st = slot.state.read_recursive();
                match st.status(self.epoch.load(Ordering::Acquire)) {
                    Status::Loaded if st.watermark >= head => {
                        let f = f.take().expect("called once: we return right after");
                        return Ok((f(&st.value), st.watermark));
                    }
                    Status::Failed(failure) => return Err(self.failed(no, failure)),
                    Status::Loaded if nested => {
                        let mut value = st.value.clone();
                        let (reached, _) = self.fold_tail(no, &mut value, st.watermark)?;
                        let f = f.take().expect("called once: we return right after");
                        return Ok((f(&value), reached));
                    }
                    _ => {}
                }
            }
            self.catch_up(no, head)?;
        }
    }

    fn slot(&self, no: u32) -> &Arc<Slot<P::State>> {
        self.slots.get_or_init(no, || Slot {
            state: RwLock::new(SlotState {
                value: self.projection.init(),
                watermark: 0,
                events: 0,
                checkpointed_events: 0,
                status: Status::NotLoaded,
                epoch: 0,
            }),
            flight: Mutex::new(()),
        })
    }

    fn current_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Folds the group's events after `after` into `value`. Returns the last sequence
    /// number passed and how many of the group's events were passed.
    fn fold_tail(
        &self,
        no: u32,
        value: &mut P::State,
        after: u64,
    ) -> Result<(u64, u64), EngineError> {
        let mut failure = None;
        let scan = self.store.scan_group(
            no,
            after,
            |kind| self.kinds.contains(kind),
            |seq, event| match apply_guarded(&self.projection, value, seq, event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(f) => {
                    failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        )?;
        match failure {
            Some(f) => Err(self.failed(no, &f)),
            None => Ok((scan.last, scan.events)),
        }
    }

    /// Brings group `no` to at least `target`. A group not loaded is loaded from its
    /// checkpoint (or from nothing) plus its tail, outside the slot's lock, then
    /// installed; a loaded group that fell behind (commits of other processes, or
    /// commits whose live fold found the slot busy) folds its tail in place under the
    /// slot's write lock, without copying its state. One thread per group does it.
    fn catch_up(&self, no: u32, target: u64) -> Result<(), EngineError> {
        let slot = self.slot(no);
        let _flight = slot.flight.lock();
        let loaded = {
            let st = slot.state.read_recursive();
            match st.status(self.current_epoch()) {
                Status::Loaded if st.watermark >= target => return Ok(()),
                Status::Failed(failure) => return Err(self.failed(no, failure)),
                Status::Loaded => true,
                Status::NotLoaded => false,
            }
        };
        let started = Instant::now();
        let _span =
            tracing::debug_span!("catch_up", projection = %self.name, group = no, target).entered();
        if loaded {
            self.counters.tail_folds.fetch_add(1, Ordering::Relaxed);
            let mut st = slot.state.write();
            let from = st.watermark;
            let mut value = std::mem::replace(&mut st.value, self.projection.init());
            return match self.fold_tail(no, &mut value, from) {
                Ok((reached, events)) => {
                    st.value = value;
                    st.watermark = reached;
                    st.events += events;
                    tracing::debug!(projection = %self.name, group = no, from, to = reached,
                        events, micros = started.elapsed().as_micros() as u64, "caught up a loaded group");
                    Ok(())
                }
                Err(e) => {
                    // A store error leaves the slot as it was (the fold itself did not fail).
                    if !matches!(e, EngineError::Failed { .. }) {
                        st.value = value;
                    }
                    Err(self.mark_failed(&mut st, no, e))
                }
            };
        }
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let (mut value, watermark, events, checkpointed) = self.load_checkpoint(no, target)?;
        let folded = self.fold_tail(no, &mut value, watermark);
        let mut st = slot.state.write();
        let (reached, scanned) = match folded {
            Ok(r) => r,
            Err(e) => return Err(self.mark_failed(&mut st, no, e)),
        };
        st.value = value;
        st.watermark = reached;
        st.events = events + scanned;
        st.checkpointed_events = checkpointed;
        st.status = Status::Loaded;
        st.epoch = self.current_epoch();
        tracing::debug!(projection = %self.name, group = no, from_checkpoint = watermark > 0, from = watermark,
            to = reached, scanned, micros = started.elapsed().as_micros() as u64, "loaded");
        Ok(())
    }

    /// Marks a slot failed after a fold error; any other error leaves it as it was.
    fn mark_failed(
        &self,
        st: &mut SlotState<P::State>,
        no: u32,
        error: EngineError,
    ) -> EngineError {
        if let EngineError::Failed { seq, message, .. } = &error {
            tracing::error!(projection = %self.name, group = %self.group_name(no), seq,
                error = %message, "fold failed; the group serves errors until rebuilt");
            st.value = self.projection.init();
            st.status = Status::Failed(Arc::new(Failure {
                seq: *seq,
                message: message.clone(),
            }));
            st.epoch = self.current_epoch();
        }
        error
    }

    /// The checkpointed state of a group, or the initial state when there is no usable
    /// checkpoint. Unusable checkpoints are reported and ignored, never trusted.
    fn load_checkpoint(
        &self,
        no: u32,
        head: u64,
    ) -> Result<(P::State, u64, u64, u64), EngineError> {
        let fresh = || (self.projection.init(), 0, 0, 0);
        let checkpoint = match self.store.read_checkpoint(&self.name, no) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(fresh()),
            Err(StoreError::Corrupted(c)) => {
                tracing::warn!(projection = %self.name, group = no, error = %c, "ignoring a corrupted checkpoint; rebuilding from the log");
                return Ok(fresh());
            }
            Err(e) => return Err(e.into()),
        };
        if checkpoint.version != self.version {
            tracing::warn!(projection = %self.name, group = no, found = checkpoint.version, expected = self.version,
                "ignoring a checkpoint of another projection version; rebuilding from the log");
            return Ok(fresh());
        }
        if checkpoint.watermark > head.max(self.store.group_head(no)) {
            tracing::warn!(projection = %self.name, group = no, watermark = checkpoint.watermark,
                "ignoring a checkpoint beyond the group's head; rebuilding from the log");
            return Ok(fresh());
        }
        match self.projection.decode(&checkpoint.state) {
            Ok(state) => Ok((
                state,
                checkpoint.watermark,
                checkpoint.events,
                checkpoint.events,
            )),
            Err(e) => {
                tracing::warn!(projection = %self.name, group = no, error = %e, "ignoring an undecodable checkpoint; rebuilding from the log");
                Ok(fresh())
            }
        }
    }

    /// A full replay of one group from sequence 1, without checkpoints: the oracle.
    pub(crate) fn replay(&self, no: u32) -> Result<P::State, EngineError> {
        self.replay_until(no, u64::MAX)
    }

    /// A full replay of one group's events up to sequence `until`.
    pub(crate) fn replay_until(&self, no: u32, until: u64) -> Result<P::State, EngineError> {
        let mut value = self.projection.init();
        let mut failure = None;
        self.store.scan_group(
            no,
            0,
            |kind| self.kinds.contains(kind),
            |seq, event| {
                if seq > until {
                    return ControlFlow::Break(());
                }
                match apply_guarded(&self.projection, &mut value, seq, event) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(f) => {
                        failure = Some(f);
                        ControlFlow::Break(())
                    }
                }
            },
        )?;
        match failure {
            Some(f) => Err(self.failed(no, &f)),
            None => Ok(value),
        }
    }

    pub(crate) fn replay_group(&self, group: &str) -> Result<P::State, EngineError> {
        match self.store.group_no_head(group)? {
            Some((no, _)) => self.replay(no),
            None => Ok(self.projection.init()),
        }
    }

    pub(crate) fn publish_rebuilt(&self, no: u32, acc: Acc<P::State>) {
        let slot = self.slot(no);
        let mut st = slot.state.write();
        let epoch = self.current_epoch();
        if matches!(st.status(epoch), Status::Loaded) && st.watermark > acc.watermark {
            return;
        }
        st.epoch = epoch;
        st.value = acc.value;
        st.watermark = acc.watermark;
        st.events = acc.events;
        st.checkpointed_events = acc.events;
        st.status = match acc.failure {
            Some(f) => Status::Failed(Arc::new(f)),
            None => Status::Loaded,
        };
    }

    pub(crate) fn checkpoint_of(
        &self,
        no: u32,
        acc: &Acc<P::State>,
    ) -> Result<CheckpointWrite, EngineError> {
        let state = self
            .projection
            .encode(&acc.value)
            .map_err(|e| EngineError::Codec {
                projection: self.name.clone(),
                message: e.0,
            })?;
        Ok(CheckpointWrite {
            projection: self.name.clone(),
            group: no,
            checkpoint: Checkpoint {
                version: self.version,
                watermark: acc.watermark,
                events: acc.events,
                state,
            },
        })
    }
}

impl<P: Projection> Runtime<P> {
    /// Replays one group from sequence 1, writes its checkpoint, publishes it.
    fn rebuild_group(&self, no: u32) -> Result<RebuildReport, EngineError> {
        let started = Instant::now();
        let mut acc = Acc {
            value: self.projection.init(),
            watermark: 0,
            events: 0,
            failure: None,
        };
        let scan = self.store.scan_group(
            no,
            0,
            |kind| self.kinds.contains(kind),
            |seq, event| match apply_guarded(&self.projection, &mut acc.value, seq, event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(f) => {
                    acc.failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        )?;
        acc.watermark = scan.last;
        acc.events = scan.events;
        if acc.failure.is_none() {
            self.store
                .write_checkpoints(vec![self.checkpoint_of(no, &acc)?], None)?;
        }
        let failed = usize::from(acc.failure.is_some());
        self.publish_rebuilt(no, acc);
        let report = RebuildReport {
            projection: self.name.clone(),
            events: scan.events,
            groups: 1,
            failed,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            events = report.events,
            micros = report.elapsed.as_micros() as u64,
            "rebuilt one group"
        );
        Ok(report)
    }
}

pub(crate) struct Acc<S> {
    pub(crate) value: S,
    pub(crate) watermark: u64,
    pub(crate) events: u64,
    pub(crate) failure: Option<Failure>,
}

impl<P: Projection> ErasedRuntime for Runtime<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn folds(&self, kind: u16) -> bool {
        self.kinds.contains(kind)
    }

    /// Folds freshly committed events into groups that are loaded and current, so hot
    /// groups never need a read-time catch-up. Groups not loaded, or behind, are left
    /// for their next read.
    fn on_commit(&self, batch: &[Committed<'_>], checkpoint_every: u64, due: &mut Vec<u32>) {
        for c in batch {
            let Some((_, no)) = c.group else { continue };
            let Some(slot) = self.slots.get(no) else {
                continue;
            };
            // Never wait for a reader: a busy slot is left behind, and its next read
            // folds the tail.
            let Some(mut st) = slot.state.try_write() else {
                self.counters.busy_skips.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if !matches!(st.status(self.current_epoch()), Status::Loaded)
                || st.watermark != c.prev_head
            {
                continue;
            }
            if self.kinds.contains(c.event.kind())
                && let Err(failure) = apply_guarded(&self.projection, &mut st.value, c.seq, c.event)
            {
                tracing::error!(projection = %self.name, group = no, seq = failure.seq,
                    error = %failure.message, "fold failed; the group serves errors until rebuilt");
                st.value = self.projection.init();
                st.status = Status::Failed(Arc::new(failure));
                continue;
            }
            self.counters.live_folds.fetch_add(1, Ordering::Relaxed);
            st.watermark = c.seq;
            st.events += 1;
            if checkpoint_every > 0 && st.events - st.checkpointed_events >= checkpoint_every {
                due.push(no);
            }
        }
    }

    fn ensure_loaded(&self, no: u32) -> Result<(), EngineError> {
        self.store.refresh()?;
        self.catch_up(no, self.store.group_head(no))
    }

    fn collect_checkpoints(
        &self,
        only: Option<&[u32]>,
    ) -> Result<Vec<(CheckpointWrite, u64)>, EngineError> {
        let slots: Vec<(u32, &Arc<Slot<P::State>>)> = match only {
            Some(list) => list
                .iter()
                .filter_map(|&no| self.slots.get(no).map(|s| (no, s)))
                .collect(),
            None => self.slots.iter().collect(),
        };
        let epoch = self.current_epoch();
        let mut out = Vec::new();
        for (no, slot) in slots {
            let st = slot.state.read();
            if !matches!(st.status(epoch), Status::Loaded) || st.events <= st.checkpointed_events {
                continue;
            }
            // State and watermark are read under one lock: a checkpoint never claims a
            // watermark beyond what was folded into its state.
            let state = self
                .projection
                .encode(&st.value)
                .map_err(|e| EngineError::Codec {
                    projection: self.name.clone(),
                    message: e.0,
                })?;
            let checkpoint = Checkpoint {
                version: self.version,
                watermark: st.watermark,
                events: st.events,
                state,
            };
            out.push((
                CheckpointWrite {
                    projection: self.name.clone(),
                    group: no,
                    checkpoint,
                },
                st.events,
            ));
        }
        Ok(out)
    }

    fn mark_checkpointed(&self, no: u32, events: u64) {
        if let Some(slot) = self.slots.get(no) {
            let mut st = slot.state.write();
            st.checkpointed_events = st.checkpointed_events.max(events);
        }
    }

    fn rebuild_group(&self, no: u32) -> Result<RebuildReport, EngineError> {
        let rebuild_span = tracing::info_span!("rebuild", projection = %self.name, group = no);
        let _enter = rebuild_span.enter();
        Runtime::rebuild_group(self, no)
    }

    fn full_rebuild(&self) -> Box<dyn crate::rebuild::RebuildSink + '_> {
        Box::new(crate::rebuild::FullRebuild::new(self))
    }

    fn status(&self) -> Result<ProjectionStatus, EngineError> {
        let checkpointed = self.store.checkpointed_groups(&self.name)?.len();
        let mut status = ProjectionStatus {
            name: self.name.clone(),
            version: self.version,
            with_checkpoint: checkpointed,
            ..ProjectionStatus::default()
        };
        for group in self.store.groups() {
            status.groups += 1;
            let g = self.group_status(group.no);
            match g.state {
                LoadState::Loaded => status.loaded += 1,
                LoadState::Failed { .. } => status.failed += 1,
                LoadState::NotLoaded => {}
            }
            status.lag += g.lag;
        }
        Ok(status)
    }

    fn group_status(&self, no: u32) -> GroupStatus {
        let (head, count) = self
            .store
            .group_by_no(no)
            .map_or((0, 0), |g| (g.head, g.count));
        let Some(slot) = self.slots.get(no) else {
            return GroupStatus {
                head,
                watermark: 0,
                lag: count,
                state: LoadState::NotLoaded,
            };
        };
        let st = slot.state.read();
        let state = match st.status(self.current_epoch()) {
            Status::NotLoaded => LoadState::NotLoaded,
            Status::Loaded => LoadState::Loaded,
            Status::Failed(f) => LoadState::Failed {
                seq: f.seq,
                message: f.message.clone(),
            },
        };
        let lag = if matches!(state, LoadState::NotLoaded) {
            count
        } else {
            count.saturating_sub(st.events)
        };
        GroupStatus {
            head,
            watermark: st.watermark,
            lag,
            state,
        }
    }

    /// Compares the served state with a replay of the log up to the very watermark the
    /// served state was folded to, so commits arriving meanwhile (from any process)
    /// cannot show up as a difference.
    fn verify_group(&self, no: u32) -> Result<Option<String>, EngineError> {
        let name = self.group_name(no);
        let served = self.read_at(&name, Clone::clone);
        let until = served.as_ref().map_or(u64::MAX, |(_, at)| *at);
        let replayed = self.replay_until(no, until);
        compare_with_replay(served, replayed)
    }

    fn counters(&self) -> FoldCounters {
        FoldCounters {
            live_folds: self.counters.live_folds.load(Ordering::Relaxed),
            busy_skips: self.counters.busy_skips.load(Ordering::Relaxed),
            loads: self.counters.loads.load(Ordering::Relaxed),
            tail_folds: self.counters.tail_folds.load(Ordering::Relaxed),
        }
    }

    /// Every slot reads as not loaded from now on (a new epoch), and the state of
    /// each slot nobody holds is dropped at once; a slot busy with a reader or a load
    /// drops its old state when its next read reloads it. Never waits for a reader.
    fn evict_all(&self) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        for (_, slot) in self.slots.iter() {
            if let Some(mut st) = slot.state.try_write()
                && st.epoch != epoch
            {
                st.value = self.projection.init();
                st.status = Status::NotLoaded;
                st.watermark = 0;
                st.events = 0;
                st.checkpointed_events = 0;
            }
        }
    }
}

/// The slots whose read lock this thread holds while a read closure runs, so that a
/// nested read of the same slot neither waits for its own lock nor deadlocks.
pub(crate) mod held {
    use std::cell::RefCell;
    use std::sync::Arc;

    thread_local! {
        static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    fn key<T>(slot: &Arc<T>) -> usize {
        Arc::as_ptr(slot).cast::<()>() as usize
    }

    /// Removes its slot from the thread's list when the read ends (or unwinds).
    pub(crate) struct Guard(usize);

    /// Adds `slot` to the thread's list, and says whether it was there already (a
    /// nested read of the same slot).
    pub(crate) fn enter<T>(slot: &Arc<T>) -> (Guard, bool) {
        let k = key(slot);
        let nested = HELD.with(|h| {
            let mut h = h.borrow_mut();
            let nested = h.contains(&k);
            h.push(k);
            nested
        });
        (Guard(k), nested)
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                if let Some(i) = h.iter().rposition(|&k| k == self.0) {
                    h.remove(i);
                }
            });
        }
    }
}

/// A served state (with the watermark it was folded to) against a replay of the log up
/// to that watermark: `None` when they agree, else the difference in words. Both
/// failing the same way is agreement; a log that cannot be read is an error, not
/// agreement. Per-group and relay-wide verification share it.
pub(crate) fn compare_with_replay<S: PartialEq + std::fmt::Debug>(
    served: Result<(S, u64), EngineError>,
    replayed: Result<S, EngineError>,
) -> Result<Option<String>, EngineError> {
    match (served, replayed) {
        (Ok((a, _)), Ok(b)) if a == b => Ok(None),
        (Ok((a, at)), Ok(b)) => Ok(Some(format!(
            "at sequence {at}: served {a:?}\nreplay {b:?}"
        ))),
        (Err(EngineError::Store(e)), _) | (_, Err(EngineError::Store(e))) => {
            Err(EngineError::Store(e))
        }
        (Err(a), Err(b)) if a.to_string() == b.to_string() => Ok(None),
        (a, b) => Ok(Some(format!(
            "served {:?}\nreplay {:?}",
            a.map(|_| "state"),
            b.map(|_| "state")
        ))),
    }
}
