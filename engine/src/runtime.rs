//! One projection's runtime: per-group slots (state, watermark, status), the
//! fully-loaded read, catch-up from checkpoint plus tail, live folds, rebuild.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use highwater_store::{Checkpoint, CheckpointWrite, Committed, EventRef, Store, StoreError};
use parking_lot::{Mutex, RwLock};

use crate::error::EngineError;
use crate::projection::{KindSet, Projection};
use crate::status::{GroupStatus, LoadState, ProjectionStatus, RebuildReport};

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
}

/// Slots by group number; `None` for groups never touched.
type Slots<S> = RwLock<Vec<Option<Arc<Slot<S>>>>>;

struct Slot<S> {
    state: RwLock<SlotState<S>>,
    /// Single flight: the one thread loading or catching up this group holds it.
    flight: Mutex<()>,
}

/// What the engine needs of a runtime, without its state type.
pub(crate) trait ErasedRuntime: Send + Sync {
    fn name(&self) -> &str;
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
}

pub(crate) struct Runtime<P: Projection> {
    pub(crate) projection: P,
    pub(crate) name: String,
    version: u64,
    pub(crate) kinds: KindSet,
    pub(crate) store: Store,
    slots: Slots<P::State>,
    empty: P::State,
}

/// Applies one event, turning an error or a panic into a failure at `seq`.
pub(crate) fn apply_guarded<P: Projection>(
    p: &P,
    state: &mut P::State,
    seq: u64,
    event: EventRef<'_>,
) -> Result<(), Failure> {
    match catch_unwind(AssertUnwindSafe(|| p.apply(state, &event))) {
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
            slots: RwLock::new(Vec::new()),
            empty,
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
    /// reached the group's head as read at the start of this call.
    pub(crate) fn read<R>(
        &self,
        group: &str,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<R, EngineError> {
        let Some((no, head)) = self.store.group_no_head(group) else {
            // No event of this group is in the log: the fold of nothing.
            return Ok(f(&self.empty));
        };
        let mut f = Some(f);
        loop {
            {
                let slots = self.slots.read();
                if let Some(Some(slot)) = slots.get(no as usize) {
                    let st = slot.state.read();
                    match &st.status {
                        Status::Loaded if st.watermark >= head => {
                            let f = f.take().expect("called once: we return right after");
                            return Ok(f(&st.value));
                        }
                        Status::Failed(failure) => return Err(self.failed(no, failure)),
                        _ => {}
                    }
                }
            }
            self.catch_up(no, head)?;
        }
    }

    fn slot(&self, no: u32) -> Arc<Slot<P::State>> {
        if let Some(Some(slot)) = self.slots.read().get(no as usize) {
            return slot.clone();
        }
        let mut slots = self.slots.write();
        if slots.len() <= no as usize {
            slots.resize_with(no as usize + 1, || None);
        }
        slots[no as usize]
            .get_or_insert_with(|| {
                Arc::new(Slot {
                    state: RwLock::new(SlotState {
                        value: self.projection.init(),
                        watermark: 0,
                        events: 0,
                        checkpointed_events: 0,
                        status: Status::NotLoaded,
                    }),
                    flight: Mutex::new(()),
                })
            })
            .clone()
    }

    /// Brings group `no` to at least `target`: from its loaded state, or from its
    /// checkpoint, or from nothing; then the group's tail. One thread per group does it.
    fn catch_up(&self, no: u32, target: u64) -> Result<(), EngineError> {
        let slot = self.slot(no);
        let _flight = slot.flight.lock();
        let start = {
            let st = slot.state.read();
            match &st.status {
                Status::Loaded if st.watermark >= target => return Ok(()),
                Status::Failed(failure) => return Err(self.failed(no, failure)),
                Status::Loaded => Some((
                    st.value.clone(),
                    st.watermark,
                    st.events,
                    st.checkpointed_events,
                )),
                Status::NotLoaded => None,
            }
        };
        let started = Instant::now();
        let from_checkpoint = start.is_none();
        let _span =
            tracing::debug_span!("catch_up", projection = %self.name, group = no, target).entered();
        let (mut value, watermark, events, checkpointed) = match start {
            Some(s) => s,
            None => self.load_checkpoint(no, target)?,
        };
        let mut failure = None;
        let mut applied = 0u64;
        let scan = self.store.scan_group(
            no,
            watermark,
            |kind| self.kinds.contains(kind),
            |seq, event| match apply_guarded(&self.projection, &mut value, seq, event) {
                Ok(()) => {
                    applied += 1;
                    ControlFlow::Continue(())
                }
                Err(f) => {
                    failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        )?;
        let mut st = slot.state.write();
        if let Some(failure) = failure {
            tracing::error!(projection = %self.name, group = %self.group_name(no), seq = failure.seq,
                error = %failure.message, "fold failed; the group serves errors until rebuilt");
            st.value = self.projection.init();
            st.status = Status::Failed(Arc::new(failure.clone()));
            return Err(self.failed(no, &failure));
        }
        let reached = scan.last;
        let keep_current = matches!(st.status, Status::Loaded) && st.watermark >= reached;
        if !keep_current {
            st.value = value;
            st.watermark = reached;
            st.events = events + scan.events;
            st.checkpointed_events = checkpointed;
            st.status = Status::Loaded;
        }
        tracing::debug!(projection = %self.name, group = no, from_checkpoint, from = watermark, to = reached,
            scanned = scan.events, applied, micros = started.elapsed().as_micros() as u64, "caught up");
        Ok(())
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
        let mut value = self.projection.init();
        let mut failure = None;
        self.store.scan_group(
            no,
            0,
            |kind| self.kinds.contains(kind),
            |seq, event| match apply_guarded(&self.projection, &mut value, seq, event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(f) => {
                    failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        )?;
        match failure {
            Some(f) => Err(self.failed(no, &f)),
            None => Ok(value),
        }
    }

    pub(crate) fn replay_group(&self, group: &str) -> Result<P::State, EngineError> {
        match self.store.group_no_head(group) {
            Some((no, _)) => self.replay(no),
            None => Ok(self.projection.init()),
        }
    }

    pub(crate) fn publish_rebuilt(&self, no: u32, acc: Acc<P::State>) {
        let slot = self.slot(no);
        let mut st = slot.state.write();
        if matches!(st.status, Status::Loaded) && st.watermark > acc.watermark {
            return;
        }
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

    /// Folds freshly committed events into groups that are loaded and current, so hot
    /// groups never need a read-time catch-up. Groups not loaded, or behind, are left
    /// for their next read.
    fn on_commit(&self, batch: &[Committed<'_>], checkpoint_every: u64, due: &mut Vec<u32>) {
        let slots = self.slots.read();
        for c in batch {
            let Some((_, no)) = c.group else { continue };
            let Some(Some(slot)) = slots.get(no as usize) else {
                continue;
            };
            let mut st = slot.state.write();
            if !matches!(st.status, Status::Loaded) || st.watermark != c.prev_head {
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
            st.watermark = c.seq;
            st.events += 1;
            if checkpoint_every > 0 && st.events - st.checkpointed_events >= checkpoint_every {
                due.push(no);
            }
        }
    }

    fn ensure_loaded(&self, no: u32) -> Result<(), EngineError> {
        self.catch_up(no, self.store.group_head(no))
    }

    fn collect_checkpoints(
        &self,
        only: Option<&[u32]>,
    ) -> Result<Vec<(CheckpointWrite, u64)>, EngineError> {
        let slots: Vec<(u32, Arc<Slot<P::State>>)> = {
            let all = self.slots.read();
            let pick = |no: u32| {
                all.get(no as usize)
                    .and_then(Option::clone)
                    .map(|s| (no, s))
            };
            match only {
                Some(list) => list.iter().filter_map(|&no| pick(no)).collect(),
                None => (0..all.len() as u32).filter_map(pick).collect(),
            }
        };
        let mut out = Vec::new();
        for (no, slot) in slots {
            let st = slot.state.read();
            if !matches!(st.status, Status::Loaded) || st.events <= st.checkpointed_events {
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
        if let Some(Some(slot)) = self.slots.read().get(no as usize) {
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
        let slot = self.slots.read().get(no as usize).and_then(Option::clone);
        let Some(slot) = slot else {
            return GroupStatus {
                head,
                watermark: 0,
                lag: count,
                state: LoadState::NotLoaded,
            };
        };
        let st = slot.state.read();
        let state = match &st.status {
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

    fn verify_group(&self, no: u32) -> Result<Option<String>, EngineError> {
        let name = self.group_name(no);
        let served = self.read(&name, Clone::clone);
        let replayed = self.replay(no);
        match (served, replayed) {
            (Ok(a), Ok(b)) if a == b => Ok(None),
            (Ok(a), Ok(b)) => Ok(Some(format!("served {a:?}\nreplay {b:?}"))),
            // The log could not be read (a corrupted record): an error, not agreement.
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

    fn evict_all(&self) {
        self.slots.write().clear();
    }
}
