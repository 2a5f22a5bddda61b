//! Following the log as committed by every process: read transactions that survive
//! another process growing the map, and the tail that brings this process's group
//! table and head up to date with other processes' commits.
//!
//! LMDB lets any number of processes open one environment; one writes at a time. What
//! this process caches of the log (the group table, each group's head, the log head) is
//! valid as of one LMDB transaction id, `Shared::seen_txn`. The hot check compares it
//! with the id of the last committed transaction, read from LMDB's lock file (one
//! atomic load, see `lockfile`) or else from the meta pages in the memory map (no
//! system call; the `resize` lock held shared). When they differ, `tail`
//! reads the events after the known head in one read transaction, and for each group
//! they touch takes the group's number, head and count from the `groups` table of that
//! same snapshot. `seen_txn` then becomes the snapshot's id, never the id read before
//! it, so a commit whose meta page is written but whose reader-table slot is not yet
//! published is looked at again on the next call.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use heed::{MdbError, RoTxn, WithoutTls};

use crate::codec::{self, GroupEntry};
use crate::env::{Dbs, last_seq, load_groups};
use crate::error::{Corruption, StoreError, index_corrupted};
use crate::event::EventRef;
use crate::shared::Shared;

#[cfg(feature = "test-support")]
thread_local! {
    static READ_TXNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Test support: how many read transactions this thread has opened, so that tests can
/// see how a scan splits into transactions without timing it.
#[cfg(feature = "test-support")]
pub fn read_transactions_on_this_thread() -> u64 {
    READ_TXNS.with(std::cell::Cell::get)
}

/// Runs `f` in a short read transaction. `MDB_MAP_RESIZED` (another process grew the
/// map) adopts the new size and retries; `MDB_READERS_FULL` clears dead processes'
/// reader slots once and retries.
pub(crate) fn with_read<R>(
    shared: &Shared,
    f: impl FnOnce(&RoTxn<'_, WithoutTls>, &Dbs) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let mut cleared = false;
    loop {
        let guard = shared.resize.read_recursive();
        match shared.env.read_txn() {
            Ok(txn) => {
                #[cfg(feature = "test-support")]
                READ_TXNS.with(|n| n.set(n.get() + 1));
                return f(&txn, &shared.dbs);
            }
            Err(heed::Error::Mdb(MdbError::MapResized)) => {
                drop(guard);
                shared.adopt_map_size()?;
            }
            Err(heed::Error::Mdb(MdbError::ReadersFull)) if !cleared && !shared.lockless => {
                drop(guard);
                cleared = true;
                let n = shared
                    .env
                    .clear_stale_readers()
                    .map_err(StoreError::lmdb("clearing stale readers"))?;
                tracing::warn!(
                    cleared = n,
                    "the reader table was full; cleared dead processes' slots"
                );
            }
            Err(e) => return Err(StoreError::lmdb("opening a read transaction")(e)),
        }
    }
}

/// The last committed transaction id: from the lock file when it can be read there
/// (one load, see `lockfile`), else from the meta pages. Those are read through the
/// memory map, so that read holds `resize` shared like a read transaction: a resize
/// remaps them.
pub(crate) fn last_txn(shared: &Shared) -> u64 {
    if let Some(lock) = &shared.lock_txn {
        return lock.txn();
    }
    let _guard = shared.resize.read_recursive();
    shared.env.info().last_txn_id as u64
}

/// Takes in other processes' commits, if there are any since the last look.
pub(crate) fn refresh(shared: &Shared) -> Result<(), StoreError> {
    if last_txn(shared) == shared.seen_txn.load(Ordering::Acquire) {
        return Ok(());
    }
    let _sync = shared.sync.lock();
    if last_txn(shared) == shared.seen_txn.load(Ordering::Acquire) {
        return Ok(());
    }
    tail_locked(shared)
}

/// How long a snapshot that holds fewer records than one this process already saw may
/// take to be caught up by a later snapshot before the log is reported shrunk. LMDB's
/// snapshots are not monotonic across processes: a read transaction reads the lock
/// file's transaction id, then copies the roots of the meta page it names; a writer in
/// another process that commits twice in between rewrites that page, so the
/// transaction holds the newer commit's roots (committed, its data pages synced), and
/// the next one, taken while that commit's meta page is still being synced and the lock
/// file names the commit before it, holds fewer records (`store/tests/snapshot_order.rs`
/// watches it happen). The commit's writer publishes it as soon as the sync ends, so a
/// later snapshot catches up within one meta-page sync; a database really replaced or
/// truncated stays behind.
const CATCH_UP_BOUND: Duration = Duration::from_secs(5);

/// Brings the group table and head up to the newest snapshot. The caller holds
/// `shared.sync`.
pub(crate) fn tail_locked(shared: &Shared) -> Result<(), StoreError> {
    shared.tails.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        let Some(Behind { end, known, txn }) =
            with_read(shared, |txn, dbs| take_in(shared, txn, dbs))?
        else {
            return Ok(());
        };
        shared.behind_views.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() >= CATCH_UP_BOUND {
            return Err(StoreError::Corrupted(Corruption::Index {
                table: "events",
                reason: format!(
                    "the log ends at {end} but this process has seen it reach {known}, and no snapshot in {CATCH_UP_BOUND:?} caught up: the database was replaced or truncated (the last snapshot is transaction {txn}, the head was seen by transaction {})",
                    shared.seen_txn.load(Ordering::Acquire),
                ),
            }));
        }
        tracing::debug!(
            end,
            known,
            txn,
            "a snapshot holds fewer records than one already seen; taking a newer one"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A snapshot that ends at `end`, before the head `known` this process has seen.
struct Behind {
    end: u64,
    known: u64,
    txn: usize,
}

/// Takes in the events of the snapshot after the known head; `Some` (nothing taken in)
/// when the snapshot ends before it.
fn take_in(
    shared: &Shared,
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
) -> Result<Option<Behind>, StoreError> {
    let known = shared.head.load(Ordering::Acquire);
    let end = last_seq(txn, dbs)?;
    if end < known {
        return Ok(Some(Behind {
            end,
            known,
            txn: txn.id(),
        }));
    }
    let removed = crate::env::removed_records(txn, dbs)?;
    if removed != shared.removed.load(Ordering::Acquire) {
        // A compaction lowered group counts without appending: take the whole
        // table of this snapshot (heads included, so they stay within `end`).
        load_groups(txn, dbs, &shared.groups)?;
        shared.removed.store(removed, Ordering::Release);
    }
    if end > known {
        let touched = touched_groups(txn, dbs, known, end)?;
        publish_groups(shared, txn, dbs, &touched)?;
        shared.head.store(end, Ordering::Release);
        tracing::debug!(
            from = known,
            to = end,
            groups = touched.len(),
            "took in other processes' commits"
        );
    }
    let id = txn.id() as u64;
    shared.seen_txn.fetch_max(id, Ordering::AcqRel);
    Ok(None)
}

/// Names of the groups of the events in (`after`, `end`].
fn touched_groups(
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
    after: u64,
    end: u64,
) -> Result<BTreeSet<String>, StoreError> {
    let mut touched = BTreeSet::new();
    for item in crate::env::log_range(txn, dbs, after + 1, Some(end), "tailing the log")? {
        let (seq, value) = item?;
        let record = codec::access_record(value, seq)?;
        if let Some(group) = EventRef::new(record).group_id()
            && !touched.contains(group)
        {
            touched.insert(group.to_owned());
        }
    }
    Ok(touched)
}

/// Takes the number, head and count of each named group from the snapshot's `groups`
/// table. New groups are added in number order; if their numbers would leave a gap
/// (which a complete tail cannot produce), the whole table is taken in instead.
fn publish_groups(
    shared: &Shared,
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
    names: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let entry = dbs
            .groups
            .get(txn, name.as_bytes())
            .map_err(StoreError::lmdb("reading the group table"))?
            .and_then(GroupEntry::decode)
            .ok_or_else(|| index_corrupted("groups"))?;
        entries.push((name.as_str(), entry));
    }
    if shared.groups.take_in(entries) {
        Ok(())
    } else {
        load_groups(txn, dbs, &shared.groups)
    }
}
