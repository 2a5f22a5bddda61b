//! Retention while the relay serves: a task that compacts the log on an interval
//! ([`RetentionSchedule`]), on a blocking thread so connections are never held up.
//!
//! A compaction changes no state (only records of kinds no projection folds go), so
//! nothing the relay renders or caches needs telling: reads of chat and id lookups go
//! to the store, which no longer holds the expired records.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use highwater_engine::{DEFAULT_COMPACT_CHUNK, RetentionPolicy};
use tokio::sync::watch;

use crate::shared::Shared;

/// How often the relay compacts its log, and what expires
/// ([`RelayOptions::retention`](crate::RelayOptions::retention)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSchedule {
    /// Time between the end of one compaction and the start of the next (the first
    /// runs one interval after the relay starts).
    pub every: Duration,
    /// The durations: a group's own, else the default; see
    /// [`Engine::compact`](highwater_engine::Engine::compact).
    pub policy: RetentionPolicy,
}

/// Compacts every `schedule.every` until `shutdown`; a compaction under way stops at
/// its next transaction boundary when the relay stops (what it committed stays
/// removed, and the next run finishes the rest).
pub(crate) async fn run(
    shared: Arc<Shared>,
    schedule: RetentionSchedule,
    mut shutdown: watch::Receiver<bool>,
) {
    if schedule.policy.is_empty() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(schedule.every) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        let shared = shared.clone();
        let policy = schedule.policy.clone();
        let stop = shutdown.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            shared
                .engine
                .compact_with(&policy, SystemTime::now(), DEFAULT_COMPACT_CHUNK, |_| {
                    if *stop.borrow() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
        })
        .await;
        match outcome {
            Ok(Ok(report)) if report.removed > 0 => {
                tracing::info!(
                    removed = report.removed,
                    scanned = report.scanned,
                    transactions = report.transactions,
                    kept_heads = report.kept_heads,
                    "retention: removed expired records"
                );
            }
            Ok(Ok(report)) => {
                tracing::debug!(scanned = report.scanned, "retention: nothing expired");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "retention: compaction failed; retrying at the next interval");
            }
            Err(error) => {
                tracing::error!(%error, "retention: the compaction thread panicked");
            }
        }
    }
}
