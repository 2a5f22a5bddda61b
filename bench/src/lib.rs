//! `highwater bench`: speed against this machine's own limits and against nostr-lmdb,
//! every baseline measured in the same run, on a generated NIP-29 workload.
//!
//! The workload is generated once into a temporary directory (or reused with
//! `--workload`) and streamed back in windows by every row that needs it, so memory is
//! bounded at any `--events`. Progress goes to stderr; the table (or, with `--json`,
//! one JSON object per row) to stdout. A missed goal is reported in the table, not as a
//! failure: the command fails only when a measurement cannot be made.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod freshness;
mod growth;
mod import;
mod memory;
mod options;
mod peer;
mod plot;
mod policed;
mod progress;
mod reads;
pub mod report;
mod rows;
mod workload;
mod written;

pub use import::{append_concurrently, encode};
pub use options::Options;
pub use policed::{PolicedImport, PolicedImporter};
pub use reads::hot_queries;
pub use rows::ROW_NAMES;

use std::path::Path;

use anyhow::{Context, Result, bail};

use self::progress::{cores, say};

/// The first `limit` events of a JSONL workload file (the examples' input).
///
/// # Errors
///
/// When the file cannot be read or a line is not an event.
pub fn first_events(path: impl AsRef<Path>, limit: usize) -> Result<Vec<nostr::prelude::Event>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).context("the workload")?;
    std::io::BufReader::new(file)
        .lines()
        .take(limit)
        .map(|line| Ok(nostr::prelude::Event::from_json(line?)?))
        .collect()
}

/// Measures every row and prints the table (or JSON lines) to stdout.
///
/// The memory row re-runs the current executable as `bench --memory-probe DIR` in a
/// child process; the executable must answer that with [`memory_probe`] (the
/// `highwater` binary does).
///
/// # Errors
///
/// When a measurement cannot be made: the working directory, the workload, a store or
/// the child process fails. A missed goal is not an error.
pub fn run(args: &Options) -> Result<()> {
    if args.events < 10 {
        bail!("--events must be at least 10");
    }
    progress::start();
    let temp = {
        let mut builder = tempfile::Builder::new();
        builder.prefix("highwater-bench-");
        match &args.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                builder.tempdir_in(dir)
            }
            None => builder.tempdir(),
        }
        .context("creating the working directory")?
    };
    let work = temp.path();
    say(format_args!(
        "highwater bench: {} events, {} groups, seed {}, {} cores, peer {}; working in {}",
        args.events,
        args.groups,
        args.seed,
        cores(),
        if cfg!(feature = "peer") {
            "nostr-lmdb"
        } else {
            "not built"
        },
        work.display()
    ));
    let rows = rows::measure(args, work)?;
    if args.json {
        for row in &rows {
            println!("{}", row.to_json());
        }
    } else {
        println!(
            "highwater bench — {} events, {} groups, seed {}, {} cores",
            args.events,
            args.groups,
            args.seed,
            cores()
        );
        println!();
        print!("{}", report::table(&rows));
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "highwater bench — {} events, {} groups, seed {}: measured vs goal",
            args.events, args.groups, args.seed
        );
        std::fs::write(path, plot::svg(&rows, &title))
            .with_context(|| format!("writing {}", path.display()))?;
        say(format_args!("chart written to {}", path.display()));
    }
    say(format_args!("done"));
    Ok(())
}

/// The child side of the memory row: loads the roster in `dir` and prints what it
/// measured as JSON on stdout, for the parent [`run`] to read.
///
/// # Errors
///
/// When the roster cannot be opened or loaded.
pub fn memory_probe(dir: &Path) -> Result<()> {
    memory::probe(dir)
}

/// The writer process of the cross-process freshness row: appends each event read from
/// stdin and prints `ack SEQ` once it is durable.
///
/// # Errors
///
/// When the database cannot be opened or an event cannot be parsed or appended.
pub fn freshness_writer(dir: &Path) -> Result<()> {
    freshness::writer(dir)
}
