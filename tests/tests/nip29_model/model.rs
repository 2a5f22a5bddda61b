//! The reference model of the NIP-29 rules: one function from a log (events in log
//! order) to the expected facts of every group it names.
//!
//! Written from the NIP-29 text, NIP-01 and the project's SEMANTICS.md, sharing no code
//! with the folds: no incremental tricks, no per-projection states — one pass over the
//! log with one plain record per group, and relay snapshots resolved only when their
//! result is needed. Every rule carries its source in a comment.

use std::collections::{BTreeMap, BTreeSet};

/// A raw 32-byte pubkey.
pub type Pk = [u8; 32];

/// An event as the model reads it (converted from `nostr::Event` by the harness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: [u8; 32],
    pub pubkey: Pk,
    pub created_at: u64,
    pub kind: u16,
    pub tags: Vec<Vec<String>>,
    pub content: String,
}

impl Event {
    /// The first value of the first tag called `name`.
    fn first(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.first().map(String::as_str) == Some(name))
            .and_then(|t| t.get(1))
            .map(String::as_str)
    }

    /// The group the event belongs to: `d` for the relay state kinds 39000–39003,
    /// `h` for everything else (NIP-29 "The `h` tag", "Group metadata events").
    pub fn group(&self) -> Option<&str> {
        if (39_000..=39_003).contains(&self.kind) {
            self.first("d")
        } else {
            self.first("h")
        }
    }
}

/// Whether a group exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Life {
    #[default]
    Unknown,
    Active,
    Deleted,
}

/// Where the state of the group's current life comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    None,
    Snapshots,
    History,
}

/// A group's metadata, as NIP-29's 39000 describes it.
#[expect(
    clippy::struct_excessive_bools,
    reason = "NIP-29's flags are independent booleans"
)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: Option<String>,
    pub about: Option<String>,
    pub picture: Option<String>,
    pub banner: Option<String>,
    pub private: bool,
    pub closed: bool,
    pub hidden: bool,
    /// NIP-29 `restricted`: only members write.
    pub restricted: bool,
    /// The seed relay's `write-restricted`: only writers post.
    pub write_restricted: bool,
    pub livekit: bool,
    /// `None`: every kind; `Some([])`: none.
    pub supported_kinds: Option<Vec<u16>>,
    /// The `parent` the event declares.
    pub parent: Option<String>,
    /// The `child` tags the event declares, in order.
    pub children: Vec<String>,
    /// Every other tag, in event order, exact duplicates dropped.
    pub extra: Vec<Vec<String>>,
}

/// Tags read into fields, or never carried over.
const KNOWN: [&str; 21] = [
    "d",
    "h",
    "name",
    "about",
    "picture",
    "banner",
    "private",
    "public",
    "closed",
    "open",
    "hidden",
    "visible",
    "restricted",
    "unrestricted",
    "write-restricted",
    "livekit",
    "supported_kinds",
    "parent",
    "child",
    "member_count",
    "previous",
];

/// A lowercase or uppercase 64-digit hex pubkey; anything else is not one.
pub fn pubkey(text: &str) -> Option<Pk> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The `p` tags of an event: pubkey and roles (positions 2+, non-empty, a set), in tag
/// order; malformed pubkeys are skipped.
fn p_tags(event: &Event) -> Vec<(Pk, BTreeSet<String>)> {
    event
        .tags
        .iter()
        .filter(|t| t.first().map(String::as_str) == Some("p"))
        .filter_map(|t| {
            let pk = pubkey(t.get(1)?)?;
            let roles = t
                .iter()
                .skip(2)
                .filter(|r| !r.is_empty())
                .cloned()
                .collect();
            Some((pk, roles))
        })
        .collect()
}

