//! A runtime's slots by group number, readable without a lock.
//!
//! Group numbers are dense from 0, so slots live in chunks that double in size (chunk
//! `k` holds `2^(k + FIRST_BITS)` slots) and never move once allocated: finding a
//! group's slot is two acquire loads and no atomic read-modify-write, and the slot is
//! borrowed from the table instead of cloned out of a lock. That is most of what a hot
//! read costs besides the state's own lock. Slots are never removed; eviction resets
//! their state instead (see `Runtime::evict_all`).

use std::sync::{Arc, OnceLock};

/// log2 of the first chunk's size.
const FIRST_BITS: u32 = 10;
/// Enough chunks for every `u32` group number.
const CHUNKS: usize = (33 - FIRST_BITS) as usize;

/// One chunk: a fixed run of slots, each set once.
type Chunk<T> = Box<[OnceLock<Arc<T>>]>;

/// Slots of type `T` by group number.
pub(crate) struct SlotTable<T> {
    chunks: [OnceLock<Chunk<T>>; CHUNKS],
}

/// The chunk and the offset in it of group `no`.
fn locate(no: u32) -> (usize, usize) {
    let n = u64::from(no) + (1 << FIRST_BITS);
    let k = n.ilog2() - FIRST_BITS;
    let offset = n - (1 << (k + FIRST_BITS));
    (
        k as usize,
        usize::try_from(offset).expect("a chunk fits in memory"),
    )
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<T> SlotTable<T> {
    /// The slot of group `no`, if it was ever created.
    pub(crate) fn get(&self, no: u32) -> Option<&Arc<T>> {
        let (k, offset) = locate(no);
        self.chunks[k].get()?[offset].get()
    }

    /// The slot of group `no`, created by `init` if it does not exist yet (once, even
    /// when several threads ask at the same time).
    pub(crate) fn get_or_init(&self, no: u32, init: impl FnOnce() -> T) -> &Arc<T> {
        let (k, offset) = locate(no);
        let chunk = self.chunks[k].get_or_init(|| {
            (0..1usize << (k as u32 + FIRST_BITS))
                .map(|_| OnceLock::new())
                .collect()
        });
        chunk[offset].get_or_init(|| Arc::new(init()))
    }

    /// Every existing slot with its group number, by number.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Arc<T>)> {
        self.chunks
            .iter()
            .enumerate()
            .filter_map(|(k, chunk)| chunk.get().map(|c| (k, c)))
            .flat_map(|(k, chunk)| {
                let first = (1u64 << (k as u32 + FIRST_BITS)) - (1 << FIRST_BITS);
                chunk.iter().enumerate().filter_map(move |(offset, slot)| {
                    let no = u32::try_from(first + offset as u64).ok()?;
                    slot.get().map(|s| (no, s))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_has_its_own_place() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1023), (0, 1023));
        assert_eq!(locate(1024), (1, 0));
        assert_eq!(locate(3071), (1, 2047));
        assert_eq!(locate(3072), (2, 0));
        let (k, offset) = locate(u32::MAX);
        assert!(k < CHUNKS);
        assert!(offset < 1 << (k as u32 + FIRST_BITS));
    }

    #[test]
    fn slots_are_created_once_and_listed_by_number() {
        let table = SlotTable::default();
        for no in [5u32, 0, 2000, 1023, 1024, 70_000] {
            assert_eq!(**table.get_or_init(no, || no), no);
            assert_eq!(**table.get_or_init(no, || u32::MAX), no);
        }
        assert_eq!(table.get(6), None);
        assert_eq!(table.get(2000).map(|s| **s), Some(2000));
        let listed: Vec<u32> = table
            .iter()
            .map(|(no, s)| {
                assert_eq!(no, **s);
                no
            })
            .collect();
        assert_eq!(listed, [0, 5, 1023, 1024, 2000, 70_000]);
    }
}
