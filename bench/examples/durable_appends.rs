//! The "8 threads × single-event durable appends" and "256 callers" rows of
//! `highwater bench`, alone, so a profiler can see where a commit of a few single-event
//! callers goes.
//!
//! ```text
//! cargo run --release -p highwater-bench --example durable_appends -- WORKLOAD.jsonl DIR [CALLERS] [EVENTS] [COMMIT_WAIT_US]
//! ```
//!
//! Creates a fresh trusted store in `DIR/store` (removed first), then `CALLERS` threads
//! append their share of the first `EVENTS` events of the workload one at a time, each
//! waiting for its event to be durable. Prints events per second and events per commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use highwater_store::{CommitObserver, Committed, RawLog, Store, StoreOptions};
use nostr::prelude::Event;

#[derive(Default)]
struct Commits(AtomicUsize);

impl CommitObserver for Commits {
    fn on_commit(&self, _: &[Committed<'_>]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, dir, rest @ ..] = args.as_slice() else {
        bail!("usage: durable_appends WORKLOAD.jsonl DIR [CALLERS] [EVENTS] [COMMIT_WAIT_US]");
    };
    let callers: usize = rest.first().map_or(Ok(8), |s| s.parse())?;
    let count: usize = rest.get(1).map_or(Ok(4_000), |s| s.parse())?;
    let wait = rest
        .get(2)
        .map(|s| s.parse().map(Duration::from_micros))
        .transpose()?;
    let events = highwater_bench::first_events(workload, count)?;
    raw_baseline(dir, &events[..events.len().min(500)])?;
    let path = std::path::Path::new(dir).join("store");
    let _ = std::fs::remove_dir_all(&path);
    let mut options = StoreOptions {
        trusted: true,
        ..StoreOptions::default()
    };
    if let Some(wait) = wait {
        options.commit_wait = wait;
    }
    let store = Store::open(&path, options)?;
    let commits = Arc::new(Commits::default());
    store.add_observer(commits.clone());
    let started = Instant::now();
    highwater_bench::append_concurrently(&store, &events, callers)?;
    let elapsed = started.elapsed();
    let commits = commits.0.load(Ordering::Relaxed).max(1);
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let (rate, per_commit) = (
        events.len() as f64 / elapsed.as_secs_f64(),
        events.len() as f64 / commits as f64,
    );
    println!(
        "{callers} callers: {} events in {:.1} ms, {rate:.0} events/s, {per_commit:.1} per commit ({:.0} µs per commit)",
        events.len(),
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / commits as f64
    );
    Ok(())
}

/// One durable raw commit per event, as the bench's baseline.
fn raw_baseline(dir: &str, events: &[Event]) -> Result<()> {
    let dir = std::path::Path::new(dir);
    let (scratch, raw) = (dir.join("scratch"), dir.join("raw"));
    for path in [&scratch, &raw] {
        let _ = std::fs::remove_dir_all(path);
    }
    let records =
        highwater_bench::encode(&Store::open(&scratch, StoreOptions::default())?, events)?;
    std::fs::create_dir_all(&raw)?;
    let mut log = RawLog::create(&raw, 1 << 30)?;
    let started = Instant::now();
    for record in records.chunks(1) {
        log.append(record)?;
    }
    let elapsed = started.elapsed();
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = records.len() as f64 / elapsed.as_secs_f64();
    println!(
        "raw: {} durable commits of one event, {rate:.0} events/s ({:.0} µs per commit)",
        records.len(),
        elapsed.as_secs_f64() * 1e6 / records.len() as f64
    );
    Ok(())
}
