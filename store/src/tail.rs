//! The index tail: the records above the index watermark, which a commit writes to the
//! log without their `id_prefix` and `group_index` entries (format 4).
//!
//! Every snapshot of the database has a window: its index watermark `w` (`meta`
//! `index_watermark`) and its log head `h`. The indexes of that snapshot hold exactly
//! the records up to `w`; the records in (`w`, `h`] — after any commit, fewer than the
//! largest bound (`Shared::merge_at`) a writer of the database used — are the tail,
//! and every lookup of that snapshot is the index's answer joined with the tail's. The
//! tail is never read from disk per lookup: each process keeps what it knows of it in
//! memory ([`Tail`]: id → seq and group → seqs of a dense run of sequence numbers),
//! filled at open from the log (its maps built at once from sorted runs),
//! extended by its own commits and by reading the log past what it holds when a
//! snapshot shows a longer log (another process's commits), and pruned below the
//! watermark of the newest snapshot it fitted. A record's id, group and kind never
//! change and a sequence number is never given twice, so an entry learned from any
//! committed snapshot is true for every snapshot that holds the record; what a
//! snapshot needs and the memory does not hold (an older snapshot after a prune, a
//! newer one after another process's commit) is read from that snapshot's log before
//! the lookup (`Cover::fit`). Only committed records are taken in: the writer extends
//! the memory after its commit, never from its open transaction.
//!
//! The records of a window are dense: compaction merges the tail before removing
//! anything (`merge`), so its holes are all at or below the watermark, and a failed
//! transaction gives no sequence number away.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use heed::{RoTxn, WithoutTls};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::codec;
use crate::env::{Dbs, last_seq};
use crate::error::{Corruption, StoreError};

/// What the tail keeps of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TailEntry {
    pub(crate) id: [u8; 32],
    pub(crate) group: Option<u32>,
    pub(crate) kind: u16,
}

/// The index window of one snapshot: its indexes hold the records up to `watermark`,
/// the tail those in (`watermark`, `head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) watermark: u64,
    pub(crate) head: u64,
}

impl Window {
    /// The window of `txn`'s snapshot.
    pub(crate) fn of(txn: &RoTxn<'_, WithoutTls>, dbs: &Dbs) -> Result<Window, StoreError> {
        let head = last_seq(txn, dbs)?;
        let watermark = index_watermark(txn, dbs)?;
        if watermark > head {
            return Err(StoreError::Corrupted(Corruption::Index {
                table: "meta",
                reason: format!("index watermark {watermark} is past the log head {head}"),
            }));
        }
        Ok(Window { watermark, head })
    }

    /// Records in the tail.
    pub(crate) fn len(self) -> u64 {
        self.head - self.watermark
    }
}

/// `meta` `index_watermark` (absent: 0, a database that never merged).
pub(crate) fn index_watermark(txn: &RoTxn<'_, WithoutTls>, dbs: &Dbs) -> Result<u64, StoreError> {
    crate::env::meta_count(
        txn,
        dbs,
        codec::META_INDEX_WATERMARK,
        "reading the index watermark",
    )
}

/// What this process holds of the tail: the entries of the records `first ..
/// first + entries.len()`, a dense run.
#[derive(Default)]
struct Cover {
    first: u64,
    entries: VecDeque<TailEntry>,
    by_id: BTreeMap<[u8; 32], u64>,
    by_group: BTreeSet<(u32, u64)>,
}

impl Cover {
    /// One past the last record held.
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn covers(&self, window: Window) -> bool {
        window.len() == 0 || (self.first <= window.watermark + 1 && self.end() > window.head)
    }

    fn entry(&self, seq: u64) -> Option<&TailEntry> {
        let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.entries.get(at)
    }

    fn clear(&mut self, first: u64) {
        self.entries.clear();
        self.by_id.clear();
        self.by_group.clear();
        self.first = first;
    }

    fn push_back(&mut self, seq: u64, entry: TailEntry) {
        debug_assert_eq!(seq, self.end());
        self.entries.push_back(entry);
        self.index(seq, entry);
    }

