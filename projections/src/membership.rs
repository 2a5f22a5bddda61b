//! The `membership` projection: who is a member of a group.
//!
//! 9007 makes its author a member; 9000 adds every `p`; 9001 removes every `p`
//! (removing a non-member changes nothing); 9008 clears. While the group has no
//! history, the members are derived from the newest relay snapshots: the 39002 list,
//! plus the 39001 admins when that 39001 is newer than the 39002 or as old (relays
//! publish both in one second), or there is no 39002 yet. Each kind keeps its newest
//! snapshot by `created_at`, the lowest id winning a tie (NIP-01, whatever the log
//! order); the raw snapshots stay in the state so every new one recomputes.

use std::collections::BTreeSet;

use highwater_engine::{ApplyError, CodecError, Kinds, Projection, encode_rkyv};
use highwater_store::EventRef;

use crate::config::{Nip29Config, kind};
use crate::life::{Lifecycle, Stamp, Step};
use crate::parse;

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 2;

/// The pubkeys of one relay snapshot (39001 or 39002) and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct KeySnapshot {
    stamp: Stamp,
    keys: BTreeSet<[u8; 32]>,
}

/// The membership of one group.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct MembershipState {
    lifecycle: Lifecycle,
    members: BTreeSet<[u8; 32]>,
    /// Raw snapshots, kept while the group is seeded from them (`Source::Snapshots`).
    members_snapshot: Option<KeySnapshot>,
    admins_snapshot: Option<KeySnapshot>,
}

impl MembershipState {
    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Whether `pubkey` is a member.
    pub fn is_member(&self, pubkey: &[u8; 32]) -> bool {
        self.members.contains(pubkey)
    }

    /// The members, sorted by pubkey.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &[u8; 32]> {
        self.members.iter()
    }

    /// How many members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    fn clear(&mut self) {
        self.members.clear();
        self.members_snapshot = None;
        self.admins_snapshot = None;
    }

    fn reseed(&mut self) {
        let members = self.members_snapshot.as_ref();
        let admins = self.admins_snapshot.as_ref();
        let admins_newer = match (admins, members) {
            (Some(a), Some(m)) => a.stamp.created_at >= m.stamp.created_at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut set = members.map(|m| m.keys.clone()).unwrap_or_default();
        if admins_newer {
            set.extend(admins.iter().flat_map(|a| a.keys.iter().copied()));
        }
        self.members = set;
    }
}

/// Replaces `slot` with the snapshot in `event` if it supersedes the stored one.
fn offer(slot: &mut Option<KeySnapshot>, event: EventRef<'_>) -> bool {
    let stamp = Stamp::of(event);
    if !stamp.replaces(slot.as_ref().map(|s| s.stamp)) {
        return false;
    }
    let keys = parse::roster(event.kind(), event.tags())
        .into_keys()
        .collect();
    *slot = Some(KeySnapshot { stamp, keys });
    true
}

/// The `membership` projection.
#[derive(Debug, Clone)]
pub struct Membership {
    config: Nip29Config,
}

impl Membership {
    /// The projection for the relay in `config`.
    pub fn new(config: Nip29Config) -> Self {
        Self { config }
    }
}

impl Projection for Membership {
    type State = MembershipState;

    fn name(&self) -> &'static str {
        "membership"
    }

    fn version(&self) -> u64 {
        self.config.version(BASE_VERSION)
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(kind::life_and(&[]))
    }

    fn init(&self) -> MembershipState {
        MembershipState::default()
    }

    fn apply(&self, state: &mut MembershipState, event: &EventRef<'_>) -> Result<(), ApplyError> {
        match state.lifecycle.step(*event, self.config.relay_bytes()) {
            Step::Ignore | Step::Other { .. } => {}
            Step::Create => {
                state.clear();
                state.members.insert(*event.pubkey());
            }
            Step::Delete => state.clear(),
            Step::Moderate { was_seeded } => {
                if was_seeded {
                    state.members_snapshot = None;
                    state.admins_snapshot = None;
                }
                match event.kind() {
                    kind::PUT_USER => parse::each_p(kind::PUT_USER, event.tags(), |pubkey, _| {
                        state.members.insert(pubkey);
                    }),
                    kind::REMOVE_USER => {
                        parse::each_p(kind::REMOVE_USER, event.tags(), |pubkey, _| {
                            state.members.remove(&pubkey);
                        });
                    }
                    _ => {}
                }
            }
            Step::Snapshot => {
                let changed = match event.kind() {
                    kind::MEMBERS => offer(&mut state.members_snapshot, *event),
                    kind::ADMINS => offer(&mut state.admins_snapshot, *event),
                    _ => false,
                };
                if changed {
                    state.reseed();
                }
            }
        }
        Ok(())
    }

    fn encode(&self, state: &MembershipState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    /// Validates the archive, then builds the member set in one sorted bulk load
    /// (`BTreeSet::from_iter`) instead of one insert per member: a checkpoint of a
    /// group with tens of thousands of members decodes about ten times faster, and
    /// that decode is most of a cold first read.
    fn decode(&self, bytes: &[u8]) -> Result<MembershipState, CodecError> {
        let codec = |e: rkyv::rancor::Error| CodecError(e.to_string());
        let archived =
            rkyv::access::<ArchivedMembershipState, rkyv::rancor::Error>(bytes).map_err(codec)?;
        Ok(MembershipState {
            lifecycle: rkyv::deserialize::<Lifecycle, rkyv::rancor::Error>(&archived.lifecycle)
                .map_err(codec)?,
            members: archived.members.iter().copied().collect(),
            members_snapshot: rkyv::deserialize::<_, rkyv::rancor::Error>(
                &archived.members_snapshot,
            )
            .map_err(codec)?,
            admins_snapshot: rkyv::deserialize::<_, rkyv::rancor::Error>(&archived.admins_snapshot)
                .map_err(codec)?,
        })
    }
}
