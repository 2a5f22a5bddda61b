//! `highwater generate`: the deterministic NIP-29 workload, as JSONL.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::progress;

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Number of groups.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) groups: usize,
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: usize,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// The relay's secret key (hex or nsec) to sign its own events with; derived from
    /// the seed if absent. The relay's public key is printed.
    #[arg(long, value_name = "KEY")]
    pub(crate) relay_key: Option<String>,
    /// Output file, or `-` for stdout.
    pub(crate) file: PathBuf,
}

/// Writes the workload to `file`; returns the relay's public key (hex) and the count.
pub(crate) fn write(args: &GenerateArgs) -> Result<(String, usize)> {
    let relay_secret = args
        .relay_key
        .as_deref()
        .map(|k| {
            super::db::parse_secret_key(k)
                .context("--relay-key")
                .map(|k| k.to_secret_bytes())
        })
        .transpose()?;
    let spec = highwater_workload::WorkloadSpec {
        groups: args.groups,
        events: args.events,
        seed: args.seed,
        relay_secret,
    };
    let mut out: Box<dyn Write> = if args.file.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&args.file)
                .with_context(|| format!("creating {}", args.file.display()))?,
        ))
    };
    let bar = progress::bar(args.events as u64, "events");
    bar.set_message("signing");
    let summary =
        highwater_workload::generate(&spec, &|n| bar.set_position(n as u64), &mut |event| {
            writeln!(out, "{}", event.as_json())
        })
        .context("writing the workload")?;
    out.flush().context("flushing the workload")?;
    bar.finish_and_clear();
    Ok((summary.relay_pubkey.to_hex(), args.events))
}

pub(crate) fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let (relay, n) = write(args)?;
    eprintln!("generated {n} events; relay pubkey {relay}");
    if args.file.as_os_str() != "-" {
        println!("relay pubkey {relay}");
    }
    Ok(ExitCode::SUCCESS)
}
