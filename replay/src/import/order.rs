//! The import's writer: decisions through the library's [`Sequencer`] (the one the
//! relay decides with), batches kept large, the import's progress committed with them.
//!
//! Validation (parsing, id hashes, signatures, the duplicate index) runs on all cores
//! per batch. Then each event is decided in file order by the sequencer against the
//! committed state and the sequencer's overlay of what is accepted and not yet
//! committed, and queued for the writer: the decision sees every event before it —
//! exactly what one-at-a-time `check_write` + append would answer. Only after a
//! relay-wide change (which the overlay does not cover) is what is queued committed
//! first (a *flush*).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use highwater_projections::{AccessPolicy, Sequencer, Verdict};
use highwater_store::{AppendOutcome, PreparedEvent, Store, Ticket};
use nostr::prelude::Event;

use super::parse::Refusal;
use super::resume::{PROGRESS_SETTING, Position, Progress};

/// What the writer acknowledged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Acked {
    pub appended: u64,
    pub duplicate: u64,
}

/// The writer's queue, the decisions' view of what is not yet committed, and the
/// policy.
pub struct Pipeline<'a> {
    store: &'a Store,
    /// The store's ordered submitter: once a batch fails, every later batch of this
    /// import is cancelled, so the log holds a prefix of the file, never a hole.
    writer: highwater_store::Pipeline,
    /// Whether each batch records the import's progress in its own transaction.
    recording: bool,
    /// The progress after the last record decided: what a batch sent now records.
    decided: Progress,
    /// The progress the newest acknowledged batch recorded (at first, where this run
    /// started): every event accepted up to it is in the log, and nothing after it.
    committed: Progress,
    policy: Option<&'a AccessPolicy>,
    /// Batches submitted and not yet acknowledged.
    in_flight: VecDeque<InFlight>,
    /// Decided, not yet submitted.
    queued: Vec<PreparedEvent>,
    /// What is decided and not yet acknowledged, as decisions need it.
    sequencer: Sequencer,
    /// The last batch acknowledged (batches are acknowledged in order), shared with
    /// the thread that validates ahead.
    acked_batch: Arc<AtomicU64>,
    /// Most batches in flight besides the one being filled.
    depth: usize,
    /// What the writer acknowledged: events appended, and events it found present.
    pub acked: Acked,
    /// Commits forced by decisions (for the bench's notes).
    pub flushes: u64,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("in_flight", &self.in_flight.len())
            .field("queued", &self.queued.len())
            .field("acked", &self.acked)
            .finish_non_exhaustive()
    }
}

/// A batch sent to the writer and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    /// Its number.
    batch: u64,
    /// The progress it records: every record decided before it was sent.
    progress: Progress,
    ticket: Ticket,
}

/// The decision on one validated event.
#[derive(Debug)]
pub enum Decision {
    Queued,
    Duplicate,
    Refused(Refusal),
}

impl<'a> Pipeline<'a> {
    /// A pipeline into `store`, deciding with `policy` (none: no write policy) and keeping at most
    /// `depth` batches in flight besides the one being filled.
    pub fn new(store: &'a Store, policy: Option<&'a AccessPolicy>, depth: usize) -> Self {
        Self {
            store,
            writer: store.pipeline(),
            recording: false,
            decided: Progress::start(&[]),
            committed: Progress::start(&[]),
            policy,
            in_flight: VecDeque::new(),
            queued: Vec::new(),
            sequencer: Sequencer::new(),
            acked_batch: Arc::new(AtomicU64::new(0)),
            depth,
            acked: Acked::default(),
            flushes: 0,
        }
    }

    /// Records the import's progress from `start` on: each batch carries the progress
    /// after the last record decided before it was sent, written in its own
    /// transaction ([`PROGRESS_SETTING`]).
    #[must_use]
    pub fn recording(mut self, start: Progress) -> Self {
        self.recording = true;
        self.decided = start;
        self.committed = start;
        self
    }

