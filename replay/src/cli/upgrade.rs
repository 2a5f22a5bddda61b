//! `highwater upgrade`: converts a database of an older storage format to the current
//! one, in one atomic LMDB transaction (a kill or crash leaves it as it was).

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use highwater_store::UpgradeOutcome;

use super::{Global, progress};

#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    /// Test hook: after this many records, say so on stderr and wait for a line on
    /// stdin before going on (the crash test kills the upgrade there).
    #[arg(long, hide = true, value_name = "RECORDS")]
    pause_after: Option<u64>,
}

pub(crate) fn run(global: &Global, args: &UpgradeArgs) -> Result<ExitCode> {
    let db = &global.db;
    let terminal = std::io::stderr().is_terminal();
    let bar = progress::bar(0, "records");
    bar.set_message("upgrading");
    let mut paused = false;
    let mut next_line = 0u64;
    let outcome = highwater_store::upgrade(db, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        // Off a terminal the bar is hidden: a line per tenth instead.
        if !terminal && done >= next_line {
            eprintln!("upgrading: {done} of {total} records");
            next_line = done + (total / 10).max(1);
        }
        if let Some(limit) = args.pause_after
            && !paused
            && done >= limit
            && done < total
        {
            paused = true;
            eprintln!("upgrade paused after {done} of {total} records");
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
        }
    });
    bar.finish_and_clear();
    match outcome.with_context(|| format!("upgrading {}", db.display()))? {
        UpgradeOutcome::AlreadyCurrent { version } => {
            println!(
                "{} is already current (format version {version}); nothing to do",
                db.display()
            );
        }
        UpgradeOutcome::Upgraded {
            from,
            to,
            events,
            checkpoints,
        } => {
            println!(
                "upgraded {} from format version {from} to {to}: {events} records rewritten, {checkpoints} checkpoints kept",
                db.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