/// Reads the metadata a 9007, 9002 or 39000 sets. JSON object content (the seed
/// relay's dialect) first, then the tags in order, later wins.
pub fn parse_meta(event: &Event) -> Meta {
    let mut m = Meta::default();
    let mut json_text: BTreeMap<&str, String> = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) =
        serde_json::from_str::<serde_json::Value>(&event.content)
    {
        let flag = |k: &str| map.get(k).and_then(serde_json::Value::as_bool);
        if let Some(v) = flag("private") {
            m.private = v;
        }
        if let Some(v) = flag("closed") {
            m.closed = v;
        }
        if let Some(v) = flag("hidden") {
            m.hidden = v;
        }
        if let Some(v) = flag("restricted") {
            m.restricted = v;
        }
        if let Some(v) = flag("write-restricted") {
            m.write_restricted = v;
        }
        for key in ["name", "about", "picture"] {
            if let Some(text) = map.get(key).and_then(serde_json::Value::as_str) {
                json_text.insert(key, text.to_owned());
            }
        }
    }
    let mut seen = BTreeSet::new();
    for tag in &event.tags {
        let Some(name) = tag.first() else { continue };
        let value = tag.get(1).cloned();
        match name.as_str() {
            "name" => m.name = value.or(m.name),
            "about" => m.about = value.or(m.about),
            "picture" => m.picture = value.or(m.picture),
            "banner" => m.banner = value.or(m.banner),
            "private" => m.private = true,
            "public" => m.private = false,
            "closed" => m.closed = true,
            "open" => m.closed = false,
            "hidden" => m.hidden = true,
            "visible" => m.hidden = false,
            "restricted" => m.restricted = true,
            "unrestricted" => m.restricted = false,
            "write-restricted" => m.write_restricted = true,
            "livekit" => m.livekit = true,
            "supported_kinds" => {
                let kinds = tag.iter().skip(1).filter_map(|k| k.parse().ok()).collect();
                m.supported_kinds = Some(kinds);
            }
            // G1: the first `parent` tag.
            "parent" => m.parent = m.parent.or(value),
            "child" => {
                if let Some(child) = value {
                    m.children.push(child);
                }
            }
            n if KNOWN.contains(&n) => {}
            _ => {
                if seen.insert(tag.clone()) {
                    m.extra.push(tag.clone());
                }
            }
        }
    }
    // Seed relay: name/about/picture from the JSON object when the tags are absent.
    if m.name.is_none() {
        m.name = json_text.remove("name");
    }
    if m.about.is_none() {
        m.about = json_text.remove("about");
    }
    if m.picture.is_none() {
        m.picture = json_text.remove("picture");
    }
    m
}

/// Whether `candidate` replaces the relay state event of its kind a group keeps (S3,
/// M6): NIP-01 addressable — the newest `created_at`, and between equals the lowest id,
/// whatever the log order.
fn better(candidate: &Event, kept: Option<&Event>) -> bool {
    kept.is_none_or(|k| {
        (candidate.created_at, std::cmp::Reverse(candidate.id))
            > (k.created_at, std::cmp::Reverse(k.id))
    })
}

/// Everything the model says about one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub life: Life,
    pub source: Source,
    pub creator: Option<Pk>,
    pub members: BTreeSet<Pk>,
    /// Members with at least one role.
    pub roles: BTreeMap<Pk, BTreeSet<String>>,
    pub definitions: BTreeMap<String, Option<String>>,
    /// The metadata, with `parent` as declared.
    pub meta: Meta,
    pub invites: BTreeSet<String>,
    /// The pins: (`e` or `a`, reference), in order.
    pub pins: Vec<(String, String)>,
    /// The effective parent (G2).
    pub parent: Option<String>,
    /// The children, in order (G4).
    pub children: Vec<String>,
    /// Relay rosters (39001, 39002) kept while the group is seeded.
    admins_snapshot: Option<Event>,
    members_snapshot: Option<Event>,
    /// The relay 39000 in force while the group is seeded.
    meta_snapshot: Option<Event>,
    /// The relay 39003 the role definitions come from.
    roles_snapshot: Option<Event>,
    /// Sequence number of the event that attached the group to its declared parent.
    attached_at: u64,
    /// Sequence number of the group's latest 9008.
    deleted_at: Option<u64>,
    /// The latest metadata event of the group that carried `child` tags: its sequence
    /// number, the tags, and whether it was a relay 39000.
    child_order: Option<ChildOrder>,
}

/// A `child` list a group's own metadata event gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ChildOrder {
    seq: u64,
    children: Vec<String>,
    /// A relay 39000: a picture of the whole list at the relay it came from.
    snapshot: bool,
}

