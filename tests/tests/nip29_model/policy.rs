//! The access policy's answers, from the model's facts: who may read a group, see it,
//! and post to it, and the verdict on a set of probe events (posts, joins, leaves,
//! moderation, metadata edits with and without a parent, creations, relay state events,
//! posts with timeline references) by every key — SEMANTICS A1–A10, G5, G6 and the
//! policy's documented decisions — under NIP-29's configuration and zooid's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use highwater_projections::{AccessPolicy, Groups, Policy, Rejection};
use nostr::prelude::{EventBuilder, FinalizeEvent, Kind, PublicKey, Tag, Timestamp};

use super::logs;
use super::model::{Event, Facts, Life, Pk, parse_meta, would_cycle};

/// The relay configurations compared: NIP-29's text with one relay admin (anyone
/// reads, posts to open groups and creates groups, joins honoured unless `closed`,
/// members holding `admin` moderate); zooid's dialect: members-only reading and
/// posting with auto-join, invite-only private and hidden groups, relay admins keeping
/// their powers in private groups, only relay admins creating groups, group roles
/// moderating nothing; and a third: anyone creates public groups, only relay admins
/// private ones, and holders of `moderator` moderate.
pub fn configurations() -> Vec<Policy> {
    let admin: BTreeSet<PublicKey> = [logs::keys()[usize::from(logs::MEMBERS) - 1].public_key()]
        .into_iter()
        .collect();
    let roles = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    vec![
        Policy {
            relay_admins: admin.clone(),
            admins_manage_private: false,
            open_reads: true,
            auto_join: false,
            require_membership: false,
            private_needs_invite: false,
            admin_create_only: false,
            private_admin_only: false,
            group_admin_roles: roles(&["admin"]),
            answer_joins: true,
        },
        Policy {
            relay_admins: admin.clone(),
            admins_manage_private: true,
            open_reads: false,
            auto_join: true,
            require_membership: true,
            private_needs_invite: true,
            admin_create_only: true,
            private_admin_only: true,
            group_admin_roles: roles(&[]),
            answer_joins: false,
        },
        Policy {
            relay_admins: admin,
            admins_manage_private: false,
            open_reads: true,
            auto_join: false,
            require_membership: false,
            private_needs_invite: false,
            admin_create_only: false,
            private_admin_only: true,
            group_admin_roles: roles(&["moderator"]),
            answer_joins: true,
        },
    ]
}

/// Whether `who` holds, as a member, a role that moderates under `p`.
fn moderates_by_role(p: &Policy, f: &Facts, who: &Pk) -> bool {
    f.members.contains(who)
        && f.roles
            .get(who)
            .is_some_and(|held| held.iter().any(|r| p.group_admin_roles.contains(r)))
}

/// The relay key, or a relay admin whose powers reach this group.
fn relay_power(p: &Policy, relay: &Pk, who: Option<&Pk>, f: &Facts) -> bool {
    who.is_some_and(|pk| {
        pk == relay || (is_relay_admin(p, pk) && (!f.meta.private || p.admins_manage_private))
    })
}

/// Whether the library's configuration lists `pk` as a relay admin.
fn is_relay_admin(p: &Policy, pk: &Pk) -> bool {
    p.relay_admins.iter().any(|admin| admin.as_bytes() == pk)
}

fn member(f: &Facts, who: Option<&Pk>) -> bool {
    who.is_some_and(|pk| f.members.contains(pk))
}

/// Reads: members and relay admins; others only in groups neither private nor hidden,
/// with `open_reads`.
pub fn can_read(p: &Policy, relay: &Pk, who: Option<&Pk>, f: &Facts) -> bool {
    f.life == Life::Active
        && (member(f, who)
            || relay_power(p, relay, who, f)
            || (!f.meta.private && !f.meta.hidden && p.open_reads))
}

/// Seeing the group: hidden groups only for members and relay admins.
pub fn has_access(p: &Policy, relay: &Pk, who: Option<&Pk>, f: &Facts) -> bool {
    f.life == Life::Active && (!f.meta.hidden || member(f, who) || relay_power(p, relay, who, f))
}

