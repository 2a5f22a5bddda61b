//! The phases of a run and the rows they measure, each with its baseline and goal, in
//! the order of [`ROW_NAMES`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use highwater_workload::WorkloadSpec;
use nostr::prelude::{Event, PublicKey};

use super::import::{self, to_f64};
use super::options::Options;
use super::peer::{self, Peer};
use super::policed::PolicedImporter;
use super::progress::{cores, say};
use super::reads::{self, read_only};
use super::report::{Goal, Row, number};
use super::workload::{self, TARGET_EVENTS, TARGET_TAIL, Workload};
use super::written::PAGE;
use super::{freshness, growth, memory};

/// Names of the rows, in order; `.ci/bench-smoke` checks that each one is printed.
pub const ROW_NAMES: [&str; 17] = [
    "bulk import, trusted",
    "bulk import, verified",
    "8 threads × single-event durable appends",
    "full rebuild, 4 NIP-29 projections",
    "full rebuild of membership, vs nostr-lmdb",
    "import, verified, vs nostr-lmdb",
    "cold first read, one group of 1,000 events, p99",
    "hot is_member, median",
    "open + first answer after restart",
    "resident memory for 1M memberships",
    "hot can_write, median",
    "bulk import, verified, with policy",
    "cross-process freshness, p99",
    growth::ROW_NAME,
    "256 callers × single durable appends",
    "full rebuild, 4 NIP-29 projections, all cores vs one thread",
    "pages written per durable commit, 256 callers",
];

/// Everything the phases share.
struct Bench<'a> {
    work: &'a Path,
    workload: Workload,
    /// The target group's events: the head goes into the logs among the workload, the
    /// tail after the checkpoint.
    target: Vec<Event>,
    /// The log every read row uses: the workload imported trusted.
    log: PathBuf,
    seed: u64,
    importer: PolicedImporter,
}

/// Rows measured on the main log with the engine open.
struct EngineRows {
    rebuild: Row,
    parallel: Row,
    membership: Row,
    peer_import: Row,
    hot: Row,
    hot_write: Row,
    /// The group with the most events, and one of its members.
    busiest: (Arc<str>, PublicKey),
}

/// Runs every phase; the rows come back in [`ROW_NAMES`] order.
pub(super) fn measure(args: &Options, work: &Path) -> Result<Vec<Row>> {
    let spec = WorkloadSpec {
        groups: args.groups,
        events: args.events,
        seed: args.seed,
        relay_secret: None,
    };
    let path = args
        .workload
        .clone()
        .unwrap_or_else(|| work.join("workload.jsonl"));
    say(format_args!("generating the workload"));
    if args.growth_only {
        let workload = Workload::prepare(&spec, &path)?;
        return Ok(vec![growth::growth_row(work, &workload)?]);
    }
    let bench = Bench {
        work,
        workload: Workload::prepare(&spec, &path)?,
        target: workload::target_events(args.seed)?,
        log: work.join("log"),
        seed: args.seed,
        importer: args.importer,
    };
    let mut peer = open_peer(work)?;
    let (trusted, verified, pass) = bench.import_rows(peer.as_mut())?;
    let policy = Row::new(
        ROW_NAMES[11],
        pass.policy.rate(),
        "events/s",
        Goal::RatioAtLeast(0.9),
    )
    .against(
        "bulk import, verified, without the policy",
        pass.verified.rate(),
    );
    let peer_sequential = peer_sequential(work, &bench.workload)?;
    let (append, append_many, pages) = bench.append_rows()?;
    let engine = bench.engine_rows(peer.as_ref(), &pass, peer_sequential)?;
    #[cfg(feature = "peer")]
    drop(peer);
    let (cold, first) = bench.read_rows(&engine.busiest)?;
    let memory = bench.memory_row()?;
    let fresh = bench.freshness_row()?;
    let growth = growth::growth_row(work, &bench.workload)?;
    Ok(vec![
        trusted,
        verified,
        append,
        engine.rebuild,
        engine.membership,
        engine.peer_import,
        cold,
        engine.hot,
        first,
        memory,
        engine.hot_write,
        policy,
        fresh,
        growth,
        append_many,
        engine.parallel,
        pages,
    ])
}