    /// Call once the record at `position` is decided (accepted, a duplicate, refused,
    /// or skipped): whether it was an event, and whether it was refused.
    pub fn decided(&mut self, position: Position, event: bool, refused: bool) {
        self.decided.position = position;
        self.decided.events += u64::from(event);
        self.decided.refused += u64::from(refused);
    }

    /// The progress after the last record decided.
    pub fn progress(&self) -> Progress {
        self.decided
    }

    /// The progress the newest acknowledged batch recorded: every event accepted up to
    /// it is in the log, and nothing after it.
    pub fn committed(&self) -> Progress {
        self.committed
    }

    /// Decides `event` (validated as `prepared`) after everything decided before it.
    pub fn decide(&mut self, event: &Event, prepared: PreparedEvent) -> Result<Decision> {
        let id = *prepared.id();
        if self.sequencer.is_recent(&id) {
            return Ok(Decision::Duplicate);
        }
        if let Some(policy) = self.policy {
            if self.sequencer.must_wait() {
                self.flush()?;
                self.flushes += 1;
            }
            match self.sequencer.decide(policy, event, &prepared) {
                Verdict::Accepted => {}
                Verdict::Duplicate => return Ok(Decision::Duplicate),
                Verdict::Refused(rejection) => {
                    return Ok(Decision::Refused(Refusal::plain(rejection.to_string())));
                }
            }
        } else {
            // Without a write policy nothing is decided; the id is remembered for the
            // duplicates of this import the index cannot see yet.
            self.sequencer.remember(&id);
        }
        self.queued.push(prepared);
        Ok(Decision::Queued)
    }

    /// The number of the last batch acknowledged: read it just before validating
    /// records, and pass it to [`Pipeline::begin_validation`] before deciding them.
    pub fn acked_batch(&self) -> Arc<AtomicU64> {
        self.acked_batch.clone()
    }

    /// Call before deciding records validated when `acked` was the last batch
    /// acknowledged: what was committed by then is in the duplicate index validation
    /// read, so only the rest is remembered.
    pub fn begin_validation(&mut self, acked: u64) {
        self.sequencer.index_read_at(acked);
    }

    /// Sends what is queued to the writer, keeping at most `depth` batches in flight.
    pub fn submit(&mut self) -> Result<()> {
        if !self.queued.is_empty() {
            let events = std::mem::take(&mut self.queued);
            let ticket = if self.recording {
                self.writer
                    .submit_with_setting(events, PROGRESS_SETTING, self.decided.encode())?
            } else {
                self.writer.submit(events)?
            };
            self.in_flight.push_back(InFlight {
                batch: self.sequencer.sealed(),
                progress: self.decided,
                ticket,
            });
        }
        while self.in_flight.len() > self.depth {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Commits everything decided so far and waits for it.
    pub fn flush(&mut self) -> Result<()> {
        self.submit()?;
        while !self.in_flight.is_empty() {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> Result<()> {
        let Some(InFlight {
            batch,
            progress,
            ticket,
        }) = self.in_flight.pop_front()
        else {
            return Ok(());
        };
        let outcomes = ticket.wait().with_context(|| {
            // Named from what was acknowledged, never from what was sent.
            let line = progress.position.line;
            let committed = self.committed.position.line;
            let head = self.store.head();
            if !self.recording {
                format!(
                    "committing batch {batch}: the batches before it are in the log, nothing after them was written (the log's head is {head})"
                )
            } else if committed == 0 {
                format!(
                    "committing the batch that ends at line {line}: no accepted event of this input is in the log yet, nothing of it was written (the log's head is {head}); re-run the same import to start it again"
                )
            } else {
                format!(
                    "committing the batch that ends at line {line}: every accepted event up to line {committed} is in the log, nothing after it was written (the log's head is {head}); re-run the same import to resume after line {committed}"
                )
            }
        })?;
        self.committed = progress;
        for o in outcomes {
            match o {
                AppendOutcome::Appended(_) => self.acked.appended += 1,
                AppendOutcome::Duplicate(_) => self.acked.duplicate += 1,
            }
        }
        self.acked_batch.store(batch, Ordering::Release);
        self.sequencer.acknowledged(batch);
        Ok(())
    }
}
