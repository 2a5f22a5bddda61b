//! Import rows: bulk import (trusted and verified) against raw heed puts and raw
//! Schnorr verification, and concurrent single-event durable appends against one
//! durable commit per event.
//!
//! One pass over the workload feeds every bulk measurement window by window: each
//! window is parsed once (untimed), then imported by each contender in turn, each
//! timed on its own. Interleaving them spreads the machine's noise evenly.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use highwater_engine::EngineOptions;
use highwater_projections::{AccessPolicy, Policy};
use highwater_store::{
    AppendOutcome, CommitObserver, Committed, Prepared, PreparedEvent, RawLog, Store, StoreOptions,
    Ticket,
};
use nostr::prelude::Event;
use rayon::prelude::*;

use super::peer::{self, Peer};
use super::policed::PolicedImporter;
use super::progress::say;
use super::workload::{TARGET_EVENTS, TARGET_TAIL, Workload};
use super::written::Written;

/// Events validated and submitted together.
pub(super) const BATCH: usize = 16_384;

/// Batches submitted and not yet acknowledged. While the writer commits one batch, the
/// next ones queue up and its group commit takes them together (up to the store's
/// 65,536 events per transaction). Bulk loads want large transactions: in LMDB every
/// commit rewrites each page it touched, and the `ids` index is keyed by random hashes,
/// so a commit touches most of its pages whatever its size — 4,096-event commits
/// write the whole index again every 4,096 events (see BENCHMARKS.md).
pub(super) const IN_FLIGHT: usize = 4;

/// Events per commit of the raw baseline: the store's largest transaction.
pub(super) const RAW_COMMIT: usize = 65_536;

/// Events timed, and how long it took.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Meter {
    pub(super) events: u64,
    pub(super) time: Duration,
}

impl Meter {
    pub(super) fn add(&mut self, events: usize, time: Duration) {
        self.events += events as u64;
        self.time += time;
    }

    /// Events per second.
    pub(super) fn rate(&self) -> f64 {
        to_f64(self.events) / self.time.as_secs_f64().max(1e-9)
    }
}

#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
pub(super) fn to_f64(n: u64) -> f64 {
    n as f64
}

/// A trusted store as `highwater import --trusted` opens one (a bulk load's merges).
pub(super) fn trusted() -> StoreOptions {
    StoreOptions {
        trusted: true,
        index_tail_share: highwater_store::BULK_INDEX_TAIL_SHARE,
        ..StoreOptions::default()
    }
}

/// Counts commits.
#[derive(Debug, Default)]
struct Commits(AtomicUsize);

