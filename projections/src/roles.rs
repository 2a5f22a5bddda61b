//! The `roles` projection: each member's role names, and the group's role
//! definitions.
//!
//! A 9000 `p` tag replaces that member's roles with its positions 2+ (a bare `p`
//! clears them); 9001 clears the removed members' roles; 9007 and 9008 clear all.
//! While the group has no history, roles come from the newest relay snapshots: for each
//! member, from the 39001 when it is newer than the 39002 or as old and lists them,
//! otherwise from the 39002 (each kind's snapshot chosen as in `membership`: newest,
//! then lowest id). Role definitions come from the relay-signed 39003 chosen the same
//! NIP-01 way (newest `created_at`, then lowest id, whatever the log order), whatever
//! the group's source and even before the group exists (imports may carry the 39003
//! first); a 39003 does not make a group exist, and a 9007 or 9008 clears the
//! definitions with everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use highwater_engine::{CodecError, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;
use serde::Serialize;

use crate::config::kind;
use crate::dict::{Dictionary, Id, Reader};
use crate::life::{Lifecycle, Stamp, Step};
use crate::nip29::{Nip29, Nip29Fold, Seed, Snapshot};
use crate::parse::{self, Hex};

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 3;

/// One member's role names: sorted, each once.
type RoleSet = Box<[Box<str>]>;

/// Role sets by member id, sorted by id.
type Roster = Vec<(Id, RoleSet)>;

/// One role a group defines (a `role` tag of its 39003).
#[derive(
    Debug,
    Clone,
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
pub struct RoleDefinition {
    /// The role's name.
    pub name: String,
    /// Its description, if the definition has one.
    pub description: Option<String>,
}

/// The roles of one group: role sets by member id of the registration's pubkey
/// dictionary. It compares, prints and encodes through the pubkeys.
#[derive(Clone)]
pub struct RolesState {
    dict: Arc<Dictionary>,
    lifecycle: Lifecycle,
    /// Members with at least one role; members without roles are absent.
    roles: Roster,
    /// Role definitions by name.
    definitions: BTreeMap<String, Option<String>>,
    /// The 39003 the definitions come from.
    definitions_from: Option<Stamp>,
    /// The snapshots' rosters (every listed member, with its roles, maybe none), kept
    /// while the group is seeded from them.
    seed: Seed<Roster>,
}

/// Where `id` is in `roster`.
fn position(roster: &Roster, id: Id) -> Result<usize, usize> {
    roster.binary_search_by_key(&id, |(member, _)| *member)
}

/// A role set from parsed role names (already sorted and deduplicated).
fn role_set(roles: BTreeSet<String>) -> RoleSet {
    roles.into_iter().map(String::into_boxed_str).collect()
}

impl RolesState {
    fn new(dict: Arc<Dictionary>) -> Self {
        Self {
            dict,
            lifecycle: Lifecycle::default(),
            roles: Vec::new(),
            definitions: BTreeMap::new(),
            definitions_from: None,
            seed: Seed::default(),
        }
    }

    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    fn role_set(&self, pubkey: &[u8; 32]) -> &[Box<str>] {
        self.dict
            .get(pubkey)
            .and_then(|id| position(&self.roles, id).ok())
            .map_or(&[], |at| &self.roles[at].1)
    }

    /// The roles of `pubkey`, sorted (empty for non-members).
    pub fn roles(&self, pubkey: &[u8; 32]) -> impl Iterator<Item = &str> {
        self.role_set(pubkey).iter().map(|r| &**r)
    }

    /// Whether `pubkey` holds `role`.
    pub fn has_role(&self, pubkey: &[u8; 32], role: &str) -> bool {
        self.role_set(pubkey).iter().any(|r| &**r == role)
    }

    /// Every member holding at least one role, sorted by pubkey, with their roles.
    pub fn holders(&self) -> Vec<([u8; 32], BTreeSet<String>)> {
        let reader = self.dict.reader();
        let mut holders: Vec<([u8; 32], BTreeSet<String>)> = self
            .roles
            .iter()
            .map(|(id, roles)| {
                (
                    reader.key(*id),
                    roles.iter().map(|r| String::from(&**r)).collect(),
                )
            })
            .collect();
        holders.sort_unstable_by_key(|h| h.0);
        holders
    }

