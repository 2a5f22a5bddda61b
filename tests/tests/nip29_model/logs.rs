//! Random NIP-29 logs for the model test: a few groups and a small fixed pool of keys,
//! interleaved creations, deletes and re-creations, moderation, invites, pins, subgroup
//! moves (cycles and self-parenting included), relay snapshots before and after
//! history (same-second 39001 + 39002 pairs, same-second ties with different ids),
//! snapshots signed by a foreign key, the seed relay's JSON dialect and malformed tags.

use std::sync::OnceLock;

use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, SecretKey, Tag, Timestamp};
use proptest::prelude::*;

/// How many groups a log touches (`g0`…).
pub const GROUPS: u8 = 5;
/// How many member keys the pool holds.
pub const MEMBERS: u8 = 6;
/// Role names a `p` tag may carry ("" is dropped by the rules).
pub const ROLES: [&str; 5] = ["admin", "writer", "moderator", "", "x"];
/// The base `created_at`.
pub const T0: u64 = 1_700_000_000;

/// The member pool, then the relay key, then a foreign key.
pub fn keys() -> &'static [Keys] {
    static KEYS: OnceLock<Vec<Keys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (1..=MEMBERS + 2)
            .map(|n| Keys::new(SecretKey::from_slice(&[n; 32]).expect("valid secret key")))
            .collect()
    })
}

/// The relay's key.
pub fn relay() -> &'static Keys {
    &keys()[usize::from(MEMBERS)]
}

/// A key that is not the relay's.
pub fn foreign() -> &'static Keys {
    &keys()[usize::from(MEMBERS) + 1]
}

/// A group id.
pub fn group_name(n: u8) -> String {
    format!("g{}", n % GROUPS)
}

/// Metadata as a 9007, 9002 or 39000 writes it.
#[derive(Debug, Clone)]
pub struct MetaSpec {
    /// Bits: private, closed, hidden, restricted, write-restricted, livekit.
    pub flags: u8,
    /// 0 plain tags, 1 legacy negating tags for unset flags, 2 JSON content, 3 JSON then
    /// an overriding tag, 4 the seed relay's JSON with name/about/picture and no tags,
    /// 5 JSON whose values are not booleans, 6 content that is JSON but not an object.
    pub dialect: u8,
    pub name: Option<u8>,
    pub banner: bool,
    /// `supported_kinds` values: None no tag; entries ≥ 200 are garbage text.
    pub kinds: Option<Vec<u8>>,
    /// `parent` tags (0, 1 or more groups).
    pub parents: Vec<u8>,
    /// `child` tags.
    pub children: Vec<u8>,
    /// Extra tags `["t", …]` (duplicates possible) and malformed ones.
    pub extra: Vec<u8>,
}

/// What one operation does.
#[derive(Debug, Clone)]
pub enum Action {
    Create(MetaSpec),
    Edit(MetaSpec),
    Put(Vec<(u8, Vec<u8>)>, bool),
    PutMalformed(u8, u8),
    Remove(Vec<u8>),
    Delete,
    Invite(u8),
    Pin(Vec<u8>),
    Join,
    Leave,
    Post,
    /// A relay (or foreign) 39000.
    SnapMeta(bool, MetaSpec),
    /// A relay (or foreign) 39001 or 39002 roster.
    SnapRoster(bool, bool, Vec<(u8, Vec<u8>)>),
    /// A relay 39001 and 39002 in the same second (in either log order).
    SnapPair(bool, Vec<(u8, Vec<u8>)>, Vec<(u8, Vec<u8>)>),
    /// Two relay events of one kind (39000–39003) in the same second, different ids.
    SnapTie(u8, Vec<(u8, Vec<u8>)>, Vec<(u8, Vec<u8>)>),
    /// A relay (or foreign) 39003.
    SnapRoles(bool, Vec<u8>),
}

/// One operation: by whom, on which group, and how far the clock moves first.
#[derive(Debug, Clone)]
pub struct Op {
    pub group: u8,
    pub author: u8,
    /// Seconds added to the clock (negative steps back, 0 ties).
    pub dt: i8,
    pub action: Action,
}

fn arb_roster() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec((0..MEMBERS, prop::collection::vec(0u8..5, 0..3)), 0..4)
}

