//! The single writer thread: group commit of appends, and every other write transaction.
//!
//! Callers send requests over a crossbeam channel. The writer blocks for one request,
//! drains whatever else is queued (up to a cap), writes consecutive appends in one
//! transaction with one durable commit, publishes the new heads, tells the commit
//! observers, and only then acknowledges each caller. A failed transaction is aborted
//! as a whole, so a batch is either fully committed and acknowledged or not written.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};
use heed::{PutFlags, RwTxn};
use rustc_hash::FxHashMap;

use crate::codec::{self, GroupEntry};
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
    Append {
        events: Vec<PreparedEvent>,
        reply: crate::oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
    },
    Exec {
        job: Job,
        reply: Sender<Result<AnyBox, StoreError>>,
    },
}

/// Most events written in one group commit.
const MAX_EVENTS_PER_COMMIT: usize = 65_536;

pub(crate) fn run(shared: &Arc<Shared>, rx: &Receiver<Request>) {
    let mut next_seq = shared.head.load(Ordering::Acquire) + 1;
    while let Ok(first) = rx.recv() {
        let mut queue = vec![first];
        let mut events = queued_events(&queue[0]);
        while events < MAX_EVENTS_PER_COMMIT {
            let Ok(more) = rx.try_recv() else { break };
            events += queued_events(&more);
            queue.push(more);
        }
        let mut queue = queue.into_iter().peekable();
        while let Some(request) = queue.next() {
            match request {
                Request::Append { events, reply } => {
                    let mut group = vec![(events, reply)];
                    while let Some(Request::Append { .. }) = queue.peek() {
                        if let Some(Request::Append { events, reply }) = queue.next() {
                            group.push((events, reply));
                        }
                    }
                    commit_appends(shared, &mut next_seq, group);
                }
                Request::Exec { job, reply } => {
                    let result = with_retry(shared, |txn| job(txn, &shared.dbs));
                    let _ = reply.send(result);
                }
            }
        }
    }
}

fn queued_events(request: &Request) -> usize {
    match request {
        Request::Append { events, .. } => events.len().max(1),
        Request::Exec { .. } => 1,
    }
}

type Pending = (
    Vec<PreparedEvent>,
    crate::oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
);

/// What one append transaction did, applied to memory only after its commit.
struct Written {
    outcomes: Vec<Vec<AppendOutcome>>,
    groups: FxHashMap<Box<str>, GroupEntry>,
    /// (request index, event index, seq, group no, previous group head) of every new event.
    new: Vec<(usize, usize, u64, Option<u32>, u64)>,
    next_seq: u64,
}

fn commit_appends(shared: &Arc<Shared>, next_seq: &mut u64, pending: Vec<Pending>) {
    let start = *next_seq;
    let result = with_retry(shared, |txn| write_appends(txn, shared, &pending, start));
    let written = match result {
        Ok(written) => written,
        Err(error) => {
            tracing::warn!(%error, requests = pending.len(), "append batch failed; nothing written");
            // Every caller of the batch gets the same error, its source shared.
            for (_, reply) in pending {
                let _ = reply.send(Err(error.clone()));
            }
            return;
        }
    };
    *next_seq = written.next_seq;
    publish(shared, &written);
    notify(shared, &pending, &written);
    for ((_, reply), outcomes) in pending.into_iter().zip(written.outcomes) {
        let _ = reply.send(Ok(outcomes));
    }
}