/// Posting: relay admins; in a write-restricted group the creator and members holding
/// `writer`; in a `restricted` group (or any, with `require_membership`) members, or
/// anyone with `auto_join` where the group is neither restricted, closed, private nor
/// hidden; otherwise anyone (NIP-29).
pub fn can_write(p: &Policy, relay: &Pk, who: &Pk, f: &Facts) -> bool {
    if f.life != Life::Active {
        return false;
    }
    if relay_power(p, relay, Some(who), f) {
        return true;
    }
    let m = &f.meta;
    if m.write_restricted {
        let writer = f.roles.get(who).is_some_and(|r| r.contains("writer"));
        return f.creator.as_ref() == Some(who) || (f.members.contains(who) && writer);
    }
    if !m.restricted && !p.require_membership {
        return true;
    }
    let auto_joins = p.auto_join && !m.restricted && !m.closed && !m.private && !m.hidden;
    f.members.contains(who) || auto_joins
}

/// Compares the three answers for every key of the pool (and no key) on `g`.
pub fn compare(groups: &Groups, g: &str, f: &Facts) -> Result<(), String> {
    let relay = logs::relay().public_key().to_bytes();
    for (i, p) in configurations().into_iter().enumerate() {
        let access = AccessPolicy::new(groups.clone(), p.clone());
        let mut people: Vec<Option<Pk>> = vec![None];
        people.extend(logs::keys().iter().map(|k| Some(k.public_key().to_bytes())));
        for who in &people {
            let name = who
                .as_ref()
                .map_or_else(|| "nobody".to_owned(), super::compare::who);
            let what = |q: &str| format!("policy {i} {q}({name})");
            super::compare::check(
                g,
                &what("can_read"),
                access.can_read(who.map(PublicKey::from_byte_array).as_ref(), g),
                &can_read(&p, &relay, who.as_ref(), f),
            )?;
            super::compare::check(
                g,
                &what("has_access"),
                access.has_access(who.map(PublicKey::from_byte_array).as_ref(), g),
                &has_access(&p, &relay, who.as_ref(), f),
            )?;
            if let Some(pk) = who {
                super::compare::check(
                    g,
                    &what("can_write"),
                    access.can_write(g, &PublicKey::from_byte_array(*pk)),
                    &can_write(&p, &relay, pk, f),
                )?;
            }
        }
    }
    Ok(())
}

/// A probe: an event someone might send, and the model's verdict on it.
fn probes(group: &str) -> Vec<(u16, Vec<Vec<String>>)> {
    let t = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let h = t(&["h", group]);
    let member = logs::keys()[1].public_key().to_hex();
    vec![
        (9, vec![h.clone()]),
        (11, vec![h.clone()]),
        (9021, vec![h.clone()]),
        (9021, vec![h.clone(), t(&["code", "c1"])]),
        (9021, vec![h.clone(), t(&["code", "nope"])]),
        (9022, vec![h.clone()]),
        (9000, vec![h.clone(), t(&["p", &member, "writer"])]),
        (9002, vec![h.clone(), t(&["name", "n"])]),
        (
            9002,
            vec![h.clone(), t(&["name", "n"]), t(&["parent", "g0"])],
        ),
        (9007, vec![h.clone(), t(&["name", "n"])]),
        (9007, vec![h.clone(), t(&["private"]), t(&["name", "n"])]),
        (
            9007,
            vec![h.clone(), t(&["write-restricted"]), t(&["parent", "g1"])],
        ),
        (39_000, vec![t(&["d", group])]),
        (39_004, vec![t(&["d", group])]),
        (39_005, vec![t(&["d", group])]),
        (39_009, vec![t(&["d", group])]),
        (9, vec![h.clone(), t(&["previous", "zz"])]),
        (9, vec![h.clone(), t(&["previous"])]),
    ]
}

/// Posts to `group` whose timeline references depend on the log: the first 8 hex
/// digits of its first event's id, the whole id of its last, a prefix no event of it
/// has, and the same in upper case.
fn timeline_probes(group: &str, log: &[Event]) -> Vec<Vec<Vec<String>>> {
    let hex = |id: &[u8; 32]| super::render::hex(id);
    // A log of fewer than 65,536 events leaves one of these free.
    let absent = (0u32..=0xffff)
        .map(|n| format!("{n:08x}"))
        .find(|p| !log.iter().any(|e| hex(&e.id).starts_with(p.as_str())))
        .expect("a free prefix");
    let h = vec!["h".to_owned(), group.to_owned()];
    let previous = |refs: &[&str]| {
        let mut tag = vec!["previous".to_owned()];
        tag.extend(refs.iter().map(|r| (*r).to_owned()));
        vec![h.clone(), tag]
    };
    let mut out = vec![previous(&[&absent])];
    if let (Some(first), Some(last)) = (log.first(), log.last()) {
        let (first, last) = (hex(&first.id), hex(&last.id));
        out.push(previous(&[&first[..8]]));
        out.push(previous(&[&first[..8], &last]));
        out.push(previous(&[&last[..12], &absent]));
        out.push(previous(&[&first[..8].to_uppercase()]));
        out.push(previous(&[&first[..7]]));
    }
    out
}