    /// The role definitions, sorted by name.
    pub fn definitions(&self) -> impl Iterator<Item = RoleDefinition> + '_ {
        self.definitions
            .iter()
            .map(|(name, description)| RoleDefinition {
                name: name.clone(),
                description: description.clone(),
            })
    }

    fn clear(&mut self) {
        *self = RolesState {
            lifecycle: self.lifecycle,
            ..RolesState::new(self.dict.clone())
        };
    }

    fn set(&mut self, id: Id, roles: RoleSet) {
        match position(&self.roles, id) {
            Ok(at) if roles.is_empty() => {
                self.roles.remove(at);
            }
            Ok(at) => self.roles[at].1 = roles,
            Err(_) if roles.is_empty() => {}
            Err(at) => self.roles.insert(at, (id, roles)),
        }
    }

    /// The roles the snapshots list: the 39002's, each replaced by the 39001's for the
    /// members it lists when [`Seed::lists`] counts it.
    fn reseed(&mut self) {
        let (listed, admins) = self.seed.lists();
        let mut roles: Roster = listed.cloned().unwrap_or_default();
        for (id, set) in admins.into_iter().flatten() {
            match position(&roles, *id) {
                Ok(at) => roles[at].1.clone_from(set),
                Err(at) => roles.insert(at, (*id, set.clone())),
            }
        }
        roles.retain(|(_, set)| !set.is_empty());
        self.roles = roles;
    }

    /// The state as pubkeys, each list sorted by pubkey: what equality, `Debug` and
    /// checkpoints see.
    fn record(&self) -> RolesRecord {
        let reader = self.dict.reader();
        let snapshot = |s: &Option<Snapshot<Roster>>| {
            s.as_ref().map(|s| RosterRecord {
                stamp: s.stamp,
                roster: roster_record(&reader, &s.list),
            })
        };
        RolesRecord {
            lifecycle: self.lifecycle,
            roles: roster_record(&reader, &self.roles),
            definitions: self.definitions.clone(),
            definitions_from: self.definitions_from,
            members_snapshot: snapshot(&self.seed.members),
            admins_snapshot: snapshot(&self.seed.admins),
        }
    }
}

/// A roster as (pubkey, roles), sorted by pubkey.
fn roster_record(reader: &Reader<'_>, roster: &Roster) -> Vec<([u8; 32], Vec<String>)> {
    let mut out: Vec<([u8; 32], Vec<String>)> = roster
        .iter()
        .map(|(id, roles)| {
            (
                reader.key(*id),
                roles.iter().map(|r| String::from(&**r)).collect(),
            )
        })
        .collect();
    out.sort_unstable_by_key(|h| h.0);
    out
}

/// A roster from a checkpoint, numbered in `dict` and sorted by id; role lists are
/// re-sorted and deduplicated, so a damaged order cannot break a lookup.
fn roster_from(dict: &Dictionary, record: Vec<([u8; 32], Vec<String>)>) -> Roster {
    let mut roster: Roster = record
        .into_iter()
        .map(|(key, roles)| {
            let roles: BTreeSet<String> = roles.into_iter().collect();
            (dict.intern(&key), role_set(roles))
        })
        .collect();
    roster.sort_unstable_by_key(|(id, _)| *id);
    roster.dedup_by_key(|(id, _)| *id);
    roster
}

impl PartialEq for RolesState {
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.dict, &other.dict) {
            self.lifecycle == other.lifecycle
                && self.roles == other.roles
                && self.definitions == other.definitions
                && self.definitions_from == other.definitions_from
                && self.seed == other.seed
        } else {
            self.record() == other.record()
        }
    }
}

impl Eq for RolesState {}

impl std::fmt::Debug for RolesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let record = self.record();
        let roster = |r: &[([u8; 32], Vec<String>)]| {
            r.iter()
                .map(|(k, roles)| (Hex(*k), roles.clone()))
                .collect::<Vec<_>>()
        };
        let snapshot = |s: &Option<RosterRecord>| s.as_ref().map(|s| (s.stamp, roster(&s.roster)));
        f.debug_struct("RolesState")
            .field("lifecycle", &record.lifecycle)
            .field("roles", &roster(&record.roles))
            .field("definitions", &record.definitions)
            .field("definitions_from", &record.definitions_from)
            .field("members_snapshot", &snapshot(&record.members_snapshot))
            .field("admins_snapshot", &snapshot(&record.admins_snapshot))
            .finish()
    }
}

