//! The typed handle to one per-group projection, `Handle<P>`, that reads go through,
//! and `ResolvedGroup`, a group looked up once for several reads.

use std::sync::Arc;

use highwater_store::Store;

use crate::error::EngineError;
use crate::projection::Projection;
use crate::runtime::{ErasedRuntime, Runtime};
use crate::status::FoldCounters;

/// A group resolved by [`Handle::resolve`]: its number and the head that reads of it
/// must reach, for several reads that look the group up once.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedGroup<'a> {
    pub(crate) store: &'a Store,
    /// The group's number and head; `None` when no event of the group is in the log.
    pub(crate) at: Option<(u32, u64)>,
}

impl ResolvedGroup<'_> {
    /// The head the reads of this group reach at least (0 for a group with no event).
    pub fn head(&self) -> u64 {
        self.at.map_or(0, |(_, head)| head)
    }
}

/// A typed handle to one projection: the fully-loaded read goes through it.
pub struct Handle<P: Projection> {
    pub(crate) runtime: Arc<Runtime<P>>,
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
