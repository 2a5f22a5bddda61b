//! What the engine needs of a per-group runtime, without its state type: the engine
//! holds every registered projection as an `Arc<dyn ErasedRuntime>`. The impl only
//! delegates to the rooms of `Runtime<P>`.

use highwater_store::{CheckpointWrite, Committed};

use super::rebuild_sink::FullRebuild;
use super::state::Runtime;
use crate::error::EngineError;
use crate::projection::Projection;
use crate::rebuild::RebuildSink;
use crate::status::{GroupStatus, ProjectionStatus, RebuildReport};

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
    fn full_rebuild(&self) -> Box<dyn RebuildSink + '_>;
    fn status(&self) -> Result<ProjectionStatus, EngineError>;
    fn group_status(&self, no: u32) -> GroupStatus;
    fn verify_group(&self, no: u32) -> Result<Option<String>, EngineError>;
    fn evict_all(&self);
}

impl<P: Projection> ErasedRuntime for Runtime<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn folds(&self, kind: u16) -> bool {
        self.kinds.contains(kind)
    }

    fn on_commit(&self, batch: &[Committed<'_>], checkpoint_every: u64, due: &mut Vec<u32>) {
        Runtime::on_commit(self, batch, checkpoint_every, due);
    }

    fn ensure_loaded(&self, no: u32) -> Result<(), EngineError> {
        Runtime::ensure_loaded(self, no)
    }

    fn collect_checkpoints(
        &self,
        only: Option<&[u32]>,
    ) -> Result<Vec<(CheckpointWrite, u64)>, EngineError> {
        Runtime::collect_checkpoints(self, only)
    }

    fn mark_checkpointed(&self, no: u32, events: u64) {
        Runtime::mark_checkpointed(self, no, events);
    }

    fn rebuild_group(&self, no: u32) -> Result<RebuildReport, EngineError> {
        let rebuild_span = tracing::info_span!("rebuild", projection = %self.name, group = no);
        let _enter = rebuild_span.enter();
        Runtime::rebuild_group(self, no)
    }

    fn full_rebuild(&self) -> Box<dyn RebuildSink + '_> {
        Box::new(FullRebuild::new(self))
    }

    fn status(&self) -> Result<ProjectionStatus, EngineError> {
        Runtime::status(self)
    }

    fn group_status(&self, no: u32) -> GroupStatus {
        Runtime::group_status(self, no)
    }

    fn verify_group(&self, no: u32) -> Result<Option<String>, EngineError> {
        Runtime::verify_group(self, no)
    }

    fn evict_all(&self) {
        Runtime::evict_all(self);
    }
}