fn write_appends(
    txn: &mut RwTxn<'_>,
    shared: &Shared,
    pending: &[Pending],
    start: u64,
) -> Result<Written, StoreError> {
    let dbs = &shared.dbs;
    let table = shared.groups.read();
    let mut groups: FxHashMap<Box<str>, GroupEntry> = FxHashMap::default();
    let mut next_no = table.len() as u32;
    let mut next_seq = start;
    let mut outcomes = Vec::with_capacity(pending.len());
    let mut new = Vec::new();
    for (r, (events, _)) in pending.iter().enumerate() {
        let mut out = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let seq = next_seq;
            let key = codec::seq_key(seq);
            // One descent of the id index: insert unless present, else read it.
            if let Some(existing) = dbs
                .ids
                .get_or_put(txn, &event.id, &key)
                .map_err(StoreError::lmdb("writing the id index"))?
            {
                let seq = codec::decode_seq(existing).ok_or_else(|| bad_index("ids"))?;
                out.push(AppendOutcome::Duplicate(seq));
                continue;
            }
            next_seq += 1;
            dbs.events
                .put_with_flags(txn, PutFlags::APPEND, &key, &event.bytes)
                .map_err(StoreError::lmdb("appending a record"))?;
            let mut group_no = None;
            let mut prev_head = 0;
            if let Some(name) = event.group.as_deref() {
                let entry = if let Some(entry) = groups.get_mut(name) {
                    entry
                } else {
                    let entry = if let Some(info) = table.no(name).and_then(|no| table.info(no)) {
                        GroupEntry {
                            no: info.no,
                            head: info.head,
                            count: info.count,
                        }
                    } else {
                        next_no += 1;
                        GroupEntry {
                            no: next_no - 1,
                            head: 0,
                            count: 0,
                        }
                    };
                    groups.entry(name.into()).or_insert(entry)
                };
                prev_head = entry.head;
                entry.head = seq;
                entry.count += 1;
                group_no = Some(entry.no);
                dbs.group_index
                    .put(
                        txn,
                        &codec::group_index_key(entry.no, seq),
                        &codec::kind_value(event.kind),
                    )
                    .map_err(StoreError::lmdb("writing the group index"))?;
            }
            new.push((r, i, seq, group_no, prev_head));
            out.push(AppendOutcome::Appended(seq));
        }
        outcomes.push(out);
    }
    for (name, entry) in &groups {
        dbs.groups
            .put(txn, name.as_bytes(), &entry.encode())
            .map_err(StoreError::lmdb("writing the group table"))?;
    }
    Ok(Written {
        outcomes,
        groups,
        new,
        next_seq,
    })
}

fn bad_index(table: &'static str) -> StoreError {
    StoreError::Corrupted(crate::error::Corruption::Index {
        table,
        reason: "value has the wrong length".into(),
    })
}

/// Makes the commit visible to readers of the in-memory heads. New groups are added in
/// number order so numbers stay dense.
fn publish(shared: &Shared, written: &Written) {
    let mut fresh: Vec<(&str, GroupEntry)> = Vec::new();
    {
        let table = shared.groups.read();
        for (name, entry) in &written.groups {
            if !table.advance(entry.no, entry.head, entry.count) {
                fresh.push((name, *entry));
            }
        }
    }
    if !fresh.is_empty() {
        fresh.sort_by_key(|(_, e)| e.no);
        let mut table = shared.groups.write();
        for (name, entry) in fresh {
            table.upsert(name, entry.no, entry.head, entry.count);
        }
    }
    shared.head.store(written.next_seq - 1, Ordering::Release);
}

fn notify(shared: &Shared, pending: &[Pending], written: &Written) {
    let observers = shared.observers.read().clone();
    if observers.is_empty() || written.new.is_empty() {
        return;
    }
    let mut batch = Vec::with_capacity(written.new.len());
    for &(r, i, seq, no, prev_head) in &written.new {
        let event = &pending[r].0[i];
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

/// Runs `f` in a write transaction and commits it. A full map is grown (up to the
/// configured limit) and the whole transaction retried; any other error aborts it.
fn with_retry<T>(
    shared: &Shared,
    f: impl Fn(&mut RwTxn<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    loop {
        let attempt = (|| {
            let mut txn = shared
                .env
                .write_txn()
                .map_err(StoreError::lmdb("opening a write transaction"))?;
            let value = f(&mut txn)?;
            txn.commit().map_err(StoreError::lmdb("committing"))?;
            Ok(value)
        })();
        match attempt {
            Err(StoreError::MapFull { .. }) => {
                if !shared.grow_map()? {
                    return Err(StoreError::MapFull {
                        map_size: shared.map_size.load(Ordering::Acquire),
                        max_map_size: shared.max_map_size,
                    });
                }
            }
            other => return other,
        }
    }
}
