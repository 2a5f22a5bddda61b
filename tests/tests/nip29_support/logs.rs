//! Random NIP-29 logs: operations over a small pool of keys and groups, turned into
//! signed events with `created_at` ties and steps backwards, snapshot events by the
//! relay and by a foreign key, deletes and re-creations, malformed `p` tags, subgroup
//! moves (`parent`/`child` tags, self-references and cycles included), pins, and the
//! newer metadata fields.

use nostr::prelude::{Event, Keys};
use proptest::prelude::*;

use super::{T0, ev, foreign, key, relay};

/// Role names drawn by the generator ("" is dropped by the fold).
pub const ROLE_POOL: [&str; 5] = ["admin", "writer", "moderator", "", "x"];

/// What an operation does.
#[derive(Debug, Clone)]
pub enum Action {
    Create {
        flags: u8,
        dialect: u8,
    },
    Put {
        targets: Vec<(u8, Vec<u8>)>,
    },
    PutMalformed {
        which: u8,
        target: u8,
    },
    Remove {
        targets: Vec<u8>,
    },
    Edit {
        flags: u8,
        dialect: u8,
    },
    Delete,
    Invite {
        code: u8,
    },
    Join {
        code: Option<u8>,
    },
    Leave,
    Post,
    DeleteEvent,
    SnapMeta {
        by_relay: bool,
        flags: u8,
        dialect: u8,
    },
    SnapAdmins {
        by_relay: bool,
        targets: Vec<(u8, Vec<u8>)>,
    },
    SnapMembers {
        by_relay: bool,
        targets: Vec<(u8, Vec<u8>)>,
    },
    SnapRoles {
        by_relay: bool,
        names: Vec<u8>,
    },
    Pin {
        refs: Vec<u8>,
    },
}

/// One operation: who does what to which group, and how `created_at` moves.
#[derive(Debug, Clone)]
pub struct Op {
    pub group: u8,
    pub author: u8,
    /// Added to the clock: negative values step back, 0 ties.
    pub dt: i8,
    pub action: Action,
}

/// The pool of 8 member keys.
pub fn pool() -> Vec<Keys> {
    (1..=8).map(key).collect()
}

fn flag_tags(e: super::Ev, flags: u8, dialect: u8, nonce: usize) -> super::Ev {
    let names = [
        ("private", "public"),
        ("closed", "open"),
        ("hidden", "visible"),
        ("restricted", "unrestricted"),
    ];
    let json_keys = ["private", "closed", "hidden", "write-restricted"];
    let mut e = e;
    match dialect % 4 {
        0 => {
            for (bit, (on, _)) in names.iter().enumerate() {
                if flags & (1 << bit) != 0 {
                    e = e.tag(&[on]);
                }
            }
            e.content(&format!("n{nonce}"))
        }
        1 => {
            for (bit, (on, off)) in names.iter().enumerate() {
                e = e.tag(&[if flags & (1 << bit) != 0 { on } else { off }]);
            }
            e.content(&format!("n{nonce}"))
        }
        2 => {
            let fields: Vec<String> = json_keys
                .iter()
                .enumerate()
                .map(|(bit, k)| format!("\"{k}\":{}", flags & (1 << bit) != 0))
                .collect();
            e.content(&format!("{{{},\"n\":{nonce}}}", fields.join(",")))
        }
        _ => {
            // JSON says one thing, a later tag overrides one flag.
            let e = e.content(&format!(
                "{{\"private\":true,\"restricted\":true,\"n\":{nonce}}}"
            ));
            if flags & 1 == 0 {
                e.tag(&["public"])
            } else {
                e.tag(&["unrestricted"])
            }
        }
    }
}

/// Subgroup tags and the newer metadata fields, chosen by the upper bits of `dialect`:
/// a `parent` (any group, itself included), `child` tags in some order, a banner,
/// `livekit`, `supported_kinds`.
fn subgroup_tags(e: super::Ev, dialect: u8, groups: &[String], nonce: usize) -> super::Ev {
    let pick = |shift: u8| &groups[usize::from(dialect >> shift) % groups.len()];
    let mut e = e;
    if dialect & 0x04 != 0 {
        e = e.tag(&["parent", pick(4)]);
    }
    if dialect & 0x08 != 0 {
        e = e.tag(&["child", pick(5)]).tag(&["child", pick(3)]);
    }
    if nonce.is_multiple_of(5) {
        e = e.tag(&["banner", "https://b"]).tag(&["livekit"]);
    }
    if nonce.is_multiple_of(7) {
        e = e.tag(&["supported_kinds", "9"]);
    }
    e
}

fn roster(e: super::Ev, keys: &[Keys], targets: &[(u8, Vec<u8>)]) -> super::Ev {
    let mut e = e;
    for (target, roles) in targets {
        let names: Vec<&str> = roles
            .iter()
            .map(|r| ROLE_POOL[usize::from(*r) % ROLE_POOL.len()])
            .collect();
        e = e.p(&keys[usize::from(*target) % keys.len()], &names);
    }
    e
}

