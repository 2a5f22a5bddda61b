//! [`Sequencer`]: deciding events in log order against the state of everything
//! accepted before them, while many commits are in flight — the one decision path of
//! every writer (the relay's write path, `highwater import`).
//!
//! Each event is decided with the access policy against the committed state plus an
//! [`Overlay`] of what this writer accepted and has not yet seen acknowledged: every
//! accepted event of a kind a per-group projection folds is folded, by the
//! projections' own `apply`, into a copy of its group's states (taken from the
//! committed state when the group first has a change pending), and counts as logged
//! for the subgroup rules (the parents it names, its position) and for `previous`
//! references. So every decision equals the one a writer deciding and committing one
//! event at a time would make, while the commits are pipelined and batches stay large.
//!
//! What the overlay does not cover waits ([`Sequencer::must_wait`]): a change of
//! relay-wide state (the relay's NIP-43 members, NIP-86 management) — rare, and read by
//! every decision — makes the writer commit what is queued and wait for it before the
//! next decision.
//!
//! The writer owns batches and tickets; the sequencer only learns that the batch being
//! filled was handed to the store ([`Sequencer::sealed`]) and, later, that batches up
//! to a number are acknowledged ([`Sequencer::acknowledged`]). A failed batch voids
//! the decisions made on top of it: a writer submits through an ordered pipeline (so
//! every later batch fails with it) and calls [`Sequencer::failed`].
//!
//! Another process's commits to a group reach the overlay when the overlay is dropped
//! (all its batches acknowledged); see ARCHITECTURE.md.

use highwater_store::PreparedEvent;
use nostr::prelude::Event;

use crate::overlay::Overlay;
use crate::policy::{AccessPolicy, Rejection};

/// The decision on one event.
#[derive(Debug)]
pub enum Verdict {
    /// Accepted: the writer queues it in the batch being filled.
    Accepted,
    /// The same id is already decided and not yet known to the duplicate index; the
    /// store will find it present.
    Duplicate,
    /// Refused, with the NIP-01 `OK` message.
    Refused(Rejection),
}

/// The decision state of one writer: what is decided and not yet acknowledged.
#[derive(Debug)]
pub struct Sequencer {
    /// The accepted changes in flight, as decisions read them.
    overlay: Overlay,
    /// The batch of the latest relay-wide change in flight.
    relay_wide: Option<u64>,
    /// The number the batch being filled will carry.
    batch: u64,
}

impl Default for Sequencer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sequencer {
    /// A sequencer with nothing in flight; its first batch is number 1.
    pub fn new() -> Self {
        Self {
            overlay: Overlay::default(),
            relay_wide: None,
            batch: 1,
        }
    }

    /// The number the batch being filled will carry.
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// Whether the next decision reads something the overlay does not cover (a
    /// relay-wide change in flight): then the writer commits what is queued and waits
    /// for every batch in flight before calling [`Sequencer::decide`].
    pub fn must_wait(&self) -> bool {
        self.relay_wide.is_some()
    }

    /// Whether `id` was decided here and is not yet known to the duplicate index.
    pub fn is_recent(&self, id: &[u8; 32]) -> bool {
        self.overlay.is_recent(id)
    }

    /// Decides `event` (validated and encoded as `prepared`) against the committed
    /// state and the overlay, after [`Sequencer::must_wait`] was answered. An accepted
    /// event is remembered with the batch being filled.
    pub fn decide(
        &mut self,
        policy: &AccessPolicy,
        event: &Event,
        prepared: &PreparedEvent,
    ) -> Verdict {
        if self.is_recent(prepared.id()) {
            return Verdict::Duplicate;
        }
        if let Err(rejection) = policy.check_write_pending(event, &self.overlay) {
            return Verdict::Refused(rejection);
        }
        self.record(policy, event, prepared);
        Verdict::Accepted
    }

    /// Remembers an event the writer queues without a decision (the relay's own
    /// answers, which it decided itself) with the batch being filled, folding it into
    /// the overlay.
    pub fn record(&mut self, policy: &AccessPolicy, event: &Event, prepared: &PreparedEvent) {
        let kinds = policy.groups().kinds();
        let kind = event.kind.as_u16();
        if kinds.changes_group(kind)
            && let Some(group) = prepared.group()
        {
            let folded = prepared.event_ref().map_err(|e| e.to_string());
            self.overlay
                .fold(policy.groups(), group, folded, self.batch);
        }
        if kinds.changes_relay(kind) {
            self.relay_wide = Some(self.batch);
        }
        self.remember(prepared.id());
    }

    /// Remembers `id` as queued in the batch being filled, without a decision (a writer
    /// without a write policy): a second copy is then a duplicate
    /// ([`Sequencer::is_recent`]) before the index knows the first.
    pub fn remember(&mut self, id: &[u8; 32]) {
        self.overlay.remember(id, self.batch);
    }

    /// The batch being filled was handed to the store: later events go in the next.
    /// Returns the sealed batch's number.
    pub fn sealed(&mut self) -> u64 {
        self.batch += 1;
        self.batch - 1
    }

    /// Every batch up to `batch` is committed: the committed state holds their
    /// changes, so the overlay lets go of them.
    pub fn acknowledged(&mut self, batch: u64) {
        self.overlay.acknowledged(batch);
        if self.relay_wide.is_some_and(|at| at <= batch) {
            self.relay_wide = None;
        }
    }

    /// A batch failed, and with it (through the writer's ordered pipeline) every batch
    /// sealed after it: no change in flight will be committed, so the overlay is
    /// dropped and the next decision reads the committed state. Call once every batch
    /// sealed so far is acknowledged or failed.
    pub fn failed(&mut self) {
        self.overlay.clear();
        self.relay_wide = None;
    }

    /// The duplicate index was read when batches up to `batch` were acknowledged: ids
    /// of those batches are found there from now on, so only the rest are remembered.
    pub fn index_read_at(&mut self, batch: u64) {
        self.overlay.index_read_at(batch);
    }
}
