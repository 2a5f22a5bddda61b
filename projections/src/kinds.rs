//! [`KindTable`]: which event kinds change what a write decision reads, and which only
//! the relay's key may sign — one table, derived from the projections
//! [`Groups`](crate::Groups) registers, that every writer (the relay, an import)
//! decides with.
//!
//! A new projection adds its kinds here by declaring them
//! ([`Projection::kinds`](highwater_engine::Projection::kinds),
//! [`relay_signed`](highwater_engine::Projection::relay_signed),
//! [`read_by_writes`](highwater_engine::RelayWideProjection::read_by_writes)); no
//! writer lists kinds of its own, and this file lists no projection: `groups.rs` adds
//! each one it registers.

use std::collections::BTreeSet;

use highwater_engine::{Kinds, Projection, RelayWideProjection};

/// The kinds of the registered projections, as writers need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindTable {
    /// Kinds a per-group projection folds (`None`: every kind).
    group: Option<BTreeSet<u16>>,
    /// Kinds a relay-wide projection that decisions read folds, beyond `group`.
    relay_wide: BTreeSet<u16>,
    /// Kinds only the relay's key may sign.
    relay_signed: BTreeSet<u16>,
}

impl KindTable {
    /// No kinds: a placeholder while [`Groups::register`](crate::Groups::register) builds the real table.
    pub(crate) fn empty() -> Self {
        Self {
            group: Some(BTreeSet::new()),
            relay_wide: BTreeSet::new(),
            relay_signed: BTreeSet::new(),
        }
    }

    /// Takes the kinds of a per-group projection.
    pub(crate) fn add_group<P: Projection>(&mut self, projection: &P) {
        match projection.kinds() {
            Kinds::All => self.group = None,
            Kinds::Only(kinds) => {
                if let Some(group) = &mut self.group {
                    group.extend(kinds);
                }
            }
        }
        self.relay_signed.extend(projection.relay_signed());
    }

    /// Takes the kinds of a relay-wide projection.
    pub(crate) fn add_relay_wide<P: RelayWideProjection>(&mut self, projection: &P) {
        if projection.read_by_writes() {
            match projection.kinds() {
                // Every event changes what decisions read: none is decided early.
                Kinds::All => self.relay_wide.extend(0..=u16::MAX),
                Kinds::Only(kinds) => self.relay_wide.extend(kinds),
            }
        }
        self.relay_signed.extend(projection.relay_signed());
    }

    /// The table, once every projection is added: a kind a per-group projection folds
    /// is a group kind, not a relay-wide one.
    pub(crate) fn finish(mut self) -> Self {
        if let Some(group) = &self.group {
            self.relay_wide.retain(|kind| !group.contains(kind));
        }
        self
    }

    /// Whether an event of `kind` changes a group's state (a per-group projection
    /// folds it).
    pub fn changes_group(&self, kind: u16) -> bool {
        self.group.as_ref().is_none_or(|set| set.contains(&kind))
    }

    /// Whether an event of `kind` changes relay-wide state that write decisions read
    /// (and is not a group kind): every decision after it waits for its commit.
    pub fn changes_relay(&self, kind: u16) -> bool {
        self.relay_wide.contains(&kind)
    }

    /// Whether an event of `kind` changes anything a write decision reads.
    pub fn changes_state(&self, kind: u16) -> bool {
        self.changes_group(kind) || self.changes_relay(kind)
    }

    /// Whether only the relay's key may sign an event of `kind`.
    pub fn is_relay_signed(&self, kind: u16) -> bool {
        self.relay_signed.contains(&kind)
    }
}
