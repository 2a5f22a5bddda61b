//! Compaction: removing expired records from the log (retention).
//!
//! A record leaves the log with its `id_prefix` entry and its `group_index` entry, and
//! its group's count in `groups` goes down by one — all in one write transaction per
//! chunk of records, together with the `meta` entry `removed_records` (the running
//! total). Each such transaction first merges the index tail (`merge`), so every record
//! it may remove is indexed and the records above the index watermark stay dense. A
//! crash at any point leaves every chunk either wholly removed (and merged) or wholly
//! present, and a run starting over finds what is left: compaction is a walk of record
//! headers from the start of the log, and removing a record that is already gone is
//! nothing.
//!
//! Two records are never removed, so that every head is the position of a record that
//! exists: the last record of the log (the writer takes the next sequence number from
//! it, so a sequence number is never given twice) and the last record of each group
//! (a group's head is what the engine's watermarks are compared with, and a scan of
//! the group's index must reach it). The engine decides *which* kinds may go (those no
//! registered projection folds) and *when* a record is expired (its `created_at`
//! before a bound per group); the store only removes what that rule names, checking
//! the rule again inside the transaction that removes it.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

use heed::RwTxn;

use crate::codec::{self, GroupEntry};
use crate::env::Dbs;
use crate::error::index_corrupted;
use crate::error::{Corruption, StoreError};
use crate::request::Removed;
use crate::store::Store;
use crate::tail::Tail;

/// Which records a compaction removes: a record of a removable kind, in a group,
/// whose `created_at` is before its group's bound.
#[derive(Clone)]
pub struct ExpiryRule {
    removable: Arc<[u64; 1024]>,
    /// Records of a group without its own bound expire when their `created_at` is
    /// before this (seconds; `None`: they never expire).
    pub default_before: Option<u64>,
    /// Per group id: records expire when their `created_at` is before this (seconds).
    /// Overrides `default_before` for that group.
    pub groups: BTreeMap<String, u64>,
}

impl std::fmt::Debug for ExpiryRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = (0..=u16::MAX).filter(|&k| self.removes_kind(k)).count();
        f.debug_struct("ExpiryRule")
            .field("removable", &format_args!("{kinds} kinds"))
            .field("default_before", &self.default_before)
            .field("groups", &self.groups)
            .finish()
    }
}

impl ExpiryRule {
    /// A rule removing records of the kinds `removable` accepts (asked once per kind,
    /// here) and nothing yet: set `default_before` and `groups`.
    pub fn new(removable: impl Fn(u16) -> bool) -> Self {
        let mut bits = [0u64; 1024];
        for kind in 0..=u16::MAX {
            if removable(kind) {
                bits[usize::from(kind) / 64] |= 1 << (kind % 64);
            }
        }
        Self {
            removable: Arc::new(bits),
            default_before: None,
            groups: BTreeMap::new(),
        }
    }

    /// Whether records of this kind may be removed at all.
    pub fn removes_kind(&self, kind: u16) -> bool {
        self.removable[usize::from(kind) / 64] & (1 << (kind % 64)) != 0
    }
}

/// How a compaction went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Records whose headers were read.
    pub scanned: u64,
    /// Records removed by this run.
    pub removed: u64,
    /// Expired records kept because each is the last record of its group or of the log.
    pub kept_heads: u64,
    /// Write transactions committed.
    pub transactions: u64,
}

/// The bound of each group number, resolved once from the group table.
struct Bounds {
    /// (group id, bound, head at the start) by group number.
    by_no: Vec<(Arc<str>, Option<u64>, u64)>,
}

impl Bounds {
    fn expired(&self, header: &codec::RecordHeader, rule: &ExpiryRule) -> bool {
        let Some(no) = header.group else {
            return false;
        };
        rule.removes_kind(header.kind)
            && self
                .by_no
                .get(no as usize)
                .and_then(|(_, bound, _)| *bound)
                .is_some_and(|bound| header.created_at < bound)
    }
}

