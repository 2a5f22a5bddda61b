//! Engine rows: full rebuild against a raw scan, the hot `is_member`, the cold first
//! read of one group at two log sizes, and the first answer after a restart against a
//! full replay before it.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use highwater_engine::{Engine, EngineOptions, RebuildOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, PublicKey};

use super::import::{self, Meter};
use super::progress::say;
use super::workload::{TARGET, TARGET_EVENTS, TARGET_TAIL, Workload};

/// The store, the engine and the NIP-29 queries over one database.
pub(super) struct Db {
    pub(super) store: Store,
    pub(super) engine: Engine,
    pub(super) groups: Groups,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Opens `dir` with the four NIP-29 projections. Dropping the result closes it
/// completely: the next open is a real reopen.
pub(super) fn open(dir: &Path, relay: PublicKey, options: EngineOptions) -> Result<Db> {
    let store = Store::open(dir, StoreOptions::default())
        .with_context(|| format!("opening {}", dir.display()))?;
    let mut builder = Engine::builder(store.clone(), options);
    let groups = Groups::register(&mut builder, Nip29Config::new(relay))?;
    let engine = builder.build()?;
    Ok(Db {
        store,
        engine,
        groups,
    })
}

/// Engine options that never write a checkpoint by themselves (so measurements leave
/// the database as they found it).
pub(super) fn read_only() -> EngineOptions {
    EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    }
}

/// The full-rebuild measurements.
#[derive(Debug)]
pub(super) struct Rebuilds {
    /// All four projections, on every core.
    pub(super) all: Meter,
    /// All four projections, on one thread.
    pub(super) one_thread: Meter,
    /// A raw cursor scan of the log.
    pub(super) raw_scan: Meter,
    /// The membership projection alone, on every core.
    pub(super) membership: Meter,
    /// The membership projection alone, on one thread.
    pub(super) membership_one_thread: Meter,
}

/// The shortest of `runs` runs of `f`.
fn best_of(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        f()?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// A full rebuild of `projection` (or all four) on `threads` threads, which writes
/// every checkpoint; an error if any group failed.
fn rebuild(db: &Db, projection: Option<&str>, threads: usize) -> Result<()> {
    let reports = db
        .engine
        .rebuild_with(projection, None, &RebuildOptions::threads(threads))?;
    if let Some(failed) = reports.iter().find(|r| r.failed > 0) {
        bail!(
            "rebuild of {}: {} groups failed",
            failed.projection,
            failed.failed
        );
    }
    Ok(())
}

/// Rebuilds every projection of `db` (which writes every checkpoint) and the
/// membership projection alone, each on every core and on one thread, with a raw scan
/// as the baseline: three rounds of the five, alternating, best of each.
pub(super) fn rebuilds(db: &Db) -> Result<Rebuilds> {
    let events = db.store.head();
    let cores = super::progress::cores();
    let mut best = [Duration::MAX; 5];
    for _ in 0..3 {
        best[0] = best[0].min(best_of(1, || rebuild(db, None, cores))?);
        best[1] = best[1].min(best_of(1, || rebuild(db, None, 1))?);
        best[2] = best[2].min(best_of(1, || {
            let (records, bytes) = db.store.raw_scan()?;
            black_box(bytes);
            if records != events {
                bail!("the raw scan saw {records} of {events} records");
            }
            Ok(())
        })?);
        best[3] = best[3].min(best_of(1, || rebuild(db, Some("membership"), cores))?);
        best[4] = best[4].min(best_of(1, || rebuild(db, Some("membership"), 1))?);
    }
    let meter = |time| Meter { events, time };
    Ok(Rebuilds {
        all: meter(best[0]),
        one_thread: meter(best[1]),
        raw_scan: meter(best[2]),
        membership: meter(best[3]),
        membership_one_thread: meter(best[4]),
    })
}

/// The groups of the log, most events first.
pub(super) fn largest_groups(store: &Store) -> Vec<Arc<str>> {
    let mut groups = store.groups();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    groups.into_iter().map(|g| g.name).collect()
}

/// The query mix of the hot-read rows: up to 256 members of each of the 16 largest
/// groups, interleaved so that consecutive calls do not ask the same group.
///
/// # Errors
///
/// When a group's members cannot be read, or no group has members.
pub fn hot_queries(store: &Store, groups: &Groups) -> Result<Vec<(Arc<str>, PublicKey)>> {
    let mut queries: Vec<(Arc<str>, PublicKey)> = Vec::new();
    for group in largest_groups(store).into_iter().take(16) {
        let members = groups.members(&group)?;
        let step = (members.len() / 256).max(1);
        queries.extend(
            members
                .into_iter()
                .step_by(step)
                .map(|m| (group.clone(), m)),
        );
    }
    if queries.is_empty() {
        bail!("no group has members");
    }
    let stride = queries.len() / 7 + 1;
    Ok((0..queries.len())
        .map(|i| queries[(i * stride) % queries.len()].clone())
        .collect())
}

/// Median time of one `is_member` on loaded groups: the members of the 16 largest
/// groups, asked in turn, timed 1,000 calls at a time.
pub(super) fn hot_is_member(db: &Db) -> Result<(f64, u64)> {
    hot_query(db, |group, member| {
        Ok(db.groups.is_member(group, member)?)
    })
}

/// Median time of one `can_write` (membership, write-restricted flag, creator, `writer`
/// role: three projections) on loaded groups, asked like [`hot_is_member`].
pub(super) fn hot_can_write(db: &Db) -> Result<(f64, u64)> {
    let policy = AccessPolicy::new(db.groups.clone(), Policy::default());
    hot_query(db, |group, member| Ok(policy.can_write(group, member)?))
}

/// Median per-call time of `query` over members of the 16 largest groups, timed 1,000
/// calls at a time; also counts the `true` answers.
fn hot_query(db: &Db, query: impl Fn(&str, &PublicKey) -> Result<bool>) -> Result<(f64, u64)> {
    const CALLS: usize = 1_000;
    const ROUNDS: usize = 301;
    let queries = hot_queries(&db.store, &db.groups)?;
    let mut per_call = Vec::with_capacity(ROUNDS);
    let mut hits = 0u64;
    let mut next = 0;
    for round in 0..=ROUNDS {
        let started = Instant::now();
        for _ in 0..CALLS {
            let (group, member) = &queries[next];
            next = (next + 1) % queries.len();
            hits += u64::from(black_box(query(group, member)?));
        }
        // Round 0 warms caches up.
        if round > 0 {
            per_call.push(started.elapsed().as_secs_f64() * 1e9 / import::to_f64(CALLS as u64));
        }
    }
    per_call.sort_by(f64::total_cmp);
    Ok((per_call[per_call.len() / 2], hits))
}

/// Appends the target group's tail with a bare store (no engine: nothing folds it or
/// checkpoints it).
pub(super) fn append_tail(dir: &Path, tail: &[Event]) -> Result<()> {
    let store = Store::open(dir, StoreOptions::default())?;
    for outcome in store.append_batch(tail)? {
        outcome.context("appending the target group's tail")?;
    }
    let count = store.group(TARGET).map_or(0, |g| g.count);
    if count != TARGET_EVENTS as u64 {
        bail!("the target group has {count} events, not {TARGET_EVENTS}");
    }
    Ok(())
}

/// Trials of the cold first read, per log.
const TRIALS: usize = 1_000;

/// Per-trial latency of the first read of the target group after a reopen, in each of
/// the logs at `dirs`, every in-memory state dropped before each trial: load the group
/// in all four projections (checkpoint plus tail) and answer one `is_member`. Trials
/// alternate between the logs so that the machine's noise falls on both alike.
/// Sorted, per log.
pub(super) fn cold_reads(
    dirs: &[&Path],
    relay: PublicKey,
    probe: &PublicKey,
) -> Result<Vec<Vec<Duration>>> {
    let dbs = dirs
        .iter()
        .map(|dir| open(dir, relay, read_only()))
        .collect::<Result<Vec<_>>>()?;
    let mut times = vec![Vec::with_capacity(TRIALS); dbs.len()];
    for trial in 0..=TRIALS {
        for (db, times) in dbs.iter().zip(&mut times) {
            db.engine.evict_all();
            let started = Instant::now();
            db.engine.load_group(TARGET)?;
            let member = db.groups.is_member(TARGET, probe)?;
            let elapsed = started.elapsed();
            if !member {
                bail!("the target group's creator is not a member");
            }
            // The first trial of each warms up what a restart would have warm too
            // (the code, the allocator).
            if trial > 0 {
                times.push(elapsed);
            }
        }
    }
    for times in &mut times {
        times.sort();
    }
    Ok(times)
}

/// The `q`-quantile of sorted samples (nearest rank).
pub(super) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank within the slice"
    )]
    let rank = (q * import::to_f64(sorted.len() as u64)).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Builds a log of the first `events` workload events with the target group's first
