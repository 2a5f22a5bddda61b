//! What one group commit of single-event callers writes: bytes handed to the kernel per
//! commit (this process's `/proc/self/io` `wchar`, in 4 KiB pages), events per second,
//! events per commit, against one durable raw commit per event.
//!
//! ```text
//! cargo run --release -p highwater-store --example pages_per_commit -- DIR [PREFILL] [EVENTS] [CALLERS,...]
//! ```
//!
//! For each number of callers (default `8,256`): a fresh trusted store in `DIR/store`
//! (removed first) is filled with `PREFILL` events (default 200,000) in 64 groups
//! through `append_batch`, so that the id index is as large as a real log's; then
//! `CALLERS` threads append their share of `EVENTS` more (default 8,192) one at a time,
//! each waiting for its event to be durable. LMDB writes every dirty page with
//! `pwrite`/`writev` and the meta page once per commit, so the `wchar` delta over the
//! measured appends, divided by 4096 and by the commits, is the pages a commit writes
//! (the merges of the index tail, when the format has them, included).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use highwater_store::{CommitObserver, Committed, Prepared, RawLog, Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

#[derive(Default)]
struct Commits(AtomicUsize);

impl CommitObserver for Commits {
    fn on_commit(&self, _: &[Committed<'_>]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        return Err("usage: pages_per_commit DIR [PREFILL] [EVENTS] [CALLERS,...]".into());
    };
    let dir = std::path::Path::new(dir);
    let prefill: usize = args.get(1).map_or(Ok(200_000), |s| s.parse())?;
    let count: usize = args.get(2).map_or(Ok(8_192), |s| s.parse())?;
    let callers: Vec<usize> = args
        .get(3)
        .map_or("8,256", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let keys: Vec<Keys> = (0..16).map(|_| Keys::generate()).collect();
    let events: Vec<Event> = (0..prefill + count)
        .map(|i| {
            EventBuilder::new(Kind::from(9u16), format!("message {i}"))
                .tag(Tag::parse(["h", &format!("group-{}", i % 64)]).expect("a tag"))
                .finalize(&keys[i % keys.len()])
                .expect("signing")
        })
        .collect();
    let (old, new) = events.split_at(prefill);
    raw_baseline(dir, &new[..new.len().min(500)])?;
    for &callers in &callers {
        let path = dir.join("store");
        let _ = std::fs::remove_dir_all(&path);
        let options = StoreOptions {
            trusted: true,
            ..StoreOptions::default()
        };
        let store = Store::open(&path, options)?;
        store.append_batch(old)?;
        let commits = Arc::new(Commits::default());
        store.add_observer(commits.clone());
        let before = written()?;
        let started = Instant::now();
        append_concurrently(&store, new, callers)?;
        let elapsed = started.elapsed().as_secs_f64();
        let bytes = written()? - before;
        let commits = commits.0.load(Ordering::Relaxed).max(1);
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        let (rate, per_commit, pages) = (
            new.len() as f64 / elapsed,
            new.len() as f64 / commits as f64,
            bytes as f64 / 4096.0 / commits as f64,
        );
        println!(
            "{callers} callers after {prefill} events: {} events, {rate:.0} events/s, \
             {per_commit:.1} per commit, {pages:.1} pages written per commit ({:.2} per event)",
            new.len(),
            pages / per_commit
        );
        drop(store);
    }
    open_times(&dir.join("store"), old, new)?;
    Ok(())
}

/// How long `Store::open` takes with an empty index tail and with the largest tail a
/// writer leaves (`index_tail` - 1 records, read from the log at open).
fn open_times(path: &std::path::Path, old: &[Event], new: &[Event]) -> Result<(), Failure> {
    let _ = std::fs::remove_dir_all(path);
    let options = StoreOptions {
        trusted: true,
        ..StoreOptions::default()
    };
    let bound = usize::try_from(options.index_tail)? - 1;
    let store = Store::open(path, options.clone())?;
    store.append_batch(old)?;
    store.merge_index_tail()?;
    drop(store);
    let time = |label: &str| -> Result<(), Failure> {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let store = Store::open(path, options.clone())?;
            best = best.min(started.elapsed().as_secs_f64() * 1e3);
            drop(store);
        }
        println!("open with {label}: {best:.1} ms (best of 5)");
        Ok(())
    };
    time("an empty index tail")?;
    let store = Store::open(path, options.clone())?;
    for chunk in new[..bound.min(new.len())].chunks(4_096) {
        store.append_batch(chunk)?;
    }
    let report = store.verify_indexes()?;
    drop(store);
    time(&format!("{} records in the index tail", report.tail))
}

/// Bytes this process has passed to write system calls so far.
fn written() -> Result<u64, Failure> {
    let io = std::fs::read_to_string("/proc/self/io")?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .ok_or("no wchar in /proc/self/io")?
        .trim()
        .parse()
        .map_err(Into::into)
}

fn append_concurrently(store: &Store, events: &[Event], callers: usize) -> Result<(), Failure> {
    let per_thread = events.len().div_ceil(callers).max(1);
    let start = std::sync::Barrier::new(events.chunks(per_thread).count());
    std::thread::scope(|scope| {
        let workers: Vec<_> = events
            .chunks(per_thread)
            .map(|mine| {
                let start = &start;
                scope.spawn(move || -> Result<(), Failure> {
                    start.wait();
                    for e in mine {
                        store.append(e)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "an append thread panicked")?)
    })
}

/// One durable raw commit per event, the rows' baseline.
fn raw_baseline(dir: &std::path::Path, events: &[Event]) -> Result<(), Failure> {
    let (scratch, raw) = (dir.join("scratch"), dir.join("raw"));
    for path in [&scratch, &raw] {
        let _ = std::fs::remove_dir_all(path);
    }
    let store = Store::open(&scratch, StoreOptions::default())?;
    let mut records = Vec::new();
    for event in events {
        if let Prepared::Ready(ready) = store.prepare(event)? {
            records.push(ready);
        }
    }
    std::fs::create_dir_all(&raw)?;
    let mut log = RawLog::create(&raw, 1 << 30)?;
    let started = Instant::now();
    for record in records.chunks(1) {
        log.append(record)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = records.len() as f64 / elapsed;
    println!(
        "raw: {} durable commits of one event, {rate:.0} events/s",
        records.len()
    );
    Ok(())
}
