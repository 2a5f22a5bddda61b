//! `highwater compact`: removes expired records (retention) from the log, in bounded
//! transactions; a kill midway leaves every transaction whole, and a re-run finishes.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::{DEFAULT_COMPACT_CHUNK, RetentionPolicy};

use super::{Global, db};

/// What expires: the durations and kinds, shared by `highwater compact` and
/// `highwater relay` (which compacts on an interval with them).
#[derive(Debug, Clone, Args)]
pub(crate) struct RetentionArgs {
    /// Remove records older than this in every group without its own duration
    /// (`30d`, `12h`, `90m`, `3600s`, `2w`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Option<Duration>,
    /// A group's own duration, `GROUP=DURATION` (`never` keeps its records); may be
    /// repeated.
    #[arg(long = "group", value_name = "GROUP=DURATION", value_parser = parse_group)]
    groups: Vec<(String, Duration)>,
    /// Only these kinds expire (each must be a kind no projection folds); by default
    /// every such kind does. May be repeated.
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<u16>,
}

impl RetentionArgs {
    /// The retention policy the flags describe, over `base` (a configuration file's):
    /// `--older-than` replaces its default, `--group` adds to or replaces its groups,
    /// `--kind` replaces its kinds.
    pub(crate) fn policy_over(&self, base: RetentionPolicy) -> RetentionPolicy {
        let mut policy = base;
        if self.older_than.is_some() {
            policy.default = self.older_than;
        }
        policy.per_group.extend(self.groups.iter().cloned());
        if !self.kinds.is_empty() {
            policy.kinds = Some(self.kinds.iter().copied().collect::<BTreeSet<_>>());
        }
        policy
    }
}

#[derive(Debug, Args)]
pub(crate) struct CompactArgs {
    #[command(flatten)]
    retention: RetentionArgs,
    /// Records removed per write transaction.
    #[arg(long, value_name = "RECORDS", default_value_t = DEFAULT_COMPACT_CHUNK)]
    chunk: usize,
    /// Test hook: after this many transactions, say so on stderr and wait for a line on
    /// stdin before going on (the crash test kills the compaction there).
    #[arg(long, hide = true, value_name = "TRANSACTIONS")]
    pause_after: Option<u64>,
}

impl CompactArgs {
    /// The retention policy the flags describe.
    pub(crate) fn policy(&self) -> RetentionPolicy {
        self.retention.policy_over(RetentionPolicy::default())
    }
}

/// A duration as `N` followed by `s`, `m`, `h`, `d` or `w`; `never` is forever.
pub(crate) fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text == "never" {
        return Ok(Duration::MAX);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .with_context(|| format!("{text:?}: a duration needs a unit (s, m, h, d, w)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("{text:?}: not a number of {unit}"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("{text:?}: unknown unit {unit:?} (use s, m, h, d or w)"),
    };
    let seconds = number
        .checked_mul(seconds)
        .with_context(|| format!("{text:?}: too long"))?;
    Ok(Duration::from_secs(seconds))
}

pub(crate) fn parse_group(text: &str) -> Result<(String, Duration)> {
    let (group, duration) = text
        .split_once('=')
        .with_context(|| format!("{text:?}: expected GROUP=DURATION"))?;
    if group.is_empty() {
        bail!("{text:?}: the group id is empty");
    }
    Ok((group.to_owned(), parse_duration(duration)?))
}

pub(crate) fn run(global: &Global, args: &CompactArgs) -> Result<ExitCode> {
    let policy = args.policy();
    if policy.is_empty() {
        bail!("nothing to compact: give --older-than or --group GROUP=DURATION");
    }
    let db = db::open_writable(global)?;
    let mut paused = false;
    let report = db
        .engine
        .compact_with(&policy, SystemTime::now(), args.chunk, |so_far| {
            if let Some(limit) = args.pause_after
                && !paused
                && so_far.transactions >= limit
            {
                paused = true;
                eprintln!(
                    "compact paused after {} transactions ({} records removed)",
                    so_far.transactions, so_far.removed
                );
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
            }
            ControlFlow::Continue(())
        })
        .with_context(|| format!("compacting {}", global.db.display()))?;
    println!(
        "removed {} expired records of {} read in {} transactions ({} kept as the last record of their group or the log); {} records remain",
        report.removed,
        report.scanned,
        report.transactions,
        report.kept_heads,
        db.store.event_count()?
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_and_groups_an_equals_sign() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_hours(30 * 24)
        );
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_mins(90));
        assert_eq!(parse_duration("2w").unwrap(), Duration::from_hours(14 * 24));
        assert_eq!(parse_duration("never").unwrap(), Duration::MAX);
        for bad in ["30", "d", "1y", "-1d", "99999999999999999999w", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_group("pizza=7d").unwrap(),
            ("pizza".to_owned(), Duration::from_hours(7 * 24))
        );
        assert!(parse_group("=7d").is_err());
        assert!(parse_group("pizza").is_err());
    }
}
