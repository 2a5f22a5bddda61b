//! Reports of one per-group projection: its summary over every group, one group's
//! load state and lag, and how its groups were advanced so far.

use std::sync::atomic::Ordering;

use super::state::{Runtime, Status};
use crate::error::EngineError;
use crate::projection::Projection;
use crate::status::{FoldCounters, GroupStatus, LoadState, ProjectionStatus};

impl<P: Projection> Runtime<P> {
    pub(super) fn status(&self) -> Result<ProjectionStatus, EngineError> {
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

    pub(super) fn group_status(&self, no: u32) -> GroupStatus {
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

    pub(crate) fn counters(&self) -> FoldCounters {
        FoldCounters {
            live_folds: self.counters.live_folds.load(Ordering::Relaxed),
            busy_skips: self.counters.busy_skips.load(Ordering::Relaxed),
            loads: self.counters.loads.load(Ordering::Relaxed),
            tail_folds: self.counters.tail_folds.load(Ordering::Relaxed),
        }
    }
}
