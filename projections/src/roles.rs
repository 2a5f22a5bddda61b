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

use highwater_engine::{ApplyError, CodecError, Kinds, Projection, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;
use serde::Serialize;

use crate::config::{Nip29Config, kind};
use crate::life::{Lifecycle, Stamp, Step};
use crate::parse;

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 2;

type Roster = BTreeMap<[u8; 32], BTreeSet<String>>;

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

/// One relay snapshot roster (39001 or 39002) and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct RosterSnapshot {
    stamp: Stamp,
    roster: Roster,
}

/// The roles of one group.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct RolesState {
    lifecycle: Lifecycle,
    /// Members with at least one role; members without roles are absent.
    roles: Roster,
    /// Role definitions by name.
    definitions: BTreeMap<String, Option<String>>,
    /// The 39003 the definitions come from.
    definitions_from: Option<Stamp>,
    /// Raw snapshots, kept while the group is seeded from them (`Source::Snapshots`).
    members_snapshot: Option<RosterSnapshot>,
    admins_snapshot: Option<RosterSnapshot>,
}

impl RolesState {
    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The roles of `pubkey`, sorted (empty for non-members).
    pub fn roles(&self, pubkey: &[u8; 32]) -> impl Iterator<Item = &str> {
        self.roles
            .get(pubkey)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Whether `pubkey` holds `role`.
    pub fn has_role(&self, pubkey: &[u8; 32], role: &str) -> bool {
        self.roles.get(pubkey).is_some_and(|r| r.contains(role))
    }

    /// Every member holding at least one role, sorted by pubkey, with their roles.
    pub fn holders(&self) -> impl Iterator<Item = (&[u8; 32], &BTreeSet<String>)> {
        self.roles.iter()
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
            ..RolesState::default()
        };
    }

    fn reseed(&mut self) {
        let members = self.members_snapshot.as_ref();
        let admins = self.admins_snapshot.as_ref();
        let admins_newer = match (admins, members) {
            (Some(a), Some(m)) => a.stamp.created_at >= m.stamp.created_at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut roles = members.map(|m| m.roster.clone()).unwrap_or_default();
        if admins_newer {
            for (pubkey, set) in admins.iter().flat_map(|a| a.roster.iter()) {
                roles.insert(*pubkey, set.clone());
            }
        }
        roles.retain(|_, set| !set.is_empty());
        self.roles = roles;
    }
}

/// Replaces `slot` with the snapshot in `event` if it supersedes the stored one.
fn offer(slot: &mut Option<RosterSnapshot>, event: EventRef<'_>) -> bool {
    let stamp = Stamp::of(event);
    if !stamp.replaces(slot.as_ref().map(|s| s.stamp)) {
        return false;
    }
    let roster = parse::roster(event.kind(), event.tags());
    *slot = Some(RosterSnapshot { stamp, roster });
    true
}

/// The `roles` projection.
#[derive(Debug, Clone)]
pub struct Roles {
    config: Nip29Config,
}

impl Roles {
    /// The projection for the relay in `config`.
    pub fn new(config: Nip29Config) -> Self {
        Self { config }
    }
}

impl Projection for Roles {
    type State = RolesState;

    fn name(&self) -> &'static str {
        "roles"
    }

    fn version(&self) -> u64 {
        self.config.version(BASE_VERSION)
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(kind::life_and(&[kind::ROLES]))
    }

    fn init(&self) -> RolesState {
        RolesState::default()
    }

    fn apply(&self, state: &mut RolesState, event: &EventRef<'_>) -> Result<(), ApplyError> {
        match state.lifecycle.step(*event, self.config.relay_bytes()) {
            Step::Ignore => {}
            Step::Create | Step::Delete => state.clear(),
            Step::Moderate { was_seeded } => {
                if was_seeded {
                    state.members_snapshot = None;
                    state.admins_snapshot = None;
                }
                match event.kind() {
                    kind::PUT_USER => parse::each_p(kind::PUT_USER, event.tags(), |pubkey, tag| {
                        let roles = parse::roles_of(tag);
                        if roles.is_empty() {
                            state.roles.remove(&pubkey);
                        } else {
                            state.roles.insert(pubkey, roles);
                        }
                    }),
                    kind::REMOVE_USER => {
                        parse::each_p(kind::REMOVE_USER, event.tags(), |pubkey, _| {
                            state.roles.remove(&pubkey);
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
            Step::Other { .. } => {
                let stamp = Stamp::of(*event);
                if event.kind() == kind::ROLES
                    && event.pubkey() == self.config.relay_bytes()
                    && stamp.replaces(state.definitions_from)
                {
                    state.definitions = parse::role_definitions(event.tags());
                    state.definitions_from = Some(stamp);
                }
            }
        }
        Ok(())
    }

    fn encode(&self, state: &RolesState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<RolesState, CodecError> {
        decode_rkyv(bytes)
    }
}
