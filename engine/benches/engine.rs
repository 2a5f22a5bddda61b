//! Engine benchmark (not a test): rebuild throughput of a simple projection against a
//! raw cursor scan, both measured in this one run — the engine's own overhead, with
//! no NIP-29 fold in it.
//!
//! The cold first read of a 1,000-event group at two log sizes and the hot read of a
//! loaded group are measured once, by `highwater bench` (its "cold first read" and
//! "hot `is_member`" rows), on the NIP-29 projections.
//!
//! `HIGHWATER_BENCH_EVENTS` (default 1,000,000) sets the log size. Events carry valid
//! ids but no valid signatures and are appended in trusted mode: signing a million
//! events would measure secp256k1, not the engine.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Handle, Kinds, Projection,
    decode_rkyv, encode_rkyv,
};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, EventId, Keys, Kind, PublicKey, Signature, Tag, Tags, Timestamp};

/// Counts events per kind class: the simplest useful fold.
struct Count;

impl Projection for Count {
    type State = (u64, u64);
    fn name(&self) -> &'static str {
        "count"
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> Kinds {
        Kinds::All
    }
    fn init(&self) -> (u64, u64) {
        (0, 0)
    }
    fn apply(&self, state: &mut (u64, u64), event: &EventRef<'_>) -> Result<(), ApplyError> {
        state.0 += 1;
        state.1 += u64::from(event.kind());
        Ok(())
    }
    fn encode(&self, state: &(u64, u64)) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }
    fn decode(&self, bytes: &[u8]) -> Result<(u64, u64), CodecError> {
        decode_rkyv(bytes)
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A ~400-byte group event with a correct id and a dummy signature.
fn event(pubkey: PublicKey, group: &str, i: u64) -> Event {
    let kind = if i.is_multiple_of(2) {
        Kind::Custom(9)
    } else {
        Kind::Custom(9000)
    };
    let tags = Tags::from_list(vec![
        Tag::parse(["h", group]).unwrap(),
        Tag::parse([
            "p",
            &format!("{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        ])
        .unwrap(),
    ]);
    let content = format!("message {i} {}", "x".repeat(200));
    let created_at = Timestamp::from_secs(1_700_000_000 + i / 10);
    let id = EventId::compute(&pubkey, &created_at, &kind, &tags, &content);
    Event::new(
        id,
        pubkey,
        created_at,
        kind,
        tags,
        content,
        Signature::from_byte_array([7; 64]),
    )
}

/// Appends `n` events spread over `groups` groups (`target` excluded), in batches.
fn fill(store: &Store, pubkey: PublicKey, groups: usize, n: usize, offset: u64) {
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n as u64 {
        let g = (i.wrapping_mul(2_654_435_761) % groups as u64) as usize;
        batch.push(event(pubkey, &format!("g{g}"), offset + i));
        if batch.len() == 10_000 {
            store.append_batch(&batch).unwrap();
            batch.clear();
        }
    }
    store.append_batch(&batch).unwrap();
}

fn open(dir: &Path) -> (Engine, Handle<Count>) {
    let store = Store::open(
        dir,
        StoreOptions {
            trusted: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut builder = Engine::builder(
        store,
        EngineOptions {
            checkpoint_every: 0,
            checkpoint_on_close: false,
        },
    );
    let count = builder.add(Count).unwrap();
    (builder.build().unwrap(), count)
}

struct Row {
    name: String,
    value: f64,
    unit: &'static str,
    baseline: String,
    baseline_value: f64,
    ratio: f64,
    goal: &'static str,
    met: bool,
}

/// Sums a value eight bytes at a time: the least work that reads every byte.
fn read_every_byte(value: &[u8]) -> u64 {
    let mut chunks = value.chunks_exact(8);
    let sum = chunks.by_ref().fold(0u64, |acc, c| {
        acc.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()))
    });
    chunks
        .remainder()
        .iter()
        .fold(sum, |acc, &b| acc.wrapping_add(u64::from(b)))
}

/// Rebuild of the simple projection vs two raw cursor scans (one byte of each value;
/// every byte of each value), interleaved, best of 3 each.
fn rebuild_rows(engine: &Engine) -> [Row; 2] {
    let store = engine.store();
    let (mut rebuild, mut walk, mut read) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..3 {
        let started = Instant::now();
        let (records, _) = store.raw_scan().unwrap();
        walk = walk.min(started.elapsed().as_secs_f64());
        assert_eq!(records, store.head());
        let started = Instant::now();
        let mut sum = 0u64;
        store
            .raw_scan_with(|v| sum = sum.wrapping_add(read_every_byte(v)))
            .unwrap();
        black_box(sum);
        read = read.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        engine.rebuild(Some("count"), None).unwrap();
        rebuild = rebuild.min(started.elapsed().as_secs_f64());
    }
    let head = store.head() as f64;
    let row = |baseline: &str, secs: f64| Row {
        name: format!("full rebuild, simple projection, {} events", store.head()),
        value: head / rebuild,
        unit: "events/s",
        baseline: baseline.into(),
        baseline_value: head / secs,
        ratio: secs / rebuild,
        goal: ">= 0.3x",
        met: secs / rebuild >= 0.3,
    };
    [
        row("raw cursor scan, one byte of each value", walk),
        row("raw cursor scan reading every byte of each value", read),
    ]
}

fn main() {
    let events = env_usize("HIGHWATER_BENCH_EVENTS", 1_000_000);
    let groups = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let pubkey = Keys::generate().public_key();
    eprintln!("filling {events} events…");
    let (engine, _count) = open(dir.path());
    fill(engine.store(), pubkey, groups, events, 0);
    let rows = rebuild_rows(&engine);
    println!("| row | value | unit | baseline | baseline value | ratio | goal | met |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.3} | {} | {} | {:.3} | {:.2} | {} | {} |",
            r.name,
            r.value,
            r.unit,
            r.baseline,
            r.baseline_value,
            r.ratio,
            r.goal,
            if r.met { "yes" } else { "NO" }
        );
    }
}