impl Store {
    /// Removes the records `rule` names, `chunk` records per write transaction (at
    /// least 1), from the start of the log to its head as of the start of the call.
    /// `after_chunk` is called after each committed transaction with the report so
    /// far, and may stop the compaction (what is committed stays removed).
    ///
    /// The last record of the log and the last record of each group are never removed.
    /// Sequence numbers are not reused: the log keeps its holes.
    ///
    /// # Errors
    ///
    /// a failed read or write transaction (the map or the disk is full, an I/O or LMDB
    /// error, the writer has stopped), or [`StoreError::Corrupted`] for a record or an
    /// index entry that fails validation; chunks committed before it stay removed.
    pub fn compact(
        &self,
        rule: &ExpiryRule,
        chunk: usize,
        mut after_chunk: impl FnMut(&CompactReport) -> ControlFlow<()>,
    ) -> Result<CompactReport, StoreError> {
        let chunk = chunk.max(1);
        self.refresh()?;
        let end = self.head();
        let bounds = Arc::new(Bounds {
            by_no: self
                .groups()
                .into_iter()
                .map(|g| {
                    let bound = rule.groups.get(&*g.name).copied().or(rule.default_before);
                    (g.name, bound, g.head)
                })
                .collect(),
        });
        let mut report = CompactReport::default();
        let mut from = 1;
        while from < end {
            let mut candidates = Vec::new();
            let mut next = end;
            self.walk(from, |seq, value| {
                // The log's last record as of the start is never removed: stop before it.
                if seq >= end {
                    return Ok(ControlFlow::Break(()));
                }
                report.scanned += 1;
                let header = codec::read_header(value, seq)?;
                if bounds.expired(&header, rule) {
                    // A group's last record stays (checked again in the transaction).
                    let head = header.group.and_then(|no| bounds.by_no.get(no as usize));
                    if head.is_some_and(|(_, _, head)| *head == seq) {
                        report.kept_heads += 1;
                        return Ok(ControlFlow::Continue(()));
                    }
                    candidates.push(seq);
                    if candidates.len() == chunk {
                        next = seq + 1;
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            from = next;
            if candidates.is_empty() {
                break;
            }
            let job_rule = rule.clone();
            let job_bounds = bounds.clone();
            let tail = self.shared().tail.clone();
            let removed = self.exec(move |txn, dbs| {
                remove(txn, dbs, &tail, &candidates, &job_rule, &job_bounds)
            })?;
            self.shared().tail.merged(removed.watermark);
            report.removed += removed.after - removed.before;
            report.kept_heads += removed.kept_heads;
            report.transactions += 1;
            if after_chunk(&report).is_break() {
                break;
            }
        }
        Ok(report)
    }

    /// How many records the log holds: [`Store::head`] less the records compactions
    /// removed, as committed by any process.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.read(|txn, dbs| {
            dbs.events
                .len(txn)
                .map_err(StoreError::lmdb("counting the log's records"))
        })
    }

    /// How many records compactions have removed from the log, ever.
    ///
    /// # Errors
    ///
    /// a failed LMDB read, or [`StoreError::Corrupted`] for a malformed entry.
    pub fn removed_records(&self) -> Result<u64, StoreError> {
        self.read(crate::env::removed_records)
    }
}

/// Removes `candidates` (in sequence order) in one transaction, checking each against
/// the rule and the heads again: another process may have appended (making a record no
/// longer its group's last) or compacted (removing it already) since the walk.
fn remove(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    tail: &Tail,
    candidates: &[u64],
    rule: &ExpiryRule,
    bounds: &Bounds,
) -> Result<Removed, StoreError> {
    let watermark = crate::merge::merge_all(txn, dbs, tail)?.head;
    let last = crate::env::last_seq(txn, dbs)?;
    let before = crate::env::removed_records(txn, dbs)?;
    let mut groups: HashMap<u32, (Arc<str>, GroupEntry)> = HashMap::new();
    let mut removed = 0u64;
    let mut kept_heads = 0u64;
    for &seq in candidates {
        let key = codec::seq_key(seq);
        let Some(bytes) = dbs
            .events
            .get(txn, &key)
            .map_err(StoreError::lmdb("reading a record to remove"))?
        else {
            continue;
        };
        let header = codec::read_header(bytes, seq)?;
        if !bounds.expired(&header, rule) {
            continue;
        }
        let id = codec::access_body(bytes, &header, seq)?.id;
        let Some(no) = header.group else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(vacant) = groups.entry(no) {
            let name = bounds.by_no[no as usize].0.clone();
            let entry = dbs
                .groups
                .get(txn, name.as_bytes())
                .map_err(StoreError::lmdb("reading the group table"))?
                .and_then(GroupEntry::decode)
                .filter(|e| e.no == no)
                .ok_or_else(|| index_corrupted("groups"))?;
            vacant.insert((name, entry));
        }
        let (_, entry) = groups.get_mut(&no).expect("inserted above");
        if seq == last || seq == entry.head {
            kept_heads += 1;
            continue;
        }
        let missing = |table: &'static str| {
            StoreError::Corrupted(Corruption::Index {
                table,
                reason: format!("no entry for record {seq}, which the log holds"),
            })
        };
        if !dbs
            .ids
            .delete_one_duplicate(txn, &codec::id_prefix(&id), &key)
            .map_err(StoreError::lmdb("removing an id index entry"))?
        {
            return Err(missing("id_prefix"));
        }
        if !dbs
            .group_index
            .delete(txn, &codec::group_index_key(no, seq))
            .map_err(StoreError::lmdb("removing a group index entry"))?
        {
            return Err(missing("group_index"));
        }
        dbs.events
            .delete(txn, &key)
            .map_err(StoreError::lmdb("removing a record"))?;
        entry.count = entry
            .count
            .checked_sub(1)
            .ok_or_else(|| index_corrupted("groups"))?;
        removed += 1;
    }
    let mut changed: Vec<(Arc<str>, GroupEntry)> = groups.into_values().collect();
    changed.sort_by_key(|(_, e)| e.no);
    if removed > 0 {
        for (name, entry) in &changed {
            dbs.groups
                .put(txn, name.as_bytes(), &entry.encode())
                .map_err(StoreError::lmdb("writing the group table"))?;
        }
        dbs.meta
            .put(
                txn,
                codec::META_REMOVED_RECORDS.as_bytes(),
                &codec::count_value(before + removed),
            )
            .map_err(StoreError::lmdb("writing the removed-records count"))?;
    }
    Ok(Removed {
        groups: changed,
        before,
        after: before + removed,
        kept_heads,
        watermark,
    })
}
