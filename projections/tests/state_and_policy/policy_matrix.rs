//! The access policy against a reference model written from the rules in `policy.rs`'s
//! documentation (it shares no code with the policy): every combination of the five
//! flags, every kind of author, and several relay configurations, through `can_read`,
//! `has_access`, `can_write` and `check_write` of a post, a join (without, with a wrong
//! and with a valid code), a leave, a moderation event, and edits that keep or flip the
//! write-restricted flag.

use highwater_projections::{Policy, Rejection};
use nostr::prelude::{Event, Keys};

use crate::support::{Key, Relay, group_event, key};

const FLAGS: [&str; 5] = [
    "private",
    "closed",
    "hidden",
    "restricted",
    "write-restricted",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Relay,
    RelayAdmin,
    Creator,
    GroupAdmin,
    Writer,
    Member,
    Outsider,
}

const EVERYONE: [Who; 7] = [
    Who::Relay,
    Who::RelayAdmin,
    Who::Creator,
    Who::GroupAdmin,
    Who::Writer,
    Who::Member,
    Who::Outsider,
];

#[derive(Debug, Clone, Copy)]
#[expect(clippy::struct_excessive_bools, reason = "the five flags")]
struct Flags {
    private: bool,
    closed: bool,
    hidden: bool,
    restricted: bool,
    write_restricted: bool,
}

impl Flags {
    fn of(bits: u8) -> Self {
        Self {
            private: bits & 1 != 0,
            closed: bits & 2 != 0,
            hidden: bits & 4 != 0,
            restricted: bits & 8 != 0,
            write_restricted: bits & 16 != 0,
        }
    }

    fn tags(bits: u8, flip_write_restricted: bool) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = FLAGS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, f)| vec![(*f).to_owned()])
            .filter(|t| !(flip_write_restricted && t[0] == "write-restricted"))
            .collect();
        if flip_write_restricted && bits & 16 == 0 {
            out.push(vec!["write-restricted".to_owned()]);
        }
        out
    }
}

/// The reference model: the rules as documented, over plain facts.
struct Model<'a> {
    policy: &'a Policy,
    flags: Flags,
    who: Option<Who>,
}

impl Model<'_> {
    fn member(&self) -> bool {
        const MEMBERS: [Who; 4] = [Who::Creator, Who::GroupAdmin, Who::Writer, Who::Member];
        self.who.is_some_and(|w| MEMBERS.contains(&w))
    }

    fn power(&self, private: bool) -> bool {
        match self.who {
            Some(Who::Relay) => true,
            Some(Who::RelayAdmin) => !private || self.policy.admins_manage_private,
            _ => false,
        }
    }

    fn can_read(&self) -> bool {
        let f = self.flags;
        self.member()
            || self.power(f.private)
            || (!f.private && !f.hidden && self.policy.open_reads)
    }

    fn has_access(&self) -> bool {
        !self.flags.hidden || self.member() || self.power(self.flags.private)
    }

    fn may_post(&self) -> bool {
        let f = self.flags;
        let power = self.power(f.private);
        if f.write_restricted {
            return matches!(self.who, Some(Who::Creator | Who::Writer)) || power;
        }
        if f.restricted || self.policy.require_membership {
            let auto =
                self.policy.auto_join && !f.restricted && !f.closed && !f.private && !f.hidden;
            return self.member() || power || auto;
        }
        true
    }

    /// `check_write` of an event of `kind`; `code` whether it offers a valid invite
    /// code, `flips` whether (a 9002) it changes the write-restricted flag.
    fn check(&self, kind: u16, code: bool, flips: bool) -> Result<(), Rejection> {
        let f = self.flags;
        let power = self.power(f.private);
        // NIP-29: joins are honoured unless `closed`; zooid's dialect also wants a code
        // for private and hidden groups. A hidden group answers only joins it honours.
        let invite_only = self.policy.private_needs_invite && (f.private || f.hidden);
        let honoured = kind == 9021 && (code || (!f.closed && !invite_only));
        if f.hidden && !self.member() && !power && !honoured {
            return Err(Rejection::GroupNotFound);
        }
        match kind {
            9021 if self.member() => Err(Rejection::AlreadyMember),
            9021 if invite_only && !code => Err(Rejection::InviteRequired),
            9021 if f.closed && !code => Err(Rejection::Closed),
            9021 => Ok(()),
            9022 if self.member() => Ok(()),
            9022 => Err(Rejection::NotMember),
            9000..=9020 => {
                let admin = matches!(self.who, Some(Who::Creator | Who::GroupAdmin)) || power;
                if !admin {
                    Err(Rejection::NotAuthorised)
                } else if kind == 9002 && flips && !power {
                    Err(Rejection::RestrictedFlag)
                } else {
                    Ok(())
                }
            }
            _ if self.may_post() => Ok(()),
            _ if f.write_restricted => Err(Rejection::WriteRestricted),
            _ => Err(Rejection::MembersOnly),
        }
    }
}

