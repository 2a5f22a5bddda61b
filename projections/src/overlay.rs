//! [`Overlay`]: what one writer has accepted and not yet seen acknowledged, as the
//! decisions after it read it — the committed state with the accepted-but-uncommitted
//! changes folded in by the projections' own folds.
//!
//! - Per group with a pending change: a copy of its per-group states
//!   ([`GroupStates`]), taken from the committed state when the group first becomes
//!   pending and folded forward with each accepted event of a kind a per-group
//!   projection folds (the engine's `apply`, never a second rule set). It is dropped
//!   once every batch that carried its events is acknowledged: the committed state
//!   then holds them.
//! - The parent links those events name (the relay-wide `links` fold over the pending
//!   events alone; a parent's candidates are the committed ones followed by these).
//! - A log position for each pending event of such a kind, after every committed one
//!   and in decision order: subgroup rules compare positions of the events that named
//!   a parent and deleted a group.
//! - The ids decided and not yet in the duplicate index: a second copy is a
//!   duplicate, and a NIP-29 `previous` reference to one names a known event.
//!
//! Everything here is looked up by key and pruned by batch number; nothing is iterated
//! into an answer, so hashed maps keep the writer's hot path short.

#![allow(
    clippy::disallowed_types,
    reason = "the overlay's maps are looked up and pruned, never iterated into an answer or a fold"
)]

use std::collections::{BTreeMap, HashMap};

use highwater_engine::{Kinds, RelayWideProjection};
use highwater_store::EventRef;

use crate::error::Error;
use crate::groups::{GroupStates, Groups};
use crate::links::LinksState;

/// Where pending events' log positions start: beyond any sequence number a log
/// reaches, so they order after everything committed.
const PENDING_POSITIONS: u64 = 1 << 62;

/// One group's speculative states.
#[derive(Debug)]
struct PendingGroup {
    /// The states, or why they could not be read or folded (decisions reading them then
    /// answer that error, as reads of a failed group do).
    states: Result<GroupStates, String>,
    /// The newest batch that carries an event folded into them.
    batch: u64,
}

/// A pending event's log position as subgroup rules compare them.
#[derive(Debug, Clone, Copy)]
struct Position {
    at: u64,
    batch: u64,
}

/// The accepted-but-unacknowledged changes of one writer (see the module's text).
#[derive(Debug)]
pub(crate) struct Overlay {
    groups: HashMap<Box<str>, PendingGroup>,
    /// The `links` fold of the pending events alone.
    links: LinksState,
    /// The newest batch carrying an event folded into `links`.
    links_batch: u64,
    positions: HashMap<[u8; 32], Position>,
    next_position: u64,
    /// Ids decided since the duplicate index was last read, with their batch; sorted,
    /// so that a `previous` reference (an id prefix) is one range lookup. (A hash map
    /// with a four-byte prefix filter walked every id in flight on a hit, and the
    /// references name recent events, which are the ones in flight: 9 % of a policy
    /// import's CPU went to that walk, BENCHMARKS.md "Every row short of its goal".)
    recent: BTreeMap<[u8; 32], u64>,
}

impl Default for Overlay {
    fn default() -> Self {
        Self {
            groups: HashMap::new(),
            links: LinksState::default(),
            links_batch: 0,
            positions: HashMap::new(),
            next_position: PENDING_POSITIONS,
            recent: BTreeMap::new(),
        }
    }
}

impl Overlay {
    /// The speculative states of `group`, if it has a change pending (`Some(Err)` when
    /// they could not be read or folded).
    pub(crate) fn states(&self, group: &str) -> Option<Result<&GroupStates, Error>> {
        self.groups.get(group).map(|pending| {
            pending
                .states
                .as_ref()
                .map_err(|message| Error::Pending(message.clone()))
        })
    }

    /// Folds an accepted `event` of `group` (of a kind a per-group projection folds),
    /// carried by `batch`, into the group's speculative states — copied from the
    /// committed state first if the group had nothing pending — and into the pending
    /// parent links and positions.
    pub(crate) fn fold(
        &mut self,
        groups: &Groups,
        group: &str,
        event: Result<EventRef<'_>, String>,
        batch: u64,
    ) {
        let pending = self
            .groups
            .entry(group.into())
            .or_insert_with(|| PendingGroup {
                states: groups.states(group).map_err(|e| e.to_string()),
                batch,
            });
        pending.batch = batch;
        let event = match event {
            Ok(event) => event,
            Err(message) => {
                pending.states = Err(message);
                return;
            }
        };
        if let Ok(states) = &mut pending.states
            && let Err(error) = states.apply(groups, event)
        {
            pending.states = Err(error.to_string());
        }
        let links = groups.links_projection().projection();
        let folds_links = match links.kinds() {
            Kinds::All => true,
            Kinds::Only(kinds) => kinds.contains(&event.kind()),
        };
        if folds_links && links.apply(&mut self.links, 0, &event).is_ok() {
            self.links_batch = batch;
        }
        self.positions.insert(
            *event.id(),
            Position {
                at: self.next_position,
                batch,
            },
        );
        self.next_position += 1;
    }

    /// The groups that pending events name as `parent`'s, in decision order.
    pub(crate) fn candidates(&self, parent: &str) -> &[String] {
        self.links.candidates(parent)
    }

    /// The log position a pending event will have, relative to everything committed
    /// and pending.
    pub(crate) fn position(&self, id: &[u8; 32]) -> Option<u64> {
        self.positions.get(id).map(|p| p.at)
    }

    /// Remembers `id` as decided in `batch`.
    pub(crate) fn remember(&mut self, id: &[u8; 32], batch: u64) {
        self.recent.insert(*id, batch);
    }

    /// Whether `id` was decided here and is not yet known to the duplicate index.
    pub(crate) fn is_recent(&self, id: &[u8; 32]) -> bool {
        self.recent.contains_key(id)
    }

    /// Whether a decided event's id starts with `prefix` (4 to 32 bytes).
    pub(crate) fn names_recent(&self, prefix: &[u8]) -> bool {
        if !(4..=32).contains(&prefix.len()) {
            return false;
        }
        // The first id not below the prefix padded with zeros starts with the prefix
        // if any id does.
        let mut lowest = [0u8; 32];
        lowest[..prefix.len()].copy_from_slice(prefix);
        self.recent
            .range(lowest..)
            .next()
            .is_some_and(|(id, _)| id.starts_with(prefix))
    }

    /// Every batch up to `batch` is acknowledged: what they carried is committed (or
    /// failed as a whole), so only later batches' changes stay.
    pub(crate) fn acknowledged(&mut self, batch: u64) {
        self.groups.retain(|_, pending| pending.batch > batch);
        self.positions.retain(|_, p| p.batch > batch);
        if self.links_batch <= batch {
            self.links = LinksState::default();
        }
        if self.positions.is_empty() {
            self.next_position = PENDING_POSITIONS;
        }
    }

    /// The duplicate index was read when batches up to `batch` were acknowledged: ids
    /// of those batches are found there from now on.
    pub(crate) fn index_read_at(&mut self, batch: u64) {
        self.recent.retain(|_, b| *b > batch);
    }

    /// Forgets every change, as after a failed batch whose successors were cancelled.
    pub(crate) fn clear(&mut self) {
        let recent = std::mem::take(&mut self.recent);
        *self = Self {
            recent,
            ..Self::default()
        };
    }
}
