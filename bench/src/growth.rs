//! The trusted import rate as the log grows (its fifth tenth against its first), and
//! diagnostics of what format 2 changed on the read side — the scan that skips records
//! by their header, and CRC-32C against format 1's CRC-32.
//!
//! The growth pass imports the whole workload again, trusted, into a fresh store of its
//! own, the way the import row does (large batches, several in flight), and times each
//! tenth of the log separately (every tenth is printed as progress). At 10M events
//! (`--events 10000000 --growth-only`) the row is the 5th million against the 1st.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use highwater_store::Store;

use super::import::{self, Meter, to_f64};
use super::progress::say;
use super::report::{Goal, Row, number};
use super::workload::Workload;

/// The row's name, as `.ci/bench-smoke` checks it.
pub(super) const ROW_NAME: &str = "trusted import rate, 5th tenth vs 1st tenth of the log";

/// The tenth of the log the row compares with the first (0-based).
const COMPARED: usize = 4;

/// Imports the workload into a fresh trusted store at `work/growth`, timing each tenth.
pub(super) fn growth_row(work: &Path, workload: &Workload) -> Result<Row> {
    let dir = work.join("growth");
    say(format_args!(
        "import rate as the log grows: {} events, trusted, into a fresh store",
        workload.events
    ));
    let store = Store::open(&dir, import::trusted())?;
    let total = workload.events.max(1);
    let mut tenths = [Meter::default(); 10];
    let mut done = 0u64;
    for window in workload.windows(workload.events)? {
        let mut window = &window?[..];
        // Split at tenth boundaries, so every event is timed in its own tenth.
        while !window.is_empty() {
            let tenth = usize::try_from(done * 10 / total).unwrap_or(9).min(9);
            let boundary = (total * (tenth as u64 + 1)).div_ceil(10);
            let take = usize::try_from(boundary.saturating_sub(done))
                .unwrap_or(usize::MAX)
                .clamp(1, window.len());
            let (part, rest) = window.split_at(take);
            let started = Instant::now();
            import::import(&store, part)?;
            tenths[tenth].add(part.len(), started.elapsed());
            done += part.len() as u64;
            window = rest;
        }
    }
    for (n, tenth) in tenths.iter().enumerate() {
        say(format_args!(
            "  tenth {} (events {}–{}): {:.0} events/s",
            n + 1,
            (total * n as u64).div_ceil(10),
            (total * (n as u64 + 1)).div_ceil(10),
            tenth.rate()
        ));
    }
    diagnostics(&store)?;
    drop(store);
    std::fs::remove_dir_all(&dir).context("removing the growth store")?;
    let (first, compared) = (tenths[0], tenths[COMPARED]);
    if first.events == 0 || compared.events == 0 {
        bail!("the workload is too small to time its first and fifth tenth");
    }
    Ok(Row::new(
        format!(
            "{ROW_NAME} ({} events, {} and {} timed)",
            number(to_f64(total)),
            number(to_f64(compared.events)),
            number(to_f64(first.events))
        ),
        compared.rate(),
        "events/s",
        Goal::RatioAtLeast(0.7),
    )
    .against("the same import, first tenth of the log", first.rate()))
}

/// Progress lines only: a full scan against one that skips all but the moderation
/// kinds by header, and the checksum of every record body, CRC-32C against CRC-32.
fn diagnostics(store: &Store) -> Result<()> {
    let head = store.head();
    let moderation =
        |kind: u16| (9_000..=9_022).contains(&kind) || (39_000..=39_003).contains(&kind);
    let mut best = (f64::MAX, f64::MAX, 0u64);
    for _ in 0..3 {
        let started = Instant::now();
        let mut all = 0u64;
        store.scan(1, |_, event| {
            all += u64::from(event.kind());
            ControlFlow::Continue(())
        })?;
        let full = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut kept = 0u64;
        store.scan_kinds(1, u64::MAX, moderation, |_, _, _| {
            kept += 1;
            ControlFlow::Continue(())
        })?;
        let skipping = started.elapsed().as_secs_f64();
        std::hint::black_box(all);
        best = (best.0.min(full), best.1.min(skipping), kept);
    }
    say(format_args!(
        "  scan of {head} records: all validated {:.0} ms; moderation kinds only ({} records, the rest skipped by header) {:.0} ms",
        best.0 * 1e3,
        best.2,
        best.1 * 1e3
    ));
    let (bytes, crc32c, crc32) = store.checksum_times()?;
    let rate = |d: std::time::Duration| to_f64(bytes) / d.as_secs_f64().max(1e-9) / 1e9;
    say(format_args!(
        "  record bodies, {:.0} MB: CRC-32C {:.1} GB/s (format 2), CRC-32 (crc32fast, format 1) {:.1} GB/s",
        to_f64(bytes) / 1e6,
        rate(crc32c),
        rate(crc32)
    ));
    Ok(())
}
