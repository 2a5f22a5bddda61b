//! A group's life (unknown, active, deleted) and where its state comes from (nothing,
//! relay snapshots, history), tracked identically by every projection.
//!
//! Every projection folds the same life-driving kinds (see `kind::LIFE`) through
//! [`Lifecycle::step`], so the four projections always agree on whether a group
//! exists. The step tells the projection what the event means for its own state.

use highwater_store::EventRef;
use serde::Serialize;

use crate::config::kind;

/// Whether a group exists.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Life {
    /// Nothing in the log made the group exist.
    #[default]
    Unknown,
    /// Created (9007), moderated (9000/9001/9002) or seeded by relay snapshots.
    Active,
    /// Deleted (9008); only a new 9007 brings it back.
    Deleted,
}

/// Where the state of the group's current life comes from.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// No state (unknown or deleted group).
    #[default]
    None,
    /// Only relay snapshot events (39000–39002) so far: a newer snapshot replaces.
    Snapshots,
    /// A 9007, 9000, 9001 or 9002 has been folded: snapshots no longer count.
    History,
}

/// A group's life and source.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Lifecycle {
    /// Whether the group exists.
    pub life: Life,
    /// Where its state comes from.
    pub source: Source,
}

/// What one event means for a projection, after the lifecycle has advanced.
///
/// `pub` only because [`Nip29Fold::fold`](crate::nip29::Nip29Fold::fold) takes it;
/// this module is private and the crate does not export it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Changes nothing.
    Ignore,
    /// A 9007 started a fresh life: clear everything, then apply the creation.
    Create,
    /// A 9008: clear everything.
    Delete,
    /// A 9000/9001/9002 to fold on top of the current state. `was_seeded`: the state
    /// so far came from snapshots, whose raw copies can now be dropped.
    Moderate { was_seeded: bool },
    /// A relay-signed 39000/39001/39002 while the group has no history: it replaces its
    /// kind's snapshot if it is not older.
    Snapshot,
    /// Another kind the projection folds (9009, 39003), while the group is not deleted;
    /// the lifecycle did not change.
    Other { active: bool },
}

impl Lifecycle {
    /// Advances the lifecycle by one event and says what the event means.
    pub(crate) fn step(&mut self, event: EventRef<'_>, relay: &[u8; 32]) -> Step {
        let k = event.kind();
        if self.life == Life::Deleted && k != kind::CREATE_GROUP {
            return Step::Ignore;
        }
        match k {
            kind::CREATE_GROUP => {
                if self.life == Life::Active {
                    return Step::Ignore;
                }
                *self = Lifecycle {
                    life: Life::Active,
                    source: Source::History,
                };
                Step::Create
            }
            kind::DELETE_GROUP => {
                *self = Lifecycle {
                    life: Life::Deleted,
                    source: Source::None,
                };
                Step::Delete
            }
            kind::PUT_USER | kind::REMOVE_USER | kind::EDIT_METADATA => {
                let was_seeded = self.source == Source::Snapshots;
                *self = Lifecycle {
                    life: Life::Active,
                    source: Source::History,
                };
                Step::Moderate { was_seeded }
            }
            kind::METADATA | kind::ADMINS | kind::MEMBERS => {
                if event.pubkey() != relay || self.source == Source::History {
                    return Step::Ignore;
                }
                *self = Lifecycle {
                    life: Life::Active,
                    source: Source::Snapshots,
                };
                Step::Snapshot
            }
            _ => Step::Other {
                active: self.life == Life::Active,
            },
        }
    }

    /// Whether the group exists.
    pub fn exists(&self) -> bool {
        self.life == Life::Active
    }
}

/// The `created_at` and id of a relay snapshot event, ordered the NIP-01 way for
/// addressable events: a newer `created_at` wins; at the same `created_at`, the lowest id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub(crate) struct Stamp {
    pub(crate) created_at: u64,
    pub(crate) id: [u8; 32],
}

impl Stamp {
    /// The stamp of `event`.
    pub(crate) fn of(event: EventRef<'_>) -> Self {
        Self {
            created_at: event.created_at(),
            id: *event.id(),
        }
    }

    /// Whether a snapshot with this stamp replaces one stamped `held` (NIP-01: newer, or
    /// as old with a lower id — whatever the log order).
    pub(crate) fn replaces(self, held: Option<Stamp>) -> bool {
        held.is_none_or(|h| {
            self.created_at > h.created_at || (self.created_at == h.created_at && self.id < h.id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Stamp;

    #[test]
    fn newer_wins_then_lowest_id() {
        let s = |created_at, id| Stamp {
            created_at,
            id: [id; 32],
        };
        assert!(s(5, 9).replaces(None));
        assert!(s(6, 9).replaces(Some(s(5, 1))));
        assert!(!s(4, 0).replaces(Some(s(5, 9))));
        assert!(s(5, 1).replaces(Some(s(5, 2))));
        assert!(!s(5, 2).replaces(Some(s(5, 1))));
    }
}