impl CommitObserver for Commits {
    fn on_commit(&self, _: &[Committed<'_>]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the import pass measured.
#[derive(Debug, Default)]
pub(super) struct ImportPass {
    pub(super) raw: Meter,
    pub(super) trusted: Meter,
    pub(super) verified: Meter,
    /// Verified import through the relay's write policy, as `highwater import` does it.
    pub(super) policy: Meter,
    /// Events the policy refused, and the commits it forced.
    pub(super) policy_refused: u64,
    pub(super) policy_flushes: u64,
    pub(super) verify_only: Meter,
    pub(super) peer: Meter,
    /// Diagnostics: what the trusted import's validation alone costs (id hash, encoding,
    /// duplicate lookup — on all cores, into an empty store), and its commits.
    pub(super) encode: Meter,
    pub(super) trusted_commits: usize,
}

/// Imports the workload (with the target group's first events interleaved) into the
/// trusted store at `log` — the log every later row reads — and, for comparison, into a
/// raw heed table, a verifying store, a bare verification loop and the peer.
pub(super) fn import_pass(
    work: &Path,
    log: &Path,
    workload: &Workload,
    target: &[Event],
    importer: PolicedImporter,
    mut peer: Option<&mut Peer>,
) -> Result<ImportPass> {
    let mut pass = ImportPass::default();
    // The scratch store is never written: it only encodes records for the raw baseline
    // (its duplicate check always finds nothing).
    let scratch = Store::open(work.join("scratch"), trusted())?;
    let mut raw = RawLog::create(&work.join("raw"), 1 << 40)?;
    let store = Store::open(log, trusted())?;
    let commits = Arc::new(Commits::default());
    let observer = store.add_observer(commits.clone());
    let verifying = Store::open(work.join("verified"), StoreOptions::default())?;
    // Verified, through the relay's write policy: the engine folds what the decisions
    // read, as `highwater import` does.
    let policed_db = super::reads::open(
        &work.join("policy"),
        workload.relay,
        EngineOptions::default(),
    )?;
    let policed = policed_db.store.clone();
    let policy = AccessPolicy::new(policed_db.groups.clone(), Policy::default());
    let mut pipeline = importer(&policed, &policy, IN_FLIGHT - 1);
    let head = &target[..TARGET_EVENTS - TARGET_TAIL];
    let total = workload.events + head.len() as u64;
    let mut done = 0u64;
    let mut appended = 0u64;
    let mut last_report = Instant::now();
    for window in workload.with_target(workload.events, head)? {
        let window = window?;

        let started = Instant::now();
        let records = encode(&scratch, &window)?;
        pass.encode.add(records.len(), started.elapsed());
        let started = Instant::now();
        for chunk in records.chunks(RAW_COMMIT) {
            raw.append(chunk)?;
        }
        pass.raw.add(records.len(), started.elapsed());
        drop(records);

        let started = Instant::now();
        appended += import(&store, &window)?;
        pass.trusted.add(window.len(), started.elapsed());

        let started = Instant::now();
        import(&verifying, &window)?;
        pass.verified.add(window.len(), started.elapsed());

        let started = Instant::now();
        pass.policy_refused += pipeline.import(&window)?;
        pass.policy.add(window.len(), started.elapsed());

        let started = Instant::now();
        if !window.par_iter().all(Event::verify_signature) {
            bail!("the workload has an event with a bad signature");
        }
        pass.verify_only.add(window.len(), started.elapsed());

        done += window.len() as u64;
        if let Some(peer) = peer.as_deref_mut() {
            // Last, because the peer takes the window.
            feed_peer(peer, window, &mut pass.peer)?;
        }
        if last_report.elapsed() > Duration::from_secs(10) || done == total {
            last_report = Instant::now();
            say(format_args!(
                "  imported {done}/{total}: trusted {:.0}/s, raw {:.0}/s, verified {:.0}/s, verify {:.0}/s{}",
                pass.trusted.rate(),
                pass.raw.rate(),
                pass.verified.rate(),
                pass.verify_only.rate(),
                if peer.is_some() {
                    format!(", peer {:.0}/s", pass.peer.rate())
                } else {
                    String::new()
                },
            ));
        }
    }
    // The workload may repeat an event: the stores keep one copy, the raw table both.
    if store.head() != appended || verifying.head() != appended || raw.len() != total {
        bail!(
            "the import pass lost events: {} / {} / {} of {appended} / {total}",
            store.head(),
            verifying.head(),
            raw.len()
        );
    }
    if appended < total {
        say(format_args!(
            "  the workload repeats {} event(s); the stores kept one copy",
            total - appended
        ));
    }
    store.remove_observer(observer);
    pass.trusted_commits = commits.0.load(Ordering::Relaxed);
    say(format_args!(
        "  trusted import: {:.0} events per commit; its validation alone (all cores) {:.0}/s",
        to_f64(appended) / to_f64(pass.trusted_commits.max(1) as u64),
        pass.encode.rate()
    ));
    pass.policy_flushes = pipeline.forced_commits();
    say(format_args!(
        "  with the write policy: {} of {} events refused, {} commits forced by state changes",
        pass.policy_refused, total, pass.policy_flushes
    ));
    drop(pipeline);
    drop(policy);
    drop((policed_db, policed));
    drop((scratch, raw, verifying));
    for dir in ["scratch", "raw", "verified", "policy"] {
        std::fs::remove_dir_all(work.join(dir)).with_context(|| format!("removing {dir}"))?;
    }
    Ok(pass)
}

/// Imports a window into the peer. Only its first events are timed (it is slow); of the
/// rest it gets what the membership row queries.
fn feed_peer(peer: &mut Peer, mut window: Vec<Event>, meter: &mut Meter) -> Result<()> {
    let timed_left =
        usize::try_from(peer::TIMED.saturating_sub(meter.events)).unwrap_or(usize::MAX);
    let rest = window.split_off(timed_left.min(window.len()));
    if !window.is_empty() {
        let n = window.len();
        let started = Instant::now();
        peer.import_concurrent(window, peer::CONCURRENCY)?;
        meter.add(n, started.elapsed());
    }
    let rest: Vec<Event> = rest
        .into_iter()
        .filter(|e| peer::MEMBERSHIP_KINDS.contains(&e.kind.as_u16()))
        .collect();
    if !rest.is_empty() {
        peer.import_concurrent(rest, peer::FILL)?;
    }
    Ok(())
}

/// The records the store would write for `events` (for the raw baseline; also the
/// `durable_appends` example's). `scratch` must hold none of them.
///
/// # Errors
///
/// When an event is invalid or already in `scratch`.
pub fn encode(scratch: &Store, events: &[Event]) -> Result<Vec<PreparedEvent>> {
    scratch
        .prepare_all(events)
        .into_iter()
        .map(|p| match p? {
            Prepared::Ready(p) => Ok(p),
            Prepared::Duplicate(seq) => bail!("the scratch store holds event {seq}"),
        })
        .collect()
}

/// Imports `events` the way `highwater import` does — validate a batch on all cores,
/// submit it, validate the next while the writer commits — but with up to [`IN_FLIGHT`]
/// batches queued, so that the writer commits large transactions. Returns once all of
/// it is durable, with the number of events appended (the rest were duplicates).
pub(super) fn import(store: &Store, events: &[Event]) -> Result<u64> {
    let mut in_flight: VecDeque<Ticket> = VecDeque::new();
    let mut appended = 0;
    let mut count = |outcomes: Vec<AppendOutcome>| {
        appended += outcomes
            .iter()
            .filter(|o| matches!(o, AppendOutcome::Appended(_)))
            .count() as u64;
    };
    for chunk in events.chunks(BATCH) {
        let mut ready = Vec::with_capacity(chunk.len());
        for prepared in store.prepare_all(chunk) {
            match prepared.context("validating a workload event")? {
                Prepared::Ready(p) => ready.push(p),
                Prepared::Duplicate(_) => {}
            }
        }
        in_flight.push_back(store.submit(ready)?);
        while in_flight.len() >= IN_FLIGHT {
            if let Some(ticket) = in_flight.pop_front() {
                count(ticket.wait()?);
            }
        }
    }
    for ticket in in_flight {
        count(ticket.wait()?);
    }
    Ok(appended)
}

/// Events the per-event-commit baseline writes (each one is a durable commit, a few
/// milliseconds on a real disk).
pub(super) const SINGLE_COMMITS: usize = 500;
/// The caller counts of the durable-append rows, and the events each row appends.
pub(super) const APPEND_CALLERS: [(usize, usize); 2] = [(8, 4_000), (256, 8_192)];
/// The measurements alternate in this many rounds: the latency of a durable commit
/// drifts a lot on a shared disk, and alternating puts all of them under the same.
const APPEND_ROUNDS: usize = 5;

/// One durable-append row: `callers` threads appending one event at a time.
#[derive(Debug, Clone, Copy)]
pub(super) struct AppendRow {
    pub(super) callers: usize,
    pub(super) meter: Meter,
    /// Group commits of the timed appends.
    pub(super) commits: u64,
    /// Mean events per group commit.
    pub(super) per_commit: f64,
    /// What the process wrote during the timed appends (`None` without `/proc/self/io`).
    pub(super) written: Option<Written>,
}

/// (one row per entry of [`APPEND_CALLERS`]: that many threads appending one event at
/// a time into a trusted store with the default commit wait; events/s of one durable
/// raw commit per event).
pub(super) fn durable_appends(work: &Path, workload: &Workload) -> Result<(Vec<AppendRow>, Meter)> {
    let most = APPEND_CALLERS.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let limit = (most as u64).min(workload.events);
    let mut events = Vec::new();
    for window in workload.windows(limit)? {
        events.extend(window?);
    }
    let single = events.len().min(SINGLE_COMMITS);
    let scratch = Store::open(work.join("append-scratch"), trusted())?;
    let records = encode(&scratch, &events[..single])?;
    let mut raw = RawLog::create(&work.join("append-raw"), 1 << 30)?;
    // Trusted, like the baseline: the rows are about commits, and on a disk with fast
    // flushes, signature checks on two cores would decide them instead.
    let mut stores = Vec::new();
    for (i, &(callers, count)) in APPEND_CALLERS.iter().enumerate() {
        let store = Store::open(work.join(format!("append-store-{i}")), trusted())?;
        let commits = Arc::new(Commits::default());
        store.add_observer(commits.clone());
        let mine = &events[..count.min(events.len())];
        let rounds: Vec<&[Event]> = mine
            .chunks(mine.len().div_ceil(APPEND_ROUNDS).max(1))
            .collect();
        stores.push(AppendStore {
            callers,
            store,
            commits,
            rounds,
            meter: Meter::default(),
            written: Some(Written::default()),
        });
    }

    let mut baseline = Meter::default();
    let single_rounds = records.chunks(single.div_ceil(APPEND_ROUNDS).max(1));
    for (round, records) in single_rounds.enumerate() {
        let started = Instant::now();
        for record in records.chunks(1) {
            raw.append(record)?;
        }
        baseline.add(records.len(), started.elapsed());

        for s in &mut stores {
            let Some(events) = s.rounds.get(round) else {
                continue;
            };
            let before = Written::now();
            let started = Instant::now();
            append_concurrently(&s.store, events, s.callers)?;
            s.meter.add(events.len(), started.elapsed());
            s.written = match (s.written, before, Written::now()) {
                (Some(mut sum), Some(before), Some(after)) => {
                    sum.add(after.since(before));
                    Some(sum)
                }
                _ => None,
            };
        }
    }
    let rows = stores
        .iter()
        .map(|s| {
            let commits = s.commits.0.load(Ordering::Relaxed) as u64;
            AppendRow {
                callers: s.callers,
                meter: s.meter,
                commits,
                per_commit: to_f64(s.meter.events) / to_f64(commits.max(1)),
                written: s.written,
            }
        })
        .collect();
    drop((scratch, raw, stores));
    let mut dirs = vec!["append-scratch".to_owned(), "append-raw".to_owned()];
    dirs.extend((0..APPEND_CALLERS.len()).map(|i| format!("append-store-{i}")));
    for dir in dirs {
        std::fs::remove_dir_all(work.join(&dir)).with_context(|| format!("removing {dir}"))?;
    }
    Ok((rows, baseline))
}

/// A store of the durable-append rows and what its timed appends measured.
struct AppendStore<'a> {
    callers: usize,
    store: Store,
    commits: Arc<Commits>,
    rounds: Vec<&'a [Event]>,
    meter: Meter,
    written: Option<Written>,
}

/// `callers` threads, each appending its share of `events` one at a time and waiting
/// for each to be durable; all start together. (Also the `durable_appends` example's
/// loop.)
///
/// # Errors
///
/// The first append that failed, or a panicked thread.
pub fn append_concurrently(store: &Store, events: &[Event], callers: usize) -> Result<()> {
    let per_thread = events.len().div_ceil(callers).max(1);
    let parts: Vec<&[Event]> = events.chunks(per_thread).collect();
    let start = std::sync::Barrier::new(parts.len());
    std::thread::scope(|scope| {
        let workers: Vec<_> = parts
            .into_iter()
            .map(|mine| {
                let store = store.clone();
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    mine.iter().try_for_each(|e| store.append(e).map(drop))
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| match w.join() {
            Ok(result) => result.context("a durable append"),
            Err(_) => bail!("an append thread panicked"),
        })
    })
}
