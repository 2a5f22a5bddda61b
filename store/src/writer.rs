//! The single writer thread: group commit of appends, and every other write transaction.
//!
//! Callers send requests over a crossbeam channel. The writer blocks for one request,
//! drains whatever else is queued (up to a cap), and — when fewer requests are queued
//! than it expects (see `round::collect`) — waits up to `StoreOptions::commit_wait` for more
//! (at most an eighth of its last commit, `round::linger`), so that concurrent
//! single-event callers share one fsync. It then writes consecutive
//! appends in one transaction with one durable commit, publishes the new heads, tells
//! the commit observers, and only then acknowledges each caller. A failed transaction
//! is aborted as a whole, so a batch is either fully committed and acknowledged or not
//! written — together with the setting it may carry (`Pipeline::submit_with_setting`),
//! which is put in the same transaction.
//!
//! A commit writes the records, the touched `groups` entries and the settings; the
//! records' `id_prefix` and `group_index` entries stay in the index tail (`tail`) until
//! the commit that brings the tail to `StoreOptions::index_tail` records (or the
//! `StoreOptions::index_tail_share`-th part of the indexed records, when more) merges
//! all of it into both indexes with the new index watermark (`merge`).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::Receiver;
use heed::{PutFlags, RwTxn};
use rustc_hash::FxHashSet;