fn arb_meta() -> impl Strategy<Value = MetaSpec> {
    (
        any::<u8>(),
        prop_oneof![5 => 0u8..5, 1 => 5u8..7],
        prop::option::of(0u8..4),
        any::<bool>(),
        prop::option::weighted(0.3, prop::collection::vec(prop_oneof![4 => 0u8..12, 1 => 200u8..=255], 0..3)),
        prop_oneof![2 => Just(Vec::new()), 4 => prop::collection::vec(0..GROUPS, 1), 1 => prop::collection::vec(0..GROUPS, 2)],
        prop::collection::vec(0..GROUPS, 0..3),
        prop::collection::vec(0u8..10, 0..3),
    )
        .prop_map(
            |(flags, dialect, name, banner, kinds, parents, children, extra)| MetaSpec {
                flags,
                dialect,
                name,
                banner,
                kinds,
                parents,
                children,
                extra,
            },
        )
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => arb_meta().prop_map(Action::Create),
        3 => arb_meta().prop_map(Action::Edit),
        6 => (arb_roster(), any::<bool>()).prop_map(|(r, upper)| Action::Put(r, upper)),
        1 => (any::<u8>(), 0..MEMBERS).prop_map(|(w, t)| Action::PutMalformed(w, t)),
        3 => prop::collection::vec(0..MEMBERS, 1..3).prop_map(Action::Remove),
        2 => Just(Action::Delete),
        1 => (0u8..4).prop_map(Action::Invite),
        1 => prop::collection::vec(0u8..7, 0..4).prop_map(Action::Pin),
        1 => Just(Action::Join),
        1 => Just(Action::Leave),
        1 => Just(Action::Post),
        2 => (prop::bool::weighted(0.8), arb_meta()).prop_map(|(r, m)| Action::SnapMeta(r, m)),
        3 => (prop::bool::weighted(0.8), any::<bool>(), arb_roster())
            .prop_map(|(r, admins, roster)| Action::SnapRoster(r, admins, roster)),
        2 => (any::<bool>(), arb_roster(), arb_roster())
            .prop_map(|(admins_first, a, m)| Action::SnapPair(admins_first, a, m)),
        2 => (0u8..4, arb_roster(), arb_roster()).prop_map(|(k, a, b)| Action::SnapTie(k, a, b)),
        1 => (prop::bool::weighted(0.8), prop::collection::vec(0u8..5, 0..4))
            .prop_map(|(r, names)| Action::SnapRoles(r, names)),
    ]
}

/// A random operation. The last group never gets history: it lives on relay (and
/// foreign) snapshots, so seeding is exercised as much as history.
pub fn arb_op() -> impl Strategy<Value = Op> {
    (0..GROUPS, 0..MEMBERS, -2i8..=3, arb_action()).prop_map(|(group, author, dt, action)| {
        let action = if group + 1 == GROUPS {
            without_history(action)
        } else {
            action
        };
        Op {
            group,
            author,
            dt,
            action,
        }
    })
}

/// The snapshot counterpart of a history action.
fn without_history(action: Action) -> Action {
    match action {
        Action::Create(m) | Action::Edit(m) => Action::SnapMeta(true, m),
        Action::Put(roster, admins) => Action::SnapRoster(true, admins, roster),
        Action::PutMalformed(..) | Action::Delete => Action::Post,
        Action::Remove(targets) => {
            let roster: Vec<(u8, Vec<u8>)> = targets.into_iter().map(|t| (t, vec![0])).collect();
            Action::SnapPair(true, roster.clone(), roster)
        }
        other => other,
    }
}

/// An event under construction.
struct Draft {
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
}

impl Draft {
    fn new(kind: u16, group: &str) -> Self {
        let name = if (39_000..=39_003).contains(&kind) {
            "d"
        } else {
            "h"
        };
        Self {
            kind,
            tags: vec![vec![name.to_owned(), group.to_owned()]],
            content: String::new(),
        }
    }

    fn tag(&mut self, values: &[&str]) {
        self.tags
            .push(values.iter().map(|s| (*s).to_owned()).collect());
    }

    fn sign(self, keys: &Keys, at: u64) -> Event {
        EventBuilder::new(Kind::from(self.kind), self.content)
            .tags(
                self.tags
                    .into_iter()
                    .map(|t| Tag::parse(t).expect("non-empty tag")),
            )
            .custom_created_at(Timestamp::from_secs(at))
            .finalize(keys)
            .expect("signing")
    }
}

