//! The in-memory table of groups: name ↔ dense group number, head and event count.
//!
//! Loaded from the `groups` database at open and advanced by the writer after each
//! commit, before any caller is acknowledged, so a read that compares a watermark with
//! a head never sees a head older than an acknowledged append.
//!
//! Every read of the engine looks a group up by name, so that lookup takes no lock: a
//! group's number never changes once given, and groups are never removed, so the name
//! index only ever gains entries. It is open addressing over slots that are each set
//! once (`OnceLock`), in levels that double in size: an entry goes into the newest level
//! and never moves, and a new level is added when the newest is half full. A lookup
//! probes the levels newest first, each until an empty slot. Lookups by number (loading
//! and catching up a group, listings) are not hot and read a vector under a lock.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::codec::GroupEntry;

/// A snapshot of one group's position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group id (from the `h` or `d` tag).
    pub name: Arc<str>,
    /// The dense number the store uses for the group in its keys.
    pub no: u32,
    /// Sequence number of the group's last event.
    pub head: u64,
    /// Number of events of the group in the log.
    pub count: u64,
}

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    no: u32,
    head: AtomicU64,
    count: AtomicU64,
}

impl Slot {
    fn info(&self) -> GroupInfo {
        GroupInfo {
            name: self.name.clone(),
            no: self.no,
            head: self.head.load(Ordering::Acquire),
            count: self.count.load(Ordering::Acquire),
        }
    }

    fn advance(&self, head: u64, count: u64) {
        self.head.store(head, Ordering::Release);
        self.count.store(count, Ordering::Release);
    }
}

/// log2 of the first level's size.
const FIRST_BITS: u32 = 6;
/// Enough levels for every `u32` group number at half load.
const LEVELS: usize = (34 - FIRST_BITS) as usize;

/// One level of the name index: `2^(k + FIRST_BITS)` entries, each set once to a
/// group's name hash and slot. The hash is compared before the slot is followed, so a
/// probe past other groups neither dereferences them nor compares their names.
type Level = Box<[OnceLock<(u64, Arc<Slot>)>]>;

#[derive(Debug)]
pub(crate) struct GroupTable {
    /// Group ids are chosen by clients: a hasher keyed per process (aHash), so that
    /// crafted ids cannot pile up in one probe sequence.
    hasher: ahash::RandomState,
    levels: [OnceLock<Level>; LEVELS],
    /// How many levels exist (the newest is `used - 1`).
    used: AtomicUsize,
    /// The groups by number. Its write lock also serializes insertions.
    by_no: RwLock<Vec<Arc<Slot>>>,
}

impl Default for GroupTable {
    fn default() -> Self {
        Self {
            hasher: ahash::RandomState::new(),
            levels: std::array::from_fn(|_| OnceLock::new()),
            used: AtomicUsize::new(0),
            by_no: RwLock::new(Vec::new()),
        }
    }
}

impl GroupTable {
    /// The slot of `name`, without a lock.
    fn find(&self, name: &str) -> Option<&Arc<Slot>> {
        let hash = self.hasher.hash_one(name);
        let used = self.used.load(Ordering::Acquire);
        self.levels[..used].iter().rev().find_map(|level| {
            let level = level.get()?;
            let mask = level.len() - 1;
            let mut at = hash as usize & mask;
            loop {
                let (their_hash, slot) = level[at].get()?;
                if *their_hash == hash && *slot.name == *name {
                    return Some(slot);
                }
                at = (at + 1) & mask;
            }
        })
    }

    pub(crate) fn no(&self, name: &str) -> Option<u32> {
        self.find(name).map(|slot| slot.no)
    }

    /// The group's number and head: the hot path of every read.
    pub(crate) fn no_head(&self, name: &str) -> Option<(u32, u64)> {
        self.find(name)
            .map(|slot| (slot.no, slot.head.load(Ordering::Acquire)))
    }

    /// The group's number, head and count.
    pub(crate) fn info_by_name(&self, name: &str) -> Option<GroupInfo> {
        self.find(name).map(|slot| slot.info())
    }

    pub(crate) fn len(&self) -> usize {
        self.by_no.read().len()
    }

    pub(crate) fn head(&self, no: u32) -> u64 {
        self.by_no
            .read()
            .get(no as usize)
            .map_or(0, |s| s.head.load(Ordering::Acquire))
    }

    pub(crate) fn info(&self, no: u32) -> Option<GroupInfo> {
        self.by_no.read().get(no as usize).map(|slot| slot.info())
    }

    pub(crate) fn all(&self) -> Vec<GroupInfo> {
        self.by_no.read().iter().map(|slot| slot.info()).collect()
    }

