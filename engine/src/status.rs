//! Status reports: per group, per projection, and of a rebuild.

use std::time::Duration;

/// Whether a (projection, group) is in memory and can answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoadState {
    /// Not in memory; the next read loads it.
    #[default]
    NotLoaded,
    /// In memory. It answers once its watermark reaches the group's head.
    Loaded,
    /// Folding the event at `seq` failed; reads return an error naming it.
    Failed {
        /// The sequence number of the event whose fold failed.
        seq: u64,
        /// What the fold reported.
        message: String,
    },
}

/// One (projection, group).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupStatus {
    /// The group's head in the log.
    pub head: u64,
    /// The last sequence number folded in memory (0 when not loaded).
    pub watermark: u64,
    /// The group's events in the log not yet folded in memory.
    pub lag: u64,
    /// Load state.
    pub state: LoadState,
}

impl GroupStatus {
    /// Loaded, and its watermark has reached the group's head.
    pub fn fully_loaded(&self) -> bool {
        self.state == LoadState::Loaded && self.watermark >= self.head
    }
}

/// A summary of one projection over all groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Groups in the log.
    pub groups: usize,
    /// Groups with state in memory.
    pub loaded: usize,
    /// Groups whose fold failed.
    pub failed: usize,
    /// Groups with a stored checkpoint.
    pub with_checkpoint: usize,
    /// Events in the log not yet folded in memory, over all groups.
    pub lag: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// The projection rebuilt.
    pub projection: String,
    /// Events of the rebuilt groups passed: folded, or (kinds the projection does not
    /// fold) skipped. Events that belong to no group are not counted.
    pub events: u64,
    /// Groups rebuilt.
    pub groups: usize,
    /// Groups whose fold failed.
    pub failed: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// How a projection's slots were advanced since the engine started: by live folds of
/// this process's commits, by loads (checkpoint plus tail), and by in-place tail folds
/// of loaded groups that fell behind (other processes' commits, or commits that found
/// the slot busy with a reader). Lets tests observe the accelerators, which change no
/// answer by design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldCounters {
    /// Events folded into loaded groups on the writer thread, at commit.
    pub live_folds: u64,
    /// Commit-time folds skipped because a reader held the group.
    pub busy_skips: u64,
    /// Groups loaded from a checkpoint (or from nothing) plus their tail.
    pub loads: u64,
    /// Loaded groups caught up in place.
    pub tail_folds: u64,
}

/// One relay-wide projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayWideStatus {
    /// The projection's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The log head as committed by any process.
    pub head: u64,
    /// The log position folded in memory (0 when not loaded).
    pub watermark: u64,
    /// Load state; a loaded state answers once its watermark reaches the head.
    pub state: LoadState,
    /// The watermark of the stored checkpoint of this version, if any validates.
    pub checkpoint: Option<u64>,
}

/// How a relay-wide projection's state was advanced since the engine started. Lets
/// tests observe what a cold read costs (records whose header a catch-up passed)
/// without timing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayWideCounters {
    /// Loads: a checkpoint (or nothing) plus the log tail.
    pub loads: u64,
    /// Loads that started from a usable checkpoint.
    pub checkpoint_loads: u64,
    /// Catch-ups of a loaded state that fell behind.
    pub tail_folds: u64,
    /// Events folded on the writer thread, at commit.
    pub live_folds: u64,
    /// Commit-time folds skipped because a reader held the state.
    pub busy_skips: u64,
    /// Log records passed by loads, catch-ups and rebuilds (headers read; bodies only
    /// of the projection's kinds).
    pub records_scanned: u64,
}
