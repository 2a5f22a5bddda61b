//! Full rebuilds on every core: groups are independent, so worker threads fold whole
//! groups from sequence 1, each group on one thread.
//!
//! Two walks give the same result ([`RebuildWalk`]). By default (`Log`) the groups are
//! split into one part per worker, balanced by event count, and each worker scans the
//! whole log in order (`Store::scan_where`), reading only the header of a record that
//! is not its part's or of a kind no projection being rebuilt folds. With `GroupIndex`
//! workers take whole groups from a shared queue (largest first) and walk each group's
//! index (`Store::scan_group`), whose entries carry the event's kind, so records of
//! other kinds are never read. Either way each record that is read feeds every
//! projection that folds its kind. The worker also encodes the group's checkpoints, so
//! that work is spread over the cores too. When every group is folded, the checkpoints
//! of every projection being rebuilt replace theirs in one transaction (one commit,
//! one fsync), then the states are published; reads keep being served from the old
//! states until then. A group is folded on one thread from
//! start to end, so the result does not depend on the number of threads.
//!
//! A projection takes part through a [`RebuildSink`] (the per-group runtime's is
//! `runtime/rebuild_sink.rs`): this file walks the log and knows no runtime.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use highwater_store::{CheckpointWrite, EventRef, GroupInfo, GroupScan, Store};

use crate::error::EngineError;
use crate::status::RebuildReport;

/// How a full rebuild ([`Engine::rebuild_with`](crate::Engine::rebuild_with)) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildOptions {
    /// Worker threads folding groups in parallel (at least 1; never more than there
    /// are groups). The default is the number of cores available to the process.
    pub threads: usize,
    /// How the workers read the log.
    pub walk: RebuildWalk,
}

/// How the workers of a full rebuild read the log. Both give the same result; they
/// differ in what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RebuildWalk {
    /// Each worker takes whole groups from a queue (largest first) and walks each
    /// one's index, reading only the records of kinds some projection folds: the
    /// reads are random, but records of other kinds are never read.
    GroupIndex,
    /// The groups are split into one part per worker (balanced by event count), and
    /// each worker scans the whole log in sequence order: every record's header
    /// (kind, group number) is read and checked, but only the bodies of the part's
    /// records of kinds some projection folds are read, checksummed and folded.
    /// Sequential reads; the default (the faster walk in BENCHMARKS.md).
    #[default]
    Log,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            walk: RebuildWalk::default(),
        }
    }
}

impl RebuildOptions {
    /// A rebuild on `threads` worker threads (0 counts as 1), with the default walk
    /// ([`RebuildWalk::Log`]).
    pub fn threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            walk: RebuildWalk::default(),
        }
    }

    /// The same options, reading the log as `walk` says.
    #[must_use]
    pub fn walk(self, walk: RebuildWalk) -> Self {
        Self { walk, ..self }
    }
}

/// One projection's side of a full rebuild, shared by the worker threads.
pub(crate) trait RebuildSink: Sync {
    /// Whether this projection folds events of `kind`.
    fn wants(&self, kind: u16) -> bool;
    /// Starts folding group `no` from its initial state, on the calling thread.
    fn group(&self, no: u32) -> Box<dyn GroupFold + '_>;
    /// The projection's name.
    fn name(&self) -> &str;
    /// The checkpoints of every group folded without failure (failures are logged).
    fn checkpoints(&mut self) -> Vec<CheckpointWrite>;
    /// Publishes the states of every group folded, once the checkpoints are written.
    fn publish(self: Box<Self>, started: Instant) -> RebuildReport;
}

