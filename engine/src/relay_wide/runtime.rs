//! One relay-wide projection's runtime: its state and watermark, the current read,
//! catch-up from checkpoint plus log tail, live folds on commit, rebuild and verify.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use highwater_store::{Checkpoint, CheckpointWrite, Committed, Store, StoreError};
use parking_lot::{Mutex, RwLock};

use super::projection::{RELAY_WIDE_GROUP, RelayWideProjection};
use crate::error::EngineError;
use crate::fold::{Failure, compare_with_replay, guarded};
use crate::held;
use crate::projection::KindSet;
use crate::status::{LoadState, RebuildReport, RelayWideCounters, RelayWideStatus};

/// Log records a relay-wide state may fall behind its checkpoint, per
/// `EngineOptions::checkpoint_every`, before a periodic checkpoint is due: its records
/// of other kinds cost a cold read only a header each, so they may run far ahead.
const RECORDS_PER_FOLD: u64 = 64;

#[derive(Debug, Clone)]
enum Status {
    NotLoaded,
    Loaded,
    Failed(Arc<Failure>),
}

struct Current<S> {
    value: S,
    /// The log position every record up to which is folded (or passed by kind).
    watermark: u64,
    /// Events of the projection's kinds folded since the state was loaded.
    folded: u64,
    /// `watermark` of the last checkpoint written or loaded.
    checkpointed_watermark: u64,
    /// `folded` at the last checkpoint written or loaded.
    checkpointed_folded: u64,
    status: Status,
    /// The eviction epoch this status belongs to (see `evict_all`).
    epoch: u64,
}

struct Slot<S> {
    state: RwLock<Current<S>>,
    /// Single flight: the one thread loading or catching up holds it.
    flight: Mutex<()>,
}

/// What a checkpoint covers, recorded once it is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Covered {
    watermark: u64,
    folded: u64,
}

