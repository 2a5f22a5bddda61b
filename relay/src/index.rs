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

/// The first and last kinds of relay-signed group state (39000 metadata … 39005 pins).
pub(crate) const STATE_FIRST: u16 = 39_000;
pub(crate) const STATE_LAST: u16 = 39_005;
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
