//! Validation and submission: [`Prepared`] events, the writer's [`Ticket`], ordered
//! [`Pipeline`]s, and the appends of [`Store`] built on them (validated on all cores
//! for a batch).

use std::sync::atomic::{AtomicUsize, Ordering};

use nostr::prelude::Event;

use crate::codec;
use crate::commit::AppendOutcome;
use crate::error::StoreError;
use crate::event::EventRef;
use crate::oneshot;
use crate::request::{self, Request, Setting};
use crate::store::Store;
use crate::validate::{self, PreparedEvent};

/// Events validated together on one thread: one read transaction looks their ids up.
/// Small enough that the threads of [`Store::prepare_all`] stay balanced while the
/// writer shares their cores.
const PREPARE_BLOCK: usize = 64;

impl PreparedEvent {
    /// The encoded record as folds read it from the log: a writer folds an event it
    /// accepted into a speculative state before the log holds it. The record is checked
    /// as a stored one is (checksums, rkyv validation); it borrows this event.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) if the encoding does not
    /// read back (never for a record [`Store::prepare`] encoded).
    pub fn event_ref(&self) -> Result<EventRef<'_>, StoreError> {
        codec::access_record(&self.bytes, 0).map(EventRef::new)
    }
}

/// An event after validation: ready for the writer, or already in the log.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Validated and encoded.
    Ready(PreparedEvent),
    /// Already stored at this sequence number.
    Duplicate(u64),
}

/// A pending acknowledgement from the writer for a submitted batch.
///
/// Block on it with [`Ticket::wait`], or `.await` it: the writer thread completes it
/// after the batch's durable commit and wakes the waiting thread or task. Awaiting
/// needs no particular async runtime and never blocks the polling thread.
#[derive(Debug)]
#[must_use = "the batch is durable only once `wait` (or `.await`) returns Ok"]
pub struct Ticket(oneshot::Receiver<Result<Vec<AppendOutcome>, StoreError>>);

impl Ticket {
    /// Blocks until the batch is committed (or failed as a whole).
    ///
    /// # Errors
    ///
    /// The batch's failure, the same for every caller of its group commit (a full map
    /// or disk, an I/O or LMDB error); [`StoreError::WriterGone`] if the writer
    /// stopped first. On error nothing of the batch was written.
    pub fn wait(self) -> Result<Vec<AppendOutcome>, StoreError> {
        self.0.recv().ok_or(StoreError::WriterGone)?
    }
}

impl std::future::Future for Ticket {
    type Output = Result<Vec<AppendOutcome>, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|reply| reply.ok_or(StoreError::WriterGone)?)
    }
}

/// An ordered submitter of batches: see [`Store::pipeline`].
#[derive(Debug, Clone)]
pub struct Pipeline {
    store: Store,
    id: u64,
}

impl Pipeline {
    /// Sends prepared events to the writer without waiting, after this pipeline's
    /// earlier batches. Fails with [`StoreError::Cancelled`] (through the ticket) when an
    /// earlier batch of this pipeline failed.
    ///
    /// # Errors
    ///
    /// [`StoreError::ReadOnly`] on a read-only store, [`StoreError::WriterGone`] when
    /// the writer has stopped.
    pub fn submit(&self, events: Vec<PreparedEvent>) -> Result<Ticket, StoreError> {
        self.store.submit_in(events, Some(self.id), None)
    }

    /// [`Pipeline::submit`], and sets the application setting `name` (as
    /// [`Store::set_setting`]) to `value` in the batch's own write transaction: the
    /// setting is durable exactly when the batch is, never without it. A submitter
    /// records how far it got this way, so that what it finds after a crash describes
    /// the log exactly. Of two batches committed together that set one name, the later
    /// one's value stays.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::submit`].
    pub fn submit_with_setting(
        &self,
        events: Vec<PreparedEvent>,
        name: &str,
        value: Vec<u8>,
    ) -> Result<Ticket, StoreError> {
        let key = crate::checkpoints::setting_key(name).into_bytes();
        self.store
            .submit_in(events, Some(self.id), Some(Setting { key, value }))
    }
}

