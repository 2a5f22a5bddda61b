//! The access policy of a NIP-29 relay, built on the queries: who may read a group,
//! who may write to it, and whether an incoming event is accepted ([`AccessPolicy::check_write`]),
//! with NIP-01 `OK` messages.
//!
//! Decisions (where NIP-29 leaves room; see SEMANTICS.md):
//! - The relay key is always a relay admin. Other relay admins (from [`Policy`]) have
//!   their powers in private groups only when `admins_manage_private` is set.
//! - Moderation (9000–9020 except the join/leave requests, in particular 9000, 9001,
//!   9002, 9005, 9008, 9009, 9010) is allowed to the creator of the group's current
//!   life, relay admins, and members holding one of [`Policy::group_admin_roles`]
//!   (`admin` by default; none in zooid's dialect, where only the creator and relay
//!   admins moderate).
//! - Creating a group (9007) is open to anyone (NIP-29 sets no condition) unless
//!   [`Policy::admin_create_only`] (only relay admins create groups) or, for a private
//!   group, [`Policy::private_admin_only`]; both are zooid's switches. Relay admins
//!   count here whatever `admins_manage_private` says: creating is not managing.
//! - Only relay admins may change the write-restricted flag (the seed relay's), by 9002
//!   or by creating a group (9007) that is already write-restricted. NIP-29's
//!   `restricted` is group metadata like any other.
//! - Subgroups: a 9002 or 9007 may carry at most one `parent`; the parent must exist,
//!   must not be the group or one of its descendants, and the author must be an admin
//!   of the parent (its creator, a relay admin, or a member holding `admin` there). A
//!   9002 on a group with children must list every current child as a `child` tag.
//! - Joining (9021): honoured unless the group is `closed` (NIP-29); a closed group
//!   needs a valid invite code (a `code` tag matching a 9009 code). Codes are
//!   reusable. With [`Policy::private_needs_invite`] (zooid's dialect), private and
//!   hidden groups need one too.
//! - A hidden group is invisible to outsiders: every event of theirs for it is
//!   answered "group not found", except a join request the group would honour (`hidden`
//!   hides metadata; it does not decide joins).
//! - Timeline references: every value of a `previous` tag of a group event must be the
//!   first 4 to 32 bytes (8 to 64 hex digits) of the id of an event in the log.
//! - The relay's kinds 39000–39009 are accepted only when signed by the relay key.
//! - Posting: a kind outside the group's `supported_kinds` is refused. In a
//!   write-restricted group, only the creator, relay admins and members holding
//!   `writer` post. In a `restricted` group, members and relay admins. Otherwise anyone
//!   posts (NIP-29) — unless [`Policy::require_membership`] is set, which makes every
//!   group members-only, except that with `auto_join` anyone may post to a group that
//!   is neither closed, private nor hidden (the relay then adds them).
//! - Reads: members and relay admins always; everyone else for groups that are
//!   neither private nor hidden (NIP-29), unless `open_reads` is off (zooid's
//!   members-only reading).
//! - If the state cannot be read, `check_write` refuses with an `error:` message.

use std::collections::BTreeSet;

use nostr::prelude::{Event, PublicKey};

use crate::config::kind;
use crate::creator::Creator;
use crate::error::Error;
use crate::fields::{self, GroupMetadata};
use crate::groups::Groups;
use crate::life::Life;
use crate::membership::Membership;
use crate::metadata::Metadata;
use crate::overlay::Overlay;
use crate::parse;
use crate::reads::Reads;
use crate::roles::Roles;