    fn index(&mut self, seq: u64, entry: TailEntry) {
        self.by_id.insert(entry.id, seq);
        if let Some(no) = entry.group {
            self.by_group.insert((no, seq));
        }
    }

    /// Drops the entries below `first` (merged into the indexes).
    fn prune_below(&mut self, first: u64) {
        while self.first < first {
            let Some(entry) = self.entries.pop_front() else {
                self.first = first;
                return;
            };
            if self.by_id.get(&entry.id) == Some(&self.first) {
                self.by_id.remove(&entry.id);
            }
            if let Some(no) = entry.group {
                self.by_group.remove(&(no, self.first));
            }
            self.first += 1;
        }
    }

    /// Makes the memory hold `window`'s tail, reading from `txn`'s log what it lacks,
    /// and drops what is below the window's watermark.
    fn fit(
        &mut self,
        txn: &RoTxn<'_, WithoutTls>,
        dbs: &Dbs,
        window: Window,
    ) -> Result<(), StoreError> {
        let Window { watermark, head } = window;
        if self.entries.is_empty() || self.end() <= watermark || self.first > head + 1 {
            self.clear(watermark + 1);
        }
        if self.first > watermark + 1 {
            // An older snapshot than the one the memory was pruned for.
            let older = read_records(txn, dbs, watermark, self.first - 1)?;
            for &(seq, entry) in older.iter().rev() {
                self.entries.push_front(entry);
                self.first = seq;
                self.index(seq, entry);
            }
        } else {
            self.prune_below(watermark + 1);
        }
        if self.end() <= head {
            let records = read_records(txn, dbs, self.end() - 1, head)?;
            if self.entries.is_empty() {
                self.fill(records);
            } else {
                for (seq, entry) in records {
                    self.push_back(seq, entry);
                }
            }
        }
        Ok(())
    }

    /// [`Cover::push_back`] of every record into an empty memory (at open, the whole
    /// tail): the maps built from sorted runs at once instead of an insertion each.
    fn fill(&mut self, records: Vec<(u64, TailEntry)>) {
        debug_assert!(self.entries.is_empty() && self.by_id.is_empty());
        debug_assert!(records.first().is_none_or(|&(seq, _)| seq == self.first));
        let mut ids: Vec<([u8; 32], u64)> = records.iter().map(|(seq, e)| (e.id, *seq)).collect();
        ids.sort_unstable();
        // Of two records with one id, the later is kept, as inserting in order keeps it.
        ids.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        self.by_id = ids.into_iter().collect();
        self.by_group = records
            .iter()
            .filter_map(|&(seq, e)| Some((e.group?, seq)))
            .collect();
        self.entries = records.into_iter().map(|(_, e)| e).collect();
    }
}

/// The entries of the records in (`after`, `to`] of `txn`'s log, which must be dense.
fn read_records(
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
    after: u64,
    to: u64,
) -> Result<Vec<(u64, TailEntry)>, StoreError> {
    let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(after)).unwrap_or(0));
    if to <= after {
        return Ok(out);
    }
    let mut expected = after + 1;
    for item in crate::env::log_range(txn, dbs, after + 1, Some(to), "reading the index tail")? {
        let (seq, value) = item?;
        if seq != expected {
            return Err(hole(expected));
        }
        let header = codec::read_header(value, seq)?;
        let id = codec::access_body(value, &header, seq)?.id;
        out.push((
            seq,
            TailEntry {
                id,
                group: header.group,
                kind: header.kind,
            },
        ));
        expected += 1;
    }
    if expected != to + 1 {
        return Err(hole(expected));
    }
    Ok(out)
}

fn hole(seq: u64) -> StoreError {
    StoreError::Corrupted(Corruption::Index {
        table: "events",
        reason: format!("record {seq} is missing above the index watermark"),
    })
}

/// This process's memory of the index tail (see the module documentation).
#[derive(Default)]
pub(crate) struct Tail {
    cover: RwLock<Cover>,
}

