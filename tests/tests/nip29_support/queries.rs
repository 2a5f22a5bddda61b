//! Every query of the NIP-29 API, as data: so a test can ask each one on its own, on a
//! cold engine, and compare it with the oracle (full replay).

use highwater_projections::{AccessPolicy, Groups, Policy};
use nostr::prelude::{Event, Keys, PublicKey, Timestamp};

use super::{ev, pk};

/// One query of the API (policy queries included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    IsMember,
    Members,
    MemberCount,
    MembersWithRoles,
    HasRole,
    Roles,
    RoleDefinitions,
    Metadata,
    IsPrivate,
    IsClosed,
    IsHidden,
    IsRestricted,
    IsWriteRestricted,
    Parent,
    Children,
    Pinned,
    InviteCodes,
    HasInvite,
    Creator,
    IsCreator,
    GroupExists,
    GroupState,
    Lifecycle,
    Render,
    CanRead,
    CanWrite,
    HasAccess,
    CheckWrite,
}

/// All of them.
pub const ALL: [Query; 28] = [
    Query::IsMember,
    Query::Members,
    Query::MemberCount,
    Query::MembersWithRoles,
    Query::HasRole,
    Query::Roles,
    Query::RoleDefinitions,
    Query::Metadata,
    Query::IsPrivate,
    Query::IsClosed,
    Query::IsHidden,
    Query::IsRestricted,
    Query::IsWriteRestricted,
    Query::Parent,
    Query::Children,
    Query::Pinned,
    Query::InviteCodes,
    Query::HasInvite,
    Query::Creator,
    Query::IsCreator,
    Query::GroupExists,
    Query::GroupState,
    Query::Lifecycle,
    Query::Render,
    Query::CanRead,
    Query::CanWrite,
    Query::HasAccess,
    Query::CheckWrite,
];

/// Role names and invite codes the tests use.
pub const ROLES: [&str; 4] = ["admin", "writer", "moderator", "x"];
pub const CODES: [&str; 3] = ["c1", "c2", "nope"];

/// The policy of the differential tests: one relay admin besides the relay.
pub fn test_policy(admin: &Keys) -> Policy {
    Policy {
        relay_admins: [pk(admin)].into_iter().collect(),
        admins_manage_private: false,
        open_reads: true,
        auto_join: false,
        require_membership: true,
        private_needs_invite: false,
        ..Policy::default()
    }
}

/// Who asks, and what they try to write, for one group.
#[derive(Debug, Clone)]
pub struct Probes {
    pub people: Vec<PublicKey>,
    pub events: Vec<Event>,
}

impl Probes {
    /// Probes for `group`: for each of `people`, a join (with and without a code), a
    /// leave, a post, a put-user, and a metadata edit that sets `write-restricted`.
    pub fn new(group: &str, people: &[Keys]) -> Self {
        let mut events = Vec::new();
        for (i, keys) in people.iter().enumerate() {
            let code = CODES[i % CODES.len()];
            events.push(ev(9021, group).sign(keys));
            events.push(ev(9021, group).tag(&["code", code]).sign(keys));
            events.push(ev(9022, group).sign(keys));
            events.push(ev(9, group).content("hello").sign(keys));
            events.push(
                ev(9000, group)
                    .p(&people[(i + 1) % people.len()], &["writer"])
                    .sign(keys),
            );
            events.push(
                ev(9002, group)
                    .tag(&["name", "n"])
                    .tag(&["write-restricted"])
                    .sign(keys),
            );
        }
        Self {
            people: people.iter().map(pk).collect(),
            events,
        }
    }
}

/// The answer to `query` about `group`, as text (errors included).
pub fn ask(groups: &Groups, policy: &Policy, query: Query, group: &str, probes: &Probes) -> String {
    let access = AccessPolicy::new(groups.clone(), policy.clone());
    let people = &probes.people;
    let per_person =
        |f: &dyn Fn(&PublicKey) -> String| people.iter().map(f).collect::<Vec<_>>().join(" ");
    match query {
        Query::IsMember => per_person(&|p| format!("{:?}", groups.is_member(group, p))),
        Query::Members => format!("{:?}", groups.members(group)),
        Query::MemberCount => format!("{:?}", groups.member_count(group)),
        Query::MembersWithRoles => format!("{:?}", groups.members_with_roles(group)),
        Query::HasRole => per_person(&|p| {
            ROLES
                .iter()
                .map(|r| format!("{:?}", groups.has_role(group, p, r)))
                .collect::<Vec<_>>()
                .join(",")
        }),
        Query::Roles => per_person(&|p| format!("{:?}", groups.roles(group, p))),
        Query::RoleDefinitions => format!("{:?}", groups.role_definitions(group)),
        Query::Metadata => format!("{:?}", groups.metadata(group)),
        Query::IsPrivate => format!("{:?}", groups.is_private(group)),
        Query::IsClosed => format!("{:?}", groups.is_closed(group)),
        Query::IsHidden => format!("{:?}", groups.is_hidden(group)),
        Query::IsRestricted => format!("{:?}", groups.is_restricted(group)),
        Query::IsWriteRestricted => format!("{:?}", groups.is_write_restricted(group)),
        Query::Parent => format!("{:?}", groups.parent(group)),
        Query::Children => format!("{:?}", groups.children(group)),
        Query::Pinned => format!("{:?}", groups.pinned(group)),
        Query::InviteCodes => format!("{:?}", groups.invite_codes(group)),
        Query::HasInvite => CODES
            .iter()
            .map(|c| format!("{:?}", groups.has_invite(group, c)))
            .collect::<Vec<_>>()
            .join(","),
        Query::Creator => format!("{:?}", groups.creator(group)),
        Query::IsCreator => per_person(&|p| format!("{:?}", groups.is_creator(group, p))),
        Query::GroupExists => format!("{:?}", groups.group_exists(group)),
        Query::GroupState => format!("{:?}", groups.group_state(group)),
        Query::Lifecycle => format!("{:?}", groups.lifecycle(group)),
        Query::Render => format!("{:?}", groups.render(group, Timestamp::from_secs(1))),
        Query::CanRead => {
            let anonymous = format!("{:?}", access.can_read(None, group));
            anonymous + &per_person(&|p| format!("{:?}", access.can_read(Some(p), group)))
        }
        Query::CanWrite => per_person(&|p| format!("{:?}", access.can_write(group, p))),
        Query::HasAccess => {
            let anonymous = format!("{:?}", access.has_access(None, group));
            anonymous + &per_person(&|p| format!("{:?}", access.has_access(Some(p), group)))
        }
        Query::CheckWrite => probes
            .events
            .iter()
            .map(|e| format!("{:?}", access.check_write(e)))
            .collect::<Vec<_>>()
            .join(";"),
    }
}
