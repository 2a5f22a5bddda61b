//! Rendering a group as the relay-authored state events a relay publishes: 39000
//! (metadata, with `member_count` for non-private groups), 39001 (admins: members
//! holding `admin`, with their roles), 39002 (members, roles at `p` positions 2+),
//! 39003 (role definitions). Members and roles are sorted; the output is a function of
//! the projections' state and the `created_at` given, nothing else.

use nostr::prelude::{Event, Keys, Kind, PublicKey, SignEvent, Tag, Timestamp, UnsignedEvent};

use crate::config::kind;
use crate::error::Error;
use crate::groups::{Groups, MemberRoles};
use crate::life::Life;
use crate::metadata::GroupMetadata;
use crate::parse::to_hex;
use crate::roles::RoleDefinition;

/// What the state events of one group are rendered from.
struct Parts {
    metadata: GroupMetadata,
    members: Vec<MemberRoles>,
    definitions: Vec<RoleDefinition>,
}

fn p_tag(pubkey: &[u8; 32], roles: &[String]) -> Tag {
    Tag::custom(
        "p",
        std::iter::once(to_hex(pubkey)).chain(roles.iter().cloned()),
    )
}

fn event(
    relay: PublicKey,
    created_at: Timestamp,
    k: u16,
    group: &str,
    tags: Vec<Tag>,
) -> UnsignedEvent {
    let all = std::iter::once(Tag::custom("d", [group])).chain(tags);
    UnsignedEvent::new(relay, created_at, Kind::from(k), all, "")
}

fn render_parts(
    relay: PublicKey,
    created_at: Timestamp,
    group: &str,
    parts: &Parts,
) -> Vec<UnsignedEvent> {
    let m = &parts.metadata;
    let mut meta = Vec::new();
    for (name, value) in [
        ("name", &m.name),
        ("about", &m.about),
        ("picture", &m.picture),
    ] {
        if let Some(value) = value {
            meta.push(Tag::custom(name, [value.as_str()]));
        }
    }
    for (name, set) in [
        ("private", m.private),
        ("closed", m.closed),
        ("hidden", m.hidden),
        ("restricted", m.restricted),
    ] {
        if set {
            meta.push(Tag::custom(name, std::iter::empty::<String>()));
        }
    }
    if !m.private {
        meta.push(Tag::custom(
            "member_count",
            [parts.members.len().to_string()],
        ));
    }
    for extra in &m.extra_tags {
        if let Some((name, values)) = extra.split_first() {
            meta.push(Tag::custom(name.as_str(), values.iter().cloned()));
        }
    }
    let admins = parts
        .members
        .iter()
        .filter(|(_, roles)| roles.iter().any(|r| r == "admin"))
        .map(|(pk, roles)| p_tag(pk, roles))
        .collect();
    let members = parts
        .members
        .iter()
        .map(|(pk, roles)| p_tag(pk, roles))
        .collect();
    let roles = parts
        .definitions
        .iter()
        .map(|d| {
            Tag::custom(
                "role",
                std::iter::once(d.name.clone()).chain(d.description.clone()),
            )
        })
        .collect();
    vec![
        event(relay, created_at, kind::METADATA, group, meta),
        event(relay, created_at, kind::ADMINS, group, admins),
        event(relay, created_at, kind::MEMBERS, group, members),
        event(relay, created_at, kind::ROLES, group, roles),
    ]
}

impl Groups {
    /// The unsigned 39000, 39001, 39002 and 39003 of `group`, authored by the relay key,
    /// at `created_at`; empty when the group does not exist (unknown or deleted).
    pub fn render(&self, group: &str, created_at: Timestamp) -> Result<Vec<UnsignedEvent>, Error> {
        if self.group_state(group)? != Life::Active {
            return Ok(Vec::new());
        }
        let parts = Parts {
            metadata: self.metadata(group)?,
            members: self.members_with_roles(group)?,
            definitions: self.role_definitions(group)?,
        };
        let relay = PublicKey::from_byte_array(self.config().relay_pubkey);
        Ok(render_parts(relay, created_at, group, &parts))
    }

    /// [`Groups::render`], signed with the relay's `keys`.
    pub fn render_signed(
        &self,
        group: &str,
        keys: &Keys,
        created_at: Timestamp,
    ) -> Result<Vec<Event>, Error> {
        if keys.public_key().to_bytes() != self.config().relay_pubkey {
            return Err(Error::WrongRelayKey {
                expected: to_hex(&self.config().relay_pubkey),
            });
        }
        self.render(group, created_at)?
            .into_iter()
            .map(|unsigned| {
                keys.sign_event(unsigned)
                    .map_err(|e| Error::Sign(e.to_string()))
            })
            .collect()
    }
}
