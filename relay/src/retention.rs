//! Retention while the relay serves: a task that compacts the log on an interval
//! ([`RetentionSchedule`](crate::RetentionSchedule), held in the shared state as
//! `LiveRetention`), on a blocking thread so connections are never held up. The
//! schedule is replaceable while the relay serves
//! ([`RelayControl::set_retention`](crate::RelayControl::set_retention), a reloaded
//! configuration): the task takes a new one at once, its first compaction one interval
//! after the change.
//!
//! A compaction changes no state (only records of kinds no projection folds go), so
//! nothing the relay renders or caches needs telling: reads of chat and id lookups go
//! to the store, which no longer holds the expired records.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::SystemTime;

use highwater_engine::DEFAULT_COMPACT_CHUNK;
use tokio::sync::watch;

use crate::shared::Shared;

/// Compacts every `every` of the schedule in force until `shutdown` (idle while the
/// schedule expires nothing); a replaced schedule starts its interval again. A
/// compaction under way stops at its next transaction boundary when the relay stops
/// (what it committed stays removed, and the next run finishes the rest).
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut schedules = shared.retention.subscribe();
    loop {
        let schedule = schedules
            .borrow_and_update()
            .clone()
            .filter(|s| !s.policy.is_empty());
        let wait = async {
            match &schedule {
                Some(s) => tokio::time::sleep(s.every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait => {}
            // The sender lives in `shared`, which this task holds: never an error.
            _ = schedules.changed() => continue,
            stopped = shutdown.changed() => if stopped.is_err() { break },
        }
        if *shutdown.borrow() {
            break;
        }
        let Some(schedule) = schedule else { continue };
        let shared = shared.clone();
        let policy = schedule.policy;
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
