//! Merging the index tail: the `id_prefix` and `group_index` entries of the records
//! above the index watermark, written in one sorted pass with the new watermark, in
//! one write transaction (a commit's, or a compaction chunk's).
//!
//! A commit whose records bring the tail to `Shared::merge_at` records (at least
//! `StoreOptions::index_tail`, growing with the index) merges the whole tail, its own
//! records included, before it commits; a compaction chunk merges before it removes
//! anything. Either the transaction commits with the entries and the watermark, or
//! neither is there: a crash leaves the indexes and the watermark agreeing.

use heed::{PutFlags, RwTxn};

use crate::codec;
use crate::env::Dbs;
use crate::error::StoreError;
use crate::tail::{Tail, TailView, Window};

/// Index entries to merge, collected before the transaction writes.
#[derive(Default)]
pub(crate) struct IndexEntries {
    ids: Vec<([u8; 8], [u8; 8])>,
    groups: Vec<([u8; 12], [u8; 2])>,
}

impl IndexEntries {
    /// The entries of every record of a snapshot's tail.
    pub(crate) fn of_tail(view: &TailView<'_>) -> IndexEntries {
        let mut out = IndexEntries::default();
        for (seq, entry) in view.records() {
            out.push(seq, &entry.id, entry.group, entry.kind);
        }
        out
    }

    pub(crate) fn push(&mut self, seq: u64, id: &[u8; 32], group: Option<u32>, kind: u16) {
        self.ids.push((codec::id_prefix(id), codec::seq_key(seq)));
        if let Some(no) = group {
            self.groups
                .push((codec::group_index_key(no, seq), codec::kind_value(kind)));
        }
    }

    /// Writes the entries, sorted, and `watermark` as the new index watermark.
    pub(crate) fn write(
        mut self,
        txn: &mut RwTxn<'_>,
        dbs: &Dbs,
        watermark: u64,
    ) -> Result<(), StoreError> {
        put_sorted(txn, dbs.ids, &mut self.ids, "writing the id index")?;
        put_sorted(
            txn,
            dbs.group_index,
            &mut self.groups,
            "writing the group index",
        )?;
        dbs.meta
            .put(
                txn,
                codec::META_INDEX_WATERMARK.as_bytes(),
                &codec::count_value(watermark),
            )
            .map_err(StoreError::lmdb("writing the index watermark"))?;
        #[cfg(feature = "test-support")]
        if let Some(hook) = MERGE_HOOK.get() {
            hook(watermark);
        }
        Ok(())
    }
}

#[cfg(feature = "test-support")]
static MERGE_HOOK: std::sync::OnceLock<fn(u64)> = std::sync::OnceLock::new();

/// Test support: calls `hook` with the new index watermark inside every merge's write
/// transaction of this process, after the merge wrote its entries and before the
/// transaction commits, on the writer thread (a crash test stops the process there).
/// Set once per process; later calls are ignored.
#[cfg(feature = "test-support")]
pub fn on_index_merge(hook: fn(u64)) {
    let _ = MERGE_HOOK.set(hook);
}

/// Merges the whole tail of `txn`'s snapshot; returns the window it merged (its head
/// is the new watermark). The transaction must not have written anything yet.
pub(crate) fn merge_all(txn: &mut RwTxn<'_>, dbs: &Dbs, tail: &Tail) -> Result<Window, StoreError> {
    let (entries, window) = {
        let view = tail.view(txn, dbs)?;
        (IndexEntries::of_tail(&view), view.window())
    };
    if window.len() > 0 {
        entries.write(txn, dbs, window.head)?;
    }
    Ok(window)
}

/// Inserts `entries` sorted by key through one cursor. A cursor put first compares the
/// key with the ends of the leaf the cursor is on, and descends from the root only when
/// the key is outside it, so consecutive keys of one leaf (a merge's ids that share a
/// leaf, a group's new entries) cost a search within the page instead of a descent.
fn put_sorted<K: AsRef<[u8]> + Ord, V: AsRef<[u8]> + Ord>(
    txn: &mut RwTxn<'_>,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    entries: &mut [(K, V)],
    context: &'static str,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
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