impl Store {
    /// The event's own checks, without reading the database: limits, group id, id
    /// hash, then the signature (unless trusted). Runs on the calling thread, touches
    /// no LMDB page, so it may run where blocking on the disk is not allowed; whether
    /// the log already holds the event is left to [`Store::seq_of`] (the writer finds
    /// a duplicate at commit either way).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](crate::StoreError::Invalid) for an invalid event.
    pub fn validate(&self, event: &Event) -> Result<PreparedEvent, StoreError> {
        let prepared = validate::check_and_encode(event, &self.options().limits)?;
        self.check_signature(event)?;
        Ok(prepared)
    }

    /// The event's Schnorr signature, unless this store is trusted.
    fn check_signature(&self, event: &Event) -> Result<(), StoreError> {
        if self.options().trusted {
            return Ok(());
        }
        Ok(validate::check_signature(event)?)
    }

    /// Validates an event: limits, group id, id hash, the duplicate index, then the
    /// signature (unless trusted). Runs on the calling thread.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](crate::StoreError::Invalid) for an invalid event
    /// (nothing is written); a failed LMDB read
    /// ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    pub fn prepare(&self, event: &Event) -> Result<Prepared, StoreError> {
        let prepared = validate::check_and_encode(event, &self.options().limits)?;
        if let Some(seq) = self.seq_of(&event.id)? {
            return Ok(Prepared::Duplicate(seq));
        }
        self.check_signature(event)?;
        Ok(Prepared::Ready(prepared))
    }

    /// Sends prepared events to the writer without waiting. They are committed in the
    /// order given, after everything submitted before them.
    ///
    /// # Errors
    ///
    /// [`StoreError::WriterGone`](crate::StoreError::WriterGone) when the writer has
    /// stopped.
    pub fn submit(&self, events: Vec<PreparedEvent>) -> Result<Ticket, StoreError> {
        self.submit_in(events, None, None)
    }

    /// A new ordered pipeline: batches submitted through it commit in order, and once
    /// one fails, every later batch of the same pipeline fails with
    /// [`StoreError::Cancelled`] instead of committing after the hole. So the log
    /// always holds a prefix of what the pipeline submitted.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline {
            store: self.clone(),
            id: self.next_pipeline_id(),
        }
    }

    fn submit_in(
        &self,
        events: Vec<PreparedEvent>,
        pipeline: Option<u64>,
        setting: Option<Setting>,
    ) -> Result<Ticket, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(Request::Append(request::Append {
                events,
                pipeline,
                setting,
                reply,
            }))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Ticket(rx))
    }

    /// Validates and appends one event, returning once it is durable.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](crate::StoreError::Invalid) for an invalid event, or a
    /// failed write transaction: the map or the disk is full, an I/O or LMDB error, or
    /// the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    pub fn append(&self, event: &Event) -> Result<AppendOutcome, StoreError> {
        match self.prepare(event)? {
            Prepared::Duplicate(seq) => Ok(AppendOutcome::Duplicate(seq)),
            Prepared::Ready(prepared) => {
                let outcomes = self.submit(vec![prepared])?.wait()?;
                outcomes.into_iter().next().ok_or(StoreError::WriterGone)
            }
        }
    }

    /// Validates (on all cores) and appends a batch, in order: in one commit when it
    /// has at most [`StoreOptions::append_chunk`](crate::StoreOptions::append_chunk)
    /// events, otherwise in chunks of that size through one ordered pipeline
    /// ([`Store::pipeline`]), validating chunk *k+1* while chunk *k* commits. Inner
    /// errors are per-event rejections, which leave the rest of the batch unaffected.
    ///
    /// # Errors
    ///
    /// The outer error is a failed write transaction: the map or the disk is full, an
    /// I/O or LMDB error, or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)). Nothing of the
    /// failing chunk nor of any later one was written; the chunks before it are durable
    /// (a retry of the batch reports their events as duplicates). A batch of one chunk
    /// is all or nothing.
    pub fn append_batch(
        &self,
        events: &[Event],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        // A read-only store or a stopped writer fails the batch even when every event
        // turns out to be a duplicate or rejected.
        self.sender()?;
        let pipeline = self.next_pipeline_id();
        let mut results = Vec::with_capacity(events.len());
        // The chunk being committed: its prepared events and the writer's ticket.
        let mut in_flight: Option<(PreparedChunk, Option<Ticket>)> = None;
        for chunk in events.chunks(self.options().append_chunk.max(1)) {
            let (ready, prepared) = self.prepare_split(chunk);
            let ticket = if ready.is_empty() {
                None
            } else {
                Some(self.submit_in(ready, Some(pipeline), None)?)
            };
            if let Some((prepared, ticket)) = in_flight.replace((prepared, ticket)) {
                merge_outcomes(prepared, ticket, &mut results)?;
            }
        }
        if let Some((prepared, ticket)) = in_flight {
            merge_outcomes(prepared, ticket, &mut results)?;
        }
        Ok(results)
    }

    /// [`Store::prepare_all`], split for a submitter: the events ready to submit (in
    /// order), and per event `None` when it is one of those, the sequence number of a
    /// stored copy, or its rejection.
    pub fn prepare_split(&self, events: &[Event]) -> (Vec<PreparedEvent>, PreparedChunk) {
        let mut ready = Vec::new();
        let prepared = self
            .prepare_all(events)
            .into_iter()
            .map(|p| match p {
                Ok(Prepared::Ready(e)) => {
                    ready.push(e);
                    Ok(None)
                }
                Ok(Prepared::Duplicate(seq)) => Ok(Some(seq)),
                Err(e) => Err(e),
            })
            .collect();
        (ready, prepared)
    }

    /// [`Store::prepare`] for each event, on all cores: each thread takes blocks of
    /// events in turn and, per block, checks limits, group ids and id hashes, looks the
    /// ids up in one read transaction, then verifies the signatures of the events that
    /// are new (unless trusted). A failed read transaction fails every event.
    pub fn prepare_all(&self, events: &[Event]) -> Vec<Result<Prepared, StoreError>> {
        let blocks = par_blocks(events, PREPARE_BLOCK, |block| self.prepare_block(block));
        let mut out = Vec::with_capacity(events.len());
        for block in blocks {
            match block {
                Ok(block) => out.extend(block),
                Err(e) => return events.iter().map(|_| Err(e.clone())).collect(),
            }
        }
        out
    }

    /// One block of [`Store::prepare_all`]; the error is a failed read transaction.
    fn prepare_block(
        &self,
        events: &[Event],
    ) -> Result<Vec<Result<Prepared, StoreError>>, StoreError> {
        let limits = self.options().limits;
        let mut out: Vec<Result<Prepared, StoreError>> = events
            .iter()
            .map(|e| validate::check_and_encode(e, &limits).map(Prepared::Ready))
            .collect();
        self.read(|txn, dbs| {
            let tail = self.shared().tail.view(txn, dbs)?;
            for p in &mut out {
                if let Ok(Prepared::Ready(ready)) = p
                    && let Some(seq) = crate::ids::lookup(txn, dbs, &tail, &ready.id)?
                {
                    *p = Ok(Prepared::Duplicate(seq));
                }
            }
            Ok(())
        })?;
        for (p, event) in out.iter_mut().zip(events) {
            if let Ok(Prepared::Ready(_)) = p
                && let Err(rejection) = self.check_signature(event)
            {
                *p = Err(rejection);
            }
        }
        Ok(out)
    }
}

