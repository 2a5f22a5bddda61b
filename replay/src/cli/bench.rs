//! `highwater bench`: the arguments, and the importer the harness times in its policy
//! row; the harness itself is the `highwater-bench` crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use highwater_bench::{self as bench, Options, PolicedImport};
use highwater_projections::AccessPolicy;
use highwater_replay::import::{self, Pipeline};
use highwater_store::Store;
use nostr::prelude::Event;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Events in the generated workload.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Groups in the generated workload.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Seed of the workload (the same seed gives the same events).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object per row instead of a table.
    #[arg(long)]
    json: bool,
    /// Where to create the temporary working directory (default: the system's).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Reuse this workload file if it exists (it must come from the same --events,
    /// --groups and --seed), or generate it there and keep it.
    #[arg(long, value_name = "FILE")]
    workload: Option<PathBuf>,
    /// Measure only the row "trusted import rate, 5th tenth vs 1st tenth of the log"
    /// (e.g. with --events 10000000: the 5th million against the 1st, where the other
    /// rows would take hours).
    #[arg(long)]
    growth_only: bool,
    /// Also draw each row against its goal in an SVG chart (a bar per row: the
    /// measured ratio, a line at the goal).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Internal: measure the memory of a loaded roster in DIR (run by the benchmark
    /// itself in a child process).
    #[arg(long, value_name = "DIR", hide = true)]
    memory_probe: Option<PathBuf>,
    /// Internal: append events from stdin to DIR, acknowledging each (the other process
    /// of the cross-process freshness row).
    #[arg(long, value_name = "DIR", hide = true)]
    freshness_writer: Option<PathBuf>,
}

pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.memory_probe {
        bench::memory_probe(dir)?;
    } else if let Some(dir) = &args.freshness_writer {
        bench::freshness_writer(dir)?;
    } else {
        bench::run(&Options {
            events: args.events,
            groups: args.groups,
            seed: args.seed,
            json: args.json,
            dir: args.dir.clone(),
            workload: args.workload.clone(),
            growth_only: args.growth_only,
            plot: args.plot.clone(),
            importer: policed,
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `highwater import`'s ordered pipeline, fed events instead of a file.
struct Policed<'a> {
    store: &'a Store,
    pipeline: Pipeline<'a>,
}

impl PolicedImport for Policed<'_> {
    fn import(&mut self, events: &[Event]) -> Result<u64> {
        let batch = import::Options::default().batch;
        import::import_events(self.store, &mut self.pipeline, events, batch)
    }

    fn forced_commits(&self) -> u64 {
        self.pipeline.flushes
    }
}

fn policed<'a>(
    store: &'a Store,
    policy: &'a AccessPolicy,
    in_flight: usize,
) -> Box<dyn PolicedImport + 'a> {
    Box::new(Policed {
        store,
        pipeline: Pipeline::new(store, Some(policy), in_flight),
    })
}
