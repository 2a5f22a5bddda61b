//! The single writer thread: group commit of appends, and every other write transaction.
//!
//! Callers send requests over a crossbeam channel. The writer blocks for one request,
//! drains whatever else is queued (up to a cap), and — when fewer requests are queued
//! than it expects (see [`collect`]) — waits up to `StoreOptions::commit_wait` for more,
//! so that concurrent single-event callers share one fsync. It then writes consecutive
//! appends in one transaction with one durable commit, publishes the new heads, tells
//! the commit observers, and only then acknowledges each caller. A failed transaction
//! is aborted as a whole, so a batch is either fully committed and acknowledged or not
//! written — together with the setting it may carry (`Pipeline::submit_with_setting`),
//! which is put in the same transaction.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use heed::{PutFlags, RwTxn};
use std::collections::HashMap;

use rustc_hash::FxHashSet;

use crate::codec::{self, GroupEntry};
use crate::compact::Removed;
use crate::error::StoreError;
use crate::event::EventRef;
use crate::store::{Dbs, Shared};
use crate::validate::PreparedEvent;

/// What happened to one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendOutcome {
    /// Written at this sequence number.
    Appended(u64),
    /// Already in the log at this sequence number; nothing was written.
    Duplicate(u64),
}

impl AppendOutcome {
    /// The event's sequence number, new or existing.
    pub fn seq(self) -> u64 {
        match self {
            AppendOutcome::Appended(seq) | AppendOutcome::Duplicate(seq) => seq,
        }
    }
}

/// One committed event, as shown to commit observers.
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Its group (name, number), if it has one.
    pub group: Option<(&'a str, u32)>,
    /// The group's head before this event (0 for its first event, or no group). A
    /// projection whose watermark equals it can fold this event and stay current.
    pub prev_head: u64,
    /// The event itself.
    pub event: EventRef<'a>,
}

/// Called on the writer thread after each commit and before callers are acknowledged.
/// Must be quick and must not call back into the store's write path.
pub trait CommitObserver: Send + Sync {
    /// Receives the events of one commit, in sequence order.
    fn on_commit(&self, batch: &[Committed<'_>]);
}

pub(crate) type AnyBox = Box<dyn Any + Send>;
pub(crate) type Job = Box<dyn Fn(&mut RwTxn<'_>, &Dbs) -> Result<AnyBox, StoreError> + Send>;

pub(crate) enum Request {
    Append(Append),
    Exec {
        job: Job,
        reply: Sender<Result<AnyBox, StoreError>>,
    },
}

/// A batch of events to append, as submitted.
pub(crate) struct Append {
    pub(crate) events: Vec<PreparedEvent>,
    /// The ordered pipeline this batch belongs to, if any.
    pub(crate) pipeline: Option<u64>,
    /// A `meta` entry (full key, value) written in the batch's transaction: durable
    /// exactly when the batch is.
    pub(crate) setting: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) reply: crate::oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
}

/// Most events written in one group commit.
const MAX_EVENTS_PER_COMMIT: usize = 65_536;

/// Dead processes' reader slots are cleared every this many commits: a reader killed
/// mid-transaction pins the pages of its snapshot until its slot is cleared.
const CLEAR_READERS_EVERY: u64 = 1_024;

pub(crate) fn run(shared: &Arc<Shared>, rx: &Receiver<Request>) {
    // Pipelines with a failed batch: their later batches are cancelled, not written.
    let mut failed: FxHashSet<u64> = FxHashSet::default();
    let mut commits = 0u64;
    // The callers the last round answered, and how many requests were queued by then
    // (see `collect`).
    let mut answered = Callers::default();
    let mut waiting = 0usize;
    while let Ok(first) = rx.recv() {
        let queue = collect(rx, first, shared.commit_wait, &answered, waiting);
        answered = Callers::default();
        for request in &queue {
            answered.add(request);
        }
        let mut queue = queue.into_iter().peekable();
        while let Some(request) = queue.next() {
            match request {
                Request::Append(append) => {
                    let mut group = Vec::new();
                    admit(&failed, append, &mut group);
                    while let Some(Request::Append(_)) = queue.peek() {
                        if let Some(Request::Append(append)) = queue.next() {
                            admit(&failed, append, &mut group);
                        }
                    }
                    if group.is_empty() {
                        continue;
                    }
                    if !commit_appends(shared, group, &mut failed) {
                        continue;
                    }
                    commits += 1;
                    if commits.is_multiple_of(CLEAR_READERS_EVERY) && !shared.lockless {
                        match shared.env.clear_stale_readers() {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::info!(cleared = n, "cleared dead processes' reader slots");
                            }
                            Err(error) => {
                                tracing::warn!(%error, "could not check the reader table");
                            }
                        }
                    }
                }
                Request::Exec { job, reply } => {
                    let result =
                        with_retry(shared, |txn| job(txn, &shared.dbs)).map(|(value, txn_id)| {
                            // A commit of ours with no events: still "seen".
                            let _sync = shared.sync.lock();
                            if let Some(removed) = value.downcast_ref::<Removed>() {
                                take_in_removal(shared, removed);
                            }
                            let _ = shared.seen_txn.compare_exchange(
                                txn_id - 1,
                                txn_id,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            );
                            value
                        });
                    let _ = reply.send(result);
                }
            }
        }
        // Every caller of this round is answered. Those callers may each send again
        // soon, and whatever is queued now arrived while this round committed: the
        // next commit can expect both.
        waiting = rx.len();
    }
}

/// The callers whose append requests a round holds: each request without a pipeline
/// is its own caller (it waits for its answer); the batches of one ordered pipeline
/// come from one submitter that queues ahead, so they count once.
#[derive(Default, Clone)]
struct Callers {
    single: usize,
    pipelines: FxHashSet<u64>,
}

impl Callers {
    fn add(&mut self, request: &Request) {
        match request {
            Request::Append(Append {
                pipeline: Some(p), ..
            }) => {
                self.pipelines.insert(*p);
            }
            Request::Append(Append { pipeline: None, .. }) => self.single += 1,
            Request::Exec { .. } => {}
        }
    }

