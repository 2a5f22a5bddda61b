//! Full rebuilds: one scan of the log feeds every projection being rebuilt.
//!
//! Each projection folds into fresh states (indexed by group number); when the scan
//! ends, its checkpoints are replaced in one transaction and the states published.
//! Reads keep being served from the old states until then.

use std::ops::ControlFlow;
use std::time::Instant;

use highwater_store::{EventRef, Store};

use crate::error::EngineError;
use crate::projection::Projection;
use crate::runtime::{Acc, Runtime, apply_guarded};
use crate::status::RebuildReport;

/// One projection's side of a full rebuild.
pub(crate) trait RebuildSink {
    /// Folds (or skips, by kind) one event of group `no`.
    fn fold(&mut self, no: u32, seq: u64, event: EventRef<'_>);
    /// Replaces the checkpoints and publishes the states.
    fn finish(self: Box<Self>, events: u64, started: Instant)
    -> Result<RebuildReport, EngineError>;
}

pub(crate) struct FullRebuild<'a, P: Projection> {
    runtime: &'a Runtime<P>,
    accs: Vec<Option<Acc<P::State>>>,
}

impl<'a, P: Projection> FullRebuild<'a, P> {
    pub(crate) fn new(runtime: &'a Runtime<P>) -> Self {
        Self {
            runtime,
            accs: Vec::new(),
        }
    }
}

impl<P: Projection> RebuildSink for FullRebuild<'_, P> {
    fn fold(&mut self, no: u32, seq: u64, event: EventRef<'_>) {
        let index = no as usize;
        if self.accs.len() <= index {
            self.accs.resize_with(index + 1, || None);
        }
        let rt = self.runtime;
        let acc = self.accs[index].get_or_insert_with(|| Acc {
            value: rt.projection.init(),
            watermark: 0,
            events: 0,
            failure: None,
        });
        if acc.failure.is_none()
            && rt.kinds.contains(event.kind())
            && let Err(f) = apply_guarded(&rt.projection, &mut acc.value, seq, event)
        {
            acc.failure = Some(f);
        }
        acc.watermark = seq;
        acc.events += 1;
    }

    fn finish(
        self: Box<Self>,
        events: u64,
        started: Instant,
    ) -> Result<RebuildReport, EngineError> {
        let rt = self.runtime;
        let mut writes = Vec::new();
        let mut failed = 0;
        for (no, acc) in self.accs.iter().enumerate() {
            let Some(acc) = acc else { continue };
            match &acc.failure {
                None => writes.push(rt.checkpoint_of(no as u32, acc)?),
                Some(f) => {
                    failed += 1;
                    tracing::error!(projection = %rt.name, group = %rt.group_name(no as u32), seq = f.seq,
                        error = %f.message, "fold failed during rebuild");
                }
            }
        }
        rt.store.write_checkpoints(writes, Some(&rt.name))?;
        let mut groups = 0;
        for (no, acc) in self.accs.into_iter().enumerate() {
            if let Some(acc) = acc {
                groups += 1;
                rt.publish_rebuilt(no as u32, acc);
            }
        }
        let report = RebuildReport {
            projection: rt.name.clone(),
            events,
            groups,
            failed,
            elapsed: started.elapsed(),
        };
        tracing::info!(projection = %rt.name, events, groups, failed, millis = report.elapsed.as_millis() as u64, "rebuilt");
        Ok(report)
    }
}

/// Scans the log once from sequence 1, feeding every sink, then finishes each.
pub(crate) fn rebuild_all(
    store: &Store,
    mut sinks: Vec<Box<dyn RebuildSink + '_>>,
) -> Result<Vec<RebuildReport>, EngineError> {
    let started = Instant::now();
    let span = tracing::info_span!("rebuild", projections = sinks.len());
    let _enter = span.enter();
    let mut events = 0u64;
    let mut last: Option<(String, u32)> = None;
    store.refresh()?;
    store.scan(1, |seq, event| {
        events += 1;
        let Some(id) = event.group_id() else {
            return ControlFlow::Continue(());
        };
        let no = match &last {
            Some((name, no)) if name == id => *no,
            _ => match store.group_no(id) {
                Some(no) => {
                    last = Some((id.to_owned(), no));
                    no
                }
                None => return ControlFlow::Continue(()),
            },
        };
        for sink in &mut sinks {
            sink.fold(no, seq, event);
        }
        ControlFlow::Continue(())
    })?;
    sinks
        .into_iter()
        .map(|s| s.finish(events, started))
        .collect()
}
