//! The query API: every answer is read from a fully loaded group, one projection at a
//! time, through [`Handle::read`] — or, in oracle mode, from a full replay.
//!
//! There is no cache of its own and no "warmed" flag here: a group that is not loaded
//! is caught up by the engine before the answer is computed, so a miss can never read
//! as "not a member" or "no role". A query that needs several projections resolves the
//! group once ([`Handle::resolve`]: one look for other processes' commits, one lookup
//! of the group) and reads each projection fully loaded to that same head.

use std::sync::Arc;

use highwater_engine::{
    EngineBuilder, EngineError, Handle, Kinds, Projection, RelayWideHandle, ResolvedGroup,
};
use highwater_store::{EventRef, Store};
use nostr::prelude::PublicKey;

use crate::config::Nip29Config;
use crate::creator::{Creator, CreatorState};
use crate::deletions::Deletions;
use crate::dict::Dictionary;
use crate::error::Error;
use crate::fields::{GroupMetadata, Pin};
use crate::kinds::KindTable;
use crate::life::{Life, Lifecycle};
use crate::links::Links;
use crate::management::Management;
use crate::membership::{Membership, MembershipState};
use crate::metadata::{Metadata, MetadataState};
use crate::relay_members::RelayMembers;
use crate::roles::{RoleDefinition, Roles, RolesState};

/// The role the creator of a group is listed with in a rendered 39001, by default.
pub const DEFAULT_CREATOR_ROLE: &str = "admin";

/// A member of a group and their roles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// The member's public key.
    pub pubkey: PublicKey,
    /// Their roles, sorted (empty when they hold none).
    pub roles: Vec<String>,
}

/// The four NIP-29 projections of one engine, and the queries over them.
#[derive(Debug, Clone)]
pub struct Groups {
    config: Nip29Config,
    membership: Handle<Membership>,
    roles: Handle<Roles>,
    metadata: Handle<Metadata>,
    creator: Handle<Creator>,
    store: Store,
    links: Links,
    deletions: RelayWideHandle<Deletions>,
    management: RelayWideHandle<Management>,
    relay_members: RelayWideHandle<RelayMembers>,
    creator_role: Arc<str>,
    oracle: bool,
    /// The kinds of the projections above, as writers need them.
    kinds: Arc<KindTable>,
}

/// A group resolved once for the several reads of one query (see [`Groups::resolve`]).
#[derive(Clone, Copy)]
pub(crate) struct Query<'a> {
    group: &'a str,
    at: At<'a>,
}

