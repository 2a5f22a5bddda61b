//! Store benchmarks that `highwater bench` does not express, against their baselines,
//! measured side by side in one run.
//!
//! `cargo bench -p highwater-store --bench log` (events: `HIGHWATER_BENCH_EVENTS`,
//! default 100,000; per-event commits: `HIGHWATER_BENCH_COMMITS`, default 2,000).
//! Without `--bench` (as under `cargo test --all-targets`) it runs a small smoke pass.
//!
//! The headline rows — trusted bulk import against raw APPEND puts, verified import
//! against raw verification, 8 threads of single-event durable appends against one
//! commit per event — are measured once, by `highwater bench`. What stays here are the
//! store-level variants the tool has no row for:
//!
//! | row | store                                      | baseline                                |
//! |-----|--------------------------------------------|-----------------------------------------|
//! | b'  | 64 threads, trusted `append` one at a time | one durable raw commit per event        |
//! | c'  | verified `append_batch`, 1 caller          | `verify_signature` on 2 threads         |
//! | d   | `scan` (checksum + rkyv validation)        | `raw_scan` (no validation)              |
//! | d'  | `scan` (informational)                     | `raw_scan_with`, all cache lines loaded |
//!
//! `HIGHWATER_BENCH_ONLY=d` runs only some rows; `HIGHWATER_BENCH_SCAN_ROUNDS` repeats
//! the scans (for profiling).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use highwater_store::{
    CommitObserver, Committed, Prepared, PreparedEvent, RawLog, Store, StoreOptions,
};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

const BATCH: usize = 5_000;
const VERIFY_THREADS: usize = 2;
const GROUPS: usize = 1_000;