/// NIP-29 "Relays are expected to reject any events that contain timeline references
/// to events not found in their own database": each value must be the first 4 to 32
/// bytes of a logged event's id (8 to 64 hex digits, an even number, either case).
fn check_timeline(event: &Event, log: &[Event]) -> Result<(), Rejection> {
    let values = event
        .tags
        .iter()
        .filter(|t| t.first().map(String::as_str) == Some("previous"))
        .flat_map(|t| t.iter().skip(1));
    for value in values {
        let well_formed = (8..=64).contains(&value.len())
            && value.len() % 2 == 0
            && value.chars().all(|c| c.is_ascii_hexdigit());
        let wanted = value.to_ascii_lowercase();
        let found = well_formed
            && log
                .iter()
                .any(|e| super::render::hex(&e.id).starts_with(wanted.as_str()));
        if !found {
            return Err(Rejection::UnknownPrevious(value.chars().take(64).collect()));
        }
    }
    Ok(())
}

/// What the policy answers to `event` after `log` (SEMANTICS A1–A10, G5, G6, and the
/// policy's documented decisions).
fn verdict(
    policy: &Policy,
    relay: &Pk,
    groups: &BTreeMap<String, Facts>,
    log: &[Event],
    event: &Event,
) -> Result<(), Rejection> {
    let author = &event.pubkey;
    // A8: NIP-29 "MUST be created by the relay master key only".
    if (39_000..=39_009).contains(&event.kind) {
        return if author == relay {
            Ok(())
        } else {
            Err(Rejection::RelayOnly)
        };
    }
    check_timeline(event, log)?;
    let absent = Facts::default();
    let g = event.group().expect("probes carry `h`");
    let f = groups.get(g).unwrap_or(&absent);
    let wanted = parse_meta(event);
    if event.kind == 9007 {
        if f.life == Life::Active {
            return Err(Rejection::AlreadyExists);
        }
        // zooid's creation switches; a relay admin counts whatever the group's privacy.
        let relay_admin = author == relay || is_relay_admin(policy, author);
        if policy.admin_create_only && !relay_admin {
            return Err(Rejection::AdminCreateOnly);
        }
        if policy.private_admin_only && wanted.private && !relay_admin {
            return Err(Rejection::PrivateAdminOnly);
        }
        if wanted.write_restricted && !power(policy, relay, author, wanted.private) {
            return Err(Rejection::RestrictedFlag);
        }
        return subgroup(policy, relay, groups, event, g, &wanted);
    }
    if f.life != Life::Active {
        return Err(Rejection::GroupNotFound);
    }
    let m = &f.meta;
    let relay_power = power(policy, relay, author, m.private);
    let is_member = f.members.contains(author);
    let holds = |role: &str| is_member && f.roles.get(author).is_some_and(|r| r.contains(role));
    let valid_code = event.kind == 9021
        && event
            .tags
            .iter()
            .filter(|t| t.first().map(String::as_str) == Some("code"))
            .filter_map(|t| t.get(1))
            .any(|c| !c.is_empty() && f.invites.contains(c));
    // A6: NIP-29 honours joins unless `closed`; zooid's dialect wants a code for
    // private and hidden groups too. A7: `hidden` hides the group from outsiders but
    // does not decide joins, so a join it would honour is answered.
    let invite_only = policy.private_needs_invite && (m.private || m.hidden);
    let join_honoured = event.kind == 9021 && (valid_code || !(m.closed || invite_only));
    if m.hidden && !is_member && !relay_power && !join_honoured {
        return Err(Rejection::GroupNotFound);
    }
    match event.kind {
        9021 if is_member => Err(Rejection::AlreadyMember),
        9021 if invite_only && !valid_code => Err(Rejection::InviteRequired),
        9021 if m.closed && !valid_code => Err(Rejection::Closed),
        9022 if !is_member => Err(Rejection::NotMember),
        9021 | 9022 => Ok(()),
        9000..=9020 => {
            if !(f.creator.as_ref() == Some(author)
                || relay_power
                || moderates_by_role(policy, f, author))
            {
                return Err(Rejection::NotAuthorised);
            }
            if event.kind == 9002 {
                if wanted.write_restricted != m.write_restricted && !relay_power {
                    return Err(Rejection::RestrictedFlag);
                }
                return subgroup(policy, relay, groups, event, g, &wanted);
            }
            Ok(())
        }
        k if m
            .supported_kinds
            .as_ref()
            .is_some_and(|ks| !ks.contains(&k)) =>
        {
            Err(Rejection::UnsupportedKind(k))
        }
        _ => {
            let posts = if m.write_restricted {
                f.creator.as_ref() == Some(author) || relay_power || holds("writer")
            } else if m.restricted || policy.require_membership {
                let auto_joins =
                    policy.auto_join && !m.restricted && !m.closed && !m.private && !m.hidden;
                is_member || relay_power || auto_joins
            } else {
                true
            };
            match (posts, m.write_restricted) {
                (true, _) => Ok(()),
                (false, true) => Err(Rejection::WriteRestricted),
                (false, false) => Err(Rejection::MembersOnly),
            }
        }
    }
}