struct Cast {
    keys: Vec<(Who, Keys)>,
}

impl Cast {
    fn keys(&self, who: Who) -> &Keys {
        &self.keys.iter().find(|(w, _)| *w == who).unwrap().1
    }
}

fn hex(k: &Keys) -> String {
    k.public_key().to_hex()
}

/// One group per combination of flags, `f0` … `f31`, each with a creator, a member
/// holding `admin`, one holding `writer`, a plain member, and invite code `ok`.
fn world() -> (Relay, Cast) {
    let relay = Relay::new();
    let mut keys = vec![(Who::Relay, relay.keys.clone())];
    for who in &EVERYONE[1..] {
        keys.push((*who, Keys::generate()));
    }
    let cast = Cast { keys };
    let creator = cast.keys(Who::Creator);
    for bits in 0..32u8 {
        let g = format!("f{bits}");
        let tags = Flags::tags(bits, false);
        let tags: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        relay.append(&group_event(creator, 9007, &g, &tags));
        let (ga, w, m) = (
            hex(cast.keys(Who::GroupAdmin)),
            hex(cast.keys(Who::Writer)),
            hex(cast.keys(Who::Member)),
        );
        relay.append(&group_event(
            creator,
            9000,
            &g,
            &[&["p", &ga, "admin"], &["p", &w, "writer"], &["p", &m]],
        ));
        relay.append(&group_event(creator, 9009, &g, &[&["code", "ok"]]));
    }
    (relay, cast)
}

fn policies(admin: Key) -> Vec<Policy> {
    let base = Policy {
        relay_admins: [admin].into(),
        ..Policy::default()
    };
    vec![
        // NIP-29's text.
        base.clone(),
        Policy {
            open_reads: false,
            ..base.clone()
        },
        Policy {
            admins_manage_private: true,
            private_needs_invite: true,
            ..base.clone()
        },
        Policy {
            require_membership: true,
            ..base.clone()
        },
        // zooid's dialect: members-only reading, invite-only private groups.
        Policy {
            require_membership: true,
            auto_join: true,
            open_reads: false,
            private_needs_invite: true,
            ..base
        },
    ]
}

/// The events each author sends to group `g` (flags `bits`), with what the model
/// needs to know of each: (label, event, kind, valid code, flips write-restricted).
fn events(keys: &Keys, g: &str, bits: u8) -> Vec<(&'static str, Event, u16, bool, bool)> {
    let tagged = |flip| -> Vec<Vec<String>> { Flags::tags(bits, flip) };
    let edit = |flip| {
        let tags = tagged(flip);
        let tags: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        group_event(keys, 9002, g, &tags)
    };
    let someone = Keys::generate().public_key().to_hex();
    vec![
        ("post", group_event(keys, 9, g, &[]), 9, false, false),
        ("post 1", group_event(keys, 1, g, &[]), 1, false, false),
        ("join", group_event(keys, 9021, g, &[]), 9021, false, false),
        (
            "join, wrong code",
            group_event(keys, 9021, g, &[&["code", "no"]]),
            9021,
            false,
            false,
        ),
        (
            "join, valid code",
            group_event(keys, 9021, g, &[&["code", "ok"]]),
            9021,
            true,
            false,
        ),
        ("leave", group_event(keys, 9022, g, &[]), 9022, false, false),
        (
            "put",
            group_event(keys, 9000, g, &[&["p", &someone]]),
            9000,
            false,
            false,
        ),
        (
            "invite",
            group_event(keys, 9009, g, &[&["code", "x"]]),
            9009,
            false,
            false,
        ),
        ("edit", edit(false), 9002, false, false),
        ("edit, flip", edit(true), 9002, false, true),
    ]
}