struct Row {
    name: &'static str,
    value: f64,
    unit: &'static str,
    baseline: f64,
    /// The ratio to reach; `None` for an informational row.
    goal: Option<f64>,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let events_n = env_usize(
        "HIGHWATER_BENCH_EVENTS",
        if bench { 100_000 } else { 2_000 },
    );
    let commits_n = env_usize("HIGHWATER_BENCH_COMMITS", if bench { 2_000 } else { 100 });
    if !bench {
        println!("smoke run (no --bench): small sizes, numbers are not measurements");
    }
    let root = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let events = generate(events_n);
    println!(
        "generated {} signed events in {:.1} s",
        events.len(),
        started.elapsed().as_secs_f64()
    );
    let prepared = prepare(&root.path().join("scratch"), &events);
    let bytes: usize = prepared.iter().map(PreparedEvent::encoded_len).sum();
    let json: usize = events.iter().map(|e| e.as_json().len()).sum();
    println!(
        "average event: {} bytes of JSON, {} bytes encoded; {} cores",
        json / events.len(),
        bytes / prepared.len(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );

    // `HIGHWATER_BENCH_ONLY=d` runs only row d (for profiling it).
    let only = std::env::var("HIGHWATER_BENCH_ONLY").unwrap_or_else(|_| "bcd".into());
    let mut rows = Vec::new();
    if only.contains('b') {
        let small = &events[..commits_n.min(events.len())];
        let single = raw_append(&root.path().join("b-raw"), &prepared[..small.len()], 1);
        let dir = root.path().join("b-store-64");
        let (group, per_commit) = group_commit(&dir, small, 64);
        println!("64 threads: {per_commit:.1} events per commit on average");
        rows.push(Row {
            name: "b'. 64 threads x append vs 1 commit/event (info)",
            value: group,
            unit: "events/s",
            baseline: single,
            goal: None,
        });
    }
    if only.contains('c') {
        rows.push(Row {
            name: "c'. verified append_batch, 1 caller (info)",
            value: verified_append(&root.path().join("c-store-1"), &events),
            unit: "events/s",
            baseline: verify_rate(&events),
            goal: None,
        });
    }
    if only.contains('d') {
        let store = batched_append(&root.path().join("d-store"), &events);
        let (scan, raw_scan, every_byte) = scan_rates(&store, events.len());
        rows.push(Row {
            name: "d. scan (validated) vs raw_scan",
            value: scan,
            unit: "events/s",
            baseline: raw_scan,
            goal: Some(0.5),
        });
        rows.push(Row {
            name: "d'. scan vs raw cursor touching all bytes (info)",
            value: scan,
            unit: "events/s",
            baseline: every_byte,
            goal: None,
        });
    }
    print_table(&rows);
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Roughly 400-byte NIP-29 events: put-user (9000, `h` + `p` with a role) and chat
/// (9, `h`), signed by a few dozen real keys, on two threads.
fn generate(n: usize) -> Vec<Event> {
    let half = n.div_ceil(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                scope.spawn(move || {
                    let keys: Vec<Keys> = (0..32).map(|_| Keys::generate()).collect();
                    let start = t * half;
                    (start..n.min(start + half))
                        .map(|i| event(&keys[i % keys.len()], &keys[(i / 7) % keys.len()], i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn event(author: &Keys, member: &Keys, i: usize) -> Event {
    let group = format!("group-{:04}", i % GROUPS);
    let h = Tag::parse(["h", group.as_str()]).unwrap();
    let builder = if i.is_multiple_of(4) {
        let p = member.public_key().to_hex();
        EventBuilder::new(
            Kind::from(9000),
            format!("welcome aboard, member number {i}"),
        )
        .tag(h)
        .tag(Tag::parse(["p", p.as_str(), "member"]).unwrap())
    } else {
        let text = format!("message {i}: pineapple on pizza, yes or no?");
        EventBuilder::new(Kind::from(9), text).tag(h)
    };
    builder.finalize(author).unwrap()
}

/// The encoded records of `events`, as the store would write them.
fn prepare(dir: &Path, events: &[Event]) -> Vec<PreparedEvent> {
    let store = Store::open(dir, trusted()).unwrap();
    store
        .prepare_all(events)
        .into_iter()
        .map(|p| match p.unwrap() {
            Prepared::Ready(p) => p,
            Prepared::Duplicate(seq) => panic!("generated a duplicate of {seq}"),
        })
        .collect()
}

fn trusted() -> StoreOptions {
    StoreOptions {
        trusted: true,
        ..StoreOptions::default()
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    to_f64(n) / elapsed.as_secs_f64()
}

#[expect(
    clippy::cast_precision_loss,
    reason = "event counts are far below 2^52"
)]
fn to_f64(n: usize) -> f64 {
    n as f64
}

/// The log the scans walk: the events appended trusted in batches of 5k.
fn batched_append(dir: &Path, events: &[Event]) -> Store {
    let store = Store::open(dir, trusted()).unwrap();
    for chunk in events.chunks(BATCH) {
        for outcome in store.append_batch(chunk).unwrap() {
            outcome.unwrap();
        }
    }
    assert_eq!(store.head(), events.len() as u64);
    store
}

/// Raw heed APPEND puts of the same encoded records, one durable commit per `batch`.
fn raw_append(dir: &Path, prepared: &[PreparedEvent], batch: usize) -> f64 {
    let mut raw = RawLog::create(dir, 1 << 34).unwrap();
    let started = Instant::now();
    for chunk in prepared.chunks(batch) {
        raw.append(chunk).unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(raw.len(), prepared.len() as u64);
    rate(prepared.len(), elapsed)
}

/// (b') `threads` threads, each appending its share one event at a time (group commit).
/// Returns the rate and the average number of events per commit.
fn group_commit(dir: &Path, events: &[Event], threads: usize) -> (f64, f64) {
    struct Commits(AtomicUsize);
    impl CommitObserver for Commits {
        fn on_commit(&self, _: &[Committed<'_>]) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let store = Store::open(dir, trusted()).unwrap();
    let commits = Arc::new(Commits(AtomicUsize::new(0)));
    store.add_observer(commits.clone());
    let per_thread = events.len().div_ceil(threads);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mine in events.chunks(per_thread) {
            let store = store.clone();
            scope.spawn(move || {
                for event in mine {
                    store.append(event).unwrap();
                }
            });
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(store.head(), events.len() as u64);
    let commits = commits.0.load(Ordering::Relaxed).max(1);
    (
        rate(events.len(), elapsed),
        to_f64(events.len()) / to_f64(commits),
    )
}

/// (c') Verified (not trusted) `append_batch` in batches of 5k from one caller: each
/// call verifies on every core, then waits for its commit.
fn verified_append(dir: &Path, events: &[Event]) -> f64 {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        for outcome in store.append_batch(chunk).unwrap() {
            outcome.unwrap();
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(store.head(), events.len() as u64);
    rate(events.len(), elapsed)
}

/// Schnorr verification alone, on 2 threads.
fn verify_rate(events: &[Event]) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in events.chunks(events.len().div_ceil(VERIFY_THREADS)) {
            scope.spawn(move || assert!(part.iter().all(Event::verify_signature)));
        }
    });
    rate(events.len(), started.elapsed())
}

/// (d) Full-log scans, best of `HIGHWATER_BENCH_SCAN_ROUNDS` (default 3) each,
/// alternating: the store's validated `scan`, its `raw_scan` (a cursor walk that reads
/// one byte and the length of each value), and the same cursor walk loading every cache
/// line of every value. Returns the three rates.
fn scan_rates(store: &Store, n: usize) -> (f64, f64, f64) {
    let mut best = [Duration::MAX; 3];
    for _ in 0..env_usize("HIGHWATER_BENCH_SCAN_ROUNDS", 3) {
        let started = Instant::now();
        let mut seen = 0usize;
        let mut touched = 0usize;
        store
            .scan(1, |_, event| {
                seen += 1;
                touched += usize::from(event.kind()) + event.content().len();
                ControlFlow::Continue(())
            })
            .unwrap();
        best[0] = best[0].min(started.elapsed());
        assert_eq!(seen, n);
        std::hint::black_box(touched);

        let started = Instant::now();
        let (records, bytes) = store.raw_scan().unwrap();
        best[1] = best[1].min(started.elapsed());
        assert_eq!(records, n as u64);
        std::hint::black_box(bytes);

        let started = Instant::now();
        let mut sum = 0u64;
        let seen = store
            .raw_scan_with(|value| {
                // One load per cache line: the memory traffic of reading the whole value.
                sum = value
                    .iter()
                    .step_by(64)
                    .chain(value.last())
                    .fold(sum, |acc, &b| acc.wrapping_add(u64::from(b)));
            })
            .unwrap();
        best[2] = best[2].min(started.elapsed());
        assert_eq!(seen, n as u64);
        std::hint::black_box(sum);
    }
    (rate(n, best[0]), rate(n, best[1]), rate(n, best[2]))
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| {:<48} | {:>12} | {:<8} | {:>12} | {:>7} | {:>6} | {:<3} |",
        "benchmark", "value", "unit", "baseline", "ratio", "goal", "met"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|{}|",
        "-".repeat(50),
        "-".repeat(14),
        "-".repeat(10),
        "-".repeat(14),
        "-".repeat(9),
        "-".repeat(8),
        "-".repeat(5)
    );
    for row in rows {
        let ratio = row.value / row.baseline;
        let (goal, met) = match row.goal {
            Some(goal) => (format!("{goal}x"), if ratio >= goal { "yes" } else { "no" }),
            None => ("-".to_owned(), "-"),
        };
        println!(
            "| {:<48} | {:>12.0} | {:<8} | {:>12.0} | {:>6.2}x | {:>6} | {:<3} |",
            row.name, row.value, row.unit, row.baseline, ratio, goal, met
        );
    }
}