    fn count(&self) -> usize {
        self.single + self.pipelines.len()
    }
}

/// The requests of one round: `first`, whatever is queued behind it (up to
/// [`MAX_EVENTS_PER_COMMIT`] events), and — when `wait` is not zero and they come from
/// fewer callers than expected — those that arrive within `wait`, until the expected
/// callers are there.
///
/// The round expects the callers the previous round `answered` and those of the first
/// `waiting` requests of this one (queued before the previous round had answered).
/// Callers that append one event at a time and wait fall into cohorts otherwise: while
/// one cohort's commit is flushed the next queues, and each commit carries only the
/// callers that happened to be queued. Waiting for the answered callers to come back
/// merges the cohorts. A lone caller is never delayed: the round that answered it
/// expects only it, and its next request is that; nor is a lone pipeline that queues
/// ahead (its batches are one caller). The wait ends early on anything but an append (a
/// write job ends the run of appends a commit can take anyway), and never exceeds
/// `wait`, so no caller is delayed by more than that; requests keep their order.
fn collect(
    rx: &Receiver<Request>,
    first: Request,
    wait: Duration,
    answered: &Callers,
    waiting: usize,
) -> Vec<Request> {
    let mut callers = Callers::default();
    let mut events = queued_events(&first);
    let mut only_appends = matches!(first, Request::Append(_));
    callers.add(&first);
    let mut queue = vec![first];
    while events < MAX_EVENTS_PER_COMMIT {
        let Ok(more) = rx.try_recv() else { break };
        events += queued_events(&more);
        only_appends &= matches!(more, Request::Append(_));
        callers.add(&more);
        queue.push(more);
    }
    if wait.is_zero() || !only_appends {
        return queue;
    }
    let mut expected = answered.clone();
    for request in queue.iter().take(waiting) {
        expected.add(request);
    }
    let expected = expected.count();
    if callers.count() >= expected {
        return queue;
    }
    let deadline = Instant::now() + wait;
    while callers.count() < expected && events < MAX_EVENTS_PER_COMMIT {
        let Ok(more) = rx.recv_deadline(deadline) else {
            break;
        };
        events += queued_events(&more);
        let append = matches!(more, Request::Append(_));
        callers.add(&more);
        queue.push(more);
        if !append {
            break;
        }
    }
    queue
}

/// Adds a request to the commit being formed, or cancels it when its pipeline failed.
fn admit(failed: &FxHashSet<u64>, request: Append, group: &mut Vec<Append>) {
    if let Some(p) = request.pipeline
        && failed.contains(&p)
    {
        let _ = request.reply.send(Err(StoreError::Cancelled));
        return;
    }
    group.push(request);
}

fn queued_events(request: &Request) -> usize {
    match request {
        Request::Append(Append { events, .. }) => events.len().max(1),
        Request::Exec { .. } => 1,
    }
}

/// What one append transaction did, applied to memory only after its commit.
struct Written {
    outcomes: Vec<Vec<AppendOutcome>>,
    /// Every group the transaction touched, with its entry after the transaction.
    groups: HashMap<Box<str>, GroupEntry, ahash::RandomState>,
    /// (request index, event index, seq, group no, previous group head) of every new event.
    new: Vec<(usize, usize, u64, Option<u32>, u64)>,
    /// The first sequence number the transaction could use, and one past its last.
    start: u64,
    next_seq: u64,
}

/// Writes and commits one group of requests; returns whether it committed.
fn commit_appends(shared: &Arc<Shared>, pending: Vec<Append>, failed: &mut FxHashSet<u64>) -> bool {
    let result = with_retry(shared, |txn| write_appends(txn, shared, &pending));
    let (written, txn_id) = match result {
        Ok(done) => done,
        Err(error) => {
            tracing::warn!(%error, requests = pending.len(), "append batch failed; nothing written");
            // Every caller of the batch gets the same error, its source shared.
            for append in pending {
                if let Some(p) = append.pipeline {
                    failed.insert(p);
                }
                let _ = append.reply.send(Err(error.clone()));
            }
            return false;
        }
    };
    // Fold into loaded groups first, then publish the heads: a reader never sees a head
    // whose live fold is still pending, so it never clones a state to fold one event.
    notify(shared, &pending, &written);
    publish(shared, &written, txn_id);
    for (append, outcomes) in pending.into_iter().zip(written.outcomes) {
        let _ = append.reply.send(Ok(outcomes));
    }
    true
}

/// Writes the requests' events. The next sequence number and the entries of the groups
/// it touches (number, head, count; new numbers for new groups) are read inside this
/// transaction, which holds LMDB's write lock: another process's commits are never
/// overwritten, and a group number is never given twice.
fn write_appends(
    txn: &mut RwTxn<'_>,
    shared: &Shared,
    pending: &[Append],
) -> Result<Written, StoreError> {
    let dbs = &shared.dbs;
    let start = crate::env::last_seq(txn, dbs)? + 1;
    // Group ids and event ids come from clients: keyed hashing (aHash), so that a
    // commit of crafted ids cannot pile them up.
    let mut groups: HashMap<Box<str>, GroupEntry, ahash::RandomState> = HashMap::default();
    let mut next_no = None;
    let mut next_seq = start;
    let mut outcomes = Vec::with_capacity(pending.len());
    let mut new = Vec::new();
    // This transaction's ids: a repeat inside one commit is found here; the index gets
    // them all at the end, sorted by key.
    let mut fresh: HashMap<[u8; 32], u64, ahash::RandomState> = HashMap::default();
    let mut record = Vec::new();
    // The group index entries of the commit, written sorted at the end.
    let mut index = Vec::new();
    for (r, Append { events, .. }) in pending.iter().enumerate() {
        let mut out = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if let Some(&seq) = fresh.get(&event.id) {
                out.push(AppendOutcome::Duplicate(seq));
                continue;
            }
            if let Some(seq) = crate::ids::lookup(txn, dbs, &event.id)? {
                out.push(AppendOutcome::Duplicate(seq));
                continue;
            }
            let seq = next_seq;
            let key = codec::seq_key(seq);
            next_seq += 1;
            fresh.insert(event.id, seq);
            let mut group_no = None;
            let mut prev_head = 0;
            if let Some(name) = event.group.as_deref() {
                if !groups.contains_key(name) {
                    let stored = dbs
                        .groups
                        .get(txn, name.as_bytes())
                        .map_err(StoreError::lmdb("reading the group table"))?;
                    let entry = if let Some(bytes) = stored {
                        GroupEntry::decode(bytes).ok_or_else(|| bad_index("groups"))?
                    } else {
                        let no = match next_no {
                            Some(no) => no,
                            None => u32::try_from(
                                dbs.groups
                                    .len(txn)
                                    .map_err(StoreError::lmdb("counting groups"))?,
                            )
                            .map_err(|_| bad_index("groups"))?,
                        };
                        next_no = Some(no + 1);
                        GroupEntry {
                            no,
                            head: 0,
                            count: 0,
                        }
                    };
                    groups.insert(name.into(), entry);
                }
                let entry = groups.get_mut(name).expect("inserted above");
                prev_head = entry.head;
                entry.head = seq;
                entry.count += 1;
                group_no = Some(entry.no);
                index.push((
                    codec::group_index_key(entry.no, seq),
                    codec::kind_value(event.kind),
                ));
            }
            // The group number is known only now: it goes into the record's header.
            record.clear();
            record.extend_from_slice(&event.bytes);
            codec::set_record_group(&mut record, group_no);
            dbs.events
                .put_with_flags(txn, PutFlags::APPEND, &key, &record)
                .map_err(StoreError::lmdb("appending a record"))?;
            new.push((r, i, seq, group_no, prev_head));
            out.push(AppendOutcome::Appended(seq));
        }
        outcomes.push(out);
    }
    let mut keys: Vec<([u8; 8], [u8; 8])> = fresh
        .iter()
        .map(|(id, &seq)| (codec::id_prefix(id), codec::seq_key(seq)))
        .collect();
    put_sorted(txn, dbs.ids, &mut keys, "writing the id index")?;
    put_sorted(txn, dbs.group_index, &mut index, "writing the group index")?;
    for (name, entry) in &groups {
        dbs.groups
            .put(txn, name.as_bytes(), &entry.encode())
            .map_err(StoreError::lmdb("writing the group table"))?;
    }
    // In submission order: of two batches in one commit setting one key, the later wins.
    for (key, value) in pending.iter().filter_map(|a| a.setting.as_ref()) {
        dbs.meta
            .put(txn, key, value)
            .map_err(StoreError::lmdb("writing a setting"))?;
    }
    Ok(Written {
        outcomes,
        groups,
        new,
        start,
        next_seq,
    })
}

