//! The oracle: a full replay of one group from sequence 1, ignoring memory and
//! checkpoints, and the verification of a served state against it.

use std::ops::ControlFlow;

use super::state::Runtime;
use crate::error::EngineError;
use crate::fold::{apply_guarded, compare_with_replay};
use crate::projection::Projection;

impl<P: Projection> Runtime<P> {
    /// A full replay of one group from sequence 1, without checkpoints: the oracle.
    fn replay(&self, no: u32) -> Result<P::State, EngineError> {
        self.replay_until(no, u64::MAX)
    }

    /// A full replay of one group's events up to sequence `until`.
    fn replay_until(&self, no: u32, until: u64) -> Result<P::State, EngineError> {
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

    /// Compares the served state with a replay of the log up to the very watermark the
    /// served state was folded to, so commits arriving meanwhile (from any process)
    /// cannot show up as a difference.
    pub(super) fn verify_group(&self, no: u32) -> Result<Option<String>, EngineError> {
        let name = self.group_name(no);
        let served = self.read_at(&name, Clone::clone);
        let until = served.as_ref().map_or(u64::MAX, |(_, at)| *at);
        let replayed = self.replay_until(no, until);
        compare_with_replay(served, replayed)
    }
}