/// Turns operations into signed events for `groups`, moving a clock from `T0`.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per operation kind reads best in one place"
)]
pub fn events(ops: &[Op], groups: &[String], keys: &[Keys]) -> Vec<Event> {
    let (relay, foreign) = (relay(), foreign());
    let mut clock = T0 + 1_000;
    let mut out = Vec::with_capacity(ops.len());
    for (nonce, op) in ops.iter().enumerate() {
        clock = clock.saturating_add_signed(i64::from(op.dt));
        let group = &groups[usize::from(op.group) % groups.len()];
        let author = &keys[usize::from(op.author) % keys.len()];
        let snap_author = |by_relay: bool| if by_relay { &relay } else { &foreign };
        let n = format!("n{nonce}");
        let (e, signer) = match &op.action {
            Action::Create { flags, dialect } => (
                subgroup_tags(
                    flag_tags(
                        ev(9007, group).tag(&["name", &format!("G{nonce}")]),
                        *flags,
                        *dialect,
                        nonce,
                    ),
                    *dialect,
                    groups,
                    nonce,
                ),
                author,
            ),
            Action::Put { targets } => (roster(ev(9000, group), keys, targets).content(&n), author),
            Action::PutMalformed { which, target } => {
                let bad: &[&str] = match which % 5 {
                    0 => &["p"],
                    1 => &["p", "zz"],
                    2 => &["p", "abc123", "admin"],
                    3 => &["p", ""],
                    _ => &[
                        "p",
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
                    ],
                };
                let e = ev(9000, group).tag(bad).tag(&["p"]);
                (roster(e, keys, &[(*target, vec![1])]).content(&n), author)
            }
            Action::Remove { targets } => {
                let mut e = ev(9001, group).content(&n);
                for t in targets {
                    e = e.p(&keys[usize::from(*t) % keys.len()], &[]);
                }
                (e, author)
            }
            Action::Edit { flags, dialect } => (
                subgroup_tags(
                    flag_tags(
                        ev(9002, group)
                            .tag(&["name", &format!("E{nonce}")])
                            .tag(&["about", "a"]),
                        *flags,
                        *dialect,
                        nonce,
                    ),
                    *dialect,
                    groups,
                    nonce,
                ),
                author,
            ),
            Action::Delete => (ev(9008, group).content(&n), author),
            Action::Invite { code } => (
                ev(9009, group)
                    .tag(&["code", &format!("c{}", code % 3)])
                    .content(&n),
                author,
            ),
            Action::Join { code } => {
                let e = ev(9021, group).content(&n);
                let e = match code {
                    Some(c) => e.tag(&["code", &format!("c{}", c % 3)]),
                    None => e,
                };
                (e, author)
            }
            Action::Leave => (ev(9022, group).content(&n), author),
            Action::Post => (ev(9, group).content(&n), author),
            Action::DeleteEvent => (
                ev(9005, group).tag(&["e", &"0".repeat(64)]).content(&n),
                author,
            ),
            Action::SnapMeta {
                by_relay,
                flags,
                dialect,
            } => (
                subgroup_tags(
                    flag_tags(
                        ev(39_000, group)
                            .tag(&["name", &format!("S{nonce}")])
                            .tag(&["member_count", "3"]),
                        *flags,
                        *dialect,
                        nonce,
                    ),
                    *dialect,
                    groups,
                    nonce,
                ),
                snap_author(*by_relay),
            ),
            Action::SnapAdmins { by_relay, targets } => (
                roster(ev(39_001, group), keys, targets).content(&n),
                snap_author(*by_relay),
            ),
            Action::SnapMembers { by_relay, targets } => (
                roster(ev(39_002, group), keys, targets).content(&n),
                snap_author(*by_relay),
            ),
            Action::SnapRoles { by_relay, names } => {
                let mut e = ev(39_003, group).content(&n);
                for name in names {
                    let role = ROLE_POOL[usize::from(*name) % ROLE_POOL.len()];
                    e = if name % 2 == 0 {
                        e.tag(&["role", role, "described"])
                    } else {
                        e.tag(&["role", role])
                    };
                }
                (e, snap_author(*by_relay))
            }
            Action::Pin { refs } => {
                let mut e = ev(9010, group).content(&n);
                for r in refs {
                    e = match r % 4 {
                        0 => e.tag(&["e", &format!("{r:064x}")]),
                        1 => e.tag(&["a", &format!("30023:{r}:d")]),
                        2 => e.tag(&["e", ""]),
                        _ => e.tag(&["t", "not a pin"]),
                    };
                }
                (e, author)
            }
        };
        out.push(e.at(clock).sign(signer));
    }
    out
}

fn arb_targets() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec((0u8..8, prop::collection::vec(0u8..5, 0..3)), 1..4)
}

