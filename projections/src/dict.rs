//! The pubkey dictionary: each 32-byte pubkey a process has folded gets a dense `u32`
//! id, shared by every group and by the membership, roles and creator projections of
//! one [`Groups`](crate::Groups) registration, so that per-group state holds 4-byte ids
//! instead of 32-byte keys.
//!
//! The dictionary lives in memory only and its numbering depends on the order in which
//! this process happened to fold groups, so an id never leaves the process: checkpoints
//! encode pubkeys (see the projections' codecs), every listing is sorted by pubkey, and
//! states compare and print through their pubkeys. Ids are never reused or forgotten
//! while the dictionary lives (a removed member's key stays; a restart compacts).
//!
//! Lookups hash all 32 bytes of a pubkey: its four 8-byte words, each xored with a
//! secret drawn once per dictionary, folded by full 64 × 64 → 128-bit multiplications
//! whose halves are xored (wyhash's "mum"), so every input bit reaches the top bits that
//! pick the shard and the slot.
//! A `p` tag may carry any 32 bytes, not only a curve point, so a hash of the first 8
//! bytes alone (or any fixed function) lets one event full of crafted keys turn linear
//! probing quadratic: 30,000 keys that differ only in their first 4 bytes took minutes.
//! The multipliers are secret to the process, which also makes the numbering differ
//! between runs — harmless, since no id leaves the process. The table is split into 16
//! shards, each behind its own lock, so that folds on several threads rarely meet.

use parking_lot::{RwLock, RwLockReadGuard};

/// log2 of the number of shards.
const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
/// The most keys one shard can number (ids are `local << SHARD_BITS | shard`).
const MAX_LOCAL: usize = 1 << (32 - SHARD_BITS);
/// An empty slot of a shard's index.
const EMPTY: u32 = u32::MAX;

/// A dense id of a pubkey in one [`Dictionary`].
pub(crate) type Id = u32;

/// The per-dictionary secrets of [`Seed::hash`].
#[derive(Clone, Copy)]
struct Seed([u64; 4]);

/// Multiplies into 128 bits and folds the halves together.
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r >> 64) as u64 ^ r as u64
}

impl Seed {
    /// Four secrets from the process's random source.
    fn random() -> Self {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        Self(std::array::from_fn(|i| state.hash_one(i) | 1))
    }

    /// The hash of `key` (use its top bits).
    fn hash(self, key: &[u8; 32]) -> u64 {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&key[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w) ^ self.0[i]
        };
        let h = mum(word(0), word(1)) ^ mum(word(2), word(3));
        mum(h ^ self.0[0], self.0[3])
    }
}

/// The shard of a hash: its top bits.
fn shard_of(hash: u64) -> usize {
    usize::try_from(hash >> (64 - SHARD_BITS)).expect("fewer than 2^SHARD_BITS shards")
}

/// The first slot to probe for `hash` in a table of `2^bits` slots: the hash's bits
/// right below the shard's.
fn home(hash: u64, bits: u32) -> usize {
    usize::try_from((hash << SHARD_BITS) >> (64 - bits)).expect("a slot index fits")
}

/// One shard: its keys by local id, and an open-addressing index (linear probing) of
/// local ids by hash.
struct Shard {
    seed: Seed,
    keys: Vec<[u8; 32]>,
    /// A power-of-two number of slots (or none), each a local id or [`EMPTY`].
    slots: Vec<u32>,
}

impl Shard {
    fn find(&self, hash: u64, key: &[u8; 32]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = home(hash, self.slots.len().trailing_zeros());
        loop {
            let local = self.slots[at];
            if local == EMPTY {
                return None;
            }
            if &self.keys[local as usize] == key {
                return Some(local);
            }
            at = (at + 1) & mask;
        }
    }

    fn insert(&mut self, hash: u64, key: [u8; 32]) -> u32 {
        // Grow at 7/8 full: linear probing stays short for random keys.
        if (self.keys.len() + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        assert!(
            self.keys.len() < MAX_LOCAL,
            "the pubkey dictionary is full ({MAX_LOCAL} keys in one shard)"
        );
        let local = u32::try_from(self.keys.len()).expect("checked against MAX_LOCAL");
        self.keys.push(key);
        self.place(hash, local);
        local
    }

    /// Makes room for `more` keys without growing on the way.
    fn reserve(&mut self, more: usize) {
        while (self.keys.len() + more) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        self.keys.reserve(more);
    }

    fn place(&mut self, hash: u64, local: u32) {
        let mask = self.slots.len() - 1;
        let mut at = home(hash, self.slots.len().trailing_zeros());
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = local;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        self.slots = vec![EMPTY; size];
        for local in 0..self.keys.len() {
            let h = self.seed.hash(&self.keys[local]);
            self.place(h, u32::try_from(local).expect("checked against MAX_LOCAL"));
        }
    }
}

/// Pubkey ↔ dense id, for one registration of the NIP-29 projections.
pub(crate) struct Dictionary {
    seed: Seed,
    shards: Box<[RwLock<Shard>]>,
}

impl Default for Dictionary {
    fn default() -> Self {
        let seed = Seed::random();
        Self {
            seed,
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        seed,
                        keys: Vec::new(),
                        slots: Vec::new(),
                    })
                })
                .collect(),
        }
    }
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("keys", &self.len())
            .finish()
    }
}