/// Inserts `entries` sorted by key through one cursor. A cursor put first compares the
/// key with the ends of the leaf the cursor is on, and descends from the root only when
/// the key is outside it, so consecutive keys of one leaf (a commit's ids that share a
/// leaf, a group's new entries) cost a search within the page instead of a descent.
fn put_sorted<K: AsRef<[u8]> + Ord, V: AsRef<[u8]> + Ord>(
    txn: &mut RwTxn<'_>,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    entries: &mut [(K, V)],
    context: &'static str,
) -> Result<(), StoreError> {
    entries.sort_unstable();
    let mut cursor = db.iter_mut(txn).map_err(StoreError::lmdb(context))?;
    for (key, value) in entries.iter() {
        #[expect(unsafe_code, reason = "heed's cursor put; see SAFETY")]
        // SAFETY: heed's only condition is that no key or value borrowed from this
        // database is alive across the write: `key` and `value` are owned by `entries`,
        // and nothing read through the cursor is kept.
        unsafe {
            cursor.put_current_with_options::<heed::types::Bytes>(
                PutFlags::empty(),
                key.as_ref(),
                value.as_ref(),
            )
        }
        .map_err(StoreError::lmdb(context))?;
    }
    Ok(())
}

fn bad_index(table: &'static str) -> StoreError {
    StoreError::Corrupted(crate::error::Corruption::Index {
        table,
        reason: "value has the wrong length".into(),
    })
}

