//! Live folds: this process's commits, folded on the writer thread into groups that
//! are loaded and current, never waiting for a reader; and eviction, which starts a new
//! epoch so every slot reads as not loaded.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use highwater_store::Committed;

use super::state::{Runtime, Status};
use crate::fold::apply_guarded;
use crate::projection::Projection;

impl<P: Projection> Runtime<P> {
    /// Folds freshly committed events into groups that are loaded and current, so hot
    /// groups never need a read-time catch-up. Groups not loaded, or behind, are left
    /// for their next read.
    pub(super) fn on_commit(
        &self,
        batch: &[Committed<'_>],
        checkpoint_every: u64,
        due: &mut Vec<u32>,
    ) {
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

    /// Every slot reads as not loaded from now on (a new epoch), and the state of
    /// each slot nobody holds is dropped at once; a slot busy with a reader or a load
    /// drops its old state when its next read reloads it. Never waits for a reader.
    pub(super) fn evict_all(&self) {
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