/// Access-policy configuration. The default is NIP-29's text: anyone reads and posts to
/// a group without `private` / `restricted`, and joins are honoured unless `closed`;
/// the other options are other relays' dialects.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent relay options, set by field"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Relay admins besides the relay key.
    pub relay_admins: BTreeSet<PublicKey>,
    /// Whether relay admins keep their powers in private groups.
    pub admins_manage_private: bool,
    /// Anyone reads groups that are neither private nor hidden (NIP-29: "Omitting this
    /// tag indicates that anyone can read group messages"); on by default. Off, only
    /// members and relay admins read any group (zooid's dialect).
    pub open_reads: bool,
    /// With `require_membership`: non-members may still post to groups that are
    /// neither closed, private, hidden nor `restricted` (the relay adds them).
    pub auto_join: bool,
    /// Groups without NIP-29's `restricted` accept posts from members only (NIP-29's
    /// default, off, is that anyone may post to them).
    pub require_membership: bool,
    /// Joining a private or hidden group needs a valid invite code, as joining a closed
    /// one does (zooid's dialect). Off by default: NIP-29 honours join requests unless
    /// the group is `closed`.
    pub private_needs_invite: bool,
    /// Only relay admins (the relay key and [`Policy::relay_admins`]) create groups
    /// (zooid's `admin_create_only`). Off by default: NIP-29 lets anyone create one.
    pub admin_create_only: bool,
    /// Only relay admins create private groups (zooid's `private_admin_only`). Off by
    /// default.
    pub private_admin_only: bool,
    /// Group roles whose holders (members) moderate a group, besides its creator and
    /// relay admins: `admin` by default. Empty in zooid's dialect, where group roles
    /// give no moderation rights.
    pub group_admin_roles: BTreeSet<String>,
    /// The relay answers an accepted join request (9021) with its own 9000 at once
    /// (NIP-29's honoured join; zooid's `auto_join = true`). Off, a join request is
    /// stored and waits for a moderator's 9000 (zooid's default). On by default.
    pub answer_joins: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            relay_admins: BTreeSet::new(),
            admins_manage_private: false,
            open_reads: true,
            auto_join: false,
            require_membership: false,
            private_needs_invite: false,
            admin_create_only: false,
            private_admin_only: false,
            group_admin_roles: ["admin".to_owned()].into_iter().collect(),
            answer_joins: true,
        }
    }
}

/// Why an event was refused; displays as a NIP-01 `OK` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A group kind without its group tag.
    #[error("invalid: missing group id (`h` tag)")]
    MissingGroup,
    /// More than one `h` tag: an event belongs to one group.
    #[error("invalid: more than one group id (`h` tag)")]
    ManyGroups,
    /// The group does not exist, or is hidden from this author.
    #[error("invalid: group not found")]
    GroupNotFound,
    /// A 9007 for a group that exists.
    #[error("duplicate: group already exists")]
    AlreadyExists,
    /// Moderation by someone who is neither creator, relay admin nor group admin.
    #[error("restricted: not authorised to moderate this group")]
    NotAuthorised,
    /// A change of the write-restricted flag by someone who is not a relay admin.
    #[error("restricted: only relay admins can change the write-restricted flag")]
    RestrictedFlag,
    /// A join request from a member.
    #[error("duplicate: already a member")]
    AlreadyMember,
    /// A leave request from a non-member.
    #[error("invalid: not a member of this group")]
    NotMember,
    /// A join request to a closed group without a valid invite code.
    #[error("restricted: group is closed; a valid invite code is required")]
    Closed,
    /// A 9007 by someone who is not a relay admin (with [`Policy::admin_create_only`]).
    #[error("restricted: only relay admins can create groups")]
    AdminCreateOnly,
    /// A 9007 of a private group by someone who is not a relay admin (with
    /// [`Policy::private_admin_only`]).
    #[error("restricted: only relay admins can create private groups")]
    PrivateAdminOnly,
    /// A join request to a private or hidden group without a valid invite code (with
    /// [`Policy::private_needs_invite`]).
    #[error("restricted: an invite code is required to join this group")]
    InviteRequired,
    /// A post to a write-restricted group by someone who is not a writer.
    #[error("restricted: group is write-restricted; only writers may post")]
    WriteRestricted,
    /// A post by a non-member.
    #[error("restricted: only members can post to this group")]
    MembersOnly,
    /// A post of a kind the group's `supported_kinds` does not list.
    #[error("restricted: this group does not accept events of kind {0}")]
    UnsupportedKind(u16),
    /// A 9002 or 9007 with more than one `parent` tag.
    #[error("invalid: at most one parent tag")]
    ManyParents,
    /// A `parent` that does not exist.
    #[error("invalid: parent group not found")]
    ParentNotFound,
    /// A `parent` that is the group itself or one of its descendants.
    #[error("invalid: the parent would create a cycle")]
    ParentCycle,
    /// A `parent` set by someone who is not an admin of that parent.
    #[error("restricted: only an admin of the parent group can attach to it")]
    NotParentAdmin,
    /// A 9002 on a parent that does not list every current child.
    #[error("invalid: edit-metadata must list every current child as a child tag")]
    ChildrenOmitted,
    /// A relay kind (39000–39009) not signed by the relay.
    #[error("restricted: only the relay publishes group state events")]
    RelayOnly,
    /// Another kind a registered projection takes only from the relay's key (NIP-43's
    /// member events, the NIP-86 record), not signed by it.
    #[error("restricted: kind {0} is signed by the relay itself")]
    RelaySigned(u16),
    /// A `previous` value that is not the start of the id of an event in the log.
    #[error("invalid: previous reference {0:?} names no event stored here")]
    UnknownPrevious(String),
    /// The group's state could not be read; nothing is accepted meanwhile.
    #[error("error: could not check the group: {0}")]
    Unavailable(String),
}

