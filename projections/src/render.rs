//! Rendering a group as the relay-authored state events a relay publishes:
//! 39000 (metadata: fields, the flags that are set, `supported_kinds`, `member_count`
//! for non-private groups, `parent`, ordered `child` tags, unknown tags), 39001 (every
//! role holder with its roles, plus the creator of the current life with the creator
//! role), 39002 (plain `p` tags), 39003 (role definitions) and 39005 (pins, in order).
//! Pubkeys and roles are sorted; the output is a function of the projections' state and
//! the `created_at` given, nothing else.

use std::collections::{BTreeMap, BTreeSet};

use nostr::prelude::{Event, Keys, Kind, PublicKey, SignEvent, Tag, Timestamp, UnsignedEvent};

use crate::config::kind;
use crate::error::Error;
use crate::fields::{GroupMetadata, Pin};
use crate::groups::Groups;
use crate::life::Life;
use crate::roles::RoleDefinition;

/// What the state events of one group are rendered from.
struct Parts {
    metadata: GroupMetadata,
    children: Vec<String>,
    members: Vec<PublicKey>,
    /// Every pubkey with moderation power and its roles (role holders, the creator).
    admins: BTreeMap<PublicKey, BTreeSet<String>>,
    definitions: Vec<RoleDefinition>,
    pins: Vec<Pin>,
}

fn flag(name: &str) -> Tag {
    Tag::custom(name, std::iter::empty::<String>())
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

fn metadata_tags(parts: &Parts) -> Vec<Tag> {
    let m = &parts.metadata;
    let mut meta = Vec::new();
    for (name, value) in [
        ("name", &m.name),
        ("about", &m.about),
        ("picture", &m.picture),
        ("banner", &m.banner),
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
        ("write-restricted", m.write_restricted),
        ("livekit", m.livekit),
    ] {
        if set {
            meta.push(flag(name));
        }
    }
    if let Some(kinds) = &m.supported_kinds {
        meta.push(Tag::custom(
            "supported_kinds",
            kinds.iter().map(ToString::to_string),
        ));
    }
    if !m.private {
        meta.push(Tag::custom(
            "member_count",
            [parts.members.len().to_string()],
        ));
    }
    if let Some(parent) = &m.parent {
        meta.push(Tag::custom("parent", [parent.as_str()]));
    }
    for child in &parts.children {
        meta.push(Tag::custom("child", [child.as_str()]));
    }
    for extra in &m.extra_tags {
        if let Some((name, values)) = extra.split_first() {
            meta.push(Tag::custom(name.as_str(), values.iter().cloned()));
        }
    }
    meta
}

fn render_parts(
    relay: PublicKey,
    created_at: Timestamp,
    group: &str,
    parts: &Parts,
) -> Vec<UnsignedEvent> {
    let admins = parts
        .admins
        .iter()
        .map(|(pk, roles)| {
            Tag::custom(
                "p",
                std::iter::once(pk.to_hex()).chain(roles.iter().cloned()),
            )
        })
        .collect();
    let members = parts
        .members
        .iter()
        .map(|pk| Tag::custom("p", [pk.to_hex()]))
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
    let pins = parts
        .pins
        .iter()
        .map(|p| Tag::custom(p.tag.as_str(), [p.value.as_str()]))
        .collect();
    vec![
        event(
            relay,
            created_at,
            kind::METADATA,
            group,
            metadata_tags(parts),
        ),
        event(relay, created_at, kind::ADMINS, group, admins),
        event(relay, created_at, kind::MEMBERS, group, members),
        event(relay, created_at, kind::ROLES, group, roles),
        event(relay, created_at, kind::PINS, group, pins),
    ]
}

impl Groups {
    /// The unsigned 39000, 39001, 39002, 39003 and 39005 of `group`, authored by the
    /// relay key, at `created_at`; empty when the group does not exist (unknown or
    /// deleted).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn render(&self, group: &str, created_at: Timestamp) -> Result<Vec<UnsignedEvent>, Error> {
        if self.group_state(group)? != Life::Active {
            return Ok(Vec::new());
        }
        let mut admins: BTreeMap<PublicKey, BTreeSet<String>> = self.with_roles(group, |r| {
            r.holders()
                .into_iter()
                .map(|(pk, roles)| (PublicKey::from_byte_array(pk), roles))
                .collect()
        })?;
        if let Some(creator) = self.creator(group)? {
            admins
                .entry(creator)
                .or_default()
                .insert(self.creator_role().to_owned());
        }
        let parts = Parts {
            metadata: self.metadata(group)?,
            children: self.children(group)?,
            members: self.members(group)?,
            admins,
            definitions: self.role_definitions(group)?,
            pins: self.pins(group)?,
        };
        let relay = self.config().relay_pubkey;
        Ok(render_parts(relay, created_at, group, &parts))
    }

    /// [`Groups::render`], signed with the relay's `keys`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongRelayKey`] when `keys` are not the configured relay key,
    /// [`Error::Sign`] when signing fails, and the errors of [`Groups::render`].
    pub fn render_signed(
        &self,
        group: &str,
        keys: &Keys,
        created_at: Timestamp,
    ) -> Result<Vec<Event>, Error> {
        if keys.public_key() != self.config().relay_pubkey {
            return Err(Error::WrongRelayKey {
                expected: self.config().relay_pubkey.to_hex(),
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