/// Where a query's reads answer from.
#[derive(Clone, Copy)]
enum At<'a> {
    /// The engine's states, folded at least to this head.
    Committed(ResolvedGroup<'a>),
    /// A writer's speculative copy (see `overlay.rs`).
    Pending(&'a GroupStates),
}

/// Reads a resolved group's state fully loaded, or by full replay in oracle mode.
fn read_query<P: Projection, R>(
    handle: &Handle<P>,
    oracle: bool,
    group: &str,
    at: ResolvedGroup<'_>,
    f: impl FnOnce(&P::State) -> R,
) -> Result<R, Error> {
    if oracle {
        Ok(f(&handle.replay(group)?))
    } else {
        Ok(handle.read_resolved(at, f)?)
    }
}

/// A per-group projection [`Groups`] registers: where its handle is, for the one
/// generic read ([`Groups::with_in`]), and where its state is in a [`GroupStates`].
pub(crate) trait Registered: Projection + Sized {
    /// The projection's handle in `groups`.
    fn handle(groups: &Groups) -> &Handle<Self>;

    /// The projection's state in `states`.
    fn state(states: &GroupStates) -> &Self::State;
}

impl Registered for Membership {
    fn handle(groups: &Groups) -> &Handle<Self> {
        &groups.membership
    }

    fn state(states: &GroupStates) -> &Self::State {
        &states.membership
    }
}

impl Registered for Roles {
    fn handle(groups: &Groups) -> &Handle<Self> {
        &groups.roles
    }

    fn state(states: &GroupStates) -> &Self::State {
        &states.roles
    }
}

impl Registered for Metadata {
    fn handle(groups: &Groups) -> &Handle<Self> {
        &groups.metadata
    }

    fn state(states: &GroupStates) -> &Self::State {
        &states.metadata
    }
}

impl Registered for Creator {
    fn handle(groups: &Groups) -> &Handle<Self> {
        &groups.creator
    }

    fn state(states: &GroupStates) -> &Self::State {
        &states.creator
    }
}

/// Every per-group state [`Groups`] registers, of one group, owned: the base of a
/// writer's overlay, folded forward with the projections' own `apply`.
#[derive(Debug, Clone)]
pub(crate) struct GroupStates {
    membership: MembershipState,
    roles: RolesState,
    metadata: MetadataState,
    creator: CreatorState,
}

impl GroupStates {
    /// Folds `event` (of this group) into each state whose projection folds its kind,
    /// as the engine does when the log holds it.
    pub(crate) fn apply(&mut self, groups: &Groups, event: EventRef<'_>) -> Result<(), Error> {
        fold(&groups.membership, &mut self.membership, event)?;
        fold(&groups.roles, &mut self.roles, event)?;
        fold(&groups.metadata, &mut self.metadata, event)?;
        fold(&groups.creator, &mut self.creator, event)
    }
}

/// One projection's fold of one event not yet in the log; a failed fold answers as a
/// failed group would.
fn fold<P: Projection>(
    handle: &Handle<P>,
    state: &mut P::State,
    event: EventRef<'_>,
) -> Result<(), Error> {
    let projection = handle.projection();
    let folds = match projection.kinds() {
        Kinds::All => true,
        Kinds::Only(kinds) => kinds.contains(&event.kind()),
    };
    if !folds {
        return Ok(());
    }
    projection.apply(state, &event).map_err(|e| {
        Error::Engine(EngineError::Failed {
            projection: projection.name().to_owned(),
            group: event.group_id().unwrap_or_default().to_owned(),
            // Not yet in the log: no sequence number.
            seq: 0,
            message: e.0,
        })
    })
}

impl Groups {
    /// Registers the `membership`, `roles`, `metadata` and `creator` projections, and
    /// the relay-wide `links` (subgroup candidates) and `deletions` (9005 targets, 9008
    /// positions) projections.
    ///
    /// Membership, roles and creator share one pubkey dictionary (see `dict.rs`): their
    /// per-group states hold dense ids, not 32-byte keys.
    ///
    /// # Errors
    ///
    /// [`EngineError`] when a projection of the same name is already registered.
    pub fn register(builder: &mut EngineBuilder, config: Nip29Config) -> Result<Self, EngineError> {
        let dict = Arc::new(Dictionary::default());
        let mut groups = Self {
            config,
            membership: builder.add(Membership::with_dictionary(config, dict.clone()))?,
            roles: builder.add(Roles::with_dictionary(config, dict.clone()))?,
            metadata: builder.add(Metadata::with_dictionary(config, dict.clone()))?,
            creator: builder.add(Creator::with_dictionary(config, dict))?,
            store: builder.store().clone(),
            links: Links::register(builder)?,
            deletions: builder.add_relay_wide(Deletions)?,
            management: builder.add_relay_wide(Management::new(config.relay_pubkey))?,
            relay_members: builder.add_relay_wide(RelayMembers::new(config.relay_pubkey))?,
            creator_role: Arc::from(DEFAULT_CREATOR_ROLE),
            oracle: false,
            kinds: Arc::new(KindTable::empty()),
        };
        groups.kinds = Arc::new(groups.kind_table());
        Ok(groups)
    }

    /// The kinds of every projection registered above, as writers need them.
    fn kind_table(&self) -> KindTable {
        let mut table = KindTable::empty();
        table.add_group(self.membership.projection());
        table.add_group(self.roles.projection());
        table.add_group(self.metadata.projection());
        table.add_group(self.creator.projection());
        table.add_relay_wide(self.links.handle().projection());
        table.add_relay_wide(self.deletions.projection());
        table.add_relay_wide(self.management.projection());
        table.add_relay_wide(self.relay_members.projection());
        table.finish()
    }

    /// Which kinds change what a write decision reads, and which only the relay signs.
    pub fn kinds(&self) -> &KindTable {
        &self.kinds
    }

    /// The same queries, rendering the creator of a group's current life in 39001 with
    /// the role `role` (default `admin`).
    #[must_use]
    pub fn with_creator_role(mut self, role: &str) -> Self {
        self.creator_role = Arc::from(role);
        self
    }

    /// The role name the creator is listed with in a rendered 39001.
    pub fn creator_role(&self) -> &str {
        &self.creator_role
    }

    /// The store the projections fold.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The relay-wide parent links.
    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    /// The same queries answered from a full replay of the group's log, ignoring
    /// memory and checkpoints: the reference the served answers must equal. Slow; for
    /// tests and verification.
    #[must_use]
    pub fn oracle(&self) -> Self {
        Self {
            oracle: true,
            ..self.clone()
        }
    }

    /// Whether this is an oracle (see [`Groups::oracle`]).
    pub fn is_oracle(&self) -> bool {
        self.oracle
    }

    /// The configuration.
    pub fn config(&self) -> &Nip29Config {
        &self.config
    }

    /// The `membership` projection's handle.
    pub fn membership_projection(&self) -> &Handle<Membership> {
        &self.membership
    }

    /// The `roles` projection's handle.
    pub fn roles_projection(&self) -> &Handle<Roles> {
        &self.roles
    }

    /// The `metadata` projection's handle.
    pub fn metadata_projection(&self) -> &Handle<Metadata> {
        &self.metadata
    }

    /// The `creator` projection's handle.
    pub fn creator_projection(&self) -> &Handle<Creator> {
        &self.creator
    }

    /// The relay-wide `links` projection's handle (every group that ever named each
    /// parent; [`Groups::children`] decides which are children now).
    pub fn links_projection(&self) -> &RelayWideHandle<crate::links::ParentLinks> {
        self.links.handle()
    }

    /// The relay-wide `deletions` projection's handle: what a relay may serve.
    pub fn deletions_projection(&self) -> &RelayWideHandle<Deletions> {
        &self.deletions
    }

    /// The relay-wide `management` projection's handle: the NIP-86 state (bans, the
    /// allow list, the relay's name, description and icon).
    pub fn management_projection(&self) -> &RelayWideHandle<Management> {
        &self.management
    }

    /// The relay-wide `relay_members` projection's handle: NIP-43 relay membership.
    pub fn relay_members_projection(&self) -> &RelayWideHandle<RelayMembers> {
        &self.relay_members
    }

    /// Resolves `group` for the several reads of one query: each `with_*_in` read of it
    /// answers from state folded to the same head.
    pub(crate) fn resolve<'a>(&'a self, group: &'a str) -> Result<Query<'a>, Error> {
        Ok(Query {
            group,
            at: At::Committed(self.membership.resolve(group)?),
        })
    }

    /// A query of `group` whose reads answer from `states` (a writer's overlay).
    pub(crate) fn resolve_pending<'a>(group: &'a str, states: &'a GroupStates) -> Query<'a> {
        Query {
            group,
            at: At::Pending(states),
        }
    }

    /// Copies every per-group state of `group`, as committed now.
    pub(crate) fn states(&self, group: &str) -> Result<GroupStates, Error> {
        let query = self.resolve(group)?;
        Ok(GroupStates {
            membership: self.with_in::<Membership, _>(query, Clone::clone)?,
            roles: self.with_in::<Roles, _>(query, Clone::clone)?,
            metadata: self.with_in::<Metadata, _>(query, Clone::clone)?,
            creator: self.with_in::<Creator, _>(query, Clone::clone)?,
        })
    }

    /// Reads `P`'s state of a resolved group (see [`Groups::resolve`]), fully loaded,
    /// or by full replay in oracle mode.
    pub(crate) fn with_in<P: Registered, R>(
        &self,
        query: Query<'_>,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<R, Error> {
        match query.at {
            At::Committed(at) => read_query(P::handle(self), self.oracle, query.group, at, f),
            At::Pending(states) => Ok(f(P::state(states))),
        }
    }

    /// Reads `P`'s state of `group` (one projection: [`Groups::resolve`], then
    /// [`Groups::with_in`]).
    pub(crate) fn with<P: Registered, R>(
        &self,
        group: &str,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<R, Error> {
        self.with_in::<P, R>(self.resolve(group)?, f)
    }

    /// Whether `pubkey` is a member of `group`.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_member(&self, group: &str, pubkey: &PublicKey) -> Result<bool, Error> {
        self.with::<Membership, _>(group, |s| s.is_member(pubkey.as_bytes()))
    }

    /// The members of `group`, sorted by pubkey.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn members(&self, group: &str) -> Result<Vec<PublicKey>, Error> {
        self.with::<Membership, _>(group, |s| {
            s.members()
                .into_iter()
                .map(PublicKey::from_byte_array)
                .collect()
        })
    }

    /// How many members `group` has.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn member_count(&self, group: &str) -> Result<usize, Error> {
        self.with::<Membership, _>(group, MembershipState::member_count)
    }

    /// The members of `group` with their roles, sorted by pubkey (two reads).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn members_with_roles(&self, group: &str) -> Result<Vec<Member>, Error> {
        let query = self.resolve(group)?;
        let members = self.with_in::<Membership, _>(query, MembershipState::members)?;
        self.with_in::<Roles, _>(query, |r| {
            members
                .into_iter()
                .map(|key| {
                    let roles = r.roles(&key).map(str::to_owned).collect();
                    let pubkey = PublicKey::from_byte_array(key);
                    Member { pubkey, roles }
                })
                .collect()
        })
    }

    /// Whether `pubkey` holds `role` in `group`.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn has_role(&self, group: &str, pubkey: &PublicKey, role: &str) -> Result<bool, Error> {
        self.with::<Roles, _>(group, |s| s.has_role(pubkey.as_bytes(), role))
    }

    /// The roles of `pubkey` in `group`, sorted (empty for non-members).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn roles(&self, group: &str, pubkey: &PublicKey) -> Result<Vec<String>, Error> {
        self.with::<Roles, _>(group, |s| {
            s.roles(pubkey.as_bytes()).map(str::to_owned).collect()
        })
    }

    /// The role definitions of `group` (its latest relay 39003), sorted by name.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn role_definitions(&self, group: &str) -> Result<Vec<RoleDefinition>, Error> {
        self.with::<Roles, _>(group, |s| s.definitions().collect())
    }

    /// The metadata of `group` (default, all flags false, when it does not exist), with
    /// its effective parent (see [`Groups::parent`]).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn metadata(&self, group: &str) -> Result<GroupMetadata, Error> {
        let mut metadata = self.with::<Metadata, _>(group, |s| s.metadata().clone())?;
        if metadata.parent.is_some() {
            metadata.parent = self.parent(group)?;
        }
        Ok(metadata)
    }

    /// The pinned references of `group` (its latest 9010's `e`/`a` values), in order.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn pinned(&self, group: &str) -> Result<Vec<String>, Error> {
        self.with::<Metadata, _>(group, |s| {
            s.pins().iter().map(|p| p.value.clone()).collect()
        })
    }

    /// The pins of `group` with their tag names (`e` or `a`), in order.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn pins(&self, group: &str) -> Result<Vec<Pin>, Error> {
        self.with::<Metadata, _>(group, |s| s.pins().to_vec())
    }

    /// Whether `group` is private (only members read).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_private(&self, group: &str) -> Result<bool, Error> {
        self.with::<Metadata, _>(group, |s| s.metadata().private)
    }

    /// Whether `group` is closed (joining needs an invite code).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_closed(&self, group: &str) -> Result<bool, Error> {
        self.with::<Metadata, _>(group, |s| s.metadata().closed)
    }

    /// Whether `group` is hidden (invisible to non-members).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_hidden(&self, group: &str) -> Result<bool, Error> {
        self.with::<Metadata, _>(group, |s| s.metadata().hidden)
    }

    /// Whether `group` is `restricted` (NIP-29: only members write).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_restricted(&self, group: &str) -> Result<bool, Error> {
        self.with::<Metadata, _>(group, |s| s.metadata().restricted)
    }

    /// Whether `group` is write-restricted (the seed relay's flag: only `writer` role
    /// holders, the creator and relay admins post).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_write_restricted(&self, group: &str) -> Result<bool, Error> {
        self.with::<Metadata, _>(group, |s| s.metadata().write_restricted)
    }

    /// The invite codes of `group`, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn invite_codes(&self, group: &str) -> Result<Vec<String>, Error> {
        self.with::<Metadata, _>(group, |s| s.invite_codes().map(str::to_owned).collect())
    }

    /// Whether `code` is a valid invite code of `group`.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn has_invite(&self, group: &str, code: &str) -> Result<bool, Error> {
        self.with::<Metadata, _>(group, |s| s.has_invite(code))
    }

    /// The creator of `group`'s current life.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn creator(&self, group: &str) -> Result<Option<PublicKey>, Error> {
        self.with::<Creator, _>(group, |s| s.creator().map(PublicKey::from_byte_array))
    }

    /// Whether `pubkey` created `group`'s current life.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn is_creator(&self, group: &str, pubkey: &PublicKey) -> Result<bool, Error> {
        self.with::<Creator, _>(group, |s| s.is_creator(pubkey.as_bytes()))
    }

    /// Whether `group` exists (created, moderated or seeded, and not deleted).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn group_exists(&self, group: &str) -> Result<bool, Error> {
        Ok(self.group_state(group)? == Life::Active)
    }

    /// Whether `group` is unknown, active or deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn group_state(&self, group: &str) -> Result<Life, Error> {
        Ok(self.lifecycle(group)?.life)
    }

    /// `group`'s life and source (from the `creator` projection, the smallest state;
    /// every projection tracks the same lifecycle).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn lifecycle(&self, group: &str) -> Result<Lifecycle, Error> {
        self.with::<Creator, _>(group, CreatorState::lifecycle)
    }
}