impl Bench<'_> {
    fn relay(&self) -> PublicKey {
        self.workload.relay
    }

    /// Bulk import, trusted and verified; the pass also feeds the peer.
    fn import_rows(&self, peer: Option<&mut Peer>) -> Result<(Row, Row, import::ImportPass)> {
        say(format_args!(
            "bulk import: trusted, raw puts, verified, raw verification{}",
            if peer.is_some() { ", nostr-lmdb" } else { "" }
        ));
        let pass = import::import_pass(
            self.work,
            &self.log,
            &self.workload,
            &self.target,
            self.importer,
            peer,
        )?;
        let trusted = Row::new(
            ROW_NAMES[0],
            pass.trusted.rate(),
            "events/s",
            Goal::RatioAtLeast(0.3),
        )
        .against(
            format!(
                "raw heed APPEND puts of the same bytes, {} per commit",
                number(to_f64(import::RAW_COMMIT as u64))
            ),
            pass.raw.rate(),
        );
        let verified = Row::new(
            ROW_NAMES[1],
            pass.verified.rate(),
            "events/s",
            Goal::RatioAtLeast(0.9),
        )
        .against(
            format!("raw Schnorr verification on all {} cores", cores()),
            pass.verify_only.rate(),
        );
        Ok((trusted, verified, pass))
    }

    /// Concurrent single-event durable appends (8 and 256 callers) against one durable
    /// commit per event, and the pages the 256 callers' commits wrote.
    fn append_rows(&self) -> Result<(Row, Row, Row)> {
        say(format_args!(
            "durable appends: 8 and 256 callers one event at a time, and one commit per event"
        ));
        let (rows, single) = import::durable_appends(self.work, &self.workload)?;
        for r in &rows {
            say(format_args!(
                "  {} callers: {:.0} events/s, {:.1} events per group commit{}",
                r.callers,
                r.meter.rate(),
                r.per_commit,
                r.written.map_or_else(String::new, |w| format!(
                    "; per commit {:.1} pages passed to write calls (wchar), {:.1} pages dirtied (write_bytes)",
                    to_f64(w.wchar) / to_f64(PAGE) / to_f64(r.commits.max(1)),
                    to_f64(w.write_bytes) / to_f64(PAGE) / to_f64(r.commits.max(1)),
                ))
            ));
        }
        let row = |r: &import::AppendRow| {
            let (name, goal) = if r.callers == 8 {
                (ROW_NAMES[2], 4.0)
            } else {
                (ROW_NAMES[14], 50.0)
            };
            Row::new(
                format!(
                    "{name} (trusted; {} events, {:.1} per commit; baseline {})",
                    r.meter.events, r.per_commit, single.events
                ),
                r.meter.rate(),
                "events/s",
                Goal::RatioAtLeast(goal),
            )
            .against("one durable commit per event (raw heed)", single.rate())
        };
        let (Some(eight), Some(many)) = (
            rows.iter().find(|r| r.callers == 8),
            rows.iter().find(|r| r.callers == 256),
        ) else {
            bail!("the durable-append rows were not measured");
        };
        let pages = match many.written {
            Some(written) => {
                let pages = to_f64(written.wchar) / to_f64(PAGE);
                Row::new(
                    format!(
                        "{} (wchar of /proc/self/io around the row's appends / 4,096: {} commits, {:.2} pages per event)",
                        ROW_NAMES[16],
                        many.commits,
                        pages / to_f64(many.meter.events.max(1))
                    ),
                    pages / to_f64(many.commits.max(1)),
                    "pages",
                    Goal::Reported,
                )
            }
            None => Row::skipped(
                ROW_NAMES[16],
                "pages",
                "-",
                Goal::Reported,
                "skipped: /proc/self/io cannot be read here",
            ),
        };
        Ok((row(eight), row(many), pages))
    }

    /// Full rebuilds, the membership rebuild and the import against the peer, and the
    /// hot `is_member`, all on the main log.
    fn engine_rows(
        &self,
        peer: Option<&Peer>,
        pass: &import::ImportPass,
        peer_sequential: Option<import::Meter>,
    ) -> Result<EngineRows> {
        say(format_args!("full rebuilds and a raw scan"));
        let db = reads::open(&self.log, self.relay(), read_only())?;
        let rebuilds = reads::rebuilds(&db)?;
        let (rebuild, parallel) = rebuild_rows(&rebuilds);

        let largest = reads::largest_groups(&db.store);
        let mut members = 0u64;
        for group in &largest {
            members += db.groups.member_count(group)? as u64;
        }
        let membership_baseline =
            "nostr-lmdb: per-group queries (kinds 9000/9001/9002/9007/9008, #h) + fold";
        let membership = match peer.map(|p| peer_membership(p, &largest)).transpose()? {
            Some((time, peer_members, folded)) => {
                say(format_args!(
                    "  membership: highwater {members} members in {:.2} s; nostr-lmdb {peer_members} members from {folded} events in {:.2} s",
                    rebuilds.membership.time.as_secs_f64(),
                    time.as_secs_f64()
                ));
                Row::new(
                    ROW_NAMES[4],
                    rebuilds.membership.time.as_secs_f64(),
                    "s",
                    Goal::FasterBy(10.0),
                )
                .against(membership_baseline, time.as_secs_f64())
            }
            None => Row::skipped(
                ROW_NAMES[4],
                "s",
                membership_baseline,
                Goal::FasterBy(10.0),
                peer::SKIPPED,
            ),
        };

        let peer_import_baseline = format!(
            "nostr-lmdb verify + save_event, better of sequential (first {} events) and {} concurrent (first {} events)",
            peer::SEQUENTIAL,
            peer::CONCURRENCY,
            number(to_f64(peer::TIMED.min(self.workload.events)))
        );
        let peer_import = match peer_sequential {
            Some(sequential) => {
                say(format_args!(
                    "  nostr-lmdb import: sequential {:.0}/s, {} concurrent {:.0}/s over the first {} events",
                    sequential.rate(),
                    peer::CONCURRENCY,
                    pass.peer.rate(),
                    pass.peer.events
                ));
                Row::new(
                    ROW_NAMES[5],
                    pass.verified.rate(),
                    "events/s",
                    Goal::RatioAtLeast(20.0),
                )
                .against(
                    peer_import_baseline,
                    sequential.rate().max(pass.peer.rate()),
                )
            }
            None => Row::skipped(
                ROW_NAMES[5],
                "events/s",
                peer_import_baseline,
                Goal::RatioAtLeast(20.0),
                peer::SKIPPED,
            ),
        };

        say(format_args!("hot is_member"));
        let (median, hits) = reads::hot_is_member(&db)?;
        say(format_args!("  {median:.0} ns median, {hits} hits"));
        let hot = Row::new(ROW_NAMES[7], median, "ns", Goal::AtMost(60.0));
        say(format_args!("hot can_write"));
        let (median, allowed) = reads::hot_can_write(&db)?;
        say(format_args!("  {median:.0} ns median, {allowed} allowed"));
        let hot_write = Row::new(ROW_NAMES[10], median, "ns", Goal::AtMost(100.0));
        let busiest = largest.first().cloned().context("the log has no group")?;
        let member = db
            .groups
            .members(&busiest)?
            .first()
            .copied()
            .unwrap_or(PublicKey::from_byte_array([0; 32]));
        Ok(EngineRows {
            rebuild,
            parallel,
            membership,
            peer_import,
            hot,
            hot_write,
            busiest: (busiest, member),
        })
    }

    /// From another process's acknowledged append to this process's first answer that
    /// includes it.
    fn freshness_row(&self) -> Result<Row> {
        say(format_args!("cross-process freshness"));
        let dir = self.work.join("freshness");
        let f = freshness::measure(&dir)?;
        if f.max_reads > 1 {
            bail!(
                "an answer after another process's acknowledged append needed {} reads",
                f.max_reads
            );
        }
        Ok(Row::new(
            format!(
                "{} ({} appends by another process, p50 {:.0} µs)",
                ROW_NAMES[12],
                f.events,
                f.p50.as_secs_f64() * 1e6
            ),
            f.p99.as_secs_f64() * 1e6,
            "µs",
            Goal::AtMost(1_000.0),
        ))
    }

    /// The cold first read at two log sizes, and the first answer after a restart.
    fn read_rows(&self, (busiest, member): &(Arc<str>, PublicKey)) -> Result<(Row, Row)> {
        let (_, tail) = self.target.split_at(TARGET_EVENTS - TARGET_TAIL);
        let events = self.workload.events;
        let small = (events / 10).max(1);
        say(format_args!(
            "cold first read: the target group's tail, a second log of {small} events"
        ));
        reads::append_tail(&self.log, tail)?;
        let small_dir = self.work.join("cold-small");
        reads::build_cold_log(&small_dir, &self.workload, small, &self.target)?;
        let creator = self.target[0].pubkey;
        let times = reads::cold_reads(&[&self.log, &small_dir], self.relay(), &creator)?;
        std::fs::remove_dir_all(&small_dir).context("removing the small log")?;
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        for (times, size) in times.iter().zip([events, small]) {
            let q = |q| micros(reads::quantile(times, q));
            say(format_args!(
                "  log of {size} events: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                q(0.5),
                q(0.9),
                q(0.99),
                q(1.0)
            ));
        }
        let cold = Row::new(
            format!(
                "{} (log of {} events)",
                ROW_NAMES[6],
                number(to_f64(events))
            ),
            micros(reads::quantile(&times[0], 0.99)),
            "µs",
            Goal::RatioAtMost(1.5),
        )
        .against(
            format!(
                "same at 1/10 of the log size ({} events)",
                number(to_f64(small))
            ),
            micros(reads::quantile(&times[1], 0.99)),
        );

        say(format_args!("open + first answer after restart"));
        let (checkpointed, replayed) =
            reads::first_answer(&self.log, self.relay(), busiest, member)?;
        let first = Row::new(
            ROW_NAMES[8],
            checkpointed.as_secs_f64() * 1e3,
            "ms",
            Goal::FasterBy(200.0),
        )
        .against(
            "open + full replay of all 4 projections (Engine::rebuild) + first answer",
            replayed.as_secs_f64() * 1e3,
        );
        Ok((cold, first))
    }

    /// Resident memory of 1M memberships, measured in a child process.
    fn memory_row(&self) -> Result<Row> {
        let expected = memory::ROSTER_GROUPS * memory::ROSTER_MEMBERS;
        say(format_args!(
            "memory of {expected} memberships (in a child process)"
        ));
        let probe = memory::measure(&self.work.join("roster"), self.seed)?;
        say(format_args!(
            "  {} members loaded in {:.2} s: heap +{:.1} MB, resident (heap + mapped pages) +{:.1} MB",
            probe.members,
            probe.load_secs,
            probe.anon_mb(),
            probe.rss_mb()
        ));
        if probe.members != expected as u64 {
            bail!(
                "the roster loaded {} memberships, not {expected}",
                probe.members
            );
        }
        Ok(Row::new(
            format!("{} (heap: growth of RssAnon)", ROW_NAMES[9]),
            probe.anon_mb(),
            "MB",
            Goal::AtMost(30.0),
        ))
    }
}

