//! Membership, roles and creator against a reference model written from their
//! documented rules (the module docs of `membership.rs`, `roles.rs`, `creator.rs` and
//! `life.rs`), on random logs of one group: every query for every key of a small pool,
//! the served state against a full replay, and each state through its checkpoint codec
//! into a projection with another pubkey dictionary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use highwater_engine::{Handle, Projection};
use highwater_projections::{
    Creator, Life, Lifecycle, Membership, MembershipState, Nip29Config, RoleDefinition, Roles,
    RolesState, Source,
};
use nostr::prelude::{Event, Keys, PublicKey};
use proptest::prelude::*;

use crate::support::{Relay, event_at, key};

/// Keys of the pool by index; index 0 is the relay.
const USERS: usize = 4;

/// One event of a generated log. Keys are indices into the pool (0 = the relay).
#[derive(Debug, Clone)]
enum Op {
    /// 9007 by this author.
    Create(usize),
    /// 9008.
    Delete,
    /// 9000 with these `p` tags (key, roles; a role may be empty or repeated).
    Put(Vec<(usize, Vec<&'static str>)>),
    /// 9001 with these `p` tags.
    Remove(Vec<usize>),
    /// 9002 (a metadata edit: history without member changes).
    Edit,
    /// 39002 (`admins: false`) or 39001 (`admins: true`) by this author at this time.
    Snapshot {
        admins: bool,
        author: usize,
        at: u64,
        roster: Vec<(usize, Vec<&'static str>)>,
    },
    /// 39000 by this author at this time.
    MetadataSnapshot { author: usize, at: u64 },
    /// 39003 by this author at this time, with these role names.
    Definitions {
        author: usize,
        at: u64,
        names: Vec<&'static str>,
    },
}

fn role() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["admin", "writer", "moderator", ""])
}

fn roster() -> impl Strategy<Value = Vec<(usize, Vec<&'static str>)>> {
    prop::collection::vec((1..=USERS, prop::collection::vec(role(), 0..3)), 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    // Snapshots from the relay far more often than from anyone else, and from few
    // distinct seconds, so that ties and "as old" comparisons happen.
    let author = prop_oneof![4 => Just(0usize), 1 => 1..=USERS];
    let at = 100u64..103;
    prop_oneof![
        2 => (1..=USERS).prop_map(Op::Create),
        1 => Just(Op::Delete),
        3 => roster().prop_map(Op::Put),
        2 => prop::collection::vec(1..=USERS, 0..3).prop_map(Op::Remove),
        1 => Just(Op::Edit),
        5 => (any::<bool>(), author.clone(), at.clone(), roster())
            .prop_map(|(admins, author, at, roster)| Op::Snapshot { admins, author, at, roster }),
        1 => (author.clone(), at.clone())
            .prop_map(|(author, at)| Op::MetadataSnapshot { author, at }),
        2 => (author, at, prop::collection::vec(role(), 0..3))
            .prop_map(|(author, at, names)| Op::Definitions { author, at, names }),
    ]
}

/// A snapshot's NIP-01 position: newer `created_at` wins, then the lowest id.
type Stamp = (u64, [u8; 32]);

fn replaces(new: Stamp, held: Option<Stamp>) -> bool {
    held.is_none_or(|(at, id)| new.0 > at || (new.0 == at && new.1 < id))
}

/// The model's state of one group: plain sets of pool indices.
#[derive(Debug, Default, Clone)]
struct Model {
    life: Life,
    source: Source,
    creator: Option<usize>,
    members: BTreeSet<usize>,
    roles: BTreeMap<usize, BTreeSet<String>>,
    definitions: BTreeMap<String, Option<String>>,
    definitions_from: Option<Stamp>,
    /// The newest 39002 and 39001 while the group is seeded from snapshots.
    members_snapshot: Option<(Stamp, BTreeMap<usize, BTreeSet<String>>)>,
    admins_snapshot: Option<(Stamp, BTreeMap<usize, BTreeSet<String>>)>,
}

/// Roles as a `p` tag lists them: empty names dropped, each once.
fn role_names(roles: &[&str]) -> BTreeSet<String> {
    roles
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| (*r).to_owned())
        .collect()
}

/// A roster as a snapshot event lists it: a key listed twice keeps its last tag.
fn roster_of(tags: &[(usize, Vec<&'static str>)]) -> BTreeMap<usize, BTreeSet<String>> {
    tags.iter().map(|(k, r)| (*k, role_names(r))).collect()
}

impl Model {
    fn clear(&mut self) {
        *self = Model {
            life: self.life,
            source: self.source,
            ..Model::default()
        };
    }

    /// Members and roles from the snapshots: the 39002's, plus (or, for roles,
    /// overridden by) the 39001's when that is at least as new or there is no 39002.
    fn reseed(&mut self) {
        let members = self
            .members_snapshot
            .clone()
            .map(|s| s.1)
            .unwrap_or_default();
        let admins_count = match (&self.admins_snapshot, &self.members_snapshot) {
            (Some((a, _)), Some((m, _))) => a.0 >= m.0,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.members = members.keys().copied().collect();
        let mut roles = members;
        if admins_count {
            let admins = self
                .admins_snapshot
                .clone()
                .map(|s| s.1)
                .unwrap_or_default();
            self.members.extend(admins.keys().copied());
            roles.extend(admins);
        }
        roles.retain(|_, r| !r.is_empty());
        self.roles = roles;
    }

    fn apply(&mut self, op: &Op, stamp: Stamp) {
        if self.life == Life::Deleted && !matches!(op, Op::Create(_)) {
            return;
        }
        let moderate = |m: &mut Model| {
            if m.source == Source::Snapshots {
                m.members_snapshot = None;
                m.admins_snapshot = None;
            }
            m.life = Life::Active;
            m.source = Source::History;
        };
        match op {
            Op::Create(author) => {
                if self.life == Life::Active {
                    return;
                }
                self.life = Life::Active;
                self.source = Source::History;
                self.clear();
                self.creator = Some(*author);
                self.members.insert(*author);
            }
            Op::Delete => {
                self.life = Life::Deleted;
                self.source = Source::None;
                self.clear();
            }
            Op::Put(tags) => {
                moderate(self);
                for (k, roles) in tags {
                    self.members.insert(*k);
                    let roles = role_names(roles);
                    if roles.is_empty() {
                        self.roles.remove(k);
                    } else {
                        self.roles.insert(*k, roles);
                    }
                }
            }
            Op::Remove(keys) => {
                moderate(self);
                for k in keys {
                    self.members.remove(k);
                    self.roles.remove(k);
                }
            }
            Op::Edit => moderate(self),
            Op::Snapshot {
                admins,
                author,
                roster,
                ..
            } => {
                if *author != 0 || self.source == Source::History {
                    return;
                }
                self.life = Life::Active;
                self.source = Source::Snapshots;
                let slot = if *admins {
                    &mut self.admins_snapshot
                } else {
                    &mut self.members_snapshot
                };
                if replaces(stamp, slot.as_ref().map(|s| s.0)) {
                    *slot = Some((stamp, roster_of(roster)));
                    self.reseed();
                }
            }
            Op::MetadataSnapshot { author, .. } => {
                if *author != 0 || self.source == Source::History {
                    return;
                }
                self.life = Life::Active;
                self.source = Source::Snapshots;
            }
            Op::Definitions { author, names, .. } => {
                if *author == 0 && replaces(stamp, self.definitions_from) {
                    self.definitions = names
                        .iter()
                        .filter(|n| !n.is_empty())
                        .map(|n| ((*n).to_owned(), Some(format!("about {n}"))))
                        .collect();
                    self.definitions_from = Some(stamp);
                }
            }
        }
    }
}

/// The pool: the relay, then the users.
struct Pool {
    keys: Vec<Keys>,
}

impl Pool {
    fn new(relay: &Relay) -> Self {
        let mut keys = vec![relay.keys.clone()];
        keys.extend((0..USERS).map(|_| Keys::generate()));
        Self { keys }
    }

    fn hex(&self, k: usize) -> String {
        self.keys[k].public_key().to_hex()
    }

    fn p_tags(&self, tags: &[(usize, Vec<&'static str>)]) -> Vec<Vec<String>> {
        tags.iter()
            .map(|(k, roles)| {
                let mut tag = vec!["p".to_owned(), self.hex(*k)];
                tag.extend(roles.iter().map(|r| (*r).to_owned()));
                tag
            })
            .collect()
    }

    /// The event of `op` for `group`; the `n`th of the log (for unique content).
    fn event(&self, op: &Op, group: &str, n: usize) -> Event {
        let admin = &self.keys[1];
        let h = |mut tags: Vec<Vec<String>>| {
            tags.insert(0, vec!["h".to_owned(), group.to_owned()]);
            tags
        };
        let d = |mut tags: Vec<Vec<String>>| {
            tags.insert(0, vec!["d".to_owned(), group.to_owned()]);
            tags
        };
        let (keys, kind, tags, at) = match op {
            Op::Create(author) => (&self.keys[*author], 9007, h(vec![]), 50),
            Op::Delete => (admin, 9008, h(vec![]), 50),
            Op::Put(tags) => (admin, 9000, h(self.p_tags(tags)), 50),
            Op::Remove(keys) => {
                let tags = keys.iter().map(|k| (*k, vec![])).collect::<Vec<_>>();
                (admin, 9001, h(self.p_tags(&tags)), 50)
            }
            Op::Edit => (admin, 9002, h(vec![vec!["name".into(), "G".into()]]), 50),
            Op::Snapshot {
                admins,
                author,
                at,
                roster,
            } => {
                let kind = if *admins { 39_001 } else { 39_002 };
                (&self.keys[*author], kind, d(self.p_tags(roster)), *at)
            }
            Op::MetadataSnapshot { author, at } => (
                &self.keys[*author],
                39_000,
                d(vec![vec!["name".into(), "N".into()]]),
                *at,
            ),
            Op::Definitions { author, at, names } => {
                let tags = names
                    .iter()
                    .map(|n| vec!["role".to_owned(), (*n).to_owned(), format!("about {n}")])
                    .collect();
                (&self.keys[*author], 39_003, d(tags), *at)
            }
        };
        // An `alt` tag numbering the event makes repeated operations distinct events.
        let mut tags: Vec<Vec<String>> = tags;
        tags.push(vec!["alt".to_owned(), n.to_string()]);
        let refs: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let refs: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        event_at(keys, kind, &refs, at)
    }
}

/// Compares every query of the group with the model.
fn check(relay: &Relay, pool: &Pool, model: &Model, log: &str) -> Result<(), TestCaseError> {
    let g = &relay.groups;
    let keys: Vec<PublicKey> = pool.keys.iter().map(key).collect();
    let lifecycle = Lifecycle {
        life: model.life,
        source: model.source,
    };
    prop_assert_eq!(g.lifecycle("g").unwrap(), lifecycle, "{}", log);
    prop_assert_eq!(
        g.membership_projection()
            .read("g", MembershipState::lifecycle)
            .unwrap(),
        lifecycle
    );
    prop_assert_eq!(
        g.roles_projection()
            .read("g", RolesState::lifecycle)
            .unwrap(),
        lifecycle
    );
    prop_assert_eq!(
        g.creator("g").unwrap(),
        model.creator.map(|c| keys[c]),
        "{}",
        log
    );
    let mut members: Vec<PublicKey> = model.members.iter().map(|k| keys[*k]).collect();
    members.sort();
    prop_assert_eq!(g.members("g").unwrap(), members.clone(), "{}", log);
    prop_assert_eq!(g.member_count("g").unwrap(), members.len());
    for (i, k) in keys.iter().enumerate() {
        prop_assert_eq!(
            g.is_member("g", k).unwrap(),
            model.members.contains(&i),
            "key {} {}",
            i,
            log
        );
        prop_assert_eq!(g.is_creator("g", k).unwrap(), model.creator == Some(i));
        let roles: Vec<String> = model.roles.get(&i).into_iter().flatten().cloned().collect();
        prop_assert_eq!(g.roles("g", k).unwrap(), roles.clone(), "key {} {}", i, log);
        for r in ["admin", "writer", "moderator", "xyzzy", ""] {
            prop_assert_eq!(g.has_role("g", k, r).unwrap(), roles.iter().any(|x| x == r));
        }
    }
    let holders: Vec<([u8; 32], BTreeSet<String>)> = {
        let mut h: Vec<_> = model
            .roles
            .iter()
            .map(|(k, r)| (keys[*k].to_bytes(), r.clone()))
            .collect();
        h.sort();
        h
    };
    prop_assert_eq!(
        g.roles_projection()
            .read("g", highwater_projections::RolesState::holders)
            .unwrap(),
        holders,
        "{}",
        log
    );
    let definitions: Vec<RoleDefinition> = model
        .definitions
        .iter()
        .map(|(name, description)| RoleDefinition {
            name: name.clone(),
            description: description.clone(),
        })
        .collect();
    prop_assert_eq!(g.role_definitions("g").unwrap(), definitions, "{}", log);
    Ok(())
}

/// The served state equals a full replay, and survives its checkpoint codec into a
/// projection with a dictionary of its own (numbered differently: `other` has seen
/// other keys first), comparing and printing the same.
fn check_codec<P>(handle: &Handle<P>, other: &P) -> Result<(), TestCaseError>
where
    P: Projection,
    P::State: PartialEq + std::fmt::Debug,
{
    let served = handle.read("g", Clone::clone).unwrap();
    let replayed = handle.replay("g").unwrap();
    prop_assert_eq!(&served, &replayed);
    let projection = handle.projection();
    let bytes = projection.encode(&served).unwrap();
    let same = projection.decode(&bytes).unwrap();
    prop_assert_eq!(&same, &served);
    let elsewhere = other.decode(&bytes).unwrap();
    prop_assert_eq!(&elsewhere, &served);
    prop_assert_eq!(format!("{elsewhere:?}"), format!("{served:?}"));
    prop_assert_eq!(other.encode(&elsewhere).unwrap(), bytes);
    Ok(())
}

/// Projections of another registration for the same relay, whose dictionary numbered
/// unrelated keys first.
fn elsewhere(relay: &Relay, pool: &Pool) -> (Membership, Roles, Creator) {
    let config = Nip29Config::new(key(&relay.keys));
    let (m, r, c) = (
        Membership::new(config),
        Roles::new(config),
        Creator::new(config),
    );
    // Numbering: decode other groups' checkpoints of the pool's keys in reverse
    // order first, so ids differ from this process's.
    let relay2 = Relay::new();
    let mut tags = Vec::new();
    for k in (1..=USERS).rev() {
        tags.push(vec!["p".to_owned(), pool.hex(k), "admin".to_owned()]);
        tags.insert(
            0,
            vec!["p".to_owned(), Keys::generate().public_key().to_hex()],
        );
    }
    let refs: Vec<Vec<&str>> = tags
        .iter()
        .map(|t| t.iter().map(String::as_str).collect())
        .collect();
    let mut refs: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
    refs.insert(0, &["h", "x"]);
    relay2.append(&event_at(&Keys::generate(), 9000, &refs, 10));
    let groups = &relay2.groups;
    let mb = groups.membership_projection();
    let rl = groups.roles_projection();
    let cr = groups.creator_projection();
    let _ = m.decode(
        &mb.projection()
            .encode(&mb.read("x", Clone::clone).unwrap())
            .unwrap(),
    );
    let _ = r.decode(
        &rl.projection()
            .encode(&rl.read("x", Clone::clone).unwrap())
            .unwrap(),
    );
    let _ = c.decode(
        &cr.projection()
            .encode(&cr.read("x", Clone::clone).unwrap())
            .unwrap(),
    );
    (m, r, c)
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let relay = Relay::new();
    let pool = Pool::new(&relay);
    let (m, r, c) = elsewhere(&relay, &pool);
    let mut model = Model::default();
    let mut log = String::new();
    for (n, op) in ops.iter().enumerate() {
        let event = pool.event(op, "g", n);
        let stamp = (event.created_at.as_secs(), event.id.to_bytes());
        relay.append(&event);
        model.apply(op, stamp);
        writeln!(log, "{n}: {op:?}").unwrap();
        // Every few events, and at the end: the served answers, then the states.
        if n % 3 == 2 || n + 1 == ops.len() {
            check(&relay, &pool, &model, &log)?;
        }
    }
    let g = &relay.groups;
    check_codec(g.membership_projection(), &m)?;
    check_codec(g.roles_projection(), &r)?;
    check_codec(g.creator_projection(), &c)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn membership_roles_and_creator_agree_with_the_model(
        ops in prop::collection::vec(op(), 1..24)
    ) {
        run(&ops)?;
    }
}

/// Two states of one registration that differ in one part only compare unequal, for
/// each part: the lifecycle, the members or creator, and each snapshot.
#[test]
fn states_that_differ_in_one_part_are_unequal() {
    let relay = Relay::new();
    let pool = Pool::new(&relay);
    let g = &relay.groups;
    let append = |group: &str, op: &Op, n: usize| relay.append(&pool.event(op, group, n));
    // "a" and "b": same lifecycle (active, history), creators 1 and 2.
    append("a", &Op::Create(1), 0);
    append("b", &Op::Create(2), 1);
    // "c" and "d": seeded from snapshots, one member list each, differing in one key.
    let members = |k| Op::Snapshot {
        admins: false,
        author: 0,
        at: 100,
        roster: vec![(k, vec!["admin"])],
    };
    append("c", &members(1), 2);
    append("d", &members(2), 3);
    // "e": the same as "c" but an admins snapshot too.
    append("e", &members(1), 4);
    append(
        "e",
        &Op::Snapshot {
            admins: true,
            author: 0,
            at: 99,
            roster: vec![(3, vec![])],
        },
        5,
    );
    // "f": created by 1, then deleted: no creator, like "c", but another life.
    append("f", &Op::Create(1), 6);
    append("f", &Op::Delete, 7);
    // "h": like "c" seeded by an equal members snapshot, then a put of nobody: history.
    append("h", &members(1), 8);
    append("h", &Op::Put(vec![]), 9);

    let creator = |group: &str| g.creator_projection().read(group, Clone::clone).unwrap();
    let membership = |group: &str| g.membership_projection().read(group, Clone::clone).unwrap();
    let roles = |group: &str| g.roles_projection().read(group, Clone::clone).unwrap();
    // Same lifecycle, different creators.
    assert_ne!(creator("a"), creator("b"));
    assert_eq!(creator("a"), creator("a"));
    // Same creator (none), different lifecycles.
    assert_ne!(creator("c"), creator("f"));
    // Same lifecycle, members differ / the admins snapshot differs / the source differs.
    assert_ne!(membership("c"), membership("d"));
    assert_ne!(roles("c"), roles("d"));
    assert_ne!(membership("c"), membership("e"));
    assert_ne!(roles("c"), roles("e"));
    // Members equal, but "h" keeps no snapshot and is history.
    assert_eq!(g.members("c").unwrap(), g.members("h").unwrap());
    assert_ne!(membership("c"), membership("h"));
    assert_ne!(roles("c"), roles("h"));
    // And across dictionaries, through the checkpoint codec.
    let (m, r, c) = elsewhere(&relay, &pool);
    let cross = |group: &str, other: &str| {
        let mp = g.membership_projection().projection();
        let rp = g.roles_projection().projection();
        let cp = g.creator_projection().projection();
        (
            m.decode(&mp.encode(&membership(group)).unwrap()).unwrap() == membership(other),
            r.decode(&rp.encode(&roles(group)).unwrap()).unwrap() == roles(other),
            c.decode(&cp.encode(&creator(group)).unwrap()).unwrap() == creator(other),
        )
    };
    assert_eq!(cross("c", "c"), (true, true, true));
    // Each creator is its group's one member; neither holds a role.
    assert_eq!(cross("a", "b"), (false, true, false));
    assert_eq!(cross("c", "d"), (false, false, true));
    assert_eq!(cross("c", "h"), (false, false, false));
}

/// Names, versions (base 3 in the high half, the relay key's checksum in the low
/// half) and folded kinds of the three projections.
#[test]
fn the_projections_identity() {
    let config = |b: u8| Nip29Config::new(PublicKey::from_byte_array([b; 32]));
    let (m, r, c) = (
        Membership::new(config(7)),
        Roles::new(config(7)),
        Creator::new(config(7)),
    );
    assert_eq!(
        (m.name(), r.name(), c.name()),
        ("membership", "roles", "creator")
    );
    for (version, other) in [
        (m.version(), Membership::new(config(8)).version()),
        (r.version(), Roles::new(config(8)).version()),
        (c.version(), Creator::new(config(8)).version()),
    ] {
        assert_eq!(version >> 32, 3);
        assert_eq!(other >> 32, 3);
        assert_ne!(version, other);
    }
    let life = [9000, 9001, 9002, 9007, 9008, 39_000, 39_001, 39_002];
    for (name, kinds, extra) in [
        ("membership", m.kinds(), None),
        ("roles", r.kinds(), Some(39_003)),
        ("creator", c.kinds(), None),
    ] {
        let highwater_engine::Kinds::Only(kinds) = kinds else {
            panic!("{name} folds every kind")
        };
        for k in life.iter().chain(extra.iter()) {
            assert!(kinds.contains(k), "{name}: {k} missing");
        }
        assert!(!kinds.contains(&9), "{name}: {kinds:?}");
        assert_eq!(kinds.contains(&39_003), extra.is_some(), "{name}");
    }
}

/// The admins snapshot counts only when it is at least as new as the members snapshot
/// (or there is none); the states print their members and creator as hex pubkeys.
#[test]
fn an_older_admins_snapshot_does_not_count_and_states_print_their_keys() {
    let relay = Relay::new();
    let pool = Pool::new(&relay);
    let g = &relay.groups;
    let snapshot = |admins, at, k: usize, n| {
        let op = Op::Snapshot {
            admins,
            author: 0,
            at,
            roster: vec![(k, vec!["admin"])],
        };
        relay.append(&pool.event(&op, "g", n));
    };
    snapshot(false, 101, 1, 0);
    snapshot(true, 100, 2, 1);
    let keys: Vec<PublicKey> = pool.keys.iter().map(key).collect();
    assert_eq!(g.members("g").unwrap(), vec![keys[1]]);
    assert!(!g.has_role("g", &keys[2], "admin").unwrap());
    snapshot(true, 101, 3, 2);
    let mut both = vec![keys[1], keys[3]];
    both.sort();
    assert_eq!(g.members("g").unwrap(), both);
    assert!(g.has_role("g", &keys[3], "admin").unwrap());

    relay.append(&pool.event(&Op::Create(4), "h", 3));
    let membership = format!(
        "{:?}",
        g.membership_projection().read("g", Clone::clone).unwrap()
    );
    let creator = format!(
        "{:?}",
        g.creator_projection().read("h", Clone::clone).unwrap()
    );
    let roles = format!(
        "{:?}",
        g.roles_projection().read("g", Clone::clone).unwrap()
    );
    for k in [1, 3] {
        assert!(membership.contains(&pool.hex(k)), "{membership}");
        assert!(roles.contains(&pool.hex(k)), "{roles}");
    }
    assert!(creator.contains(&pool.hex(4)), "{creator}");
}