/// One chunk of a batch after [`Store::prepare_all`]: per event, `None` when it went to
/// the writer, the sequence number of a duplicate, or its rejection.
pub type PreparedChunk = Vec<Result<Option<u64>, StoreError>>;

/// Adds one chunk's results to `results`: its prepared events, with the writer's
/// outcomes (through `ticket`) for those that were ready.
fn merge_outcomes(
    prepared: PreparedChunk,
    ticket: Option<Ticket>,
    results: &mut Vec<Result<AppendOutcome, StoreError>>,
) -> Result<(), StoreError> {
    let mut committed = match ticket {
        Some(ticket) => ticket.wait()?.into_iter(),
        None => Vec::new().into_iter(),
    };
    results.extend(prepared.into_iter().map(|p| match p {
        Ok(None) => committed.next().ok_or(StoreError::WriterGone),
        Ok(Some(seq)) => Ok(AppendOutcome::Duplicate(seq)),
        Err(e) => Err(e),
    }));
    Ok(())
}

/// `f` over consecutive blocks of `block` items, in order, on the machine's cores: the
/// calling thread and one helper per further core take the next block in turn, so a
/// thread slowed by another (the writer shares these cores) takes fewer blocks
/// instead of holding the others up at the end.
fn par_blocks<T: Sync, R: Send>(items: &[T], block: usize, f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let blocks: Vec<&[T]> = items.chunks(block.max(1)).collect();
    if blocks.len() < 2 || threads == 1 {
        return blocks.into_iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = blocks.get(i) else { break };
            done.push((i, f(part)));
        }
        done
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        // Named, so that a profile tells validation from the writer and the caller.
        let helpers: Vec<_> = (1..threads.min(blocks.len()))
            .filter_map(|_| {
                let helper = std::thread::Builder::new()
                    .name("highwater-prepare".into())
                    .spawn_scoped(scope, work);
                // Without a thread to spare, the calling thread takes its blocks.
                helper
                    .map_err(|error| tracing::warn!(%error, "could not start a validation thread"))
                    .ok()
            })
            .collect();
        let mut done = work();
        // A panicking helper is a bug in validation; re-raise it rather than return a
        // result vector that no longer lines up with the input.
        for helper in helpers {
            done.extend(
                helper
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs `par_blocks` over `blocks` one-item blocks with a closure that, on its
    /// first call on each thread, waits (up to 10 s, once) for a second thread to
    /// call it too. Returns the results and the names of the threads that ran blocks.
    fn threads_of(blocks: usize) -> (Vec<usize>, Vec<String>) {
        use std::sync::{Condvar, Mutex};
        let seen: (Mutex<(Vec<String>, bool)>, Condvar) =
            (Mutex::new((Vec::new(), false)), Condvar::new());
        let items: Vec<usize> = (0..blocks).collect();
        let out = par_blocks(&items, 1, |block| {
            let name = std::thread::current().name().unwrap_or("caller").to_owned();
            let (lock, met) = &seen;
            let mut s = lock.lock().unwrap();
            if !s.0.contains(&name) {
                s.0.push(name);
                met.notify_all();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while s.0.len() < 2 && !s.1 {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let (next, waited) = met.wait_timeout(s, left).unwrap();
                s = next;
                s.1 |= waited.timed_out();
            }
            block[0] * 10
        });
        let names = seen.0.into_inner().unwrap().0;
        (out, names)
    }

    #[test]
    fn a_prepared_event_reads_back_as_the_log_will_hold_it() {
        use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
        let event = EventBuilder::new(Kind::from(9000u16), "hello")
            .tags([
                Tag::parse(["h", "pizza"]).unwrap(),
                Tag::parse(["p", &Keys::generate().public_key().to_hex(), "admin"]).unwrap(),
            ])
            .finalize(&Keys::generate())
            .unwrap();
        let Prepared::Ready(prepared) = store.prepare(&event).unwrap() else {
            panic!("a new event is ready");
        };
        let view = prepared.event_ref().unwrap();
        assert_eq!(view.to_event(0).unwrap(), event);
        assert_eq!(view.group_id(), Some("pizza"));
        // The same bytes the writer appends: read back from the log, equal.
        let seq = match store.submit(vec![prepared]).unwrap().wait().unwrap()[0] {
            AppendOutcome::Appended(seq) => seq,
            AppendOutcome::Duplicate(_) => panic!("a new event is appended"),
        };
        assert_eq!(store.get(seq).unwrap(), Some(event));
    }

    #[test]
    fn blocks_are_spread_over_the_cores_and_answered_in_order() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for blocks in [2, 5] {
            let (out, names) = threads_of(blocks);
            assert_eq!(out, (0..blocks).map(|b| b * 10).collect::<Vec<_>>());
            if cores > 1 {
                assert_eq!(names.len(), 2, "{blocks} blocks ran on {names:?}");
                assert!(names.iter().any(|n| n == "highwater-prepare"), "{names:?}");
            } else {
                assert_eq!(names.len(), 1, "{names:?}");
            }
        }
        // One block: the calling thread alone, without waiting for a helper.
        let items = [7];
        let out = par_blocks(&items, 64, |_| {
            std::thread::current().name().map(str::to_owned)
        });
        assert_ne!(out[0].as_deref(), Some("highwater-prepare"));
        assert_eq!(
            par_blocks(&[] as &[u8], 4, <[u8]>::len),
            Vec::<usize>::new()
        );
    }
}
