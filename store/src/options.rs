//! How to open a store: [`StoreOptions`] and their defaults.

use std::time::Duration;

use crate::validate::Limits;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Initial LMDB map size in bytes (sparse; it costs address space, not disk).
    pub map_size: usize,
    /// The map grows by doubling up to this size; past it, appends fail with
    /// [`StoreError::MapFull`](crate::StoreError::MapFull).
    pub max_map_size: usize,
    /// Limits on incoming events.
    pub limits: Limits,
    /// Skip Schnorr verification (for re-importing the tool's own exports). Ids are
    /// still hashed and checked.
    pub trusted: bool,
    /// Open without a writer: no thread is started and nothing is ever written, so a
    /// directory the process cannot write works (see
    /// [`Store::is_lockless`](crate::Store::is_lockless)). Appends, checkpoints and
    /// settings fail with [`StoreError::ReadOnly`](crate::StoreError::ReadOnly).
    pub read_only: bool,
    /// Group commit: how long the writer may wait for more requests before it commits,
    /// when fewer are queued than it expects — the callers its previous commit answered
    /// (each may send again at once) and those that were already waiting behind it. So
    /// many callers that append one event at a time and wait share one fsync instead of
    /// splitting into cohorts that alternate. A lone caller is never delayed (its
    /// previous commit answered only it); no request waits longer than this for the
    /// linger, requests keep their order, and every caller is still acknowledged only
    /// after the durable commit. The writer waits at most an eighth of its last group
    /// commit's duration, so a fast disk's commits are not delayed by a wait sized for
    /// a slow one. Zero disables the wait (the writer then commits what is queued as
    /// soon as it is free). Default: 250 µs.
    pub commit_wait: Duration,
    /// [`Store::append_batch`](crate::Store::append_batch) commits a batch of up to
    /// this many events in one transaction (all or nothing); a larger batch is split
    /// into chunks of this size, validated one chunk ahead of the commit. At least 1.
    /// Default: 8,192.
    pub append_chunk: usize,
    /// The writer merges the index tail (the records above the index watermark, whose
    /// `id_prefix` and `group_index` entries commits leave out) into both indexes in the
    /// commit that brings it to this many records (or more, see
    /// [`StoreOptions::index_tail_share`]), so a commit dirties the pages of the log and
    /// the group table, not pages spread over the whole id index. Bounds the tail every
    /// process holds in memory (about 150 bytes a record) and reads from the log at
    /// open; the bound on disk is the largest any writer of the database uses. 1 (with
    /// `index_tail_share` 0) merges in every commit. At least 1. Default: 16,384.
    pub index_tail: u64,
    /// The tail may also grow to this share of the indexed records before it is
    /// merged: a share of 64 lets a log of 10M indexed records keep up to 156,250
    /// records in its tail. The index pages a merge rewrites grow with the index (its
    /// entries land on ever more distinct pages of the random-keyed id index), so a
    /// tail that grows with the index keeps the pages written per merged record about
    /// the same at any log size — at the price of a tail that grows with the log too:
    /// memory in every process, records read at open, and a merge commit that every
    /// caller queued behind it waits for (0.7–1.5 s at 10M records with 64, against
    /// about 0.2 s for 16,384 records). A bulk load wants the throughput
    /// ([`BULK_INDEX_TAIL_SHARE`], what `highwater import` uses); a relay, whose
    /// callers wait on each commit, wants the short merges. 0 keeps the tail at
    /// `index_tail`. Default: 0.
    pub index_tail_share: u64,
}

impl StoreOptions {
    /// Read-only options: see [`StoreOptions::read_only`].
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            ..Self::default()
        }
    }

    /// The first option that differs between two option sets, by name.
    pub(crate) fn first_difference(&self, other: &StoreOptions) -> Option<&'static str> {
        if self.read_only != other.read_only {
            Some("read_only")
        } else if self.trusted != other.trusted {
            Some("trusted")
        } else if self.limits != other.limits {
            Some("limits")
        } else if self.map_size != other.map_size {
            Some("map_size")
        } else if self.max_map_size != other.max_map_size {
            Some("max_map_size")
        } else if self.commit_wait != other.commit_wait {
            Some("commit_wait")
        } else if self.append_chunk != other.append_chunk {
            Some("append_chunk")
        } else if self.index_tail != other.index_tail {
            Some("index_tail")
        } else if self.index_tail_share != other.index_tail_share {
            Some("index_tail_share")
        } else {
            None
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            map_size: 1 << 30,
            max_map_size: 1 << 40,
            limits: Limits::default(),
            trusted: false,
            read_only: false,
            commit_wait: DEFAULT_COMMIT_WAIT,
            append_chunk: DEFAULT_APPEND_CHUNK,
            index_tail: DEFAULT_INDEX_TAIL,
            index_tail_share: DEFAULT_INDEX_TAIL_SHARE,
        }
    }
}

/// The default [`StoreOptions::commit_wait`]: long enough for a caller woken by its
/// acknowledgement to hash and send its next event on a busy machine, short beside a
/// durable commit on most disks.
const DEFAULT_COMMIT_WAIT: Duration = Duration::from_micros(250);

/// The default [`StoreOptions::index_tail`]: recovering that many records at open
/// costs a few milliseconds.
const DEFAULT_INDEX_TAIL: u64 = 16_384;

/// The default [`StoreOptions::index_tail_share`]: the tail stays at `index_tail`, so
/// no merge commit grows with the log.
const DEFAULT_INDEX_TAIL_SHARE: u64 = 0;

/// [`StoreOptions::index_tail_share`] for a bulk load (`highwater import`): up to 1M
/// indexed records the tail stays at the default `index_tail`; at 10M, merges of up to
/// 156,250 records made the trusted import's later millions run 1.3–1.6× faster
/// (BENCHMARKS.md, "The 10M growth row, profiled").
pub const BULK_INDEX_TAIL_SHARE: u64 = 64;

/// The default [`StoreOptions::append_chunk`].
const DEFAULT_APPEND_CHUNK: usize = 8_192;