    /// Inserts or updates a group; `no` must be the next dense number for a new group.
    /// Returns false, changing nothing, when it is neither: `name` is known under
    /// another number, or `no` is known under another name, or `no` leaves a gap.
    pub(crate) fn upsert(&self, name: &str, no: u32, head: u64, count: u64) -> bool {
        let mut by_no = self.by_no.write();
        if let Some(slot) = by_no.get(no as usize) {
            if *slot.name != *name {
                return false;
            }
            slot.advance(head, count);
            return true;
        }
        if no as usize != by_no.len() || self.find(name).is_some() {
            return false;
        }
        let slot = Arc::new(Slot {
            name: name.into(),
            no,
            head: AtomicU64::new(head),
            count: AtomicU64::new(count),
        });
        by_no.push(slot.clone());
        self.index(slot, by_no.len());
        true
    }

    /// Adds `slot` to the name index, the table then holding `groups` groups. The
    /// caller holds the `by_no` write lock, so insertions do not race each other.
    fn index(&self, slot: Arc<Slot>, groups: usize) {
        let mut used = self.used.load(Ordering::Acquire);
        // The newest level holds at most half its size, and the levels before it
        // exactly half theirs: levels below `used - 1` hold `2^(FIRST_BITS - 1)` ·
        // (2^(used - 1) - 1) groups in all.
        let before_newest = |used: usize| ((1usize << (used - 1)) - 1) << (FIRST_BITS - 1);
        if used == 0 || groups - before_newest(used) > 1 << (used - 1 + FIRST_BITS as usize - 1) {
            let size = 1usize << (used + FIRST_BITS as usize);
            self.levels[used].get_or_init(|| (0..size).map(|_| OnceLock::new()).collect());
            used += 1;
            self.used.store(used, Ordering::Release);
        }
        let level = self.levels[used - 1]
            .get()
            .expect("the newest level was created above");
        let mask = level.len() - 1;
        let hash = self.hasher.hash_one(&*slot.name);
        let mut at = hash as usize & mask;
        let mut entry = Some((hash, slot));
        while let Err(back) = level[at].set(entry.take().expect("put back on a taken slot")) {
            entry = Some(back);
            at = (at + 1) & mask;
        }
    }

    /// Takes in the entries of a commit or of a snapshot's `groups` table: known groups
    /// advance (without the write lock), new ones are added in number order. Returns
    /// false at the first entry that does not fit (see [`GroupTable::upsert`]); the
    /// entries before it are taken in.
    pub(crate) fn take_in<'n>(
        &self,
        entries: impl IntoIterator<Item = (&'n str, GroupEntry)>,
    ) -> bool {
        let mut fresh: Vec<(&str, GroupEntry)> = entries
            .into_iter()
            .filter(|&(name, e)| {
                !(self.no(name) == Some(e.no) && self.advance(e.no, e.head, e.count))
            })
            .collect();
        fresh.sort_by_key(|(_, e)| e.no);
        fresh
            .into_iter()
            .all(|(name, e)| self.upsert(name, e.no, e.head, e.count))
    }

    /// Sets an existing group's count (after a compaction), leaving its head.
    pub(crate) fn set_count(&self, no: u32, count: u64) {
        if let Some(slot) = self.by_no.read().get(no as usize) {
            slot.count.store(count, Ordering::Release);
        }
    }