/// Makes the commit visible to readers of the in-memory heads. When this process knew
/// the log up to just before the commit, the transaction's own group entries are
/// published (new groups in number order, so numbers stay dense); when another
/// process committed in between, the log is tailed instead, which takes in both.
fn publish(shared: &Shared, written: &Written, txn_id: u64) {
    let _sync = shared.sync.lock();
    let known = shared.head.load(Ordering::Acquire);
    let last = written.next_seq - 1;
    if known + 1 == written.start {
        // The commit numbered its new groups densely after the groups this process knew.
        let entries = written.groups.iter().map(|(name, e)| (&**name, *e));
        if !shared.groups.take_in(entries) {
            debug_assert!(false, "a new group numbered out of order");
            tracing::error!("a new group's number does not follow the known ones");
        }
        shared.head.store(last, Ordering::Release);
        // Every transaction before ours added only events up to `known`.
        shared.seen_txn.fetch_max(txn_id, Ordering::AcqRel);
    } else if known < last
        && let Err(error) = crate::follow::tail_locked(shared)
    {
        // The commit is durable; readers will tail again on their next look.
        tracing::error!(%error, "could not take in the log after a commit");
    }
}

/// Takes a committed compaction transaction's group counts into memory. The caller
/// holds `shared.sync`. When the transaction found another count of removed records
/// than this process knew (another process compacted too), nothing is taken: the
/// differing `removed_records` makes the next refresh reload the whole group table.
fn take_in_removal(shared: &Shared, removed: &Removed) {
    if shared.removed.load(Ordering::Acquire) != removed.before {
        return;
    }
    for (_, entry) in &removed.groups {
        shared.groups.set_count(entry.no, entry.count);
    }
    shared.removed.store(removed.after, Ordering::Release);
}

