//! The bottom of the store: the state the handle and the writer thread share (the
//! environment, its databases, what this process knows of the log, the commit
//! observers), and the growth of the memory map. Both the handle (`store`) and the
//! writer use it; it uses neither.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use heed::{Env, WithoutTls};
use parking_lot::{Mutex, RwLock};

use crate::commit::CommitObserver;
use crate::env::Dbs;
use crate::error::StoreError;
use crate::groups::GroupTable;
use crate::lockfile::LockFileTxn;
use crate::tail::Tail;

/// State shared by the handle and the writer thread.
pub(crate) struct Shared {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) dbs: Dbs,
    /// The group table and `head` as of LMDB transaction `seen_txn`: what this process
    /// knows of the log. Advanced by this process's writer and by tailing other
    /// processes' commits (`follow`), both under `sync`.
    pub(crate) groups: GroupTable,
    pub(crate) head: AtomicU64,
    /// `removed_records` as of `seen_txn`: when a snapshot holds another number, a
    /// compaction changed group counts and the group table is loaded again.
    pub(crate) removed: AtomicU64,
    /// Id of the last LMDB transaction whose events `groups` and `head` include.
    pub(crate) seen_txn: AtomicU64,
    /// What this process holds of the index tail (the records above the index
    /// watermark, see `tail`); shared with compaction jobs.
    pub(crate) tail: Arc<Tail>,
    /// Serializes changes of `groups`, `head` and `seen_txn`.
    pub(crate) sync: Mutex<()>,
    /// Held shared by every read transaction and exclusively while the map is resized:
    /// LMDB requires that no transaction of this process is active during a resize.
    pub(crate) resize: RwLock<()>,
    /// The last committed transaction id as LMDB's lock file holds it, readable without
    /// `resize` (`None`: read the meta pages instead; see `lockfile`).
    pub(crate) lock_txn: Option<LockFileTxn>,
    pub(crate) observers: RwLock<Vec<(u64, Arc<dyn CommitObserver>)>>,
    pub(crate) map_size: AtomicUsize,
    pub(crate) max_map_size: usize,
    /// Opened without LMDB's lock file (read-only on a directory this process cannot
    /// write): safe only while no other process writes.
    pub(crate) lockless: bool,
    /// [`StoreOptions::commit_wait`](crate::StoreOptions::commit_wait).
    pub(crate) commit_wait: Duration,
    /// [`StoreOptions::index_tail`](crate::StoreOptions::index_tail), at least 1.
    pub(crate) index_tail: u64,
    /// [`StoreOptions::index_tail_share`](crate::StoreOptions::index_tail_share).
    pub(crate) index_tail_share: u64,
    /// How many times the log was tailed for commits this process did not publish
    /// itself (see `follow::tail_locked`).
    pub(crate) tails: AtomicU64,
    /// How many snapshots held fewer records than one this process had already seen
    /// (see `follow::CATCH_UP_BOUND`).
    pub(crate) behind_views: AtomicU64,
}

impl Shared {
    /// How many records the index tail may hold above an index watermark of
    /// `watermark` before a commit merges it: `index_tail`, or the
    /// `index_tail_share`-th part of the indexed records when that is more.
    pub(crate) fn merge_at(&self, watermark: u64) -> u64 {
        merge_at(self.index_tail, self.index_tail_share, watermark)
    }

    /// Doubles the map, up to the limit. Returns false when it is already at the limit.
    pub(crate) fn grow_map(&self) -> Result<bool, StoreError> {
        // Exclusive before anything reads the meta pages: a resize remaps them.
        let _exclusive = self.resize.write();
        let current = self
            .env
            .info()
            .map_size
            .max(self.map_size.load(Ordering::Acquire));
        if current >= self.max_map_size {
            return Ok(false);
        }
        let page = 1 << 16;
        let next = current.saturating_mul(2).min(self.max_map_size) / page * page;
        if next <= current {
            return Ok(false);
        }
        #[expect(unsafe_code, reason = "LMDB map resize; see SAFETY")]
        // SAFETY: heed requires that no transaction of this process is active. Every
        // read transaction (and every read of the meta pages) holds `resize` shared, we
        // hold it exclusively, and write transactions only exist on this (the writer)
        // thread, between attempts.
        unsafe { self.env.resize(next) }.map_err(StoreError::lmdb("growing the map"))?;
        self.map_size.store(next, Ordering::Release);
        tracing::info!(from = current, to = next, "grew the LMDB map");
        Ok(true)
    }

    /// Adopts the map size another process grew the file to (`MDB_MAP_RESIZED`).
    pub(crate) fn adopt_map_size(&self) -> Result<(), StoreError> {
        let _exclusive = self.resize.write();
        #[expect(unsafe_code, reason = "LMDB map resize; see SAFETY")]
        // SAFETY: as in `grow_map`: `resize` is held exclusively, so no read transaction
        // of this process is active, and the writer calls this only between attempts.
        // A size of zero makes LMDB adopt the size recorded in the file.
        unsafe { self.env.resize(0) }.map_err(StoreError::lmdb("adopting the map size"))?;
        let size = self.env.info().map_size;
        self.map_size.store(size, Ordering::Release);
        tracing::info!(
            size,
            "adopted the map size another process grew the database to"
        );
        Ok(())
    }
}

/// [`Shared::merge_at`] of the given options.
pub(crate) fn merge_at(index_tail: u64, share: u64, watermark: u64) -> u64 {
    match watermark.checked_div(share) {
        Some(part) => index_tail.max(part),
        None => index_tail,
    }
}

#[cfg(test)]
mod tests {
    use super::merge_at;

    #[test]
    fn the_tail_grows_with_the_index_past_its_floor() {
        assert_eq!(merge_at(16_384, 64, 0), 16_384);
        assert_eq!(merge_at(16_384, 64, 1_000_000), 16_384);
        assert_eq!(merge_at(16_384, 64, 1_048_576), 16_384);
        assert_eq!(merge_at(16_384, 64, 1_048_640), 16_385);
        assert_eq!(merge_at(16_384, 64, 10_000_000), 156_250);
        assert_eq!(merge_at(16_384, 0, 10_000_000), 16_384, "0 keeps the floor");
        assert_eq!(merge_at(1, 64, 127), 1);
        assert_eq!(merge_at(1, 64, 640), 10);
    }
}