impl Rejection {
    /// The NIP-01 `OK` prefix: `invalid`, `restricted`, `duplicate` or `error`.
    pub fn prefix(&self) -> &'static str {
        match self {
            Rejection::MissingGroup
            | Rejection::ManyGroups
            | Rejection::GroupNotFound
            | Rejection::NotMember
            | Rejection::ManyParents
            | Rejection::ParentNotFound
            | Rejection::ParentCycle
            | Rejection::ChildrenOmitted
            | Rejection::UnknownPrevious(_) => "invalid",
            Rejection::AlreadyExists | Rejection::AlreadyMember => "duplicate",
            Rejection::Unavailable(_) => "error",
            _ => "restricted",
        }
    }
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Self {
        Rejection::Unavailable(error.to_string())
    }
}

/// What the policy knows of one (group, pubkey), gathered from fully loaded reads.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no facts about one author"
)]
#[derive(Debug, Clone)]
struct Facts {
    life: Life,
    metadata: Flags,
    member: bool,
    group_admin: bool,
    writer: bool,
    creator: bool,
    /// Whether one of the codes offered is a valid invite code of the group.
    valid_code: bool,
}

/// The flags of a group's metadata: all the policy needs of it (copied out of the
/// read instead of cloning names, pictures and tags).
#[derive(Debug, Clone, Copy)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the NIP-29 and seed-relay flags"
)]
struct Flags {
    private: bool,
    closed: bool,
    hidden: bool,
    restricted: bool,
    write_restricted: bool,
}

impl Flags {
    fn of(m: &GroupMetadata) -> Self {
        Self {
            private: m.private,
            closed: m.closed,
            hidden: m.hidden,
            restricted: m.restricted,
            write_restricted: m.write_restricted,
        }
    }
}

/// The access policy over a [`Groups`].
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    groups: Groups,
    policy: Policy,
}

impl AccessPolicy {
    /// A policy over `groups` (use [`Groups::oracle`] for reference answers).
    pub fn new(groups: Groups, policy: Policy) -> Self {
        Self { groups, policy }
    }

