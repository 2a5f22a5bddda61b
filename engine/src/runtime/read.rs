//! The fully-loaded read: answers once the group's watermark has reached its head as
//! committed by any process at the start of the read, catching the group up first when
//! needed. A nested read of the same slot answers from a private copy.

use std::sync::atomic::Ordering;

use super::state::{Runtime, Status};
use crate::error::EngineError;
use crate::held;
use crate::projection::Projection;

impl<P: Projection> Runtime<P> {
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
}