/// The full rebuild against a raw scan, and on every core against one thread.
fn rebuild_rows(rebuilds: &reads::Rebuilds) -> (Row, Row) {
    let rebuild = Row::new(
        ROW_NAMES[3],
        rebuilds.all.rate(),
        "events/s",
        Goal::RatioAtLeast(0.3),
    )
    .against("raw cursor scan of the log", rebuilds.raw_scan.rate());
    say(format_args!(
        "  4 projections: {:.3} s on {} threads, {:.3} s on one; membership alone: {:.3} s on {} threads, {:.3} s on one; raw scan {:.3} s",
        rebuilds.all.time.as_secs_f64(),
        cores(),
        rebuilds.one_thread.time.as_secs_f64(),
        rebuilds.membership.time.as_secs_f64(),
        cores(),
        rebuilds.membership_one_thread.time.as_secs_f64(),
        rebuilds.raw_scan.time.as_secs_f64(),
    ));
    let parallel = Row::new(
        format!("{} ({} threads)", ROW_NAMES[15], cores()),
        rebuilds.all.rate(),
        "events/s",
        Goal::RatioAtLeast(1.7),
    )
    .against("the same rebuild on one thread", rebuilds.one_thread.rate());
    (rebuild, parallel)
}

#[cfg(feature = "peer")]
fn open_peer(work: &Path) -> Result<Option<Peer>> {
    Ok(Some(Peer::open(&work.join("peer"))?))
}