fn split(id: Id) -> (usize, usize) {
    let shard = (id as usize) & (SHARDS - 1);
    (shard, (id >> SHARD_BITS) as usize)
}

fn join(shard: usize, local: u32) -> Id {
    (local << SHARD_BITS) | u32::try_from(shard).expect("fewer than 2^SHARD_BITS shards")
}

impl Dictionary {
    /// The id of `key`, if this dictionary has numbered it. A key without an id is in
    /// no state of this dictionary.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Id> {
        let h = self.seed.hash(key);
        let s = shard_of(h);
        self.shards[s]
            .read_recursive()
            .find(h, key)
            .map(|l| join(s, l))
    }

    /// The id of `key`, numbering it if it is new.
    pub(crate) fn intern(&self, key: &[u8; 32]) -> Id {
        let h = self.seed.hash(key);
        let s = shard_of(h);
        if let Some(local) = self.shards[s].read_recursive().find(h, key) {
            return join(s, local);
        }
        let mut shard = self.shards[s].write();
        let local = match shard.find(h, key) {
            Some(local) => local,
            None => shard.insert(h, *key),
        };
        join(s, local)
    }

    /// The ids of `keys`, in their order, numbering new ones: [`Dictionary::intern`]
    /// for many keys at once (a checkpoint's), each shard locked once and sized once.
    pub(crate) fn intern_all<'k>(&self, keys: impl IntoIterator<Item = &'k [u8; 32]>) -> Vec<Id> {
        let keys: Vec<(&[u8; 32], u64)> =
            keys.into_iter().map(|k| (k, self.seed.hash(k))).collect();
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); SHARDS];
        for (i, &(_, h)) in keys.iter().enumerate() {
            by_shard[shard_of(h)].push(i);
        }
        let mut ids = vec![0; keys.len()];
        for (s, at) in by_shard.iter().enumerate() {
            let mut new = Vec::new();
            {
                let shard = self.shards[s].read_recursive();
                for &i in at {
                    let (key, h) = keys[i];
                    match shard.find(h, key) {
                        Some(local) => ids[i] = join(s, local),
                        None => new.push(i),
                    }
                }
            }
            if new.is_empty() {
                continue;
            }
            let mut shard = self.shards[s].write();
            shard.reserve(new.len());
            for i in new {
                let (key, h) = keys[i];
                let local = match shard.find(h, key) {
                    Some(local) => local,
                    None => shard.insert(h, *key),
                };
                ids[i] = join(s, local);
            }
        }
        ids
    }

    /// The key of `id`.
    ///
    /// # Panics
    ///
    /// If `id` was not handed out by this dictionary (a bug).
    pub(crate) fn key(&self, id: Id) -> [u8; 32] {
        let (s, local) = split(id);
        self.shards[s].read_recursive().keys[local]
    }

    /// A view that resolves many ids under one set of locks (listings, codecs).
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            shards: self.shards.iter().map(RwLock::read_recursive).collect(),
        }
    }

    /// How many keys are numbered.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read_recursive().keys.len())
            .sum()
    }
}

/// Every shard of a [`Dictionary`] held for reading: resolves ids without a lock each.
/// Hold it briefly: numbering a new key waits for it.
pub(crate) struct Reader<'a> {
    shards: Vec<RwLockReadGuard<'a, Shard>>,
}

impl Reader<'_> {
    /// The key of `id` (panics on an id of another dictionary, a bug).
    pub(crate) fn key(&self, id: Id) -> [u8; 32] {
        let (s, local) = split(id);
        self.shards[s].keys[local]
    }

    /// The keys of `ids`, sorted by key.
    pub(crate) fn sorted_keys(&self, ids: impl IntoIterator<Item = Id>) -> Vec<[u8; 32]> {
        let mut keys: Vec<[u8; 32]> = ids.into_iter().map(|id| self.key(id)).collect();
        keys.sort_unstable();
        keys
    }
}

/// The keys of `ids` in `dict`, sorted by key.
pub(crate) fn sorted_keys(dict: &Dictionary, ids: &[Id]) -> Vec<[u8; 32]> {
    dict.reader().sorted_keys(ids.iter().copied())
}

