//! `Pk`: a 32-byte public key as a set or map key.
//!
//! Membership lookups are B-tree searches over tens of thousands of keys. Comparing
//! `[u8; 32]` calls `memcmp` at every step; `Pk` compares four big-endian `u64` words
//! inline instead, which orders keys exactly as their bytes do (so sorted output and
//! checkpoints are unchanged in meaning) at a fraction of the cost.

use std::cmp::Ordering;

/// A public key, ordered by its bytes, compared a word at a time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord))]
pub(crate) struct Pk(pub(crate) [u8; 32]);

impl Pk {
    fn words(&self) -> [u64; 4] {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        [word(0), word(1), word(2), word(3)]
    }
}

impl Ord for Pk {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.words(), other.words());
        a[0].cmp(&b[0])
            .then(a[1].cmp(&b[1]))
            .then(a[2].cmp(&b[2]))
            .then(a[3].cmp(&b[3]))
    }
}

impl PartialOrd for Pk {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::Pk;

    #[test]
    fn orders_exactly_as_the_bytes() {
        let mut keys: Vec<[u8; 32]> = (0u8..=255)
            .map(|i| {
                let mut k = [i.wrapping_mul(37); 32];
                k[31 - usize::from(i % 32)] = i;
                k[usize::from(i % 7)] ^= 0x80;
                k
            })
            .collect();
        keys.push([0; 32]);
        keys.push([0xff; 32]);
        for a in &keys {
            for b in &keys {
                assert_eq!(Pk(*a).cmp(&Pk(*b)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }
}