/// What the engine needs of a relay-wide runtime, without its state type.
pub(crate) trait ErasedRelayWide: Send + Sync {
    fn name(&self) -> &str;
    /// Whether this projection folds `kind` (retention never removes such records).
    fn folds(&self, kind: u16) -> bool;
    /// Folds this process's commit when the state is current; whether a periodic
    /// checkpoint is due.
    fn on_commit(&self, batch: &[Committed<'_>], checkpoint_every: u64) -> bool;
    /// Makes the state current; returns how many records the catch-up passed.
    fn make_current(&self) -> Result<u64, EngineError>;
    /// Whether a catch-up that passed `records` records leaves a checkpoint due.
    fn long_tail(&self, records: u64, checkpoint_every: u64) -> bool;
    fn collect_checkpoint(&self) -> Result<Option<(CheckpointWrite, Covered)>, EngineError>;
    fn mark_checkpointed(&self, covered: Covered);
    fn rebuild(&self) -> Result<RebuildReport, EngineError>;
    fn verify(&self) -> Result<Option<String>, EngineError>;
    fn status(&self) -> Result<RelayWideStatus, EngineError>;
    fn evict_all(&self);
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    checkpoint_loads: AtomicU64,
    tail_folds: AtomicU64,
    live_folds: AtomicU64,
    busy_skips: AtomicU64,
    records_scanned: AtomicU64,
}

pub(crate) struct RelayWideRuntime<P: RelayWideProjection> {
    pub(crate) projection: P,
    name: String,
    version: u64,
    kinds: KindSet,
    store: Store,
    slot: Arc<Slot<P::State>>,
    epoch: AtomicU64,
    counters: Counters,
}

/// A state folded from a checkpoint (or from nothing) and a tail.
struct Loaded<S> {
    value: S,
    watermark: u64,
    from_checkpoint: Option<u64>,
}

impl<P: RelayWideProjection> RelayWideRuntime<P> {
    pub(crate) fn new(projection: P, store: Store) -> Self {
        let name = projection.name().to_owned();
        let version = projection.version();
        let kinds = KindSet::new(&projection.kinds());
        let value = projection.init();
        Self {
            projection,
            name,
            version,
            kinds,
            store,
            slot: Arc::new(Slot {
                state: RwLock::new(Current {
                    value,
                    watermark: 0,
                    folded: 0,
                    checkpointed_watermark: 0,
                    checkpointed_folded: 0,
                    status: Status::NotLoaded,
                    epoch: 0,
                }),
                flight: Mutex::new(()),
            }),
            epoch: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn status_of<'s>(&self, st: &'s Current<P::State>) -> &'s Status {
        if st.epoch == self.epoch() {
            &st.status
        } else {
            &Status::NotLoaded
        }
    }

    fn failed(&self, failure: &Failure) -> EngineError {
        EngineError::Failed {
            projection: self.name.clone(),
            group: "(relay-wide)".into(),
            seq: failure.seq,
            message: failure.message.clone(),
        }
    }

    /// The log head as committed by any process now.
    fn head(&self) -> Result<u64, EngineError> {
        self.store.refresh()?;
        Ok(self.store.head())
    }

    /// Answers from the state once its watermark has reached the log head as committed
    /// by any process at the start of this call; returns the watermark answered from.
    pub(crate) fn read_at<R>(
        &self,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<(R, u64), EngineError> {
        let head = self.head()?;
        let mut f = Some(f);
        loop {
            {
                let (_held, nested) = held::enter(&self.slot);
                let st = self.slot.state.read_recursive();
                match self.status_of(&st) {
                    Status::Loaded if st.watermark >= head => {
                        let f = f.take().expect("called once: we return right after");
                        return Ok((f(&st.value), st.watermark));
                    }
                    Status::Failed(failure) => return Err(self.failed(failure)),
                    // A read inside this projection's own read closure cannot take the
                    // write lock it holds: it answers from a private copy.
                    Status::Loaded if nested => {
                        let mut value = st.value.clone();
                        self.fold_tail(&mut value, st.watermark, head)?;
                        let f = f.take().expect("called once: we return right after");
                        return Ok((f(&value), head));
                    }
                    Status::NotLoaded if nested => {
                        let loaded = self.load(head)?;
                        let f = f.take().expect("called once: we return right after");
                        return Ok((f(&loaded.value), loaded.watermark));
                    }
                    _ => {}
                }
            }
            self.catch_up(head)?;
        }
    }

    /// Folds the records after `after` up to `to` into `value`, reading the body only
    /// of records of the projection's kinds. Returns how many events were folded.
    fn fold_tail(&self, value: &mut P::State, after: u64, to: u64) -> Result<u64, EngineError> {
        if after >= to {
            return Ok(0);
        }
        let (mut passed, mut folded) = (0u64, 0u64);
        let mut failure = None;
        let scanned = self.store.scan_where(
            after + 1,
            to,
            |_, header| {
                passed += 1;
                self.kinds.contains(header.kind)
            },
            |seq, _, event| match guarded(seq, || self.projection.apply(value, seq, &event)) {
                Ok(()) => {
                    folded += 1;
                    ControlFlow::Continue(())
                }
                Err(f) => {
                    failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        );
        self.counters
            .records_scanned
            .fetch_add(passed, Ordering::Relaxed);
        scanned?;
        match failure {
            Some(f) => Err(self.failed(&f)),
            None => Ok(folded),
        }
    }

    /// Brings the state to at least `target`: a loaded state folds the tail in place
    /// under its write lock; a state not loaded is loaded (checkpoint plus tail) outside
    /// the lock, then installed. One thread does it; the others wait for it.
    fn catch_up(&self, target: u64) -> Result<(), EngineError> {
        let _flight = self.slot.flight.lock();
        let loaded = {
            let st = self.slot.state.read_recursive();
            match self.status_of(&st) {
                Status::Loaded if st.watermark >= target => return Ok(()),
                Status::Failed(failure) => return Err(self.failed(failure)),
                Status::Loaded => true,
                Status::NotLoaded => false,
            }
        };
        let started = Instant::now();
        if loaded {
            self.counters.tail_folds.fetch_add(1, Ordering::Relaxed);
            let mut st = self.slot.state.write();
            let from = st.watermark;
            let mut value = std::mem::replace(&mut st.value, self.projection.init());
            return match self.fold_tail(&mut value, from, target) {
                Ok(folded) => {
                    st.value = value;
                    st.watermark = target;
                    st.folded += folded;
                    tracing::debug!(projection = %self.name, from, to = target, folded,
                        micros = started.elapsed().as_micros() as u64, "caught up a relay-wide state");
                    Ok(())
                }
                Err(e) => {
                    if !matches!(e, EngineError::Failed { .. }) {
                        st.value = value;
                    }
                    Err(self.mark_failed(&mut st, e))
                }
            };
        }
        let loaded = self.load(target);
        let mut st = self.slot.state.write();
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => return Err(self.mark_failed(&mut st, e)),
        };
        let checkpointed = loaded.from_checkpoint.unwrap_or(0);
        st.value = loaded.value;
        st.watermark = loaded.watermark;
        st.folded = 0;
        st.checkpointed_watermark = checkpointed;
        st.checkpointed_folded = 0;
        st.status = Status::Loaded;
        st.epoch = self.epoch();
        tracing::debug!(projection = %self.name, from_checkpoint = loaded.from_checkpoint.is_some(),
            from = checkpointed, to = loaded.watermark,
            micros = started.elapsed().as_micros() as u64, "loaded a relay-wide state");
        Ok(())
    }

    fn mark_failed(&self, st: &mut Current<P::State>, error: EngineError) -> EngineError {
        if let EngineError::Failed { seq, message, .. } = &error {
            tracing::error!(projection = %self.name, seq, error = %message,
                "relay-wide fold failed; the projection serves errors until rebuilt");
            st.value = self.projection.init();
            st.status = Status::Failed(Arc::new(Failure {
                seq: *seq,
                message: message.clone(),
            }));
            st.epoch = self.epoch();
        }
        error
    }

    /// The checkpointed state (or the initial one when there is no usable checkpoint)
    /// folded up to `target`. An unusable checkpoint is reported and ignored.
    fn load(&self, target: u64) -> Result<Loaded<P::State>, EngineError> {
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let (mut value, watermark, from_checkpoint) = match self.usable_checkpoint(target)? {
            Some((value, watermark)) => {
                self.counters
                    .checkpoint_loads
                    .fetch_add(1, Ordering::Relaxed);
                (value, watermark, Some(watermark))
            }
            None => (self.projection.init(), 0, None),
        };
        self.fold_tail(&mut value, watermark, target)?;
        Ok(Loaded {
            value,
            watermark: target.max(watermark),
            from_checkpoint,
        })
    }

    /// The stored checkpoint's state and watermark, when it is of this version,
    /// validates, decodes, and is not beyond the log head.
    fn usable_checkpoint(&self, target: u64) -> Result<Option<(P::State, u64)>, EngineError> {
        let checkpoint = match self.store.read_checkpoint(&self.name, RELAY_WIDE_GROUP) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(StoreError::Corrupted(c)) => {
                tracing::warn!(projection = %self.name, error = %c, "ignoring a corrupted relay-wide checkpoint; folding the log");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if checkpoint.version != self.version {
            tracing::warn!(projection = %self.name, found = checkpoint.version, expected = self.version,
                "ignoring a relay-wide checkpoint of another version; folding the log");
            return Ok(None);
        }
        if checkpoint.watermark > target.max(self.store.head()) {
            tracing::warn!(projection = %self.name, watermark = checkpoint.watermark,
                "ignoring a relay-wide checkpoint beyond the log head; folding the log");
            return Ok(None);
        }
        match self.projection.decode(&checkpoint.state) {
            Ok(value) => Ok(Some((value, checkpoint.watermark))),
            Err(e) => {
                tracing::warn!(projection = %self.name, error = %e, "ignoring an undecodable relay-wide checkpoint; folding the log");
                Ok(None)
            }
        }
    }

    /// A full replay of the log up to `until`, reading every record whole (not the
    /// header-filtered walk of catch-ups): the oracle.
    pub(crate) fn replay_until(&self, until: u64) -> Result<P::State, EngineError> {
        let mut value = self.projection.init();
        let mut failure = None;
        self.store.scan(1, |seq, event| {
            if seq > until {
                return ControlFlow::Break(());
            }
            if !self.kinds.contains(event.kind()) {
                return ControlFlow::Continue(());
            }
            match guarded(seq, || self.projection.apply(&mut value, seq, &event)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(f) => {
                    failure = Some(f);
                    ControlFlow::Break(())
                }
            }
        })?;
        match failure {
            Some(f) => Err(self.failed(&f)),
            None => Ok(value),
        }
    }

    pub(crate) fn counters(&self) -> RelayWideCounters {
        let c = &self.counters;
        RelayWideCounters {
            loads: c.loads.load(Ordering::Relaxed),
            checkpoint_loads: c.checkpoint_loads.load(Ordering::Relaxed),
            tail_folds: c.tail_folds.load(Ordering::Relaxed),
            live_folds: c.live_folds.load(Ordering::Relaxed),
            busy_skips: c.busy_skips.load(Ordering::Relaxed),
            records_scanned: c.records_scanned.load(Ordering::Relaxed),
        }
    }

    fn checkpoint_write(
        &self,
        value: &P::State,
        watermark: u64,
    ) -> Result<CheckpointWrite, EngineError> {
        let state = self
            .projection
            .encode(value)
            .map_err(|e| EngineError::Codec {
                projection: self.name.clone(),
                message: e.0,
            })?;
        Ok(CheckpointWrite {
            projection: self.name.clone(),
            group: RELAY_WIDE_GROUP,
            checkpoint: Checkpoint {
                version: self.version,
                watermark,
                // A relay-wide checkpoint counts no group's events.
                events: 0,
                state,
            },
        })
    }
}

impl<P: RelayWideProjection> ErasedRelayWide for RelayWideRuntime<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn folds(&self, kind: u16) -> bool {
        self.kinds.contains(kind)
    }

    /// Sequence numbers of one commit follow the log head in its write transaction, so
    /// a state whose watermark is the position just before the commit's first event
    /// misses nothing by folding it; any other state (behind, or another process wrote
    /// in between) is left for its next read.
    fn on_commit(&self, batch: &[Committed<'_>], checkpoint_every: u64) -> bool {
        let Some(mut st) = self.slot.state.try_write() else {
            self.counters.busy_skips.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        if !matches!(self.status_of(&st), Status::Loaded) {
            return false;
        }
        for c in batch {
            if c.seq != st.watermark + 1 {
                return false;
            }
            if self.kinds.contains(c.event.kind()) {
                let st = &mut *st;
                if let Err(failure) = guarded(c.seq, || {
                    self.projection.apply(&mut st.value, c.seq, &c.event)
                }) {
                    tracing::error!(projection = %self.name, seq = failure.seq, error = %failure.message,
                        "relay-wide fold failed; the projection serves errors until rebuilt");
                    st.value = self.projection.init();
                    st.status = Status::Failed(Arc::new(failure));
                    return false;
                }
                st.folded += 1;
                self.counters.live_folds.fetch_add(1, Ordering::Relaxed);
            }
            st.watermark = c.seq;
        }
        checkpoint_every > 0
            && (st.folded - st.checkpointed_folded >= checkpoint_every
                || st.watermark - st.checkpointed_watermark
                    >= checkpoint_every.saturating_mul(RECORDS_PER_FOLD))
    }

    fn make_current(&self) -> Result<u64, EngineError> {
        let before = self.counters.records_scanned.load(Ordering::Relaxed);
        self.read_at(|_| ())?;
        Ok(self.counters.records_scanned.load(Ordering::Relaxed) - before)
    }

    fn long_tail(&self, records: u64, checkpoint_every: u64) -> bool {
        checkpoint_every > 0 && records >= checkpoint_every.saturating_mul(RECORDS_PER_FOLD)
    }

    fn collect_checkpoint(&self) -> Result<Option<(CheckpointWrite, Covered)>, EngineError> {
        let st = self.slot.state.read();
        if !matches!(self.status_of(&st), Status::Loaded)
            || st.watermark <= st.checkpointed_watermark
        {
            return Ok(None);
        }
        // State and watermark under one lock: the checkpoint never claims a watermark
        // beyond what its state folded.
        let write = self.checkpoint_write(&st.value, st.watermark)?;
        Ok(Some((
            write,
            Covered {
                watermark: st.watermark,
                folded: st.folded,
            },
        )))
    }

    fn mark_checkpointed(&self, covered: Covered) {
        let mut st = self.slot.state.write();
        st.checkpointed_watermark = st.checkpointed_watermark.max(covered.watermark);
        st.checkpointed_folded = st.checkpointed_folded.max(covered.folded);
    }

    /// Folds the log from sequence 1 to its head, writes the checkpoint, publishes.
    fn rebuild(&self) -> Result<RebuildReport, EngineError> {
        let started = Instant::now();
        let _flight = self.slot.flight.lock();
        let head = self.head()?;
        let mut value = self.projection.init();
        let before = self.counters.records_scanned.load(Ordering::Relaxed);
        let folded = self.fold_tail(&mut value, 0, head);
        let events = self.counters.records_scanned.load(Ordering::Relaxed) - before;
        let mut st = self.slot.state.write();
        let failed = match folded {
            Ok(_) => {
                self.store
                    .write_checkpoints(vec![self.checkpoint_write(&value, head)?], None)?;
                st.value = value;
                st.watermark = head;
                st.folded = 0;
                st.checkpointed_watermark = head;
                st.checkpointed_folded = 0;
                st.status = Status::Loaded;
                st.epoch = self.epoch();
                0
            }
            Err(e @ EngineError::Failed { .. }) => {
                let _ = self.mark_failed(&mut st, e);
                1
            }
            Err(e) => return Err(e),
        };
        let report = RebuildReport {
            projection: self.name.clone(),
            events,
            groups: 0,
            failed,
            elapsed: started.elapsed(),
        };
        tracing::info!(projection = %self.name, events, millis = report.elapsed.as_millis() as u64, "rebuilt a relay-wide projection");
        Ok(report)
    }

    /// Compares the served state with a full replay up to the very watermark it was
    /// folded to, so commits arriving meanwhile cannot show up as a difference.
    fn verify(&self) -> Result<Option<String>, EngineError> {
        let served = self.read_at(Clone::clone);
        let until = served.as_ref().map_or(u64::MAX, |(_, at)| *at);
        let replayed = self.replay_until(until);
        compare_with_replay(served, replayed)
    }

    fn status(&self) -> Result<RelayWideStatus, EngineError> {
        let head = self.head()?;
        let checkpoint = match self.store.read_checkpoint(&self.name, RELAY_WIDE_GROUP) {
            Ok(Some(c)) if c.version == self.version => Some(c.watermark),
            Ok(_) | Err(StoreError::Corrupted(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let st = self.slot.state.read();
        let (state, watermark) = match self.status_of(&st) {
            Status::NotLoaded => (LoadState::NotLoaded, 0),
            Status::Loaded => (LoadState::Loaded, st.watermark),
            Status::Failed(f) => (
                LoadState::Failed {
                    seq: f.seq,
                    message: f.message.clone(),
                },
                0,
            ),
        };
        Ok(RelayWideStatus {
            name: self.name.clone(),
            version: self.version,
            head,
            watermark,
            state,
            checkpoint,
        })
    }

    /// The state reads as not loaded from now on; dropped at once unless a reader
    /// holds it. Never waits for a reader.
    fn evict_all(&self) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(mut st) = self.slot.state.try_write()
            && st.epoch != epoch
        {
            st.value = self.projection.init();
            st.status = Status::NotLoaded;
            st.watermark = 0;
            st.folded = 0;
            st.checkpointed_watermark = 0;
            st.checkpointed_folded = 0;
        }
    }
}