/// events among them, checkpoints everything, then appends the group's tail.
pub(super) fn build_cold_log(
    dir: &Path,
    workload: &Workload,
    events: u64,
    target: &[Event],
) -> Result<()> {
    let (head, tail) = target.split_at(TARGET_EVENTS - TARGET_TAIL);
    {
        let store = Store::open(dir, import::trusted())?;
        for window in workload.with_target(events, head)? {
            import::import(&store, &window?)?;
        }
    }
    checkpoint_everything(dir, workload.relay)?;
    append_tail(dir, tail)
}

/// A full rebuild, which writes a checkpoint of every group of every projection.
pub(super) fn checkpoint_everything(dir: &Path, relay: PublicKey) -> Result<()> {
    let db = open(dir, relay, read_only())?;
    db.engine.rebuild(None, None)?;
    Ok(())
}

/// Time from opening the database to the first `is_member` answer on `group`: with
/// checkpoints (median of seven reopens), and with a full replay first (best of two).
pub(super) fn first_answer(
    dir: &Path,
    relay: PublicKey,
    group: &str,
    member: &PublicKey,
) -> Result<(Duration, Duration)> {
    let mut times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let db = open(dir, relay, EngineOptions::default())?;
        let answer = db.groups.is_member(group, member)?;
        times.push(started.elapsed());
        black_box(answer);
        drop(db);
    }
    let millis = |d: &Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    let shown: Vec<String> = times.iter().map(millis).collect();
    times.sort();
    let checkpointed = times[times.len() / 2];

    let replayed = best_of(2, || {
        let db = open(dir, relay, EngineOptions::default())?;
        db.engine.rebuild(None, None)?;
        black_box(db.groups.is_member(group, member)?);
        Ok(())
    })?;
    let (events, members) = {
        let db = open(dir, relay, read_only())?;
        let events = db.store.group(group).map_or(0, |g| g.count);
        (events, db.groups.member_count(group)?)
    };
    say(format_args!(
        "  first answer on {group} ({events} events, {members} members): {} ms from checkpoints, {} ms after a full replay",
        shown.join(" / "),
        millis(&replayed)
    ));
    Ok((checkpointed, replayed))
}
