//! What reading a pubkey by its number costs in each place the key dictionary could keep
//! its keys: the heap (today), or LMDB's file-backed map (the persisted pubkey ↔ number
//! table that would take the keys off the heap).
//!
//! ```text
//! cargo run --release -p highwater-bench --example dictionary_costs -- [KEYS] [LOOKUPS]
//! ```
//!
//! An exact dictionary must compare the whole key before it answers "this is number n"
//! (a `p` tag may carry any 32 bytes, so a fingerprint alone can be made to collide), so
//! a hot lookup by key reads one key by number. Each lookup here picks its number from
//! the previous key's bytes, so lookups cannot overlap and each line is one lookup's
//! latency, as in a single `is_member`. Also printed: what building an in-memory index
//! of every persisted key costs a process at open (a scan of the table and a hash of
//! each key), which the first answer after a restart would pay.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result};
use heed::types::Bytes;
use heed::{Database, EnvOpenOptions, PutFlags};

/// Keys per value in the chunked layout: 127 × 32 bytes fill one 4 KiB overflow page.
const PER_CHUNK: u32 = 127;

fn key_of(n: u32) -> [u8; 32] {
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

/// The next number to read, from the bytes of the key just read.
fn next(key: &[u8], keys: u32) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&key[..4]);
    u32::from_le_bytes(w) % keys
}

/// Key `n` of the chunked layout, read in `txn`.
fn chunked_key<'t>(
    chunked: Database<Bytes, Bytes>,
    txn: &'t heed::RoTxn<'_, heed::WithoutTls>,
    n: u32,
) -> Result<&'t [u8]> {
    let chunk = chunked
        .get(txn, &(n / PER_CHUNK).to_be_bytes())?
        .context("a chunk")?;
    let at = (n % PER_CHUNK) as usize * 32;
    Ok(&chunk[at..at + 32])
}

fn per_lookup(started: Instant, lookups: u32) -> f64 {
    started.elapsed().as_secs_f64() * 1e9 / f64::from(lookups)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keys: u32 = args.first().map_or(Ok(1_000_000), |s| s.parse())?;
    let lookups: u32 = args.get(1).map_or(Ok(2_000_000), |s| s.parse())?;
    let dir = tempfile::tempdir().context("a temporary directory")?;
    // SAFETY: the environment is this process's own, in a fresh directory no other
    // process opens, and it is opened once.
    #[expect(unsafe_code, reason = "opening the LMDB memory map; see SAFETY")]
    let env = unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(4 << 30)
            .max_dbs(2)
            .open(dir.path())?
    };
    let mut txn = env.write_txn()?;
    let single: Database<Bytes, Bytes> = env.create_database(&mut txn, Some("single"))?;
    let chunked: Database<Bytes, Bytes> = env.create_database(&mut txn, Some("chunked"))?;
    let heap: Vec<[u8; 32]> = (0..keys).map(key_of).collect();
    for (n, key) in (0u32..).zip(&heap) {
        single.put_with_flags(&mut txn, PutFlags::APPEND, &n.to_be_bytes(), key)?;
    }
    for (c, chunk) in (0u32..).zip(heap.chunks(PER_CHUNK as usize)) {
        chunked.put_with_flags(
            &mut txn,
            PutFlags::APPEND,
            &c.to_be_bytes(),
            chunk.as_flattened(),
        )?;
    }
    txn.commit()?;
    println!("{keys} keys, {lookups} dependent lookups per line, nanoseconds per lookup:");

    for round in 1..=3 {
        let mut n = 7 % keys;
        let started = Instant::now();
        for _ in 0..lookups {
            n = next(black_box(&heap[n as usize]), keys);
        }
        let on_heap = per_lookup(started, lookups);

        let started = Instant::now();
        for _ in 0..lookups {
            let txn = env.read_txn()?;
            let key = single
                .get(&txn, &n.to_be_bytes())?
                .context("a numbered key")?;
            n = next(black_box(key), keys);
        }
        let one_per_entry = per_lookup(started, lookups);

        let started = Instant::now();
        for _ in 0..lookups {
            n = next(black_box(chunked_key(chunked, &env.read_txn()?, n)?), keys);
        }
        let chunks = per_lookup(started, lookups);

        let txn = env.read_txn()?;
        let started = Instant::now();
        for _ in 0..lookups {
            n = next(black_box(chunked_key(chunked, &txn, n)?), keys);
        }
        let chunks_one_txn = per_lookup(started, lookups);
        drop(txn);

        let started = Instant::now();
        let txn = env.read_txn()?;
        let mut index = vec![u32::MAX; (keys as usize * 2).next_power_of_two()];
        let mask = index.len() - 1;
        let state = std::hash::RandomState::new();
        for entry in chunked.iter(&txn)? {
            let (c, chunk) = entry?;
            let first = u32::from_be_bytes(c.try_into().context("a chunk number")?) * PER_CHUNK;
            for (i, key) in (0u32..).zip(chunk.chunks_exact(32)) {
                let mut at = usize::try_from(std::hash::BuildHasher::hash_one(&state, key))
                    .unwrap_or(usize::MAX)
                    & mask;
                while index[at] != u32::MAX {
                    at = (at + 1) & mask;
                }
                index[at] = first + i;
            }
        }
        let build_ms = started.elapsed().as_secs_f64() * 1e3;
        drop(txn);
        black_box(&index);
        println!(
            "round {round}: heap {on_heap:.0} | LMDB, one entry per key, a read transaction each {one_per_entry:.0} \
             | LMDB, {PER_CHUNK} keys per value, a read transaction each {chunks:.0} \
             | the same in one read transaction {chunks_one_txn:.0} \
             | index of every persisted key built at open: {build_ms:.1} ms"
        );
    }
    Ok(())
}