fn hex(n: u8, upper: bool) -> String {
    let hex = keys()[usize::from(n % MEMBERS)].public_key().to_hex();
    if upper { hex.to_uppercase() } else { hex }
}

fn roster(d: &mut Draft, roster: &[(u8, Vec<u8>)], upper: bool) {
    for (target, roles) in roster {
        let hex = hex(*target, upper);
        let mut values = vec!["p", hex.as_str()];
        values.extend(roles.iter().map(|r| ROLES[usize::from(*r) % ROLES.len()]));
        d.tag(&values);
    }
}

const FLAGS: [(&str, &str); 4] = [
    ("private", "public"),
    ("closed", "open"),
    ("hidden", "visible"),
    ("restricted", "unrestricted"),
];

fn meta(d: &mut Draft, m: &MetaSpec, nonce: usize) {
    let bit = |i: u8| m.flags & (1 << i) != 0;
    let name = m.name.map(|n| format!("N{n}"));
    match m.dialect {
        0 | 1 => {
            for (i, (on, off)) in (0u8..).zip(FLAGS) {
                if bit(i) {
                    d.tag(&[on]);
                } else if m.dialect == 1 {
                    d.tag(&[off]);
                }
            }
            if bit(4) {
                d.tag(&["write-restricted"]);
            }
            d.content = format!("n{nonce}");
        }
        5 => {
            d.content = format!("{{\"private\":\"yes\",\"closed\":1,\"name\":7,\"n\":{nonce}}}");
        }
        6 => d.content = format!("[true, {nonce}]"),
        _ => {
            let mut fields: Vec<String> = [
                "private",
                "closed",
                "hidden",
                "restricted",
                "write-restricted",
            ]
            .iter()
            .zip(0u8..)
            .map(|(k, i)| format!("\"{k}\":{}", bit(i)))
            .collect();
            fields.push(format!("\"n\":{nonce}"));
            if m.dialect == 4 {
                if let Some(name) = &name {
                    fields.push(format!("\"name\":\"{name}\""));
                }
                fields.push("\"about\":\"json about\"".to_owned());
                fields.push("\"picture\":\"https://p/j.png\"".to_owned());
            }
            d.content = format!("{{{}}}", fields.join(","));
            if m.dialect == 3 {
                d.tag(&[if bit(0) { "public" } else { "private" }]);
            }
        }
    }
    if m.dialect != 4 {
        if let Some(name) = &name {
            d.tag(&["name", name]);
        }
        if m.flags & 0x80 != 0 {
            d.tag(&["about", "tag about"]);
        }
    }
    if bit(5) {
        d.tag(&["livekit"]);
    }
    if m.banner {
        d.tag(&["banner", "https://b/b.png"]);
    }
    if let Some(kinds) = &m.kinds {
        let values: Vec<String> = kinds
            .iter()
            .map(|k| {
                if *k >= 230 {
                    "70000".to_owned()
                } else if *k >= 200 {
                    "nine".to_owned()
                } else {
                    k.to_string()
                }
            })
            .collect();
        let mut tag = vec!["supported_kinds"];
        tag.extend(values.iter().map(String::as_str));
        d.tag(&tag);
    }
    for p in &m.parents {
        d.tag(&["parent", &group_name(*p)]);
    }
    for c in &m.children {
        d.tag(&["child", &group_name(*c)]);
    }
    for x in &m.extra {
        match x {
            0..=2 => d.tag(&["t", &format!("t{x}")]),
            3 => d.tag(&["name"]),
            4 => d.tag(&["x-extra", "1", "2"]),
            5 => d.tag(&["member_count", "7"]),
            6 => d.tag(&["supported_kinds", "40"]),
            7 => d.tag(&["parent"]),
            8 => d.tag(&["child"]),
            _ => d.tag(&["banner"]),
        }
    }
}