    /// Advances an existing group without the write lock.
    pub(crate) fn advance(&self, no: u32, head: u64, count: u64) -> bool {
        match self.by_no.read().get(no as usize) {
            Some(slot) => {
                slot.advance(head, count);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_groups_are_found_by_name_and_number_across_levels() {
        let table = GroupTable::default();
        let name = |i: u32| format!("group-{i}");
        for i in 0..5_000u32 {
            assert!(table.upsert(&name(i), i, u64::from(i) * 10, 1));
            // Every group inserted so far is still found, through every level.
            if i % 997 == 0 || i < 200 {
                for j in 0..=i {
                    assert_eq!(table.no(&name(j)), Some(j), "{j} after {i}");
                }
            }
        }
        assert_eq!(table.len(), 5_000);
        assert_eq!(table.no("group-5000"), None);
        assert_eq!(table.no_head("group-4321"), Some((4321, 43_210)));
        assert_eq!(table.head(17), 170);
        assert_eq!(table.head(5_000), 0);
        let info = table.info_by_name("group-9").unwrap();
        assert_eq!((info.no, info.head, info.count), (9, 90, 1));
        assert_eq!(table.info(9), Some(info));
        assert_eq!(table.all().len(), 5_000);
        // Levels double: 5,000 groups at half load need sizes 64 · 2^k up to 8,192.
        let used = table.used.load(Ordering::Relaxed);
        assert_eq!(used, 8);
        let sizes: Vec<usize> = table.levels[..used]
            .iter()
            .map(|l| l.get().unwrap().len())
            .collect();
        assert_eq!(sizes, [64, 128, 256, 512, 1024, 2048, 4096, 8192]);
        // Every level but the newest holds exactly half its size; the newest the rest.
        let filled: Vec<usize> = table.levels[..used]
            .iter()
            .map(|l| {
                l.get()
                    .unwrap()
                    .iter()
                    .filter(|s| s.get().is_some())
                    .count()
            })
            .collect();
        assert_eq!(filled, [32, 64, 128, 256, 512, 1024, 2048, 5000 - 4064]);
    }

    /// A 64-bit keyed hash cannot be made to collide in a test, so an entry with the
    /// hash of a name that is not in the table is planted on that name's probe path:
    /// a lookup must still compare names.
    #[test]
    fn an_equal_hash_is_not_an_equal_name() {
        let table = GroupTable::default();
        assert!(table.upsert("real", 0, 1, 1));
        let hash = table.hasher.hash_one("ghost");
        let level = table.levels[0].get().unwrap();
        let mask = level.len() - 1;
        let mut at = hash as usize & mask;
        let real = table.find("real").unwrap().clone();
        while level[at].set((hash, real.clone())).is_err() {
            at = (at + 1) & mask;
        }
        assert_eq!(table.no("ghost"), None);
        assert_eq!(table.no("real"), Some(0));
    }

    #[test]
    fn upsert_advances_known_groups_and_refuses_what_does_not_fit() {
        let table = GroupTable::default();
        assert!(table.upsert("a", 0, 1, 1));
        assert!(table.upsert("b", 1, 2, 1));
        // Known: advanced in place.
        assert!(table.upsert("a", 0, 5, 2));
        assert_eq!(table.info(0).map(|i| (i.head, i.count)), Some((5, 2)));
        assert!(table.advance(1, 7, 3));
        assert_eq!(table.no_head("b"), Some((1, 7)));
        assert!(!table.advance(2, 1, 1));
        // A gap, a name under another number, a number under another name.
        assert!(!table.upsert("c", 3, 1, 1));
        assert!(!table.upsert("a", 2, 1, 1));
        assert!(!table.upsert("c", 1, 1, 1));
        assert_eq!(table.len(), 2);
        assert_eq!(table.no("c"), None);
        assert_eq!(table.no_head("b"), Some((1, 7)));
    }

    #[test]
    fn take_in_advances_known_groups_and_adds_new_ones_in_number_order() {
        let table = GroupTable::default();
        let entry = |no, head, count| GroupEntry { no, head, count };
        // New groups given out of order are added by number.
        assert!(table.take_in([
            ("c", entry(2, 3, 1)),
            ("a", entry(0, 1, 1)),
            ("b", entry(1, 2, 1))
        ]));
        assert_eq!(table.no_head("c"), Some((2, 3)));
        // Known groups advance; a new one follows them.
        assert!(table.take_in([("d", entry(3, 9, 1)), ("a", entry(0, 8, 2))]));
        assert_eq!(table.info(0).map(|i| (i.head, i.count)), Some((8, 2)));
        assert_eq!(table.no_head("d"), Some((3, 9)));
        // A gap: the entries before it are taken in, the rest refused.
        assert!(!table.take_in([
            ("e", entry(4, 10, 1)),
            ("g", entry(6, 11, 1)),
            ("b", entry(1, 12, 2))
        ]));
        assert_eq!(table.no("e"), Some(4));
        assert_eq!(table.no("g"), None);
        assert_eq!(table.no_head("b"), Some((1, 12)));
        // A known name under another number.
        assert!(!table.take_in([("a", entry(5, 13, 3))]));
        assert_eq!(table.no_head("a"), Some((0, 8)));
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn readers_on_other_threads_find_every_published_group() {
        let table = GroupTable::default();
        let published = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..3_000u32 {
                    assert!(table.upsert(&format!("g{i}"), i, 1, 1));
                    published.store(i as usize + 1, Ordering::Release);
                }
            });
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut seen = 0;
                    while seen < 3_000 {
                        let known = published.load(Ordering::Acquire);
                        for i in (seen..known).step_by(7) {
                            assert_eq!(table.no(&format!("g{i}")), Some(i as u32));
                        }
                        seen = known;
                    }
                });
            }
        });
    }
}
