//! The indexes as a whole: merging the index tail on demand, and checking both indexes
//! and the tail against the log (`highwater verify`).

use crate::codec;
use crate::error::{Corruption, StoreError, index_corrupted};
use crate::store::Store;

/// What [`Store::verify_indexes`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexReport {
    /// Records of the log.
    pub records: u64,
    /// The index watermark: `id_prefix` and `group_index` hold exactly the records up
    /// to it.
    pub watermark: u64,
    /// Records above the watermark (the index tail), found through memory.
    pub tail: u64,
}

impl Store {
    /// Merges the index tail into `id_prefix` and `group_index` now, in one write
    /// transaction, and returns the new index watermark (the log head). The writer
    /// also does this by itself, in the commit that brings the tail to its bound.
    ///
    /// # Errors
    ///
    /// a failed write transaction (the map or the disk is full, an I/O or LMDB error,
    /// the writer has stopped, a read-only store), or [`StoreError::Corrupted`] for a
    /// record above the watermark that fails validation.
    pub fn merge_index_tail(&self) -> Result<u64, StoreError> {
        let tail = self.shared().tail.clone();
        let window = self.exec(move |txn, dbs| crate::merge::merge_all(txn, dbs, &tail))?;
        self.shared().tail.merged(window.head);
        Ok(window.head)
    }

    /// Checks, in one read transaction, that the indexes and the index tail describe
    /// the log exactly: every record up to the index watermark has its `id_prefix` and
    /// `group_index` entries (with its kind) and the indexes hold nothing else; every
    /// record above it is in the tail with its id, group and kind; and a lookup of each
    /// record's id (the duplicate check of an append) finds that record.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupted`] naming the first disagreement, or a failed LMDB read.
    pub fn verify_indexes(&self) -> Result<IndexReport, StoreError> {
        self.read(|txn, dbs| {
            let tail = self.shared().tail.view(txn, dbs)?;
            let window = tail.window();
            let mut report = IndexReport {
                records: 0,
                watermark: window.watermark,
                tail: 0,
            };
            let (mut ids, mut grouped) = (0u64, 0u64);
            let wrong = |seq: u64, table: &'static str, what: &str| {
                StoreError::Corrupted(Corruption::Index {
                    table,
                    reason: format!("record {seq}: {what}"),
                })
            };
            let mut tail_records = tail.records();
            for item in dbs
                .events
                .iter(txn)
                .map_err(StoreError::lmdb("verifying the indexes"))?
            {
                let (key, value) = item.map_err(StoreError::lmdb("verifying the indexes"))?;
                let seq = codec::decode_seq(key).ok_or_else(|| index_corrupted("events"))?;
                let header = codec::read_header(value, seq)?;
                let id = codec::access_body(value, &header, seq)?.id;
                report.records += 1;
                if seq <= window.watermark {
                    let prefix = codec::id_prefix(&id);
                    let mut found = false;
                    for dup in dbs
                        .ids
                        .get_duplicates(txn, &prefix)
                        .map_err(StoreError::lmdb("verifying the indexes"))?
                        .into_iter()
                        .flatten()
                    {
                        let (_, v) = dup.map_err(StoreError::lmdb("verifying the indexes"))?;
                        found |= codec::decode_seq(v) == Some(seq);
                    }
                    if !found {
                        return Err(wrong(seq, "id_prefix", "no entry"));
                    }
                    ids += 1;
                    if let Some(no) = header.group {
                        let kind = dbs
                            .group_index
                            .get(txn, &codec::group_index_key(no, seq))
                            .map_err(StoreError::lmdb("verifying the indexes"))?;
                        if kind.and_then(codec::decode_kind) != Some(header.kind) {
                            return Err(wrong(seq, "group_index", "no entry of its kind"));
                        }
                        grouped += 1;
                    }
                } else {
                    let entry = tail_records.next();
                    let expected = (header.group, header.kind, id);
                    if entry.map(|(s, e)| (s, e.group, e.kind, e.id))
                        != Some((seq, expected.0, expected.1, expected.2))
                    {
                        return Err(wrong(seq, "events", "not in the index tail as stored"));
                    }
                    report.tail += 1;
                }
                if crate::ids::lookup(txn, dbs, &tail, &id)? != Some(seq) {
                    return Err(wrong(seq, "id_prefix", "its id is not found at it"));
                }
            }
            if tail_records.next().is_some() || report.tail != window.len() {
                return Err(wrong(
                    window.head,
                    "events",
                    "the index tail is not the log's",
                ));
            }
            let count = |db: heed::Database<heed::types::Bytes, heed::types::Bytes>| {
                db.len(txn)
                    .map_err(StoreError::lmdb("verifying the indexes"))
            };
            if count(dbs.ids)? != ids {
                return Err(wrong(window.watermark, "id_prefix", "entries of no record"));
            }
            if count(dbs.group_index)? != grouped {
                return Err(wrong(
                    window.watermark,
                    "group_index",
                    "entries of no record",
                ));
            }
            // Every record up to the watermark has its own entries, so equal counts leave
            // no room for an entry of no record (above the watermark or anywhere).
            Ok(report)
        })
    }
}