fn power(p: &Policy, relay: &Pk, who: &Pk, private: bool) -> bool {
    who == relay || (is_relay_admin(p, who) && (!private || p.admins_manage_private))
}

/// G5 and G6.
fn subgroup(
    p: &Policy,
    relay: &Pk,
    groups: &BTreeMap<String, Facts>,
    event: &Event,
    g: &str,
    wanted: &super::model::Meta,
) -> Result<(), Rejection> {
    if let Some(parent) = &wanted.parent {
        if would_cycle(groups, g, parent) {
            return Err(Rejection::ParentCycle);
        }
        let Some(pf) = groups.get(parent).filter(|pf| pf.life == Life::Active) else {
            return Err(Rejection::ParentNotFound);
        };
        let author = &event.pubkey;
        let admin = pf.creator.as_ref() == Some(author)
            || power(p, relay, author, pf.meta.private)
            || moderates_by_role(p, pf, author);
        if !admin {
            return Err(Rejection::NotParentAdmin);
        }
    }
    let children = groups
        .get(g)
        .map(|f| f.children.as_slice())
        .unwrap_or_default();
    if event.kind == 9002 && children.iter().any(|c| !wanted.children.contains(c)) {
        return Err(Rejection::ChildrenOmitted);
    }
    Ok(())
}

/// The probes of `group` by every key of the pool, signed once per process.
fn signed_probes(group: &str) -> &'static [(nostr::prelude::Event, Event)] {
    static PROBES: OnceLock<BTreeMap<String, Vec<(nostr::prelude::Event, Event)>>> =
        OnceLock::new();
    let all = PROBES.get_or_init(|| {
        (0..logs::GROUPS)
            .map(|n| {
                let g = logs::group_name(n);
                let mut signed = Vec::new();
                for keys in logs::keys() {
                    for (kind, tags) in probes(&g) {
                        let event = EventBuilder::new(Kind::from(kind), "")
                            .tags(
                                tags.into_iter()
                                    .map(|t| Tag::parse(t).expect("non-empty tag")),
                            )
                            .custom_created_at(Timestamp::from_secs(logs::T0))
                            .finalize(keys)
                            .expect("signing");
                        let plain = super::compare::from_nostr(&event);
                        signed.push((event, plain));
                    }
                }
                (g, signed)
            })
            .collect()
    });
    &all[group]
}

/// Compares `check_write` on every probe, by every key of the pool, for `g` after
/// `log` (and on the timeline probes, by one member key).
pub fn compare_writes(
    groups: &Groups,
    g: &str,
    expected: &BTreeMap<String, Facts>,
    log: &[Event],
) -> Result<(), String> {
    let relay = logs::relay().public_key().to_bytes();
    let timeline: Vec<(nostr::prelude::Event, Event)> = timeline_probes(g, log)
        .into_iter()
        .map(|tags| {
            let event = EventBuilder::new(Kind::from(9u16), "")
                .tags(
                    tags.into_iter()
                        .map(|t| Tag::parse(t).expect("non-empty tag")),
                )
                .custom_created_at(Timestamp::from_secs(logs::T0))
                .finalize(&logs::keys()[1])
                .expect("signing");
            let plain = super::compare::from_nostr(&event);
            (event, plain)
        })
        .collect();
    for (i, p) in configurations().into_iter().enumerate() {
        let access = AccessPolicy::new(groups.clone(), p.clone());
        for (signed, event) in signed_probes(g).iter().chain(&timeline) {
            super::compare::check(
                g,
                &format!(
                    "policy {i} check_write(kind {} by {}, tags {:?})",
                    event.kind,
                    super::compare::who(&event.pubkey),
                    &event.tags[1..]
                ),
                Ok::<_, ()>(access.check_write(signed)),
                &verdict(&p, &relay, expected, log, event),
            )?;
        }
    }
    Ok(())
}
