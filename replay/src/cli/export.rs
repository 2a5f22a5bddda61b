//! `highwater export`: events as JSONL, in log order.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::{Global, db, progress};

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Export only this group's events.
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    /// Output file, or `-` for stdout.
    #[arg(default_value = "-")]
    file: PathBuf,
}

pub(crate) fn run(global: &Global, args: &ExportArgs) -> Result<ExitCode> {
    let store = db::open_existing(global)?;
    // Before creating the output, which an unknown group must not leave behind empty.
    let group = match &args.group {
        Some(g) => match store.group(g) {
            Some(info) => Some(info),
            None => bail!("group {g:?} has no events in this database"),
        },
        None => None,
    };
    let mut out: Box<dyn Write> = if args.file.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(
            std::fs::File::create(&args.file)
                .with_context(|| format!("creating {}", args.file.display()))?,
        ))
    };
    let total = group
        .as_ref()
        .map_or_else(|| store.head(), |info| info.count);
    let bar = progress::bar(total, "events");
    bar.set_message("exporting");
    let mut written = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    let mut emit = |seq: u64, event: highwater_store::EventRef<'_>| {
        let line = event.to_event(seq).map(|e| e.as_json());
        match line
            .map_err(anyhow::Error::from)
            .and_then(|l| writeln!(out, "{l}").map_err(anyhow::Error::from))
        {
            Ok(()) => {
                written += 1;
                if written.is_multiple_of(4_096) {
                    bar.set_position(written);
                }
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure = Some(e.context(format!("exporting event {seq}")));
                ControlFlow::Break(())
            }
        }
    };
    match &group {
        Some(info) => {
            store.scan_group(info.no, 0, |_| true, &mut emit)?;
        }
        None => store.scan(1, &mut emit)?,
    }
    if let Some(e) = failure {
        // A reader that closed the pipe (`highwater export - | head`) took what it
        // wanted; that is not a failed export.
        let closed = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        return if closed {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(e)
        };
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("flushing the export")?,
    }
    bar.finish_and_clear();
    if let Some(key) = db::relay_key(&store)? {
        eprintln!(
            "exported {written} events; relay key {} (pass it as --relay-pubkey when importing)",
            key.to_hex()
        );
    } else {
        eprintln!("exported {written} events");
    }
    Ok(ExitCode::SUCCESS)
}