#[test]
fn the_policy_agrees_with_the_model_for_every_flag_author_and_configuration() {
    let (relay, cast) = world();
    let policies = policies(key(cast.keys(Who::RelayAdmin)));
    let mut sent = Vec::new();
    for bits in 0..32u8 {
        for (who, keys) in &cast.keys {
            sent.push((bits, *who, events(keys, &format!("f{bits}"), bits)));
        }
    }
    let mut checked = 0;
    for p in &policies {
        let policy = relay.policy(p.clone());
        for bits in 0..32u8 {
            let g = format!("f{bits}");
            let flags = Flags::of(bits);
            let anonymous = Model {
                policy: p,
                flags,
                who: None,
            };
            assert_eq!(
                policy.can_read(None, &g).unwrap(),
                anonymous.can_read(),
                "{p:?} {g} anonymous read"
            );
            assert_eq!(
                policy.has_access(None, &g).unwrap(),
                anonymous.has_access(),
                "{p:?} {g} anonymous access"
            );
            for (who, keys) in &cast.keys {
                let model = Model {
                    policy: p,
                    flags,
                    who: Some(*who),
                };
                let k = key(keys);
                let at = format!("{p:?} {g} {who:?}");
                assert_eq!(
                    policy.can_read(Some(&k), &g).unwrap(),
                    model.can_read(),
                    "{at} read"
                );
                assert_eq!(
                    policy.has_access(Some(&k), &g).unwrap(),
                    model.has_access(),
                    "{at} access"
                );
                assert_eq!(
                    policy.can_write(&g, &k).unwrap(),
                    model.may_post(),
                    "{at} can_write"
                );
                checked += 3;
            }
        }
        for (bits, who, events) in &sent {
            let model = Model {
                policy: p,
                flags: Flags::of(*bits),
                who: Some(*who),
            };
            for (label, event, kind, code, flips) in events {
                assert_eq!(
                    policy.check_write(event),
                    model.check(*kind, *code, *flips),
                    "{p:?} f{bits} {who:?} {label}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 32 * 7 * (3 + 10));
}

#[test]
fn nothing_is_allowed_in_a_group_that_does_not_exist() {
    let (relay, cast) = world();
    let alice = cast.keys(Who::Creator);
    relay.append(&group_event(alice, 9008, "f0", &[]));
    for p in policies(key(cast.keys(Who::RelayAdmin))) {
        let policy = relay.policy(p.clone());
        for g in ["f0", "nowhere"] {
            assert!(!policy.can_read(None, g).unwrap());
            assert!(!policy.has_access(None, g).unwrap());
            for (who, keys) in &cast.keys {
                let k = key(keys);
                assert!(!policy.can_read(Some(&k), g).unwrap(), "{who:?} {g}");
                assert!(!policy.has_access(Some(&k), g).unwrap(), "{who:?} {g}");
                assert!(!policy.can_write(g, &k).unwrap(), "{who:?} {g}");
                for (label, event, ..) in events(keys, g, 0) {
                    assert_eq!(
                        policy.check_write(&event),
                        Err(Rejection::GroupNotFound),
                        "{p:?} {who:?} {g} {label}"
                    );
                }
            }
        }
    }
}
