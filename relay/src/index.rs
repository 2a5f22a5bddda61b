//! What decides which stored events the relay may serve: the sequence number of each
//! group's latest 9008 (a group's events before it belong to an earlier life of the id
//! and are never served through a later one), and the 9005 deletions (event id → the
//! groups and sequence numbers of the 9005s naming it). Both are the relay-wide
//! `deletions` projection the NIP-29 projections register
//! ([`DeletionsState::is_served`](highwater_projections::DeletionsState::is_served)
//! holds the rule): the engine keeps it from its
//! checkpoint and the log tail, folds this process's commits as they are made, and
//! catches it up to the log head before each answer, whichever process wrote the log.
//! Nothing is built at start beyond loading the checkpoint and folding the tail.

use highwater_engine::{EngineError, RelayWideHandle};
use highwater_projections::Deletions;
use highwater_store::{EventRef, Store};

/// The first and last kinds of relay-signed group state (39000 metadata … 39005 pins).
pub(crate) const STATE_FIRST: u16 = 39_000;
pub(crate) const STATE_LAST: u16 = 39_005;
/// NIP-29 delete-event.
pub(crate) const DELETE_EVENT: u16 = 9005;
/// NIP-29 delete-group.
pub(crate) const DELETE_GROUP: u16 = 9008;

/// Whether events of `kind` decide what else is served (a 9005 or a 9008).
pub(crate) fn is_deletion(kind: u16) -> bool {
    kind == DELETE_EVENT || kind == DELETE_GROUP
}

pub(crate) fn is_state_kind(kind: u16) -> bool {
    (STATE_FIRST..=STATE_LAST).contains(&kind)
}

/// The relay's view of the `deletions` projection; shared by readers and the write
/// path.
#[derive(Debug)]
pub(crate) struct ServedIndex {
    deletions: RelayWideHandle<Deletions>,
}

impl ServedIndex {
    /// The index over the `deletions` projection, made current now (its checkpoint
    /// and the log tail after it), so a relay that cannot read it does not start.
    pub(crate) fn new(deletions: RelayWideHandle<Deletions>) -> Result<Self, EngineError> {
        deletions.read(|_| ())?;
        Ok(Self { deletions })
    }

    /// Takes in what any process committed since the last look. (`_store` is the
    /// store the engine folds; the projection reads it through the engine.)
    pub(crate) fn follow(&self, _store: &Store) -> Result<(), EngineError> {
        self.deletions.read(|_| ())
    }

    /// Takes note of a committed 9005 or 9008 (the feed calls it for those it
    /// delivers): the projection is caught up to the log head, which holds it.
    pub(crate) fn observe(&self, seq: u64, event: EventRef<'_>) {
        if !is_deletion(event.kind()) {
            return;
        }
        if let Err(error) = self.deletions.read(|_| ()) {
            tracing::warn!(seq, %error, "catching up the deletions failed; the next read retries");
        }
    }

    /// Whether the stored event at `seq` with this id and group may be served at all
    /// (see [`DeletionsState::is_served`](highwater_projections::DeletionsState::is_served)),
    /// as of the log head now. When the
    /// deletions cannot be read, nothing is served: an event that may be deleted is
    /// never shown.
    pub(crate) fn is_served(&self, seq: u64, id: &[u8; 32], group: Option<&str>) -> bool {
        match self.deletions.read(|d| d.is_served(seq, id, group)) {
            Ok(served) => served,
            Err(error) => {
                tracing::warn!(seq, %error, "the deletions cannot be read; not serving the event");
                false
            }
        }
    }
}
