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
use crate::roles::{RoleDefinition, Roles};

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

fn metadata_tags(m: &GroupMetadata, children: &[String], member_count: usize) -> Vec<Tag> {
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
        meta.push(Tag::custom("member_count", [member_count.to_string()]));
    }
    if let Some(parent) = &m.parent {
        meta.push(Tag::custom("parent", [parent.as_str()]));
    }
    for child in children {
        meta.push(Tag::custom("child", [child.as_str()]));
    }
    for extra in &m.extra_tags {
        if let Some((name, values)) = extra.split_first() {
            meta.push(Tag::custom(name.as_str(), values.iter().cloned()));
        }
    }
    meta
}

fn admin_tags(admins: &BTreeMap<PublicKey, BTreeSet<String>>) -> Vec<Tag> {
    admins
        .iter()
        .map(|(pk, roles)| {
            Tag::custom(
                "p",
                std::iter::once(pk.to_hex()).chain(roles.iter().cloned()),
            )
        })
        .collect()
}

fn member_tags(members: &[PublicKey]) -> Vec<Tag> {
    members
        .iter()
        .map(|pk| Tag::custom("p", [pk.to_hex()]))
        .collect()
}

fn role_tags(definitions: &[RoleDefinition]) -> Vec<Tag> {
    definitions
        .iter()
        .map(|d| {
            Tag::custom(
                "role",
                std::iter::once(d.name.clone()).chain(d.description.clone()),
            )
        })
        .collect()
}

fn pin_tags(pins: &[Pin]) -> Vec<Tag> {
    pins.iter()
        .map(|p| Tag::custom(p.tag.as_str(), [p.value.as_str()]))
        .collect()
}

/// Every kind [`Groups::render`] renders, in the order it renders them.
pub const RENDERED_KINDS: [u16; 5] = [
    kind::METADATA,
    kind::ADMINS,
    kind::MEMBERS,
    kind::ROLES,
    kind::PINS,
];

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
        self.render_kinds(group, created_at, &RENDERED_KINDS)
    }

    /// [`Groups::render`] of only the `kinds` asked for (among [`RENDERED_KINDS`], in
    /// that order), reading only what they need: a listing of 39000s loads no member
    /// list but its count.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn render_kinds(
        &self,
        group: &str,
        created_at: Timestamp,
        kinds: &[u16],
    ) -> Result<Vec<UnsignedEvent>, Error> {
        if self.group_state(group)? != Life::Active {
            return Ok(Vec::new());
        }
        let relay = self.config().relay_pubkey;
        let mut out = Vec::new();
        for k in RENDERED_KINDS.into_iter().filter(|k| kinds.contains(k)) {
            let tags = match k {
                kind::METADATA => metadata_tags(
                    &self.metadata(group)?,
                    &self.children(group)?,
                    self.member_count(group)?,
                ),
                kind::ADMINS => admin_tags(&self.admins(group)?),
                kind::MEMBERS => member_tags(&self.members(group)?),
                kind::ROLES => role_tags(&self.role_definitions(group)?),
                _ => pin_tags(&self.pins(group)?),
            };
            out.push(event(relay, created_at, k, group, tags));
        }
        Ok(out)
    }

    /// Every pubkey with moderation power and its roles: the role holders, and the
    /// creator of the current life with the creator role.
    fn admins(&self, group: &str) -> Result<BTreeMap<PublicKey, BTreeSet<String>>, Error> {
        let mut admins: BTreeMap<PublicKey, BTreeSet<String>> =
            self.with::<Roles, _>(group, |r| {
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
        Ok(admins)
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