impl Facts {
    /// Resolves the kept rosters into members and roles (S4): the 39002 lists members
    /// (with any roles it carries); a 39001 as new as the 39002 or newer (or without
    /// one) adds its pubkeys as members with its roles.
    fn resolve_rosters(&mut self) {
        let admins = self.admins_snapshot.take();
        let members = self.members_snapshot.take();
        self.meta_snapshot = None;
        let mut roster: BTreeMap<Pk, BTreeSet<String>> = BTreeMap::new();
        if let Some(m) = &members {
            roster.extend(p_tags(m));
        }
        if let Some(a) = &admins
            && members
                .as_ref()
                .is_none_or(|m| a.created_at >= m.created_at)
        {
            roster.extend(p_tags(a));
        }
        self.members = roster.keys().copied().collect();
        self.roles = roster.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    }

    /// A fresh state for a new life or a deletion, keeping the life, the source and
    /// the history that outlives lives (the latest deletion, the latest child order).
    fn reset(&mut self, life: Life, source: Source) {
        *self = Facts {
            life,
            source,
            deleted_at: self.deleted_at,
            child_order: self.child_order.take(),
            ..Facts::default()
        };
    }

    /// Sets the metadata from event number `seq` (9007, 9002 or a seeding 39000).
    /// `parent_deleted_at`: the latest deletion of the parent it declares.
    fn set_meta(&mut self, e: &Event, seq: u64, parent_deleted_at: Option<u64>) {
        let meta = parse_meta(e);
        // G3: the attachment point moves only when the declared parent changes (or the
        // parent was deleted since, which made the group a root: G2).
        let same = meta.parent.is_some()
            && meta.parent == self.meta.parent
            && parent_deleted_at.is_none_or(|d| d < self.attached_at);
        if !same {
            self.attached_at = seq;
        }
        if !meta.children.is_empty() {
            self.child_order = Some(ChildOrder {
                seq,
                children: meta.children.clone(),
                snapshot: e.kind == 39_000,
            });
        }
        self.meta = meta;
    }
}

/// The expected facts of every group named in `log`, given the relay key.
pub fn model(log: &[Event], relay: &Pk) -> BTreeMap<String, Facts> {
    let mut groups: BTreeMap<String, Facts> = BTreeMap::new();
    for (seq, event) in (1u64..).zip(log) {
        let Some(id) = event.group() else { continue };
        let parent_deleted_at = parse_meta(event)
            .parent
            .and_then(|p| groups.get(&p).and_then(|p| p.deleted_at));
        let g = groups.entry(id.to_owned()).or_default();
        apply(g, event, seq, relay, parent_deleted_at);
    }
    for g in groups.values_mut() {
        if g.source == Source::Snapshots {
            g.resolve_rosters();
        }
    }
    subgroups(&mut groups);
    groups
}

/// Whether making `parent` the parent of `group` closes a cycle: `parent` is `group`
/// or has it among its effective ancestors (followed until they repeat).
pub fn would_cycle(groups: &BTreeMap<String, Facts>, group: &str, parent: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut current = Some(parent.to_owned());
    while let Some(ancestor) = current {
        if ancestor == group {
            return true;
        }
        if !seen.insert(ancestor.clone()) {
            return false;
        }
        current = groups.get(&ancestor).and_then(|f| f.parent.clone());
    }
    false
}

/// G2 and G4: effective parents, then each parent's ordered children.
fn subgroups(groups: &mut BTreeMap<String, Facts>) {
    let mut attached: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (id, g) in groups.iter() {
        let Some(p) = &g.meta.parent else { continue };
        let Some(parent) = groups.get(p) else {
            continue;
        };
        let counts = g.life == Life::Active
            && p != id
            && parent.life == Life::Active
            && parent.deleted_at.is_none_or(|d| d < g.attached_at);
        if counts {
            attached
                .entry(p.clone())
                .or_default()
                .push((g.attached_at, id.clone()));
        }
    }
    for g in groups.values_mut() {
        g.parent = None;
        g.children.clear();
    }
    for (p, mut kids) in attached {
        let order = groups[&p].child_order.clone();
        let parent_deleted_at = groups[&p].deleted_at;
        // Children attached before the parent's latest `child` list follow that list;
        // the others (and unlisted ones) follow attachment order. A relay's 39000 of
        // the parent's current life lists its children in order ("the position of each
        // tag in the array is the order"), whenever they were logged.
        kids.sort_by_key(|(at, kid)| {
            let listed = order.as_ref().and_then(|o| {
                let current_snapshot =
                    o.snapshot && parent_deleted_at.is_none_or(|deleted| deleted < o.seq);
                (*at < o.seq || current_snapshot)
                    .then(|| o.children.iter().position(|c| c == kid))
                    .flatten()
            });
            match listed {
                Some(position) => (0, position as u64),
                None => (1, *at),
            }
        });
        for (_, kid) in &kids {
            groups.get_mut(kid).expect("a child is a group").parent = Some(p.clone());
        }
        groups.get_mut(&p).expect("a parent is a group").children =
            kids.into_iter().map(|(_, kid)| kid).collect();
    }
}