/// A relay snapshot roster in a checkpoint.
#[derive(Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RosterRecord {
    stamp: Stamp,
    roster: Vec<([u8; 32], Vec<String>)>,
}

/// A roles checkpoint: pubkeys (sorted, each once), never dictionary ids.
#[derive(Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RolesRecord {
    lifecycle: Lifecycle,
    roles: Vec<([u8; 32], Vec<String>)>,
    definitions: BTreeMap<String, Option<String>>,
    definitions_from: Option<Stamp>,
    members_snapshot: Option<RosterRecord>,
    admins_snapshot: Option<RosterRecord>,
}

/// The roster a relay snapshot lists, numbered in `dict`, sorted by id.
fn snapshot_roster(dict: &Dictionary, event: EventRef<'_>) -> Roster {
    let mut roster: Roster = parse::roster(event.kind(), event.tags())
        .into_iter()
        .map(|(key, roles)| (dict.intern(&key), role_set(roles)))
        .collect();
    roster.sort_unstable_by_key(|(id, _)| *id);
    roster
}

/// The `roles` projection.
pub type Roles = Nip29<RolesState>;

impl Nip29Fold for RolesState {
    const NAME: &'static str = "roles";
    const BASE_VERSION: u32 = BASE_VERSION;
    const EXTRA_KINDS: &'static [u16] = &[kind::ROLES];
    const TYPE_NAME: &'static str = "Roles";

    fn init(shell: &Roles) -> Self {
        Self::new(shell.dict.clone())
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    fn fold(&mut self, step: Step, event: EventRef<'_>, shell: &Roles) {
        let dict = &shell.dict;
        if self.seed.step(step, event, |e| snapshot_roster(dict, e)) {
            self.reseed();
        }
        match step {
            Step::Ignore | Step::Snapshot => {}
            Step::Create | Step::Delete => self.clear(),
            Step::Moderate { .. } => match event.kind() {
                kind::PUT_USER => parse::each_p(kind::PUT_USER, event.tags(), |pubkey, tag| {
                    let roles = parse::roles_of(tag);
                    if roles.is_empty() {
                        // Clearing needs no number: an unnumbered key holds nothing.
                        if let Some(id) = dict.get(&pubkey) {
                            self.set(id, RoleSet::default());
                        }
                    } else {
                        self.set(dict.intern(&pubkey), role_set(roles));
                    }
                }),
                kind::REMOVE_USER => {
                    parse::each_p(kind::REMOVE_USER, event.tags(), |pubkey, _| {
                        if let Some(id) = dict.get(&pubkey) {
                            self.set(id, RoleSet::default());
                        }
                    });
                }
                _ => {}
            },
            Step::Other { .. } => {
                let stamp = Stamp::of(event);
                if event.kind() == kind::ROLES
                    && event.pubkey() == shell.relay_bytes()
                    && stamp.replaces(self.definitions_from)
                {
                    self.definitions = parse::role_definitions(event.tags());
                    self.definitions_from = Some(stamp);
                }
            }
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(&self.record())
    }

    fn decode(bytes: &[u8], shell: &Roles) -> Result<Self, CodecError> {
        let record: RolesRecord = decode_rkyv(bytes)?;
        let snapshot = |s: Option<RosterRecord>| {
            s.map(|s| Snapshot {
                stamp: s.stamp,
                list: roster_from(&shell.dict, s.roster),
            })
        };
        let mut roles = roster_from(&shell.dict, record.roles);
        roles.retain(|(_, set)| !set.is_empty());
        Ok(RolesState {
            dict: shell.dict.clone(),
            lifecycle: record.lifecycle,
            roles,
            definitions: record.definitions,
            definitions_from: record.definitions_from,
            seed: Seed {
                members: snapshot(record.members_snapshot),
                admins: snapshot(record.admins_snapshot),
            },
        })
    }
}
