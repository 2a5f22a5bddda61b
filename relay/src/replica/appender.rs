//! The replica's append pipeline ([`Appender`]): receiving, verifying on every core and
//! committing overlap, in the primary's order.

use std::collections::BTreeSet;
use std::sync::Arc;

use highwater_store::{AppendOutcome, Store, StoreError, Ticket};
use nostr::prelude::Event;
use tokio::sync::mpsc;

use super::Missing;
use super::error::ReplicaError;
use crate::shared::Shared;

/// Events the connection's reader hands to the append pipeline at once: at most this
/// many …
pub(super) const CHUNK_EVENTS: usize = 1_024;
/// … or about this many bytes (as JSON).
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued between the reader and the verifier.
const QUEUE: usize = 16;
/// Most events the verifier takes into one commit (whatever is queued, up to this many
/// events plus one chunk) …
const COMMIT_EVENTS: usize = 16_384;
/// … or about this many bytes.
const COMMIT_BYTES: usize = 16 << 20;

/// About the size of `event` as JSON: what the pipeline's byte bounds count.
pub(super) fn json_size(event: &Event) -> usize {
    // The id, pubkey, sig, created_at, kind and the punctuation.
    let fixed = 64 + 64 + 128 + 80;
    let tags: usize = event
        .tags
        .iter()
        .map(|t| t.as_slice().iter().map(|s| s.len() + 3).sum::<usize>() + 2)
        .sum();
    fixed + event.content.len() + tags
}

/// What the verifier hands to the committer: one commit's events, per event what
/// validation found (`None`: sent to the writer; the sequence number of a duplicate;
/// the refusal), and the writer's ticket for those sent (none when nothing was).
struct Verified {
    events: Vec<Event>,
    prepared: Vec<Result<Option<u64>, StoreError>>,
    ticket: Result<Option<Ticket>, StoreError>,
}

/// The append pipeline's progress, reported to the connection in order.
pub(super) enum Report {
    /// This many more of the events handed over are settled: appended, found in the
    /// log already, or refused.
    Settled(usize),
    /// A commit failed: nothing handed over after it is appended on this connection.
    Failed(StoreError),
}

/// One connection's append pipeline: the reader (the connection's task) receives and
/// parses; a verifier thread takes whatever chunks are queued (up to a commit's worth),
/// validates them on every core ([`Store::prepare_all`]) and submits them through one
/// ordered [`highwater_store::Pipeline`]; a committer thread waits for each durable
/// commit, hands what was appended to the live feed and reports. So receiving,
/// verifying and committing overlap; during catch-up the queue fills and commits grow
/// to [`COMMIT_EVENTS`], while a live event arriving alone is committed alone at once.
/// The log holds a prefix of what was handed over, in order: a failed commit cancels
/// every later one of the pipeline.
pub(super) struct Appender {
    pub(super) tx: Option<mpsc::Sender<Vec<Event>>>,
    pub(super) reports: mpsc::UnboundedReceiver<Report>,
    /// Events handed over, and settled, on this connection.
    pub(super) sent: usize,
    pub(super) settled: usize,
}

impl Appender {
    pub(super) fn start(shared: &Arc<Shared>, missing: &Missing) -> Result<Self, ReplicaError> {
        let (tx, rx) = mpsc::channel::<Vec<Event>>(QUEUE);
        // One verified commit waits while the committer holds another.
        let (verified_tx, verified_rx) = crossbeam_channel::bounded::<Verified>(1);
        let (report_tx, reports) = mpsc::unbounded_channel();
        let store = shared.store.clone();
        std::thread::Builder::new()
            .name("highwater-replica-verify".into())
            .spawn(move || verify(&store, rx, &verified_tx))
            .map_err(|source| ReplicaError::Thread {
                what: "verifier",
                source,
            })?;
        let (shared, missing) = (shared.clone(), missing.clone());
        std::thread::Builder::new()
            .name("highwater-replica-commit".into())
            .spawn(move || commit(&shared, &missing, &verified_rx, &report_tx))
            .map_err(|source| ReplicaError::Thread {
                what: "committer",
                source,
            })?;
        Ok(Self {
            tx: Some(tx),
            reports,
            sent: 0,
            settled: 0,
        })
    }

    /// Hands `pending` to the pipeline (waiting while its queue is full).
    pub(super) async fn hand(&mut self, pending: &mut Vec<Event>) -> Result<(), ReplicaError> {
        if pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(pending);
        let n = events.len();
        let tx = self.tx.as_ref().ok_or(ReplicaError::PipelineStopped)?;
        if tx.send(events).await.is_err() {
            // The pipeline stopped: its report says why.
            while let Some(report) = self.reports.recv().await {
                self.on_report(report)?;
            }
            return Err(ReplicaError::PipelineStopped);
        }
        self.sent += n;
        Ok(())
    }

