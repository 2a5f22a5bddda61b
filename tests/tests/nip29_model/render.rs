//! The relay state events the model expects for a group: kind and tags of each.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::model::{Facts, Life, Pk};

/// Lowercase hex of a pubkey.
pub fn hex(pk: &Pk) -> String {
    pk.iter().fold(String::with_capacity(64), |mut out, b| {
        write!(out, "{b:02x}").expect("writing to a String");
        out
    })
}

fn tag(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_owned()).collect()
}

fn p(pk: &Pk, roles: impl IntoIterator<Item = String>) -> Vec<String> {
    std::iter::once("p".to_owned())
        .chain(std::iter::once(hex(pk)))
        .chain(roles)
        .collect()
}

/// The creator role name the relay adds in 39001 (R2; the default).
pub const CREATOR_ROLE: &str = "admin";

/// The (kind, tags) of every state event a relay publishes for `group`, in kind order
/// (R1–R4); nothing for a group that does not exist.
pub fn expected(group: &str, f: &Facts) -> Vec<(u16, Vec<Vec<String>>)> {
    if f.life != Life::Active {
        return Vec::new();
    }
    let d = tag(&["d", group]);
    let m = &f.meta;
    let mut meta = vec![d.clone()];
    for (name, value) in [
        ("name", &m.name),
        ("about", &m.about),
        ("picture", &m.picture),
        ("banner", &m.banner),
    ] {
        if let Some(value) = value {
            meta.push(tag(&[name, value]));
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
            meta.push(tag(&[name]));
        }
    }
    if let Some(kinds) = &m.supported_kinds {
        meta.push(
            std::iter::once("supported_kinds".to_owned())
                .chain(kinds.iter().map(u16::to_string))
                .collect(),
        );
    }
    if !m.private {
        meta.push(tag(&["member_count", &f.members.len().to_string()]));
    }
    if let Some(parent) = &f.parent {
        meta.push(tag(&["parent", parent]));
    }
    for child in &f.children {
        meta.push(tag(&["child", child]));
    }
    meta.extend(m.extra.iter().cloned());
    let mut holders: BTreeMap<Pk, BTreeSet<String>> = f.roles.clone();
    if let Some(creator) = f.creator {
        holders
            .entry(creator)
            .or_default()
            .insert(CREATOR_ROLE.to_owned());
    }
    let mut admins = vec![d.clone()];
    admins.extend(holders.into_iter().map(|(pk, roles)| p(&pk, roles)));
    let mut members = vec![d.clone()];
    members.extend(f.members.iter().map(|pk| p(pk, [])));
    let mut roles = vec![d.clone()];
    roles.extend(f.definitions.iter().map(|(name, description)| {
        std::iter::once("role".to_owned())
            .chain(std::iter::once(name.clone()))
            .chain(description.clone())
            .collect()
    }));
    let mut pins = vec![d];
    pins.extend(f.pins.iter().map(|(name, r)| tag(&[name, r])));
    vec![
        (39_000, meta),
        (39_001, admins),
        (39_002, members),
        (39_003, roles),
        (39_005, pins),
    ]
}
