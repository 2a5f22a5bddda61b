//! What one merge of the index tail costs the writer on an existing (large) log: the
//! commit that merges stalls every caller queued behind it for this long.
//!
//! ```text
//! cargo run --release -p highwater-bench --example merge_commit -- DB WORKLOAD.jsonl RECORDS
//! ```
//!
//! Opens `DB` (trusted, a tail bound nothing reaches), merges whatever tail it has,
//! appends the first `RECORDS` events of the workload that are new to it without
//! merging, then times `Store::merge_index_tail` — one durable write transaction that
//! writes their `id_prefix` and `group_index` entries.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use highwater_store::{Store, StoreOptions};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, workload, records] = args.as_slice() else {
        bail!("usage: merge_commit DB WORKLOAD.jsonl RECORDS");
    };
    let records: usize = records.parse().context("RECORDS")?;
    let options = StoreOptions {
        trusted: true,
        index_tail: u64::MAX,
        index_tail_share: 0,
        ..StoreOptions::default()
    };
    let store = Store::open(db, options)?;
    let started = Instant::now();
    let watermark = store.merge_index_tail()?;
    println!(
        "the tail found at open merged up to {watermark}: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let events = highwater_bench::first_events(workload, records)?;
    let mut new = 0;
    for outcome in store.append_batch(&events)? {
        if let highwater_store::AppendOutcome::Appended(_) = outcome? {
            new += 1;
        }
    }
    let started = Instant::now();
    let watermark = store.merge_index_tail()?;
    println!(
        "a merge of {new} new records at {watermark} records: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