fn notify(shared: &Shared, pending: &[Append], written: &Written) {
    let observers = shared.observers.read().clone();
    if observers.is_empty() || written.new.is_empty() {
        return;
    }
    let mut batch = Vec::with_capacity(written.new.len());
    for &(r, i, seq, no, prev_head) in &written.new {
        let event = &pending[r].events[i];
        // The writer encoded these bytes itself; validation cannot fail short of a bug.
        let Ok(record) = codec::access_record(&event.bytes, seq) else {
            continue;
        };
        let group = event.group.as_deref().zip(no);
        batch.push(Committed {
            seq,
            group,
            prev_head,
            event: EventRef::new(record),
        });
    }
    for (_, observer) in observers {
        if catch_unwind(AssertUnwindSafe(|| observer.on_commit(&batch))).is_err() {
            tracing::error!("a commit observer panicked; the commit itself is durable");
        }
    }
}

/// Runs `f` in a write transaction and commits it; returns its value and the
/// transaction's id. A full map is grown (up to the configured limit) and the whole
/// transaction retried; a map grown by another process is adopted and retried; any
/// other error aborts it.
fn with_retry<T>(
    shared: &Shared,
    f: impl Fn(&mut RwTxn<'_>) -> Result<T, StoreError>,
) -> Result<(T, u64), StoreError> {
    loop {
        let mut txn = match shared.env.write_txn() {
            Ok(txn) => txn,
            Err(heed::Error::Mdb(heed::MdbError::MapResized)) => {
                shared.adopt_map_size()?;
                continue;
            }
            Err(e) => return Err(StoreError::lmdb("opening a write transaction")(e)),
        };
        let txn_id = txn.id() as u64;
        let attempt = f(&mut txn).and_then(|value| {
            txn.commit().map_err(StoreError::lmdb("committing"))?;
            Ok(value)
        });
        match attempt {
            Err(StoreError::MapFull { .. }) => {
                if !shared.grow_map()? {
                    return Err(StoreError::MapFull {
                        map_size: shared.map_size.load(Ordering::Acquire),
                        max_map_size: shared.max_map_size,
                    });
                }
            }
            other => return other.map(|value| (value, txn_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! How a round of requests is formed ([`collect`]): what it drains, when it waits
    //! and for whom. The requests are never executed here; only their number and
    //! order are looked at, so nothing depends on timing except that a request sent
    //! 200 ms after `collect` started arrives while it waits (if it waits at all).

    use super::*;

    /// An append request of `n` events (placeholders; `collect` only counts them).
    fn append(pipeline: Option<u64>, n: usize) -> Request {
        let event = PreparedEvent {
            id: [0; 32],
            kind: 9,
            group: None,
            bytes: Vec::new(),
        };
        let (reply, _) = crate::oneshot::channel();
        Request::Append(Append {
            events: vec![event; n],
            pipeline,
            setting: None,
            reply,
        })
    }

    fn exec() -> Request {
        let (reply, _) = crossbeam_channel::unbounded();
        Request::Exec {
            job: Box::new(|_, _| Ok(Box::new(()))),
            reply,
        }
    }

    /// What the previous round answered: `singles` callers and these pipelines.
    fn answered(singles: usize, pipelines: &[u64]) -> Callers {
        Callers {
            single: singles,
            pipelines: pipelines.iter().copied().collect(),
        }
    }

    /// Runs `collect` with `first`, `queued` already in the channel, and `late` sent
    /// 200 ms after it started. Returns how many requests the round took and how many
    /// were left in the channel.
    fn round(
        first: Request,
        queued: Vec<Request>,
        late: Vec<Request>,
        wait: Duration,
        answered: &Callers,
    ) -> (usize, usize) {
        let (tx, rx) = crossbeam_channel::unbounded();
        for r in queued {
            tx.send(r).unwrap();
        }
        let started = std::sync::atomic::AtomicBool::new(false);
        let taken = std::thread::scope(|s| {
            s.spawn(|| {
                // Once `collect` is about to run, and then long enough for it to have
                // drained the queue and be waiting (or done).
                while !started.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                std::thread::sleep(Duration::from_millis(200));
                for r in late {
                    tx.send(r).unwrap();
                }
            });
            started.store(true, Ordering::Release);
            collect(&rx, first, wait, answered, 0).len()
        });
        // The late requests are all sent once the scope has ended.
        (taken, rx.len())
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn a_round_drains_what_is_queued_up_to_the_event_cap() {
        let none = answered(0, &[]);
        let four = || (0..4).map(|_| append(None, 1)).collect::<Vec<_>>();
        assert_eq!(
            round(append(None, 1), four(), vec![], Duration::ZERO, &none),
            (5, 0)
        );
        // MAX − 2 events, then one-event requests: the round stops at the cap.
        let first = append(None, MAX_EVENTS_PER_COMMIT - 2);
        assert_eq!(round(first, four(), vec![], Duration::ZERO, &none), (3, 2));
        // An empty append and a write job count as one event each.
        let first = append(None, MAX_EVENTS_PER_COMMIT - 2);
        let queued = vec![append(None, 0), exec(), append(None, 1)];
        assert_eq!(round(first, queued, vec![], Duration::ZERO, &none), (3, 1));
    }

    #[test]
    fn a_round_waits_for_the_callers_the_last_round_answered_and_no_more() {
        // Three callers answered: the round waits until three are there.
        let late = || (0..3).map(|_| append(None, 1)).collect::<Vec<_>>();
        assert_eq!(
            round(append(None, 1), vec![], late(), LONG, &answered(3, &[])),
            (3, 1)
        );
        // A pipeline counts once, however many batches it queued.
        let late = vec![append(Some(7), 1), append(None, 1), append(None, 1)];
        let expected = answered(1, &[7]);
        assert_eq!(
            round(append(Some(7), 1), vec![], late, LONG, &expected),
            (3, 1)
        );
        // Nothing to wait for when the expected callers are already there.
        let queued = vec![append(None, 1)];
        assert_eq!(
            round(append(None, 1), queued, late_one(), LONG, &answered(2, &[])),
            (2, 1)
        );
        // No wait configured: no waiting.
        assert_eq!(
            round(
                append(None, 1),
                vec![],
                late_one(),
                Duration::ZERO,
                &answered(5, &[])
            ),
            (1, 1)
        );
    }

    fn late_one() -> Vec<Request> {
        vec![append(None, 1)]
    }

    #[test]
    fn a_round_does_not_wait_past_the_event_cap_or_beside_a_write_job() {
        let five = answered(5, &[]);
        // A full first request: nothing more, not even after waiting.
        let first = append(None, MAX_EVENTS_PER_COMMIT);
        assert_eq!(round(first, vec![], late_one(), LONG, &five), (1, 1));
        // Reaching the cap while waiting ends the wait.
        let first = append(None, MAX_EVENTS_PER_COMMIT - 1);
        let late = vec![append(None, 1), append(None, 1)];
        assert_eq!(round(first, vec![], late, LONG, &five), (2, 1));
        // A write job in the round (first or queued): no wait.
        assert_eq!(
            round(exec(), vec![append(None, 1)], late_one(), LONG, &five),
            (2, 1)
        );
        assert_eq!(
            round(append(None, 1), vec![exec()], late_one(), LONG, &five),
            (2, 1)
        );
        // A write job arriving while waiting ends the wait after it.
        let late = vec![append(None, 1), exec(), append(None, 1)];
        assert_eq!(round(append(None, 1), vec![], late, LONG, &five), (3, 1));
    }
}