/// Event number `seq` on its group.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per kind: the rules read in one place"
)]
fn apply(g: &mut Facts, e: &Event, seq: u64, relay: &Pk, parent_deleted_at: Option<u64>) {
    // L3: a deleted group ignores everything until a 9007 starts a new life.
    if g.life == Life::Deleted && e.kind != 9007 {
        return;
    }
    match e.kind {
        9007 => {
            // L2: a 9007 for an existing group is not a new life.
            if g.life == Life::Active {
                return;
            }
            // L1, L5, M1.
            g.reset(Life::Active, Source::History);
            g.creator = Some(e.pubkey);
            g.members.insert(e.pubkey);
            g.set_meta(e, seq, parent_deleted_at);
        }
        9008 => {
            g.reset(Life::Deleted, Source::None);
            g.deleted_at = Some(seq);
        }
        9000..=9002 => {
            // S2: history ends seeding; L4: moderation makes a group exist.
            if g.source == Source::Snapshots {
                g.resolve_rosters();
            }
            g.life = Life::Active;
            g.source = Source::History;
            match e.kind {
                // M2.
                9000 => {
                    for (pk, roles) in p_tags(e) {
                        g.members.insert(pk);
                        if roles.is_empty() {
                            g.roles.remove(&pk);
                        } else {
                            g.roles.insert(pk, roles);
                        }
                    }
                }
                // M3.
                9001 => {
                    for (pk, _) in p_tags(e) {
                        g.members.remove(&pk);
                        g.roles.remove(&pk);
                    }
                }
                // D1: full replacement.
                _ => g.set_meta(e, seq, parent_deleted_at),
            }
        }
        // S1, S2, S3, S5.
        39_000..=39_002 => {
            if &e.pubkey != relay || g.source == Source::History {
                return;
            }
            g.life = Life::Active;
            g.source = Source::Snapshots;
            match e.kind {
                39_000 => {
                    if better(e, g.meta_snapshot.as_ref()) {
                        g.meta_snapshot = Some(e.clone());
                        g.set_meta(e, seq, parent_deleted_at);
                    }
                }
                39_001 => {
                    if better(e, g.admins_snapshot.as_ref()) {
                        g.admins_snapshot = Some(e.clone());
                    }
                }
                _ => {
                    if better(e, g.members_snapshot.as_ref()) {
                        g.members_snapshot = Some(e.clone());
                    }
                }
            }
        }
        // M6: the NIP-01 choice, whatever the source, even before the group exists.
        39_003 if &e.pubkey == relay && better(e, g.roles_snapshot.as_ref()) => {
            g.roles_snapshot = Some(e.clone());
            g.definitions = e
                .tags
                .iter()
                .filter(|t| t.first().map(String::as_str) == Some("role"))
                .filter_map(|t| {
                    let name = t.get(1).filter(|n| !n.is_empty())?;
                    Some((name.clone(), t.get(2).cloned()))
                })
                .collect();
        }
        9009 if g.life == Life::Active => {
            g.invites.extend(
                e.tags
                    .iter()
                    .filter(|t| t.first().map(String::as_str) == Some("code"))
                    .filter_map(|t| t.get(1))
                    .filter(|c| !c.is_empty())
                    .cloned(),
            );
        }
        // P1.
        9010 if g.life == Life::Active => {
            g.pins = e
                .tags
                .iter()
                .filter_map(|t| match (t.first().map(String::as_str), t.get(1)) {
                    (Some(name @ ("e" | "a")), Some(r)) if !r.is_empty() => {
                        Some((name.to_owned(), r.clone()))
                    }
                    _ => None,
                })
                .collect();
        }
        _ => {}
    }
}