/// One (projection, group) being folded by one worker.
pub(crate) trait GroupFold {
    /// Folds one event of the group (or skips it, when the projection does not fold
    /// its kind or the group already failed).
    fn fold(&mut self, seq: u64, event: EventRef<'_>);
    /// The group's walk ended at `scan`: encodes its checkpoint and hands it over.
    fn done(self: Box<Self>, scan: GroupScan) -> Result<(), EngineError>;
}

/// Folds every group of the log from sequence 1 into every sink, on
/// `options.threads` threads (the calling one included), then writes every sink's
/// checkpoints in one transaction and publishes their states.
pub(crate) fn rebuild_all(
    store: &Store,
    sinks: Vec<Box<dyn RebuildSink + '_>>,
    options: &RebuildOptions,
) -> Result<Vec<RebuildReport>, EngineError> {
    let started = Instant::now();
    let span = tracing::info_span!("rebuild", projections = sinks.len());
    let _enter = span.enter();
    store.refresh()?;
    let mut groups = store.groups();
    // Largest first: the longest folds start early, so the threads finish together.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    let order: Vec<u32> = groups.iter().map(|g| g.no).collect();
    let threads = options.threads.clamp(1, order.len().max(1));
    let units = match options.walk {
        RebuildWalk::GroupIndex => Units::Groups(order),
        RebuildWalk::Log => Units::Parts {
            owner: balance(&groups, threads, store.group_count()),
            parts: (0..u32::try_from(threads).unwrap_or(u32::MAX)).collect(),
        },
    };
    let queue = Queue {
        store,
        sinks: &sinks,
        units,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    if threads == 1 {
        queue.work()?;
    } else {
        std::thread::scope(|scope| -> Result<(), EngineError> {
            let mut handles = Vec::with_capacity(threads - 1);
            for _ in 1..threads {
                let queue = &queue;
                let span = span.clone();
                let spawned = std::thread::Builder::new()
                    .name("highwater-rebuild".into())
                    .spawn_scoped(scope, move || span.in_scope(|| queue.work()));
                match spawned {
                    Ok(handle) => handles.push(handle),
                    // The threads already started take every unit between them.
                    Err(error) => {
                        tracing::warn!(%error, started = handles.len() + 1, "could not start every rebuild thread");
                        break;
                    }
                }
            }
            let mut result = queue.work();
            for handle in handles {
                let joined = match handle.join() {
                    Ok(r) => r,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                result = result.and(joined);
            }
            result
        })?;
    }
    tracing::debug!(
        groups = groups.len(),
        threads,
        millis = started.elapsed().as_millis() as u64,
        "every group folded"
    );
    // Every projection's checkpoints in one transaction, then the states published.
    let mut sinks = sinks;
    let writes: Vec<CheckpointWrite> = sinks.iter_mut().flat_map(|s| s.checkpoints()).collect();
    let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
    store.replace_checkpoints(writes, &names)?;
    Ok(sinks.into_iter().map(|s| s.publish(started)).collect())
}

/// The part of each group (by group number, `slots` of them; `u32::MAX` for a number
/// with no group) among `parts` parts balanced by event count: longest processing
/// time first, each group, largest first (the order of `groups`), goes to the part
/// with the fewest events so far, the lowest-numbered of equal ones.
fn balance(groups: &[GroupInfo], parts: usize, slots: usize) -> Vec<u32> {
    let mut owner = vec![u32::MAX; slots];
    let mut load = vec![0u64; parts.max(1)];
    for g in groups {
        let (part, _) = load
            .iter()
            .enumerate()
            .min_by_key(|&(i, l)| (*l, i))
            .expect("at least one part");
        load[part] += g.count;
        if let Some(o) = owner.get_mut(g.no as usize) {
            *o = u32::try_from(part).expect("fewer parts than u32::MAX");
        }
    }
    owner
}

/// The units of work the workers take in turn.
enum Units {
    /// Group numbers, each folded by one walk of its index.
    Groups(Vec<u32>),
    /// Parts of the groups, each folded by one scan of the log.
    Parts {
        /// The part of each group, by group number (`u32::MAX`: none).
        owner: Vec<u32>,
        /// The parts, `0..n`, each taken by one worker.
        parts: Vec<u32>,
    },
}

/// The work left, shared by the workers.
struct Queue<'q, 's> {
    store: &'q Store,
    sinks: &'q [Box<dyn RebuildSink + 's>],
    units: Units,
    next: AtomicUsize,
    /// Set by the first worker that fails, so the others stop early.
    stop: AtomicBool,
}

impl Queue<'_, '_> {
    /// Takes units until none is left (or another worker failed), folding each.
    fn work(&self) -> Result<(), EngineError> {
        while !self.stop.load(Ordering::Relaxed) {
            let next = self.next.fetch_add(1, Ordering::Relaxed);
            let done = match &self.units {
                Units::Groups(order) => match order.get(next) {
                    Some(&no) => self.fold_group(no),
                    None => break,
                },
                Units::Parts { owner, parts } => match parts.get(next) {
                    Some(&part) => self.fold_part(owner, part),
                    None => break,
                },
            };
            if let Err(e) = done {
                self.stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }

    /// One scan of the whole log, folding the events of the groups of `part`.
    fn fold_part(&self, owner: &[u32], part: u32) -> Result<(), EngineError> {
        let sinks = self.sinks;
        let stop = &self.stop;
        let mine = |group: Option<u32>| group.filter(|&no| owner.get(no as usize) == Some(&part));
        // What the headers say of each of this part's groups: every record is counted,
        // only the records some sink folds are read.
        let mut scans: Vec<Option<GroupScan>> = vec![None; owner.len()];
        let mut folds: Vec<Option<Vec<Box<dyn GroupFold + '_>>>> = Vec::new();
        folds.resize_with(owner.len(), || None);
        self.store.scan_where(
            1,
            u64::MAX,
            |seq, header| {
                let Some(no) = mine(header.group) else {
                    return false;
                };
                let scan = scans[no as usize].get_or_insert(GroupScan { last: 0, events: 0 });
                scan.last = seq;
                scan.events += 1;
                sinks.iter().any(|s| s.wants(header.kind))
            },
            |seq, header, event| {
                if stop.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                let Some(no) = mine(header.group) else {
                    return ControlFlow::Continue(());
                };
                let group = folds[no as usize]
                    .get_or_insert_with(|| sinks.iter().map(|s| s.group(no)).collect());
                for fold in group {
                    fold.fold(seq, event);
                }
                ControlFlow::Continue(())
            },
        )?;
        if self.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        for (no, scan) in (0u32..).zip(scans) {
            let Some(scan) = scan else { continue };
            let group = folds[no as usize]
                .take()
                .unwrap_or_else(|| sinks.iter().map(|s| s.group(no)).collect());
            for fold in group {
                fold.done(scan)?;
            }
        }
        Ok(())
    }

    /// One walk of group `no`'s index, reading only the records some sink folds.
    fn fold_group(&self, no: u32) -> Result<(), EngineError> {
        let mut folds: Vec<Box<dyn GroupFold + '_>> =
            self.sinks.iter().map(|s| s.group(no)).collect();
        let sinks = self.sinks;
        let scan = self.store.scan_group(
            no,
            0,
            |kind| sinks.iter().any(|s| s.wants(kind)),
            |seq, event| {
                for fold in &mut folds {
                    fold.fold(seq, event);
                }
                ControlFlow::Continue(())
            },
        )?;
        for fold in folds {
            fold.done(scan)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(no: u32, count: u64) -> GroupInfo {
        GroupInfo {
            name: format!("g{no}").into(),
            no,
            head: 0,
            count,
        }
    }

    #[test]
    fn parts_are_balanced_largest_group_first() {
        // Largest first, as the rebuild orders them.
        let groups = [
            group(3, 50),
            group(0, 40),
            group(2, 30),
            group(1, 20),
            group(4, 5),
        ];
        // 50 → part 0; 40 → 1; 30 → 1 (40 < 50); 20 → 0 (50 < 70); 5 → 0 (70 = 70).
        assert_eq!(balance(&groups, 2, 6), vec![1, 0, 1, 0, 0, u32::MAX]);
        assert_eq!(balance(&groups, 3, 5), vec![1, 2, 2, 0, 1]);
        assert_eq!(balance(&groups, 1, 5), vec![0; 5]);
        // Equal loads: the lowest-numbered part.
        let equal = [group(0, 1), group(1, 1), group(2, 1)];
        assert_eq!(balance(&equal, 2, 3), vec![0, 1, 0]);
    }
}
