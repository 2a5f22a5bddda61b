//! Rebuilds of one per-group projection from sequence 1: one group on the calling
//! thread (`rebuild_group`), or this projection's sink of a full rebuild
//! ([`FullRebuild`]), whose worker threads and walks of the log live in
//! `crate::rebuild`. Either way the rebuilt states are published once their
//! checkpoints are written; a newer loaded state is never replaced by an older one.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use highwater_store::{Checkpoint, CheckpointWrite, EventRef, GroupScan};
use parking_lot::Mutex;

use super::state::{Runtime, Status};
use crate::error::EngineError;
use crate::fold::{Failure, apply_guarded};
use crate::projection::Projection;
use crate::rebuild::{GroupFold, RebuildSink};
use crate::status::RebuildReport;

/// A group's state folded from sequence 1 by a rebuild, with how far the fold got and
/// the failure that stopped it, if any.
pub(super) struct RebuiltState<S> {
    value: S,
    watermark: u64,
    events: u64,
    failure: Option<Failure>,
}

impl<P: Projection> Runtime<P> {
    /// Installs a rebuilt state, unless the slot already serves a newer one.
    fn publish_rebuilt(&self, no: u32, rebuilt: RebuiltState<P::State>) {
        let slot = self.slot(no);
        let mut st = slot.state.write();
        let epoch = self.current_epoch();
        if matches!(st.status(epoch), Status::Loaded) && st.watermark > rebuilt.watermark {
            return;
        }
        st.epoch = epoch;
        st.value = rebuilt.value;
        st.watermark = rebuilt.watermark;
        st.events = rebuilt.events;
        st.checkpointed_events = rebuilt.events;
        st.status = match rebuilt.failure {
            Some(f) => Status::Failed(Arc::new(f)),
            None => Status::Loaded,
        };
    }

    /// The checkpoint of a rebuilt state.
    fn checkpoint_of(
        &self,
        no: u32,
        rebuilt: &RebuiltState<P::State>,
    ) -> Result<CheckpointWrite, EngineError> {
        let state = self
            .projection
            .encode(&rebuilt.value)
            .map_err(|e| EngineError::Codec {
                projection: self.name.clone(),
                message: e.0,
            })?;
        Ok(CheckpointWrite {
            projection: self.name.clone(),
            group: no,
            checkpoint: Checkpoint {
                version: self.version,
                watermark: rebuilt.watermark,
                events: rebuilt.events,
                state,
            },
        })
    }

    /// Replays one group from sequence 1, writes its checkpoint, publishes it.
    pub(super) fn rebuild_group(&self, no: u32) -> Result<RebuildReport, EngineError> {
        let started = Instant::now();
        let mut rebuilt = RebuiltState {
            value: self.projection.init(),
            watermark: 0,
            events: 0,
            failure: None,
        };
        let scan = self.store.scan_group(
            no,
            0,
            |kind| self.kinds.contains(kind),
            |seq, event| match apply_guarded(&self.projection, &mut rebuilt.value, seq, event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(f) => {
                    rebuilt.failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        )?;
        rebuilt.watermark = scan.last;
        rebuilt.events = scan.events;
        if rebuilt.failure.is_none() {
            self.store
                .write_checkpoints(vec![self.checkpoint_of(no, &rebuilt)?], None)?;
        }
        let failed = usize::from(rebuilt.failure.is_some());
        self.publish_rebuilt(no, rebuilt);
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

/// A group folded by a worker of a full rebuild, waiting for the rebuild to finish.
struct RebuiltGroup<S> {
    no: u32,
    state: RebuiltState<S>,
    /// Its checkpoint, encoded on the worker (none for a failed group).
    checkpoint: Option<CheckpointWrite>,
}

/// This projection's side of a full rebuild: the groups its workers folded.
pub(crate) struct FullRebuild<'a, P: Projection> {
    runtime: &'a Runtime<P>,
    rebuilt: Mutex<Vec<RebuiltGroup<P::State>>>,
}

impl<'a, P: Projection> FullRebuild<'a, P> {
    pub(crate) fn new(runtime: &'a Runtime<P>) -> Self {
        Self {
            runtime,
            rebuilt: Mutex::new(Vec::new()),
        }
    }
}

/// One group being folded from sequence 1 by one worker of a full rebuild.
struct GroupRebuild<'s, 'a, P: Projection> {
    sink: &'s FullRebuild<'a, P>,
    no: u32,
    state: RebuiltState<P::State>,
}

impl<P: Projection> GroupFold for GroupRebuild<'_, '_, P> {
    fn fold(&mut self, seq: u64, event: EventRef<'_>) {
        let rt = self.sink.runtime;
        if self.state.failure.is_none()
            && rt.kinds.contains(event.kind())
            && let Err(f) = apply_guarded(&rt.projection, &mut self.state.value, seq, event)
        {
            self.state.failure = Some(f);
        }
    }

    fn done(self: Box<Self>, scan: GroupScan) -> Result<(), EngineError> {
        let GroupRebuild {
            sink,
            no,
            state: mut rebuilt,
        } = *self;
        rebuilt.watermark = scan.last;
        rebuilt.events = scan.events;
        let checkpoint = match rebuilt.failure {
            None => Some(sink.runtime.checkpoint_of(no, &rebuilt)?),
            Some(_) => None,
        };
        sink.rebuilt.lock().push(RebuiltGroup {
            no,
            state: rebuilt,
            checkpoint,
        });
        Ok(())
    }
}

impl<P: Projection> RebuildSink for FullRebuild<'_, P> {
    fn wants(&self, kind: u16) -> bool {
        self.runtime.kinds.contains(kind)
    }

    fn group(&self, no: u32) -> Box<dyn GroupFold + '_> {
        Box::new(GroupRebuild {
            sink: self,
            no,
            state: RebuiltState {
                value: self.runtime.projection.init(),
                watermark: 0,
                events: 0,
                failure: None,
            },
        })
    }

    fn name(&self) -> &str {
        &self.runtime.name
    }

    fn checkpoints(&mut self) -> Vec<CheckpointWrite> {
        let rt = self.runtime;
        let rebuilt = self.rebuilt.get_mut();
        rebuilt.sort_unstable_by_key(|r| r.no);
        let mut writes = Vec::with_capacity(rebuilt.len());
        for r in rebuilt.iter_mut() {
            match (&r.state.failure, r.checkpoint.take()) {
                (None, Some(write)) => writes.push(write),
                (Some(f), _) => {
                    tracing::error!(projection = %rt.name, group = %rt.group_name(r.no), seq = f.seq,
                        error = %f.message, "fold failed during rebuild");
                }
                (None, None) => {}
            }
        }
        writes
    }

    fn publish(self: Box<Self>, started: Instant) -> RebuildReport {
        let rt = self.runtime;
        let rebuilt = self.rebuilt.into_inner();
        let groups = rebuilt.len();
        let (mut events, mut failed) = (0, 0);
        for r in rebuilt {
            events += r.state.events;
            failed += usize::from(r.state.failure.is_some());
            rt.publish_rebuilt(r.no, r.state);
        }
        let report = RebuildReport {
            projection: rt.name.clone(),
            events,
            groups,
            failed,
            elapsed: started.elapsed(),
        };
        tracing::info!(projection = %rt.name, events, groups, failed, millis = report.elapsed.as_millis() as u64, "rebuilt");
        report
    }
}