#[cfg(not(feature = "peer"))]
#[expect(
    clippy::unnecessary_wraps,
    reason = "the same signature as with the peer"
)]
fn open_peer(_: &Path) -> Result<Option<Peer>> {
    Ok(None)
}

/// The sequential nostr-lmdb import of the first events, in its own database.
#[cfg(feature = "peer")]
fn peer_sequential(work: &Path, workload: &Workload) -> Result<Option<import::Meter>> {
    let mut events = Vec::new();
    for window in workload.windows(peer::SEQUENTIAL as u64)? {
        events.extend(window?);
    }
    let dir = work.join("peer-sequential");
    let time = Peer::import_sequential(&dir, &events)?;
    std::fs::remove_dir_all(&dir).context("removing the sequential peer database")?;
    let mut meter = import::Meter::default();
    meter.add(events.len(), time);
    Ok(Some(meter))
}

#[cfg(not(feature = "peer"))]
#[expect(
    clippy::unnecessary_wraps,
    reason = "the same signature as with the peer"
)]
fn peer_sequential(_: &Path, _: &Workload) -> Result<Option<import::Meter>> {
    Ok(None)
}

/// The peer's membership rebuild, best of two (like highwater's).
#[cfg(feature = "peer")]
fn peer_membership(peer: &Peer, groups: &[Arc<str>]) -> Result<(Duration, u64, u64)> {
    let first = peer.membership_rebuild(groups)?;
    let second = peer.membership_rebuild(groups)?;
    Ok(if second.0 < first.0 { second } else { first })
}

#[cfg(not(feature = "peer"))]
fn peer_membership(peer: &Peer, _: &[Arc<str>]) -> Result<(Duration, u64, u64)> {
    match *peer {}
}