impl Tail {
    /// The tail of `txn`'s snapshot. The view holds a shared lock on the memory: take
    /// it after the lookups' transaction is open, drop it before calling out of the
    /// store, and never take a second view on the same thread while holding one.
    pub(crate) fn view(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        dbs: &Dbs,
    ) -> Result<TailView<'_>, StoreError> {
        let window = Window::of(txn, dbs)?;
        let cover = self.cover.read_recursive();
        if cover.covers(window) {
            return Ok(TailView { cover, window });
        }
        drop(cover);
        let mut cover = self.cover.write();
        cover.fit(txn, dbs, window)?;
        Ok(TailView {
            cover: RwLockWriteGuard::downgrade(cover),
            window,
        })
    }

    /// Takes in the records a commit of this process wrote at `start..`, when the
    /// memory ends right before them (else a later view reads them from the log).
    pub(crate) fn extend(&self, start: u64, entries: impl IntoIterator<Item = TailEntry>) {
        let mut cover = self.cover.write();
        if cover.end() != start || cover.entries.is_empty() && cover.first != start {
            return;
        }
        for (seq, entry) in (start..).zip(entries) {
            cover.push_back(seq, entry);
        }
    }

    /// Forgets the records up to `watermark`, which a committed merge indexed.
    pub(crate) fn merged(&self, watermark: u64) {
        self.cover.write().prune_below(watermark + 1);
    }
}

/// The tail of one snapshot (see [`Tail::view`]).
pub(crate) struct TailView<'a> {
    cover: RwLockReadGuard<'a, Cover>,
    window: Window,
}

