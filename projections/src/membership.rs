//! The `membership` projection: who is a member of a group.
//!
//! 9007 makes its author a member; 9000 adds every `p`; 9001 removes every `p`
//! (removing a non-member changes nothing); 9008 clears. While the group has no
//! history, the members are derived from the newest relay snapshots: the 39002 list,
//! plus the 39001 admins when that 39001 is newer than the 39002 or as old (relays
//! publish both in one second), or there is no 39002 yet. Each kind keeps its newest
//! snapshot by `created_at`, the lowest id winning a tie (NIP-01, whatever the log
//! order); the raw snapshots stay in the state so every new one recomputes.

use std::sync::Arc;

use highwater_engine::{CodecError, encode_rkyv};
use highwater_store::EventRef;

use crate::config::kind;
use crate::dict::{self, Dictionary, Id};
use crate::life::{Lifecycle, Stamp, Step};
use crate::nip29::{Nip29, Nip29Fold, Seed, Snapshot};
use crate::parse::{self, Hex};

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 3;

/// The membership of one group: member ids of the registration's pubkey dictionary,
/// sorted by id. It compares, prints and encodes through the pubkeys, so two states
/// of the same log are equal whatever the dictionary's numbering.
#[derive(Clone)]
pub struct MembershipState {
    dict: Arc<Dictionary>,
    lifecycle: Lifecycle,
    members: Vec<Id>,
    /// The snapshots' pubkeys (ids sorted), kept while the group is seeded from them.
    seed: Seed<Vec<Id>>,
}

impl MembershipState {
    fn new(dict: Arc<Dictionary>) -> Self {
        Self {
            dict,
            lifecycle: Lifecycle::default(),
            members: Vec::new(),
            seed: Seed::default(),
        }
    }

    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// Whether `pubkey` is a member.
    pub fn is_member(&self, pubkey: &[u8; 32]) -> bool {
        // A key the dictionary never numbered is in no state.
        self.dict
            .get(pubkey)
            .is_some_and(|id| dict::contains(&self.members, id))
    }

    /// The members, sorted by pubkey.
    pub fn members(&self) -> Vec<[u8; 32]> {
        dict::sorted_keys(&self.dict, &self.members)
    }

    /// How many members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The members the snapshots list: the 39002's, with the 39001's admins when
    /// [`Seed::lists`] counts them.
    fn reseed(&mut self) {
        let (listed, admins) = self.seed.lists();
        let listed = listed.map_or(&[][..], Vec::as_slice);
        self.members = match admins {
            Some(admins) => dict::union(listed, admins),
            None => listed.to_vec(),
        };
    }

    /// The state as pubkeys, each list sorted: what equality, `Debug` and checkpoints
    /// see.
    fn record(&self) -> MembershipRecord {
        let reader = self.dict.reader();
        let keys = |snapshot: &Option<Snapshot<Vec<Id>>>| {
            snapshot.as_ref().map(|s| KeysRecord {
                stamp: s.stamp,
                keys: reader.sorted_keys(s.list.iter().copied()),
            })
        };
        MembershipRecord {
            lifecycle: self.lifecycle,
            members: reader.sorted_keys(self.members.iter().copied()),
            members_snapshot: keys(&self.seed.members),
            admins_snapshot: keys(&self.seed.admins),
        }
    }
}

impl PartialEq for MembershipState {
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.dict, &other.dict) {
            self.lifecycle == other.lifecycle
                && self.members == other.members
                && self.seed == other.seed
        } else {
            self.record() == other.record()
        }
    }
}

impl Eq for MembershipState {}

impl std::fmt::Debug for MembershipState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let record = self.record();
        let snapshot = |s: &Option<KeysRecord>| {
            s.as_ref()
                .map(|s| (s.stamp, s.keys.iter().map(|k| Hex(*k)).collect::<Vec<_>>()))
        };
        f.debug_struct("MembershipState")
            .field("lifecycle", &record.lifecycle)
            .field(
                "members",
                &record.members.iter().map(|k| Hex(*k)).collect::<Vec<_>>(),
            )
            .field("members_snapshot", &snapshot(&record.members_snapshot))
            .field("admins_snapshot", &snapshot(&record.admins_snapshot))
            .finish()
    }
}

/// A relay snapshot's pubkeys in a checkpoint: sorted, each once.
#[derive(Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct KeysRecord {
    stamp: Stamp,
    keys: Vec<[u8; 32]>,
}

/// A membership checkpoint: pubkeys, never dictionary ids, which belong to one process.
#[derive(Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct MembershipRecord {
    lifecycle: Lifecycle,
    members: Vec<[u8; 32]>,
    members_snapshot: Option<KeysRecord>,
    admins_snapshot: Option<KeysRecord>,
}

