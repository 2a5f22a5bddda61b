//! Engine benchmark (not a test): rebuild throughput of a simple projection against a
//! raw cursor scan, cold first read of a 1,000-event group at two log sizes, and the
//! hot read of a loaded group — each figure a ratio measured in this one run.
//!
//! `HIGHWATER_BENCH_EVENTS` (default 1,000,000) sets the small log; the large log is
//! ten times that (`HIGHWATER_BENCH_SCALE`, default 10). Events carry valid ids but no
//! valid signatures and are appended in trusted mode: signing 10M events would measure
//! secp256k1, not the engine.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Handle, Kinds, Projection,
    decode_rkyv, encode_rkyv,
};
use highwater_store::{Checkpoint, CheckpointWrite, Store, StoreOptions};
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

/// The `pct`th percentile (nearest rank).
fn percentile(samples: &mut [Duration], pct: usize) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() - 1) * pct / 100]
}

/// p50 and p99 of a cold first read of `target`: memory evicted, checkpoint covering
/// the first half of its events, the second half folded from the log.
fn cold_reads(engine: &Engine, count: &Handle<Count>) -> (Duration, Duration) {
    let mut samples = Vec::new();
    for _ in 0..300 {
        engine.evict_all();
        let started = Instant::now();
        black_box(count.read("target", |s| *s).unwrap());
        samples.push(started.elapsed());
    }
    (percentile(&mut samples, 50), percentile(&mut samples, 99))
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

/// Replaces every checkpoint with one for `target` covering its first 500 events.
fn checkpoint_half_of_target(store: &Store, target: &[Event]) {
    store.delete_checkpoints(None).unwrap();
    let no = store.group("target").unwrap().no;
    let mut seqs = Vec::new();
    store
        .scan_group(
            no,
            0,
            |_| true,
            |seq, _| {
                seqs.push(seq);
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
    let kinds: u64 = target[..500]
        .iter()
        .map(|e| u64::from(e.kind.as_u16()))
        .sum();
    let checkpoint = Checkpoint {
        version: 1,
        watermark: seqs[499],
        events: 500,
        state: Count.encode(&(500, kinds)).unwrap(),
    };
    store
        .write_checkpoints(
            vec![CheckpointWrite {
                projection: "count".into(),
                group: no,
                checkpoint,
            }],
            None,
        )
        .unwrap();
}

/// Median of 200 batches of 1,000 reads of a loaded group.
fn hot_read(count: &Handle<Count>) -> Duration {
    let mut batches = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        for _ in 0..1_000 {
            black_box(count.read(black_box("target"), |s| s.0).unwrap());
        }
        batches.push(started.elapsed() / 1_000);
    }
    percentile(&mut batches, 50)
}

fn main() {
    let small = env_usize("HIGHWATER_BENCH_EVENTS", 1_000_000);
    let scale = env_usize("HIGHWATER_BENCH_SCALE", 10).max(1);
    let groups = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let pubkey = Keys::generate().public_key();
    eprintln!("filling {small} events…");
    let (engine, count) = open(dir.path());
    let store = engine.store().clone();
    // The target group: 500 events early in the log, 500 more half-way through.
    let target: Vec<Event> = (0..1_000)
        .map(|i| event(pubkey, "target", 1 << 40 | i))
        .collect();
    store.append_batch(&target[..500]).unwrap();
    fill(&store, pubkey, groups, small / 2, 0);
    store.append_batch(&target[500..]).unwrap();
    fill(
        &store,
        pubkey,
        groups,
        small.saturating_sub(small / 2 + 1_000),
        small as u64,
    );

    let mut rows = Vec::from(rebuild_rows(&engine));
    checkpoint_half_of_target(&store, &target);
    engine.evict_all();
    assert_eq!(count.read("target", |s| s.0).unwrap(), 1_000);
    let (p50_small, p99_small) = cold_reads(&engine, &count);
    let hot = hot_read(&count);

    eprintln!("growing the log to {} events…", small * scale);
    fill(
        &store,
        pubkey,
        groups,
        small * (scale - 1),
        (small * 2) as u64,
    );
    let (p50_large, p99_large) = cold_reads(&engine, &count);
    let ratio = p99_large.as_secs_f64() / p99_small.as_secs_f64();
    rows.push(Row {
        name: format!(
            "cold first read, 1,000-event group (500 after checkpoint), p99 at {} events",
            store.head()
        ),
        value: p99_large.as_secs_f64() * 1e3,
        unit: "ms",
        baseline: format!(
            "same at {small} events (p50 {:.3} ms there, {:.3} ms here)",
            p50_small.as_secs_f64() * 1e3,
            p50_large.as_secs_f64() * 1e3
        ),
        baseline_value: p99_small.as_secs_f64() * 1e3,
        ratio,
        goal: "p99 <= 2 ms and <= 1.5x",
        met: ratio <= 1.5 && p99_large <= Duration::from_millis(2),
    });
    rows.push(Row {
        name: "hot read of a loaded group, median".into(),
        value: hot.as_nanos() as f64,
        unit: "ns",
        baseline: "-".into(),
        baseline_value: 0.0,
        ratio: 0.0,
        goal: "<= 200 ns",
        met: hot <= Duration::from_nanos(200),
    });
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