impl TailView<'_> {
    pub(crate) fn window(&self) -> Window {
        self.window
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.window.watermark && seq <= self.window.head
    }

    /// The sequence number of the tail record with this id.
    pub(crate) fn seq_of(&self, id: &[u8; 32]) -> Option<u64> {
        self.cover
            .by_id
            .get(id)
            .copied()
            .filter(|&seq| self.in_window(seq))
    }

    /// Whether a tail record's id starts with `prefix` (an empty prefix: any record).
    pub(crate) fn has_prefix(&self, prefix: &[u8]) -> bool {
        if prefix.len() > 32 {
            return false;
        }
        let mut start = [0u8; 32];
        start[..prefix.len()].copy_from_slice(prefix);
        self.cover
            .by_id
            .range(start..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .any(|(_, &seq)| self.in_window(seq))
    }

    /// The tail records of group `no` after `after`, with their kinds, in order.
    pub(crate) fn group_after(&self, no: u32, after: u64) -> Vec<(u64, u16)> {
        let from = after.max(self.window.watermark) + 1;
        if from > self.window.head {
            return Vec::new();
        }
        self.cover
            .by_group
            .range((no, from)..=(no, self.window.head))
            .filter_map(|&(_, seq)| Some((seq, self.cover.entry(seq)?.kind)))
            .collect()
    }

    /// Every record of the tail, in order.
    pub(crate) fn records(&self) -> impl Iterator<Item = (u64, &TailEntry)> {
        (self.window.watermark + 1..=self.window.head)
            .filter_map(|seq| Some((seq, self.cover.entry(seq)?)))
    }
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::Window;
    use crate::{AppendOutcome, Store, StoreOptions};

    /// A read transaction opened before a merge pruned this process's memory of the
    /// tail still finds the records above its own, older, watermark: the view reads
    /// them from that snapshot's log. A snapshot after the merge finds them in the
    /// index and has an empty tail.
    #[test]
    fn a_snapshot_older_than_a_merge_still_finds_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let keys = Keys::generate();
        let events: Vec<_> = (0..5)
            .map(|i| {
                EventBuilder::new(Kind::from(9u16), format!("{i}"))
                    .tag(Tag::parse(["h", "g"]).unwrap())
                    .finalize(&keys)
                    .unwrap()
            })
            .collect();
        for (seq, event) in (1..).zip(&events) {
            assert_eq!(store.append(event).unwrap(), AppendOutcome::Appended(seq));
        }
        let no = store.group("g").unwrap().no;
        store
            .read(|txn, dbs| {
                assert_eq!(store.merge_index_tail()?, 5);
                assert!(store.shared().tail.cover.read().entries.is_empty());
                let view = store.shared().tail.view(txn, dbs)?;
                let window = Window {
                    watermark: 0,
                    head: 5,
                };
                assert_eq!(view.window(), window);
                for (seq, event) in (1..).zip(&events) {
                    let id = event.id.to_bytes();
                    assert_eq!(view.seq_of(&id), Some(seq));
                    assert_eq!(crate::ids::lookup(txn, dbs, &view, &id)?, Some(seq));
                }
                let all: Vec<u64> = view.group_after(no, 0).iter().map(|e| e.0).collect();
                assert_eq!(all, [1, 2, 3, 4, 5]);
                Ok(())
            })
            .unwrap();
        store
            .read(|txn, dbs| {
                let view = store.shared().tail.view(txn, dbs)?;
                let window = Window {
                    watermark: 5,
                    head: 5,
                };
                assert_eq!(view.window(), window);
                for (seq, event) in (1..).zip(&events) {
                    let id = event.id.to_bytes();
                    assert_eq!(view.seq_of(&id), None);
                    assert_eq!(crate::ids::lookup(txn, dbs, &view, &id)?, Some(seq));
                }
                assert!(view.group_after(no, 0).is_empty());
                Ok(())
            })
            .unwrap();
        assert_eq!(store.verify_indexes().unwrap().watermark, 5);
    }

    /// Filling an empty memory at once holds what adding the records one by one holds,
    /// a repeated id (which the writer never stores; a damaged log might) included.
    #[test]
    fn a_memory_filled_at_once_equals_one_filled_record_by_record() {
        use super::{Cover, TailEntry};
        let entry = |n: u8, group: Option<u32>| TailEntry {
            id: [n; 32],
            group,
            kind: 9,
        };
        let records: Vec<(u64, TailEntry)> = (0..200u8)
            .map(|n| entry(n.wrapping_mul(37), (n % 3 != 0).then_some(u32::from(n % 5))))
            .chain([entry(74, Some(1)), entry(3, None)])
            .zip(11..)
            .map(|(e, seq)| (seq, e))
            .collect();
        let mut one_by_one = Cover::default();
        one_by_one.clear(11);
        for &(seq, e) in &records {
            one_by_one.push_back(seq, e);
        }
        let mut at_once = Cover::default();
        at_once.clear(11);
        at_once.fill(records);
        assert_eq!(at_once.first, one_by_one.first);
        assert_eq!(at_once.entries, one_by_one.entries);
        assert_eq!(at_once.by_id, one_by_one.by_id);
        assert_eq!(at_once.by_group, one_by_one.by_group);
        assert_eq!(
            at_once.by_id.get(&[74; 32]),
            Some(&211),
            "the later copy is kept"
        );
    }

    /// The writer merges when the tail reaches its floor or, past it, the given share
    /// of the indexed records — not before, not after — and every id stays found.
    #[test]
    fn the_writer_merges_at_the_bound_that_grows_with_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            index_tail: 3,
            index_tail_share: 2,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).unwrap();
        let keys = Keys::generate();
        let mut ids = Vec::new();
        let mut watermark = 0;
        let mut merges = Vec::new();
        for seq in 1..=60u64 {
            let event = EventBuilder::new(Kind::from(9u16), format!("{seq}"))
                .tag(Tag::parse(["h", "g"]).unwrap())
                .finalize(&keys)
                .unwrap();
            assert_eq!(store.append(&event).unwrap(), AppendOutcome::Appended(seq));
            ids.push(event.id.to_bytes());
            // The bound this commit was held to: 3, or half the indexed records.
            if seq - watermark >= 3.max(watermark / 2) {
                watermark = seq;
                merges.push(seq);
            }
            store
                .read(|txn, dbs| {
                    assert_eq!(super::index_watermark(txn, dbs)?, watermark, "at {seq}");
                    let view = store.shared().tail.view(txn, dbs)?;
                    for (at, id) in (1..).zip(&ids) {
                        assert_eq!(crate::ids::lookup(txn, dbs, &view, id)?, Some(at));
                    }
                    Ok(())
                })
                .unwrap();
        }
        // A floor of 3 until 6 records are indexed, then half the index each time.
        assert_eq!(merges, [3, 6, 9, 13, 19, 28, 42]);
        assert_eq!(store.verify_indexes().unwrap().watermark, 42);
    }
}
