//! What the index tail costs a process at open: `Store::open` reads every record of the
//! tail from the log (header, body check, validation) into memory, so the bound on the
//! tail (`StoreOptions::index_tail`, `index_tail_share`) is also a bound on open time
//! and on each process's memory.
//!
//! ```text
//! cargo run --release -p highwater-bench --example tail_open -- WORKLOAD.jsonl DIR [TAIL...]
//! ```
//!
//! For each tail size (default 16384 65536 156250): a fresh trusted store in `DIR/store`
//! with that many records of the workload left unmerged, then the median of 9 opens
//! (read-only, as `highwater show` opens) with the tail, and of 9 after
//! `merge_index_tail` (no tail).

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use highwater_store::{Store, StoreOptions};

/// The median milliseconds of 9 read-only opens of `path`.
fn open_ms(path: &Path) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        let store = Store::open(path, StoreOptions::read_only())?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        drop(store);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, dir, rest @ ..] = args.as_slice() else {
        bail!("usage: tail_open WORKLOAD.jsonl DIR [TAIL...]");
    };
    let sizes: Vec<usize> = if rest.is_empty() {
        vec![16_384, 65_536, 156_250]
    } else {
        rest.iter().map(|s| s.parse()).collect::<Result<_, _>>()?
    };
    let most = sizes.iter().copied().max().unwrap_or(0);
    let events = highwater_bench::first_events(workload, most)?;
    let path = Path::new(dir).join("store");
    for &size in &sizes {
        let _ = std::fs::remove_dir_all(&path);
        {
            let store = Store::open(
                &path,
                StoreOptions {
                    trusted: true,
                    index_tail: u64::try_from(size)? + 1,
                    index_tail_share: 0,
                    ..StoreOptions::default()
                },
            )?;
            for result in store.append_batch(&events[..size.min(events.len())])? {
                result?;
            }
        }
        let with_tail = open_ms(&path)?;
        Store::open(&path, StoreOptions::default())?.merge_index_tail()?;
        let without = open_ms(&path)?;
        println!("tail of {size} records: open {with_tail:.1} ms (merged: {without:.2} ms)");
    }
    Ok(())
}