/// The ids of `keys` in `dict` (numbering new ones), sorted by id and deduplicated.
pub(crate) fn sorted_ids<'k>(
    dict: &Dictionary,
    keys: impl IntoIterator<Item = &'k [u8; 32]>,
) -> Vec<Id> {
    let mut ids = dict.intern_all(keys);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether the sorted id set `set` holds `id`.
pub(crate) fn contains(set: &[Id], id: Id) -> bool {
    set.binary_search(&id).is_ok()
}

/// Adds `id` to the sorted id set `set`.
pub(crate) fn insert(set: &mut Vec<Id>, id: Id) {
    // New keys get the highest ids: appending is the common case.
    if set.last().is_none_or(|&last| last < id) {
        set.push(id);
    } else if let Err(at) = set.binary_search(&id) {
        set.insert(at, id);
    }
}

/// Removes `id` from the sorted id set `set`.
pub(crate) fn remove(set: &mut Vec<Id>, id: Id) {
    if let Ok(at) = set.binary_search(&id) {
        set.remove(at);
    }
}

/// The union of two sorted id sets.
pub(crate) fn union(a: &[Id], b: &[Id]) -> Vec<Id> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> [u8; 32] {
        // Spread over shards and slots like real keys: a cheap mix of n in every byte.
        let mut k = [0u8; 32];
        let mut x = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for chunk in k.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        k
    }

    #[test]
    fn numbers_each_key_once_and_resolves_it_back() {
        let dict = Dictionary::default();
        let ids: Vec<Id> = (0..10_000).map(|n| dict.intern(&key(n))).collect();
        assert_eq!(dict.len(), 10_000);
        for (n, &id) in (0..10_000).zip(&ids) {
            assert_eq!(dict.intern(&key(n)), id);
            assert_eq!(dict.get(&key(n)), Some(id));
            assert_eq!(dict.key(id), key(n));
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(dict.get(&key(10_001)), None);
        assert_eq!(dict.len(), 10_000);
    }

    /// The longest run of occupied slots in any shard: what a probe can cost.
    fn longest_run(dict: &Dictionary) -> usize {
        dict.shards
            .iter()
            .map(|s| {
                let s = s.read();
                s.slots
                    .split(|&slot| slot == EMPTY)
                    .map(<[u32]>::len)
                    .max()
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn crafted_keys_do_not_pile_up_in_one_probe_run() {
        // What one hostile event can carry: keys that differ only in a few bytes, in
        // the first word (a relay roster numbered by index) or past it.
        for at in [0usize, 4, 12, 24] {
            let dict = Dictionary::default();
            for i in 0..30_000u32 {
                let mut k = [0u8; 32];
                k[at..at + 4].copy_from_slice(&i.to_be_bytes());
                k[31] |= 1;
                dict.intern(&k);
            }
            assert_eq!(dict.len(), 30_000);
            // Random keys at this load give runs of a few dozen; a pile-up gives
            // thousands.
            let run = longest_run(&dict);
            assert!(
                run < 1_000,
                "a run of {run} slots with the keys at byte {at}"
            );
        }
        // Keys that differ only in the top byte of each word.
        let dict = Dictionary::default();
        for i in 0..30_000u32 {
            let mut k = [0u8; 32];
            for (n, byte) in i.to_le_bytes().into_iter().enumerate() {
                k[n * 8 + 7] = byte;
            }
            dict.intern(&k);
        }
        assert_eq!(dict.len(), 30_000);
        let run = longest_run(&dict);
        assert!(
            run < 1_000,
            "a run of {run} slots with the keys in the top bytes"
        );
    }

    #[test]
    fn numbering_many_at_once_agrees_with_one_at_a_time() {
        let dict = Dictionary::default();
        // Some keys numbered before, then a batch with those, repeats and new ones.
        let before: Vec<(u32, Id)> = (0..3_000)
            .step_by(3)
            .map(|n| (n, dict.intern(&key(n))))
            .collect();
        let batch: Vec<[u8; 32]> = (0..5_000).rev().chain(0..10).map(key).collect();
        let ids = dict.intern_all(batch.iter());
        assert_eq!(ids.len(), batch.len());
        assert_eq!(dict.len(), 5_000);
        for (k, id) in batch.iter().zip(&ids) {
            assert_eq!(dict.key(*id), *k);
            assert_eq!(dict.get(k), Some(*id));
            assert_eq!(dict.intern(k), *id);
        }
        for (n, id) in before {
            assert_eq!(
                dict.get(&key(n)),
                Some(id),
                "a key numbered before keeps its id"
            );
        }
        let mut unique = ids[..5_000].to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5_000, "distinct keys, distinct ids");
        // The checkpoint path: the same ids, sorted and deduplicated.
        let more: Vec<[u8; 32]> = (4_000..6_000).chain(0..100).map(key).collect();
        let sorted = sorted_ids(&dict, batch.iter().chain(more.iter()));
        let mut expected: Vec<Id> = batch.iter().chain(&more).map(|k| dict.intern(k)).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(sorted.len(), 6_000);
        assert_eq!(sorted, expected);
        assert_eq!(
            &ids[5_000..],
            &ids[4_990..5_000].iter().rev().copied().collect::<Vec<_>>()[..]
        );
        assert_eq!(dict.intern_all([].iter()), Vec::<Id>::new());
    }

    /// The slots a shard of `n` keys has: the smallest power of two, 64 at least, that
    /// keeps it at most 7/8 full (none before its first key).
    fn slots_for(n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let mut slots = 64;
        while n * 8 > slots * 7 {
            slots *= 2;
        }
        slots
    }

    #[test]
    fn a_shard_grows_to_stay_at_most_seven_eighths_full() {
        let mut shard = Shard {
            seed: Seed::random(),
            keys: Vec::new(),
            slots: Vec::new(),
        };
        for n in 0..2_000u32 {
            let k = key(n);
            let local = shard.insert(shard.seed.hash(&k), k);
            assert_eq!(local, n);
            let len = shard.keys.len();
            assert_eq!(shard.slots.len(), slots_for(len), "after {len} keys");
        }
        // Room made ahead for many keys is what adding them one by one ends with.
        for (have, more) in [(0, 1), (0, 56), (0, 57), (10, 1_000), (2_000, 5_000)] {
            let mut shard = Shard {
                seed: Seed::random(),
                keys: Vec::new(),
                slots: Vec::new(),
            };
            for n in 0..have {
                let k = key(n);
                shard.insert(shard.seed.hash(&k), k);
            }
            shard.reserve(more as usize);
            let total = (have + more) as usize;
            assert_eq!(shard.slots.len(), slots_for(total), "{have} + {more}");
            assert!(shard.keys.capacity() >= total);
            for n in have..have + more {
                let k = key(n);
                shard.insert(shard.seed.hash(&k), k);
            }
            assert_eq!(shard.slots.len(), slots_for(total), "{have} + {more} added");
        }
    }

    #[test]
    fn every_bit_of_a_key_reaches_its_hash() {
        let seed = Seed::random();
        for n in 0..64 {
            let k = key(n);
            let h = seed.hash(&k);
            for bit in 0..256 {
                let mut flipped = k;
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert_ne!(seed.hash(&flipped), h, "key {n}: bit {bit} is lost");
            }
        }
    }

    /// The share of the fullest shard, in percent.
    fn fullest_shard(dict: &Dictionary) -> f64 {
        let most = dict
            .shards
            .iter()
            .map(|s| s.read().keys.len())
            .max()
            .unwrap_or(0);
        100.0 * most as f64 / dict.len() as f64
    }

    #[test]
    fn keys_spread_evenly_over_the_shards() {
        // 64,000 keys over 16 shards: 6.25 % each; a fair hash stays within a few
        // tenths of a percent, a biased bit in the top four sends a quarter or more to
        // one shard.
        let random = Dictionary::default();
        for n in 0..64_000 {
            random.intern(&key(n));
        }
        let share = fullest_shard(&random);
        assert!(share < 8.0, "{share:.2} % of random keys in one shard");
        for at in [0usize, 9, 17, 28] {
            let crafted = Dictionary::default();
            for i in 0..64_000u32 {
                let mut k = [0u8; 32];
                k[at..at + 4].copy_from_slice(&i.to_le_bytes());
                crafted.intern(&k);
            }
            let share = fullest_shard(&crafted);
            assert!(
                share < 8.0,
                "{share:.2} % of keys varying at byte {at} in one shard"
            );
        }
    }

    #[test]
    fn keys_sharing_a_prefix_stay_apart() {
        let dict = Dictionary::default();
        let a = [7u8; 32];
        let mut b = a;
        b[31] = 8;
        let (ia, ib) = (dict.intern(&a), dict.intern(&b));
        assert_ne!(ia, ib);
        assert_eq!(dict.get(&a), Some(ia));
        assert_eq!(dict.get(&b), Some(ib));
    }

    #[test]
    fn listings_come_out_sorted_by_key() {
        let dict = Dictionary::default();
        let keys: Vec<[u8; 32]> = (0..500).map(key).collect();
        let ids = sorted_ids(&dict, keys.iter().rev());
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(sorted_keys(&dict, &ids), expected);
    }
}