    /// Takes one report into account; a failed commit is an error.
    pub(super) fn on_report(&mut self, report: Report) -> Result<(), ReplicaError> {
        match report {
            Report::Settled(n) => {
                self.settled += n;
                Ok(())
            }
            Report::Failed(error) => Err(ReplicaError::Append(error)),
        }
    }

    /// Waits until everything handed over is settled.
    pub(super) async fn drain(&mut self) -> Result<(), ReplicaError> {
        while self.settled < self.sent {
            let report = self
                .reports
                .recv()
                .await
                .ok_or(ReplicaError::PipelineStopped)?;
            self.on_report(report)?;
        }
        Ok(())
    }

    /// Closes the pipeline and waits until its threads are done with what was handed
    /// over: the next connection starts from the log they leave.
    pub(super) async fn finish(mut self) {
        self.tx = None;
        while let Some(report) = self.reports.recv().await {
            if let Report::Failed(error) = report {
                tracing::warn!(%error, "replica: appending failed");
            }
        }
    }
}

/// The verifier thread: validates what is queued, a commit's worth at a time, and
/// submits it in order.
fn verify(
    store: &Store,
    mut rx: mpsc::Receiver<Vec<Event>>,
    out: &crossbeam_channel::Sender<Verified>,
) {
    let pipeline = store.pipeline();
    while let Some(mut events) = rx.blocking_recv() {
        let mut bytes: usize = events.iter().map(json_size).sum();
        while events.len() < COMMIT_EVENTS && bytes < COMMIT_BYTES {
            let Ok(more) = rx.try_recv() else { break };
            bytes += more.iter().map(json_size).sum::<usize>();
            events.extend(more);
        }
        let (ready, prepared) = store.prepare_split(&events);
        let ticket = if ready.is_empty() {
            Ok(None)
        } else {
            pipeline.submit(ready).map(Some)
        };
        let failed = ticket.is_err();
        if out
            .send(Verified {
                events,
                prepared,
                ticket,
            })
            .is_err()
            || failed
        {
            break;
        }
    }
}

/// The committer thread: waits for each commit, in order; hands what was appended to
/// the live feed and announces the state events it completes; reports.
fn commit(
    shared: &Arc<Shared>,
    missing: &Missing,
    rx: &crossbeam_channel::Receiver<Verified>,
    reports: &mpsc::UnboundedSender<Report>,
) {
    for Verified {
        events,
        prepared,
        ticket,
    } in rx
    {
        let outcomes = match ticket {
            Ok(Some(ticket)) => ticket.wait(),
            Ok(None) => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        let mut committed = match outcomes {
            Ok(outcomes) => outcomes.into_iter(),
            Err(error) => {
                let _ = reports.send(Report::Failed(error));
                return;
            }
        };
        let mut groups = BTreeSet::new();
        let mut appended = Vec::new();
        {
            let mut missing = missing.lock();
            for (event, p) in events.iter().zip(prepared) {
                let result = match p {
                    Ok(None) => committed.next().ok_or(StoreError::WriterGone),
                    Ok(Some(seq)) => Ok(AppendOutcome::Duplicate(seq)),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(outcome) => {
                        if let AppendOutcome::Appended(seq) = outcome {
                            appended.push((seq, event.clone()));
                        }
                        missing.remove(event.id.as_bytes());
                        if let Some(g) = crate::hub::group_of(event) {
                            groups.insert(g.to_owned());
                        }
                    }
                    Err(error) => {
                        tracing::warn!(id = %event.id, %error, "replica: an event from the primary was refused");
                    }
                }
            }
        }
        // The replica's own subscribers get what it appended now, not at the feed
        // follower's next look (up to 100 ms later).
        if let Some(&(to, _)) = appended.last()
            && let Err(error) = shared.feed.deliver(shared, appended, to)
        {
            tracing::warn!(%error, "replica: delivering appended events failed");
        }
        // State events the primary sent before the replica held what they describe.
        let mut announced = Vec::new();
        for g in groups {
            if let Ok(events) = shared.rendered.announce(shared.policy.groups(), &g) {
                announced.extend(events.into_iter().map(|e| (0, e)));
            }
        }
        if !announced.is_empty() {
            shared.hub.broadcast(shared, &announced);
        }
        if reports.send(Report::Settled(events.len())).is_err() {
            return;
        }
    }
}