use crate::codec::{self, GroupEntry};
use crate::commit::{AppendOutcome, Committed};
use crate::env::Dbs;
use crate::error::StoreError;
use crate::event::EventRef;
use crate::merge::IndexEntries;
use crate::request::{Append, Removed, Request, Setting};
use crate::round::{Callers, collect, linger};
use crate::shared::Shared;
use crate::tail::TailEntry;

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
    // How long the last group commit took (`round::linger`).
    let mut last_commit = None;
    while let Ok(first) = rx.recv() {
        let wait = linger(shared.commit_wait, last_commit);
        let queue = collect(rx, first, wait, &answered, waiting);
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
                    let started = Instant::now();
                    if !commit_appends(shared, group, &mut failed) {
                        continue;
                    }
                    last_commit = Some(started.elapsed());
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
                    let result = with_retry(shared, |txn| job(txn, &shared.dbs)).map(|done| {
                        // A commit of ours with no events: still "seen".
                        let _sync = shared.sync.lock();
                        if let Some(removed) = done.value.downcast_ref::<Removed>() {
                            take_in_removal(shared, removed);
                        }
                        let _ = shared.seen_txn.compare_exchange(
                            done.txn_id - 1,
                            done.txn_id,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                        done.value
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

/// What one append transaction did, applied to memory only after its commit.
struct Written {
    outcomes: Vec<Vec<AppendOutcome>>,
    /// Every group the transaction touched, with its entry after the transaction.
    groups: HashMap<Box<str>, GroupEntry, ahash::RandomState>,
    /// Every new event, in sequence order.
    new: Vec<NewEvent>,
    /// The first sequence number the transaction could use, and one past its last.
    start: u64,
    next_seq: u64,
    /// The new index watermark when the transaction merged the tail.
    merged: Option<u64>,
}

/// An event one append transaction wrote (not a duplicate).
#[derive(Clone, Copy)]
struct NewEvent {
    /// Where it was submitted: the index of its request in the commit, and its index in
    /// that request's events.
    request: usize,
    event: usize,
    /// Its sequence number.
    seq: u64,
    /// Its group's number, if it has a group.
    group_no: Option<u32>,
    /// Its group's head before it (0 for a group's first event, or no group).
    prev_head: u64,
}

/// A committed write transaction: the value its work returned, and its id.
struct CommittedTxn<T> {
    value: T,
    txn_id: u64,
}

/// Writes and commits one group of requests; returns whether it committed.
fn commit_appends(shared: &Arc<Shared>, pending: Vec<Append>, failed: &mut FxHashSet<u64>) -> bool {
    let result = with_retry(shared, |txn| write_appends(txn, shared, &pending));
    let CommittedTxn {
        value: written,
        txn_id,
    } = match result {
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
    take_in_tail(shared, &pending, &written);
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
    // Before anything is written: the tail of the committed log this commit follows.
    let tail = shared.tail.view(txn, dbs)?;
    let window = tail.window();
    let start = window.head + 1;
    // Group ids and event ids come from clients: keyed hashing (aHash), so that a
    // commit of crafted ids cannot pile them up.
    let mut groups: HashMap<Box<str>, GroupEntry, ahash::RandomState> = HashMap::default();
    let mut next_no = None;
    let mut next_seq = start;
    let mut outcomes = Vec::with_capacity(pending.len());
    let mut new = Vec::new();
    // This transaction's ids: a repeat inside one commit is found here.
    let mut fresh: HashMap<[u8; 32], u64, ahash::RandomState> = HashMap::default();
    let mut record = Vec::new();
    for (r, Append { events, .. }) in pending.iter().enumerate() {
        let mut out = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if let Some(&seq) = fresh.get(&event.id) {
                out.push(AppendOutcome::Duplicate(seq));
                continue;
            }
            if let Some(seq) = crate::ids::lookup(txn, dbs, &tail, &event.id)? {
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
                    let entry = group_entry(txn, dbs, name, &mut next_no)?;
                    groups.insert(name.into(), entry);
                }
                let entry = groups.get_mut(name).expect("inserted above");
                prev_head = entry.head;
                entry.head = seq;
                entry.count += 1;
                group_no = Some(entry.no);
            }
            // The group number is known only now: it goes into the record's header.
            record.clear();
            record.extend_from_slice(&event.bytes);
            codec::set_record_group(&mut record, group_no);
            dbs.events
                .put_with_flags(txn, PutFlags::APPEND, &key, &record)
                .map_err(StoreError::lmdb("appending a record"))?;
            new.push(NewEvent {
                request: r,
                event: i,
                seq,
                group_no,
                prev_head,
            });
            out.push(AppendOutcome::Appended(seq));
        }
        outcomes.push(out);
    }
    let last = next_seq - 1;
    let merged = if last - window.watermark >= shared.merge_at(window.watermark) {
        let mut entries = IndexEntries::of_tail(&tail);
        drop(tail);
        for n in &new {
            let event = &pending[n.request].events[n.event];
            entries.push(n.seq, &event.id, n.group_no, event.kind);
        }
        entries.write(txn, dbs, last)?;
        Some(last)
    } else {
        None
    };
    for (name, entry) in &groups {
        dbs.groups
            .put(txn, name.as_bytes(), &entry.encode())
            .map_err(StoreError::lmdb("writing the group table"))?;
    }
    // In submission order: of two batches in one commit setting one key, the later wins.
    for Setting { key, value } in pending.iter().filter_map(|a| a.setting.as_ref()) {
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
        merged,
    })
}

/// Takes a committed transaction's records into this process's memory of the index
/// tail, and forgets what the transaction merged.
fn take_in_tail(shared: &Shared, pending: &[Append], written: &Written) {
    let entries = written.new.iter().map(|n| {
        let event = &pending[n.request].events[n.event];
        TailEntry {
            id: event.id,
            group: n.group_no,
            kind: event.kind,
        }
    });
    shared.tail.extend(written.start, entries);
    if let Some(watermark) = written.merged {
        shared.tail.merged(watermark);
    }
}

/// The entry of group `name` as this transaction finds it in the group table, or a
/// new one (no events yet) numbered `next_no`, which starts at the table's length and
/// counts up for each new group of the transaction.
fn group_entry(
    txn: &RwTxn<'_>,
    dbs: &Dbs,
    name: &str,
    next_no: &mut Option<u32>,
) -> Result<GroupEntry, StoreError> {
    let stored = dbs
        .groups
        .get(txn, name.as_bytes())
        .map_err(StoreError::lmdb("reading the group table"))?;
    if let Some(bytes) = stored {
        return GroupEntry::decode(bytes).ok_or_else(|| bad_index("groups"));
    }
    let no = match *next_no {
        Some(no) => no,
        None => u32::try_from(
            dbs.groups
                .len(txn)
                .map_err(StoreError::lmdb("counting groups"))?,
        )
        .map_err(|_| bad_index("groups"))?,
    };
    *next_no = Some(no + 1);
    Ok(GroupEntry {
        no,
        head: 0,
        count: 0,
    })
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
    for &NewEvent {
        request,
        event,
        seq,
        group_no,
        prev_head,
    } in &written.new
    {
        let event = &pending[request].events[event];
        // The writer encoded these bytes itself; validation cannot fail short of a bug.
        let Ok(record) = codec::access_record(&event.bytes, seq) else {
            continue;
        };
        let group = event.group.as_deref().zip(group_no);
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
/// transaction's id ([`CommittedTxn`]). A full map is grown (up to the configured limit) and the whole
/// transaction retried; a map grown by another process is adopted and retried; any
/// other error aborts it.
fn with_retry<T>(
    shared: &Shared,
    f: impl Fn(&mut RwTxn<'_>) -> Result<T, StoreError>,
) -> Result<CommittedTxn<T>, StoreError> {
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
            other => return other.map(|value| CommittedTxn { value, txn_id }),
        }
    }
}
