//! The typed handle to one relay-wide projection, [`RelayWideHandle`], that reads go
//! through.

use std::sync::Arc;

use super::projection::RelayWideProjection;
use super::runtime::{ErasedRelayWide, RelayWideRuntime};
use crate::error::EngineError;
use crate::status::RelayWideCounters;

/// A typed handle to one relay-wide projection.
pub struct RelayWideHandle<P: RelayWideProjection> {
    pub(crate) runtime: Arc<RelayWideRuntime<P>>,
}

impl<P: RelayWideProjection> Clone for RelayWideHandle<P> {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
        }
    }
}

impl<P: RelayWideProjection> std::fmt::Debug for RelayWideHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayWideHandle")
            .field("projection", &self.runtime.name())
            .finish()
    }
}

impl<P: RelayWideProjection> RelayWideHandle<P> {
    /// Calls `f` with the state once it is current (its watermark has reached the log
    /// head as committed by any process at the start of this call), catching it up
    /// first if needed.
    ///
    /// The closure's contract is [`Handle::read`](crate::Handle::read)'s: it may do
    /// anything — append, read this projection again, block — without deadlocking the
    /// engine. While it runs the state's read lock is held: the writer never waits for
    /// it (a commit then leaves the fold to the next read).
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when a fold failed; [`EngineError::Store`] when the log
    /// or the checkpoint cannot be read.
    pub fn read<R>(&self, f: impl FnOnce(&P::State) -> R) -> Result<R, EngineError> {
        self.runtime.read_at(f).map(|(r, _)| r)
    }

    /// [`RelayWideHandle::read`], also returning the log position the state was
    /// folded to.
    ///
    /// # Errors
    ///
    /// As [`RelayWideHandle::read`].
    pub fn read_at<R>(&self, f: impl FnOnce(&P::State) -> R) -> Result<(R, u64), EngineError> {
        self.runtime.read_at(f)
    }

    /// The state by a full replay of the log from sequence 1, ignoring memory and the
    /// checkpoint: the reference the engine's answers must equal.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when the fold fails; [`EngineError::Store`] when the
    /// log cannot be read.
    pub fn replay(&self) -> Result<P::State, EngineError> {
        self.runtime.replay_until(u64::MAX)
    }

    /// How the state was advanced so far (see [`RelayWideCounters`]).
    pub fn counters(&self) -> RelayWideCounters {
        self.runtime.counters()
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