/// Signs the events of `ops`, moving a clock from `T0`.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per action reads best in one place"
)]
pub fn events(ops: &[Op]) -> Vec<Event> {
    let mut clock = T0 + 100;
    let mut out = Vec::with_capacity(ops.len() + 8);
    for (nonce, op) in ops.iter().enumerate() {
        clock = clock.saturating_add_signed(i64::from(op.dt));
        let group = group_name(op.group);
        let author = &keys()[usize::from(op.author % MEMBERS)];
        let n = format!("n{nonce}");
        let mut push = |d: Draft, keys: &Keys| out.push(d.sign(keys, clock));
        let by = |relay_signed: bool| if relay_signed { relay() } else { foreign() };
        match &op.action {
            Action::Create(m) | Action::Edit(m) => {
                let kind = if matches!(op.action, Action::Create(_)) {
                    9007
                } else {
                    9002
                };
                let mut d = Draft::new(kind, &group);
                meta(&mut d, m, nonce);
                push(d, author);
            }
            Action::Put(targets, upper) => {
                let mut d = Draft::new(9000, &group);
                roster(&mut d, targets, *upper);
                d.content = n;
                push(d, author);
            }
            Action::PutMalformed(which, target) => {
                let mut d = Draft::new(9000, &group);
                let bad: &[&str] = match which % 5 {
                    0 => &["p"],
                    1 => &["p", "zz", "admin"],
                    2 => &["p", ""],
                    3 => &[
                        "p",
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
                    ],
                    _ => &[
                        "P",
                        "0000000000000000000000000000000000000000000000000000000000000001",
                    ],
                };
                d.tag(bad);
                roster(&mut d, &[(*target, vec![1])], false);
                d.content = n;
                push(d, author);
            }
            Action::Remove(targets) => {
                let mut d = Draft::new(9001, &group);
                for t in targets {
                    d.tag(&["p", &hex(*t, false)]);
                }
                d.content = n;
                push(d, author);
            }
            Action::Delete => {
                let mut d = Draft::new(9008, &group);
                d.content = n;
                push(d, author);
            }
            Action::Invite(code) => {
                let mut d = Draft::new(9009, &group);
                d.tag(&["code", &format!("c{code}")]);
                if *code == 3 {
                    d.tag(&["code", ""]);
                }
                d.content = n;
                push(d, author);
            }
            Action::Pin(refs) => {
                let mut d = Draft::new(9010, &group);
                for r in refs {
                    match r {
                        0..=2 => d.tag(&["e", &format!("{r:064x}")]),
                        3 | 4 => d.tag(&["a", &format!("30023:{}:post{r}", hex(0, false))]),
                        5 => d.tag(&["e"]),
                        _ => d.tag(&["e", ""]),
                    }
                }
                d.content = n;
                push(d, author);
            }
            Action::Join | Action::Leave | Action::Post => {
                let kind = match op.action {
                    Action::Join => 9021,
                    Action::Leave => 9022,
                    _ => 9,
                };
                let mut d = Draft::new(kind, &group);
                d.content = n;
                push(d, author);
            }
            Action::SnapMeta(relay_signed, m) => {
                let mut d = Draft::new(39_000, &group);
                meta(&mut d, m, nonce);
                push(d, by(*relay_signed));
            }
            Action::SnapRoster(relay_signed, admins, r) => {
                let mut d = Draft::new(if *admins { 39_001 } else { 39_002 }, &group);
                roster(&mut d, r, false);
                d.content = n;
                push(d, by(*relay_signed));
            }
            Action::SnapPair(admins_first, admins, members) => {
                let mut a = Draft::new(39_001, &group);
                roster(&mut a, admins, false);
                a.content = format!("a{nonce}");
                let mut m = Draft::new(39_002, &group);
                roster(&mut m, members, false);
                m.content = format!("m{nonce}");
                if *admins_first {
                    push(a, relay());
                    push(m, relay());
                } else {
                    push(m, relay());
                    push(a, relay());
                }
            }
            Action::SnapTie(kind, first, second) => {
                let kind = 39_000 + u16::from(*kind);
                for (i, r) in [first, second].into_iter().enumerate() {
                    let mut d = Draft::new(kind, &group);
                    match kind {
                        39_000 => d.tag(&["name", &format!("T{nonce}.{i}")]),
                        39_003 => {
                            for (role, _) in r {
                                d.tag(&["role", ROLES[usize::from(*role) % ROLES.len()]]);
                            }
                        }
                        _ => roster(&mut d, r, false),
                    }
                    d.content = format!("t{nonce}.{i}");
                    push(d, relay());
                }
            }
            Action::SnapRoles(relay_signed, names) => {
                let mut d = Draft::new(39_003, &group);
                for (i, name) in names.iter().enumerate() {
                    let role = ROLES[usize::from(*name) % ROLES.len()];
                    if i % 2 == 0 {
                        d.tag(&["role", role, "described"]);
                    } else {
                        d.tag(&["role", role]);
                    }
                }
                d.content = n;
                push(d, by(*relay_signed));
            }
        }
    }
    out
}