    /// The queries it answers from.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The configuration.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn facts(
        &self,
        reads: &Reads<'_>,
        group: &str,
        pubkey: Option<&PublicKey>,
        codes: &[&str],
    ) -> Result<Facts, Error> {
        let groups = reads.groups();
        let query = reads.resolve(group)?;
        let (life, metadata, valid_code) = groups.with_in::<Metadata, _>(query, |s| {
            (
                s.lifecycle().life,
                Flags::of(s.metadata()),
                codes.iter().any(|code| s.has_invite(code)),
            )
        })?;
        let Some(pubkey) = pubkey else {
            return Ok(Facts {
                life,
                metadata,
                member: false,
                group_admin: false,
                writer: false,
                creator: false,
                valid_code,
            });
        };
        let member = groups.with_in::<Membership, _>(query, |s| s.is_member(pubkey.as_bytes()))?;
        let (group_admin, writer) = groups.with_in::<Roles, _>(query, |r| {
            (
                self.policy
                    .group_admin_roles
                    .iter()
                    .any(|role| r.has_role(pubkey.as_bytes(), role)),
                r.has_role(pubkey.as_bytes(), "writer"),
            )
        })?;
        let creator = groups.with_in::<Creator, _>(query, |s| s.is_creator(pubkey.as_bytes()))?;
        Ok(Facts {
            life,
            metadata,
            member,
            group_admin: member && group_admin,
            writer: member && writer,
            creator,
            valid_code,
        })
    }

    /// Whether `pubkey` has relay-admin powers in a group with this privacy.
    fn relay_power(&self, pubkey: Option<&PublicKey>, private: bool) -> bool {
        let Some(pubkey) = pubkey else { return false };
        pubkey == &self.groups.config().relay_pubkey
            || (self.policy.relay_admins.contains(pubkey)
                && (!private || self.policy.admins_manage_private))
    }

    /// Whether `pubkey` is the relay key or a relay admin, whatever the group.
    fn is_relay_admin(&self, pubkey: &PublicKey) -> bool {
        pubkey == &self.groups.config().relay_pubkey || self.policy.relay_admins.contains(pubkey)
    }

    /// Members and relay admins (in the sense of [`AccessPolicy::relay_power`]).
    fn privileged(&self, facts: &Facts, pubkey: Option<&PublicKey>) -> bool {
        facts.member || self.relay_power(pubkey, facts.metadata.private)
    }

    /// Whether `pubkey` (or an unauthenticated reader) may read `group`'s events.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn can_read(&self, pubkey: Option<&PublicKey>, group: &str) -> Result<bool, Error> {
        let facts = self.facts(&Reads::committed(&self.groups), group, pubkey, &[])?;
        if facts.life != Life::Active {
            return Ok(false);
        }
        let privileged = self.privileged(&facts, pubkey);
        let public = !facts.metadata.private && !facts.metadata.hidden;
        Ok(privileged || (public && self.policy.open_reads))
    }

    /// Whether `pubkey` may see that `group` exists, and its metadata.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn has_access(&self, pubkey: Option<&PublicKey>, group: &str) -> Result<bool, Error> {
        let facts = self.facts(&Reads::committed(&self.groups), group, pubkey, &[])?;
        Ok(facts.life == Life::Active
            && (!facts.metadata.hidden || self.privileged(&facts, pubkey)))
    }

    /// Whether `pubkey` may post (non-moderation events) to `group`.
    ///
    /// The same rule as the posting branch of [`AccessPolicy::check_write`] (except
    /// `supported_kinds`, which needs the event's kind), reading only what the answer
    /// needs: the flags first (a group open to everyone answers without any other
    /// read), then membership, or for write-restricted groups the creator and the
    /// `writer` role. This is asked on every event.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn can_write(&self, group: &str, pubkey: &PublicKey) -> Result<bool, Error> {
        let groups = &self.groups;
        let query = groups.resolve(group)?;
        let (life, m) = groups
            .with_in::<Metadata, _>(query, |s| (s.lifecycle().life, Flags::of(s.metadata())))?;
        if life != Life::Active {
            return Ok(false);
        }
        if self.relay_power(Some(pubkey), m.private) {
            return Ok(true);
        }
        let key = pubkey.as_bytes();
        let is_member = || groups.with_in::<Membership, _>(query, |s| s.is_member(key));
        if m.write_restricted {
            return Ok(groups.with_in::<Creator, _>(query, |s| s.is_creator(key))?
                || (is_member()?
                    && groups.with_in::<Roles, _>(query, |s| s.has_role(key, "writer"))?));
        }
        if !self.members_only(m) {
            return Ok(true);
        }
        Ok(is_member()? || self.auto_joins(m))
    }

    /// Whether posting to a group with these flags needs membership (before
    /// `auto_join`).
    fn members_only(&self, m: Flags) -> bool {
        m.restricted || self.policy.require_membership
    }

    /// Whether `auto_join` lets a non-member post to a group with these flags.
    fn auto_joins(&self, m: Flags) -> bool {
        self.policy.auto_join && !m.restricted && !m.closed && !m.private && !m.hidden
    }

    fn may_post(&self, facts: &Facts, pubkey: &PublicKey) -> bool {
        if facts.life != Life::Active {
            return false;
        }
        let m = &facts.metadata;
        let power = self.relay_power(Some(pubkey), m.private);
        if m.write_restricted {
            facts.creator || power || facts.writer
        } else if self.members_only(*m) {
            facts.member || power || self.auto_joins(*m)
        } else {
            true
        }
    }

    /// Whether `pubkey` may moderate `group` (creator, relay admin, or member holding
    /// `admin`).
    fn is_admin_of(
        &self,
        reads: &Reads<'_>,
        group: &str,
        pubkey: &PublicKey,
    ) -> Result<bool, Error> {
        let facts = self.facts(reads, group, Some(pubkey), &[])?;
        Ok(facts.life == Life::Active
            && (facts.creator
                || facts.group_admin
                || self.relay_power(Some(pubkey), facts.metadata.private)))
    }

    /// The subgroup rules of a 9002 or 9007 on `group`.
    fn check_subgroup(
        &self,
        reads: &Reads<'_>,
        event: &Event,
        group: &str,
        author: &PublicKey,
    ) -> Result<(), Rejection> {
        if fields::parent_tag_count(event.tags.iter()) > 1 {
            return Err(Rejection::ManyParents);
        }
        let wanted = GroupMetadata::from_event(event);
        if let Some(parent) = &wanted.parent {
            if parent == group || reads.would_cycle(group, parent)? {
                return Err(Rejection::ParentCycle);
            }
            if !reads.group_exists(parent)? {
                return Err(Rejection::ParentNotFound);
            }
            if !self.is_admin_of(reads, parent, author)? {
                return Err(Rejection::NotParentAdmin);
            }
        }
        if event.kind.as_u16() == kind::EDIT_METADATA {
            let listed = fields::child_tags(event.tags.iter());
            let children = reads.children(group)?;
            if children.iter().any(|c| !listed.contains(c)) {
                return Err(Rejection::ChildrenOmitted);
            }
        }
        Ok(())
    }

    /// Every `previous` value of `event` must name an event in the log (NIP-29
    /// "Relays are expected to reject any events that contain timeline references to
    /// events not found in their own database").
    fn check_previous(reads: &Reads<'_>, event: &Event) -> Result<(), Rejection> {
        for value in parse::previous(event.tags.iter()) {
            let known = match parse::id_prefix(value) {
                Some(prefix) => reads.has_id_prefix(&prefix)?,
                None => false,
            };
            if !known {
                // Quoted in the answer, cut to what a well-formed reference can be.
                return Err(Rejection::UnknownPrevious(value.chars().take(64).collect()));
            }
        }
        Ok(())
    }

    /// A kind only the relay signs ([`KindTable::is_relay_signed`](crate::KindTable::is_relay_signed)):
    /// accepted from the relay's key alone.
    fn check_relay_signed(&self, k: u16, author: &PublicKey) -> Result<(), Rejection> {
        if *author == self.groups.config().relay_pubkey {
            Ok(())
        } else if (kind::METADATA..=kind::RELAY_LAST).contains(&k) {
            Err(Rejection::RelayOnly)
        } else {
            Err(Rejection::RelaySigned(k))
        }
    }

    /// Whether the relay accepts `event`; the error is the NIP-01 `OK` message. Events
    /// of other kinds without an `h` tag are not group events and are accepted.
    ///
    /// # Errors
    ///
    /// The refusal, as a [`Rejection`] whose text is the NIP-01 `OK` message; also
    /// [`Rejection::Unavailable`] when a group involved cannot be fully loaded.
    pub fn check_write(&self, event: &Event) -> Result<(), Rejection> {
        self.check_write_in(&Reads::committed(&self.groups), event)
    }

    /// [`AccessPolicy::check_write`] against the committed state with a writer's
    /// accepted, unacknowledged changes folded in.
    pub(crate) fn check_write_pending(
        &self,
        event: &Event,
        overlay: &Overlay,
    ) -> Result<(), Rejection> {
        self.check_write_in(&Reads::pending(&self.groups, overlay), event)
    }

    fn check_write_in(&self, reads: &Reads<'_>, event: &Event) -> Result<(), Rejection> {
        let k = event.kind.as_u16();
        let author = event.pubkey;
        if self.groups.kinds().is_relay_signed(k) {
            return self.check_relay_signed(k, &author);
        }
        let mut h = event.tags.iter().filter(|t| t.kind() == "h");
        let group = h.next().and_then(|t| t.content()).filter(|g| !g.is_empty());
        if h.next().is_some() {
            return Err(Rejection::ManyGroups);
        }
        let Some(group) = group else {
            let group_kind = (kind::PUT_USER..=kind::LEAVE_REQUEST).contains(&k);
            return if group_kind {
                Err(Rejection::MissingGroup)
            } else {
                Ok(())
            };
        };
        Self::check_previous(reads, event)?;
        let codes: Vec<&str> = if k == kind::JOIN_REQUEST {
            parse::codes(event.tags.iter()).collect()
        } else {
            Vec::new()
        };
        let facts = self.facts(reads, group, Some(&author), &codes)?;
        if k == kind::CREATE_GROUP {
            if facts.life == Life::Active {
                return Err(Rejection::AlreadyExists);
            }
            let wanted = GroupMetadata::from_event(event);
            let relay_admin = self.is_relay_admin(&author);
            if self.policy.admin_create_only && !relay_admin {
                return Err(Rejection::AdminCreateOnly);
            }
            if self.policy.private_admin_only && wanted.private && !relay_admin {
                return Err(Rejection::PrivateAdminOnly);
            }
            if wanted.write_restricted && !self.relay_power(Some(&author), wanted.private) {
                return Err(Rejection::RestrictedFlag);
            }
            return self.check_subgroup(reads, event, group, &author);
        }
        if facts.life != Life::Active {
            return Err(Rejection::GroupNotFound);
        }
        let m = &facts.metadata;
        let power = self.relay_power(Some(&author), m.private);
        let valid_code = facts.valid_code;
        let invite_only = self.policy.private_needs_invite && (m.private || m.hidden);
        // A join the group would honour is answered even by a hidden group: `hidden`
        // hides metadata, it does not decide joins.
        let honoured_join = k == kind::JOIN_REQUEST && (valid_code || !(m.closed || invite_only));
        if m.hidden && !facts.member && !power && !honoured_join {
            return Err(Rejection::GroupNotFound);
        }
        match k {
            kind::JOIN_REQUEST => {
                if facts.member {
                    Err(Rejection::AlreadyMember)
                } else if invite_only && !valid_code {
                    Err(Rejection::InviteRequired)
                } else if m.closed && !valid_code {
                    Err(Rejection::Closed)
                } else {
                    Ok(())
                }
            }
            kind::LEAVE_REQUEST => {
                if facts.member {
                    Ok(())
                } else {
                    Err(Rejection::NotMember)
                }
            }
            kind::PUT_USER..=kind::LEAVE_REQUEST => {
                if !(facts.creator || power || facts.group_admin) {
                    return Err(Rejection::NotAuthorised);
                }
                if k == kind::EDIT_METADATA {
                    if GroupMetadata::from_event(event).write_restricted != m.write_restricted
                        && !power
                    {
                        return Err(Rejection::RestrictedFlag);
                    }
                    self.check_subgroup(reads, event, group, &author)?;
                }
                Ok(())
            }
            _ if !reads.with::<Metadata, _>(group, |s| s.metadata().supports_kind(k))? => {
                Err(Rejection::UnsupportedKind(k))
            }
            _ if self.may_post(&facts, &author) => Ok(()),
            _ if m.write_restricted => Err(Rejection::WriteRestricted),
            _ => Err(Rejection::MembersOnly),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rejection;

    #[test]
    fn every_message_starts_with_its_prefix() {
        let all = [
            Rejection::MissingGroup,
            Rejection::ManyGroups,
            Rejection::GroupNotFound,
            Rejection::AlreadyExists,
            Rejection::NotAuthorised,
            Rejection::RestrictedFlag,
            Rejection::AlreadyMember,
            Rejection::NotMember,
            Rejection::Closed,
            Rejection::InviteRequired,
            Rejection::AdminCreateOnly,
            Rejection::PrivateAdminOnly,
            Rejection::WriteRestricted,
            Rejection::MembersOnly,
            Rejection::UnsupportedKind(1),
            Rejection::ManyParents,
            Rejection::ParentNotFound,
            Rejection::ParentCycle,
            Rejection::NotParentAdmin,
            Rejection::ChildrenOmitted,
            Rejection::RelayOnly,
            Rejection::RelaySigned(8000),
            Rejection::UnknownPrevious("0a1b2c3d".into()),
            Rejection::Unavailable("x".into()),
        ];
        for r in all {
            assert!(
                r.to_string().starts_with(&format!("{}: ", r.prefix())),
                "{r}"
            );
        }
    }
}