/// A random action, weighted towards membership changes.
pub fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (any::<u8>(), any::<u8>()).prop_map(|(flags, dialect)| Action::Create { flags, dialect }),
        6 => arb_targets().prop_map(|targets| Action::Put { targets }),
        1 => (any::<u8>(), 0u8..8).prop_map(|(which, target)| Action::PutMalformed { which, target }),
        3 => prop::collection::vec(0u8..8, 1..3).prop_map(|targets| Action::Remove { targets }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(flags, dialect)| Action::Edit { flags, dialect }),
        1 => Just(Action::Delete),
        1 => any::<u8>().prop_map(|code| Action::Invite { code }),
        1 => prop::option::of(any::<u8>()).prop_map(|code| Action::Join { code }),
        1 => Just(Action::Leave),
        1 => Just(Action::Post),
        1 => Just(Action::DeleteEvent),
        1 => (any::<bool>(), any::<u8>(), any::<u8>()).prop_map(|(by_relay, flags, dialect)| Action::SnapMeta { by_relay, flags, dialect }),
        1 => (any::<bool>(), arb_targets()).prop_map(|(by_relay, targets)| Action::SnapAdmins { by_relay, targets }),
        2 => (any::<bool>(), arb_targets()).prop_map(|(by_relay, targets)| Action::SnapMembers { by_relay, targets }),
        1 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..4)).prop_map(|(by_relay, names)| Action::SnapRoles { by_relay, names }),
        1 => prop::collection::vec(any::<u8>(), 0..4).prop_map(|refs| Action::Pin { refs }),
    ]
}

/// A random operation on one of `groups` groups.
pub fn arb_op(groups: u8) -> impl Strategy<Value = Op> {
    (0..groups, 0u8..8, -3i8..=3, arb_action()).prop_map(|(group, author, dt, action)| Op {
        group,
        author,
        dt,
        action,
    })
}

/// A small deterministic generator (`SplitMix64`), for cases larger than proptest's.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn targets(rng: &mut Rng) -> Vec<(u8, Vec<u8>)> {
    (0..=rng.below(3))
        .map(|_| {
            (
                rng.byte() % 8,
                (0..rng.below(3)).map(|_| rng.byte() % 5).collect(),
            )
        })
        .collect()
}

/// A deterministic random operation on one of `groups` groups (same weights as
/// [`arb_action`], deletes rarer).
pub fn random_op(rng: &mut Rng, groups: u8) -> Op {
    let action = match rng.below(30) {
        0 | 1 => Action::Create {
            flags: rng.byte(),
            dialect: rng.byte(),
        },
        2..=9 => Action::Put {
            targets: targets(rng),
        },
        10 => Action::PutMalformed {
            which: rng.byte(),
            target: rng.byte() % 8,
        },
        11..=14 => Action::Remove {
            targets: vec![rng.byte() % 8],
        },
        15 | 16 => Action::Edit {
            flags: rng.byte(),
            dialect: rng.byte(),
        },
        17 => {
            if rng.below(4) == 0 {
                Action::Delete
            } else {
                Action::Post
            }
        }
        18 => Action::Invite { code: rng.byte() },
        19 => Action::Join {
            code: (rng.below(2) == 0).then(|| rng.byte()),
        },
        20 => Action::Leave,
        21 => Action::Post,
        22 => Action::Pin {
            refs: (0..rng.below(4)).map(|_| rng.byte()).collect(),
        },
        23 => Action::DeleteEvent,
        24 => Action::SnapMeta {
            by_relay: rng.below(3) > 0,
            flags: rng.byte(),
            dialect: rng.byte(),
        },
        25 => Action::SnapAdmins {
            by_relay: rng.below(3) > 0,
            targets: targets(rng),
        },
        26 | 27 => Action::SnapMembers {
            by_relay: rng.below(3) > 0,
            targets: targets(rng),
        },
        _ => Action::SnapRoles {
            by_relay: rng.below(3) > 0,
            names: (0..rng.below(4)).map(|_| rng.byte()).collect(),
        },
    };
    Op {
        group: rng.byte() % groups.max(1),
        author: rng.byte() % 8,
        dt: (rng.below(7) as i8) - 3,
        action,
    }
}

/// Rewrites `op` into an action that keeps a group free of history: relay (or, with
/// `foreign_only`, foreign) snapshots, posts, joins and invites only.
pub fn without_history(op: &Op, rng: &mut Rng, foreign_only: bool) -> Op {
    let by_relay = !foreign_only && rng.below(4) > 0;
    let action = match rng.below(7) {
        0 => Action::SnapMeta {
            by_relay,
            flags: rng.byte(),
            dialect: rng.byte(),
        },
        1 => Action::SnapAdmins {
            by_relay,
            targets: targets(rng),
        },
        2 | 3 => Action::SnapMembers {
            by_relay,
            targets: targets(rng),
        },
        4 => Action::SnapRoles {
            by_relay,
            names: (0..rng.below(4)).map(|_| rng.byte()).collect(),
        },
        5 => Action::Invite { code: rng.byte() },
        _ => Action::Post,
    };
    Op {
        action,
        ..op.clone()
    }
}
