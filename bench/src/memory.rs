//! The memory row: resident memory of 1M memberships, loaded in all four projections.
//!
//! The measurement runs in a child process (this binary, `bench --memory-probe DIR`)
//! so that nothing the benchmark allocated before — freed but still resident in the
//! allocator — hides or inflates what loading costs.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use nostr::prelude::PublicKey;
use serde::{Deserialize, Serialize};

use super::import::{self, Meter};
use super::progress::say;
use super::reads::{self, read_only};
use super::workload::roster_events;

/// Groups, and memberships per group, of the synthetic roster.
pub(super) const ROSTER_GROUPS: usize = 1_000;
pub(super) const ROSTER_MEMBERS: usize = 1_000;

/// What the probe reports.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Probe {
    /// Members counted across all groups after loading.
    pub(super) members: u64,
    /// Anonymous resident memory (heap) in KiB before opening and after loading.
    pub(super) anon_before: u64,
    pub(super) anon_after: u64,
    /// Total resident memory (heap plus mapped file pages) in KiB, same moments.
    pub(super) rss_before: u64,
    pub(super) rss_after: u64,
    /// Seconds loading took.
    pub(super) load_secs: f64,
}

impl Probe {
    /// Heap growth in MB (10^6 bytes).
    pub(super) fn anon_mb(&self) -> f64 {
        import::to_f64(self.anon_after.saturating_sub(self.anon_before)) * 1024.0 / 1e6
    }

    pub(super) fn rss_mb(&self) -> f64 {
        import::to_f64(self.rss_after.saturating_sub(self.rss_before)) * 1024.0 / 1e6
    }
}

/// Builds the roster log in `dir` and runs the probe on it in a child process.
pub(super) fn measure(dir: &Path, seed: u64) -> Result<Probe> {
    let (events, _) = roster_events(seed, ROSTER_GROUPS, ROSTER_MEMBERS)?;
    {
        let store = highwater_store::Store::open(dir, import::trusted())?;
        let mut meter = Meter::default();
        let started = std::time::Instant::now();
        import::import(&store, &events)?;
        meter.add(events.len(), started.elapsed());
        say(format_args!(
            "  roster: {} events imported ({:.0}/s)",
            events.len(),
            meter.rate()
        ));
    }
    drop(events);
    let exe = std::env::current_exe().context("finding this executable")?;
    let output = Command::new(exe)
        .arg("bench")
        .arg("--memory-probe")
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the memory probe")?;
    if !output.status.success() {
        bail!("the memory probe failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .with_context(|| format!("reading the memory probe's answer {line:?}"))
}

/// The child's side: open `dir`, load every group in every projection, count the
/// members, and print a [`Probe`] as JSON.
pub(super) fn probe(dir: &Path) -> Result<()> {
    let (anon_before, rss_before) = resident()?;
    let started = std::time::Instant::now();
    let db = reads::open(dir, PublicKey::from_byte_array([0; 32]), read_only())?;
    db.engine.warm_up(1, None).wait();
    let mut members = 0u64;
    for group in db.store.groups() {
        members += db.groups.member_count(&group.name)? as u64;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let (anon_after, rss_after) = resident()?;
    let probe = Probe {
        members,
        anon_before,
        anon_after,
        rss_before,
        rss_after,
        load_secs,
    };
    println!("{}", serde_json::to_string(&probe)?);
    drop(db);
    Ok(())
}

/// (`RssAnon`, `VmRSS`) of this process in KiB, from `/proc/self/status`.
fn resident() -> Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (the memory row needs Linux)")?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/self/status"))
    };
    Ok((field("RssAnon:")?, field("VmRSS:")?))
}