/// The pubkeys a relay snapshot lists, numbered in `dict`, sorted by id, each once.
fn snapshot_keys(dict: &Dictionary, event: EventRef<'_>) -> Vec<Id> {
    let mut keys = Vec::new();
    parse::each_p(event.kind(), event.tags(), |pubkey, _| {
        keys.push(dict.intern(&pubkey));
    });
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The `membership` projection.
pub type Membership = Nip29<MembershipState>;

impl Nip29Fold for MembershipState {
    const NAME: &'static str = "membership";
    const BASE_VERSION: u32 = BASE_VERSION;
    const TYPE_NAME: &'static str = "Membership";

    fn init(shell: &Membership) -> Self {
        Self::new(shell.dict.clone())
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    fn fold(&mut self, step: Step, event: EventRef<'_>, shell: &Membership) {
        let dict = &shell.dict;
        if self.seed.step(step, event, |e| snapshot_keys(dict, e)) {
            self.reseed();
        }
        match step {
            Step::Ignore | Step::Other { .. } | Step::Snapshot => {}
            Step::Create => {
                self.members.clear();
                self.members.push(dict.intern(event.pubkey()));
            }
            Step::Delete => self.members.clear(),
            Step::Moderate { .. } => match event.kind() {
                kind::PUT_USER => parse::each_p(kind::PUT_USER, event.tags(), |pubkey, _| {
                    dict::insert(&mut self.members, dict.intern(&pubkey));
                }),
                kind::REMOVE_USER => {
                    parse::each_p(kind::REMOVE_USER, event.tags(), |pubkey, _| {
                        if let Some(id) = dict.get(&pubkey) {
                            dict::remove(&mut self.members, id);
                        }
                    });
                }
                _ => {}
            },
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(&self.record())
    }

    /// Validates the archive, then numbers its pubkeys in place (no owned copy of the
    /// archived lists): a cold first read of a big group is mostly this decode.
    fn decode(bytes: &[u8], shell: &Membership) -> Result<Self, CodecError> {
        let dict = &shell.dict;
        let codec = |e: rkyv::rancor::Error| CodecError(e.to_string());
        let archived =
            rkyv::access::<ArchivedMembershipRecord, rkyv::rancor::Error>(bytes).map_err(codec)?;
        let snapshot = |s: &rkyv::option::ArchivedOption<ArchivedKeysRecord>| {
            s.as_ref()
                .map(|s| -> Result<Snapshot<Vec<Id>>, CodecError> {
                    Ok(Snapshot {
                        stamp: rkyv::deserialize::<Stamp, rkyv::rancor::Error>(&s.stamp)
                            .map_err(codec)?,
                        list: dict::sorted_ids(dict, s.keys.iter()),
                    })
                })
                .transpose()
        };
        let mut members = dict::sorted_ids(dict, archived.members.iter());
        members.shrink_to_fit();
        Ok(MembershipState {
            dict: dict.clone(),
            lifecycle: rkyv::deserialize::<Lifecycle, rkyv::rancor::Error>(&archived.lifecycle)
                .map_err(codec)?,
            members,
            seed: Seed {
                members: snapshot(&archived.members_snapshot)?,
                admins: snapshot(&archived.admins_snapshot)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use highwater_engine::Projection;

    use super::*;
    use crate::config::Nip29Config;

    fn key(n: u8) -> [u8; 32] {
        let mut k = [n.wrapping_mul(37); 32];
        k[31] = n;
        k
    }

    fn record(members: &[u8]) -> MembershipRecord {
        let mut members: Vec<[u8; 32]> = members.iter().map(|&n| key(n)).collect();
        members.sort_unstable();
        MembershipRecord {
            lifecycle: Lifecycle::default(),
            members,
            members_snapshot: Some(KeysRecord {
                stamp: Stamp {
                    created_at: 7,
                    id: [1; 32],
                },
                keys: vec![key(3)],
            }),
            admins_snapshot: None,
        }
    }

    #[test]
    fn checkpoints_and_answers_do_not_depend_on_the_numbering() {
        let bytes = encode_rkyv(&record(&[5, 1, 9, 3])).unwrap();
        let config = Nip29Config::new(nostr::prelude::PublicKey::from_byte_array([0; 32]));
        let a = Membership::new(config);
        // Another process numbered other keys first, in another order: 156 unrelated
        // keys spread over every shard, so each member gets another local number there.
        let b = Membership::new(config);
        for n in (100..=255).chain([9, 3, 5]) {
            b.dict.intern(&key(n));
        }
        let (sa, sb) = (a.decode(&bytes).unwrap(), b.decode(&bytes).unwrap());
        let ids = |m: &Membership| [1, 3, 5, 9].map(|n| m.dict.get(&key(n)));
        assert_ne!(ids(&a), ids(&b));
        assert_eq!(sa, sb);
        assert_eq!(format!("{sa:?}"), format!("{sb:?}"));
        assert_eq!(a.encode(&sa).unwrap(), bytes);
        assert_eq!(b.encode(&sb).unwrap(), bytes);
        let mut sorted = vec![key(1), key(3), key(5), key(9)];
        sorted.sort_unstable();
        assert_eq!(sb.members(), sorted);
        assert!(sb.is_member(&key(9)) && !sb.is_member(&key(200)) && !sb.is_member(&key(4)));
        assert_ne!(
            sa,
            a.decode(&encode_rkyv(&record(&[5, 1])).unwrap()).unwrap()
        );
    }
}
