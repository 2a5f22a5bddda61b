//! The per-group runtime and its slots: a slot per group (state, watermark, event
//! count, status) behind a `RwLock`, with a mutex for single-flight catch-up; the
//! eviction epoch; how often each way of advancing a slot ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use highwater_store::Store;
use parking_lot::{Mutex, RwLock};

use crate::error::EngineError;
use crate::fold::Failure;
use crate::projection::{KindSet, Projection};
use crate::slots::SlotTable;

/// Whether a slot's state may be served.
#[derive(Debug, Clone)]
pub(super) enum Status {
    NotLoaded,
    Loaded,
    Failed(Arc<Failure>),
}

/// A group's state and where it stands, changed together under the slot's write lock.
pub(super) struct SlotState<S> {
    pub(super) value: S,
    /// Last sequence number folded (kept or skipped by kind).
    pub(super) watermark: u64,
    /// The group's events folded (kept or skipped) up to `watermark`.
    pub(super) events: u64,
    /// `events` at the last checkpoint written or loaded.
    pub(super) checkpointed_events: u64,
    pub(super) status: Status,
    /// The runtime's eviction epoch this status belongs to: a slot of an older epoch
    /// is not loaded, whatever its status says (see `Runtime::evict_all`).
    pub(super) epoch: u64,
}

impl<S> SlotState<S> {
    /// The status, as of eviction epoch `epoch`.
    pub(super) fn status(&self, epoch: u64) -> &Status {
        if self.epoch == epoch {
            &self.status
        } else {
            &Status::NotLoaded
        }
    }
}

/// Slots by group number, created on first use and never removed.
pub(super) type Slots<S> = SlotTable<Slot<S>>;

pub(super) struct Slot<S> {
    pub(super) state: RwLock<SlotState<S>>,
    /// Single flight: the one thread loading or catching up this group holds it.
    pub(super) flight: Mutex<()>,
}

/// One per-group projection: its slots, by group number.
pub(crate) struct Runtime<P: Projection> {
    pub(crate) projection: P,
    pub(crate) name: String,
    pub(super) version: u64,
    pub(crate) kinds: KindSet,
    pub(crate) store: Store,
    pub(super) slots: Slots<P::State>,
    /// Bumped by `evict_all`: every slot of an older epoch reads as not loaded.
    pub(super) epoch: AtomicU64,
    /// The fold of nothing, served for a group with no event in the log.
    pub(super) empty: P::State,
    pub(super) counters: Counters,
}

/// How often each way of advancing a slot ran (see [`FoldCounters`](crate::status::FoldCounters)).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) live_folds: AtomicU64,
    pub(super) busy_skips: AtomicU64,
    pub(super) loads: AtomicU64,
    pub(super) tail_folds: AtomicU64,
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

    pub(super) fn failed(&self, no: u32, failure: &Failure) -> EngineError {
        EngineError::Failed {
            projection: self.name.clone(),
            group: self.group_name(no),
            seq: failure.seq,
            message: failure.message.clone(),
        }
    }

    /// Group `no`'s slot, created (not loaded) on first use.
    pub(super) fn slot(&self, no: u32) -> &Arc<Slot<P::State>> {
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

    pub(super) fn current_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}
