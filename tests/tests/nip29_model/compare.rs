//! Every query of `Groups`, for every group and every key of the pool, and the rendered
//! state events, compared with the model's facts.

use std::collections::BTreeMap;
use std::fmt::{Debug, Write};

use highwater_engine::Engine;
use highwater_projections::{Groups, Life, Source};
use nostr::prelude::Timestamp;

use super::logs::{self, GROUPS};
use super::model::{self, Event, Facts, Pk};
use super::{policy, render};

/// The model's view of a signed event.
pub fn from_nostr(e: &nostr::prelude::Event) -> Event {
    Event {
        id: e.id.to_bytes(),
        pubkey: e.pubkey.to_bytes(),
        created_at: e.created_at.as_secs(),
        kind: e.kind.as_u16(),
        tags: e.tags.iter().map(|t| t.as_slice().to_vec()).collect(),
        content: e.content.clone(),
    }
}

/// A short name for a pool key.
pub fn who(pk: &Pk) -> String {
    logs::keys()
        .iter()
        .position(|k| &k.public_key().to_bytes() == pk)
        .map_or_else(
            || render::hex(pk)[..8].to_owned(),
            |i| match i {
                i if i == usize::from(logs::MEMBERS) => "relay".to_owned(),
                i if i == usize::from(logs::MEMBERS) + 1 => "foreign".to_owned(),
                i => format!("m{i}"),
            },
        )
}

/// The log, one event a line, pubkeys by pool name.
pub fn dump(log: &[Event]) -> String {
    let names: Vec<(String, String)> = logs::keys()
        .iter()
        .map(|k| (k.public_key().to_hex(), who(&k.public_key().to_bytes())))
        .collect();
    let mut out = String::new();
    for (i, e) in log.iter().enumerate() {
        let mut tags = format!("{:?}", e.tags);
        for (hex, name) in &names {
            tags = tags.replace(hex.as_str(), name);
            tags = tags.replace(hex.to_uppercase().as_str(), &format!("{name}(UPPER)"));
        }
        writeln!(
            out,
            "{:3} seq{} kind {} by {} at +{} id {} tags {} content {:?}",
            i,
            i + 1,
            e.kind,
            who(&e.pubkey),
            e.created_at - logs::T0,
            &render::hex(&e.id)[..8],
            tags,
            e.content
        )
        .expect("writing to a String");
    }
    out
}

/// `got` is `Ok(want)`, or the difference described.
pub fn check<T: PartialEq + Debug, E: Debug>(
    group: &str,
    what: &str,
    got: Result<T, E>,
    want: &T,
) -> Result<(), String> {
    match got {
        Ok(got) if &got == want => Ok(()),
        got => Err(format!(
            "{what} of {group}:\n  served {got:?}\n  model  {want:?}"
        )),
    }
}

fn life(l: model::Life) -> Life {
    match l {
        model::Life::Unknown => Life::Unknown,
        model::Life::Active => Life::Active,
        model::Life::Deleted => Life::Deleted,
    }
}

fn source(s: model::Source) -> Source {
    match s {
        model::Source::None => Source::None,
        model::Source::Snapshots => Source::Snapshots,
        model::Source::History => Source::History,
    }
}

const ROLE_PROBES: [&str; 5] = ["admin", "writer", "moderator", "x", ""];
const CODE_PROBES: [&str; 6] = ["c0", "c1", "c2", "c3", "", "nope"];

/// Compares every query about every group with the model, served (`groups`); with
/// `oracle` (the whole log), by full replay too, and the access policy's answers.
pub fn all(
    engine: &Engine,
    groups: &Groups,
    expected: &BTreeMap<String, Facts>,
    log: &[Event],
    oracle: bool,
) -> Result<(), String> {
    let absent = Facts::default();
    let paths = if oracle {
        vec![groups.clone(), groups.oracle()]
    } else {
        vec![groups.clone()]
    };
    for served in paths {
        let path = if served.is_oracle() { "oracle " } else { "" };
        for n in 0..GROUPS {
            let name = logs::group_name(n);
            let f = expected.get(&name).unwrap_or(&absent);
            group(&served, &name, f)
                .and_then(|()| cycles(&served, &name, expected))
                .and_then(|()| view(engine, &served, &name, f))
                .and_then(|()| {
                    // The policy on the whole log, served.
                    if oracle && !served.is_oracle() {
                        policy::compare(&served, &name, f)
                            .and_then(|()| policy::compare_writes(&served, &name, expected, log))
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| format!("{path}{e}"))?;
        }
    }
    Ok(())
}

/// `would_cycle(group, parent)`: `parent` is `group` or has it among its effective
/// ancestors (followed until they repeat).
fn cycles(groups: &Groups, g: &str, expected: &BTreeMap<String, Facts>) -> Result<(), String> {
    for n in 0..GROUPS {
        let candidate = logs::group_name(n);
        let cycle = model::would_cycle(expected, g, &candidate);
        check(
            g,
            &format!("would_cycle(parent {candidate})"),
            groups.would_cycle(g, &candidate),
            &cycle,
        )?;
    }
    Ok(())
}

/// The whole-group view.
fn view(engine: &Engine, groups: &Groups, g: &str, f: &Facts) -> Result<(), String> {
    let v = groups
        .view(engine, g)
        .map_err(|e| format!("view of {g}: {e:?}"))?;
    check(g, "view.state", Ok::<_, ()>(v.state), &life(f.life))?;
    check(g, "view.source", Ok::<_, ()>(v.source), &source(f.source))?;
    check(
        g,
        "view.creator",
        Ok::<_, ()>(v.creator.clone()),
        &f.creator.as_ref().map(render::hex),
    )?;
    check(g, "view.children", Ok::<_, ()>(&v.children), &&f.children)?;
    let pinned: Vec<String> = f.pins.iter().map(|(_, r)| r.clone()).collect();
    check(g, "view.pinned", Ok::<_, ()>(&v.pinned), &&pinned)?;
    let codes: Vec<String> = f.invites.iter().cloned().collect();
    check(
        g,
        "view.invite_codes",
        Ok::<_, ()>(&v.invite_codes),
        &&codes,
    )?;
    check(
        g,
        "view.metadata",
        Ok::<_, ()>(&v.metadata),
        &&groups.metadata(g).map_err(|e| format!("{e:?}"))?,
    )?;
    let members: Vec<(String, Vec<String>)> = f
        .members
        .iter()
        .map(|pk| {
            let roles = f.roles.get(pk).into_iter().flatten().cloned().collect();
            (render::hex(pk), roles)
        })
        .collect();
    let served: Vec<(String, Vec<String>)> = v
        .members
        .iter()
        .map(|m| (m.pubkey.clone(), m.roles.clone()))
        .collect();
    check(g, "view.members", Ok::<_, ()>(served), &members)?;
    check(
        g,
        "view.member_count",
        Ok::<_, ()>(v.member_count),
        &f.members.len(),
    )?;
    let definitions: Vec<(String, Option<String>)> = v
        .role_definitions
        .iter()
        .map(|d| (d.name.clone(), d.description.clone()))
        .collect();
    let expected: Vec<(String, Option<String>)> = f
        .definitions
        .iter()
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    check(
        g,
        "view.role_definitions",
        Ok::<_, ()>(definitions),
        &expected,
    )
}

fn group(groups: &Groups, g: &str, f: &Facts) -> Result<(), String> {
    check(g, "group_state", groups.group_state(g), &life(f.life))?;
    check(
        g,
        "group_exists",
        groups.group_exists(g),
        &(f.life == model::Life::Active),
    )?;
    let lifecycle = groups.lifecycle(g).map(|l| (l.life, l.source));
    check(g, "lifecycle", lifecycle, &(life(f.life), source(f.source)))?;
    check(
        g,
        "creator",
        groups.creator(g).map(|c| c.map(|k| who(&k.to_bytes()))),
        &f.creator.as_ref().map(who),
    )?;
    // Pubkeys by pool name, so a difference reads.
    let names = |pks: Vec<Pk>| pks.iter().map(who).collect::<Vec<_>>();
    let members: Vec<Pk> = f.members.iter().copied().collect();
    check(
        g,
        "members",
        groups
            .members(g)
            .map(|v| names(v.iter().map(|k| k.to_bytes()).collect())),
        &names(members.clone()),
    )?;
    check(g, "member_count", groups.member_count(g), &members.len())?;
    let with_roles = |list: Vec<(Pk, Vec<String>)>| {
        list.into_iter()
            .map(|(pk, roles)| (who(&pk), roles))
            .collect::<Vec<_>>()
    };
    let expected: Vec<(Pk, Vec<String>)> = members
        .iter()
        .map(|pk| {
            let roles = f.roles.get(pk).into_iter().flatten().cloned().collect();
            (*pk, roles)
        })
        .collect();
    check(
        g,
        "members_with_roles",
        groups.members_with_roles(g).map(|list| {
            with_roles(
                list.into_iter()
                    .map(|m| (m.pubkey.to_bytes(), m.roles))
                    .collect(),
            )
        }),
        &with_roles(expected),
    )?;
    people(groups, g, f)?;
    let definitions: Vec<(String, Option<String>)> = f
        .definitions
        .iter()
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    let served = groups.role_definitions(g).map(|ds| {
        ds.into_iter()
            .map(|d| (d.name, d.description))
            .collect::<Vec<_>>()
    });
    check(g, "role_definitions", served, &definitions)?;
    metadata(groups, g, f)?;
    let codes: Vec<String> = f.invites.iter().cloned().collect();
    check(g, "invite_codes", groups.invite_codes(g), &codes)?;
    for code in CODE_PROBES {
        check(
            g,
            &format!("has_invite({code:?})"),
            groups.has_invite(g, code),
            &f.invites.contains(code),
        )?;
    }
    rendered(groups, g, f)
}

/// The per-person answers: membership, roles and creator, for every key of the pool.
fn people(groups: &Groups, g: &str, f: &Facts) -> Result<(), String> {
    for keys in logs::keys() {
        let key = keys.public_key();
        let pk = key.to_bytes();
        let person = who(&pk);
        check(
            g,
            &format!("is_member({person})"),
            groups.is_member(g, &key),
            &f.members.contains(&pk),
        )?;
        let roles: Vec<String> = f.roles.get(&pk).into_iter().flatten().cloned().collect();
        check(
            g,
            &format!("roles({person})"),
            groups.roles(g, &key),
            &roles,
        )?;
        for role in ROLE_PROBES {
            check(
                g,
                &format!("has_role({person}, {role:?})"),
                groups.has_role(g, &key, role),
                &roles.iter().any(|r| r == role),
            )?;
        }
        check(
            g,
            &format!("is_creator({person})"),
            groups.is_creator(g, &key),
            &(f.creator == Some(pk)),
        )?;
    }
    Ok(())
}

fn metadata(groups: &Groups, g: &str, f: &Facts) -> Result<(), String> {
    let m = &f.meta;
    let served = groups
        .metadata(g)
        .map_err(|e| format!("metadata of {g}: {e:?}"))?;
    let texts = (&served.name, &served.about, &served.picture, &served.banner);
    check(
        g,
        "metadata (name, about, picture, banner)",
        Ok::<_, ()>(texts),
        &(&m.name, &m.about, &m.picture, &m.banner),
    )?;
    let flags = (
        served.private,
        served.closed,
        served.hidden,
        served.restricted,
        served.write_restricted,
        served.livekit,
    );
    check(
        g,
        "metadata flags (private, closed, hidden, restricted, write_restricted, livekit)",
        Ok::<_, ()>(flags),
        &(
            m.private,
            m.closed,
            m.hidden,
            m.restricted,
            m.write_restricted,
            m.livekit,
        ),
    )?;
    check(
        g,
        "metadata.supported_kinds",
        Ok::<_, ()>(&served.supported_kinds),
        &&m.supported_kinds,
    )?;
    check(
        g,
        "metadata.parent",
        Ok::<_, ()>(&served.parent),
        &&f.parent,
    )?;
    check(
        g,
        "metadata.extra_tags",
        Ok::<_, ()>(&served.extra_tags),
        &&m.extra,
    )?;
    check(g, "is_private", groups.is_private(g), &m.private)?;
    check(g, "is_closed", groups.is_closed(g), &m.closed)?;
    check(g, "is_hidden", groups.is_hidden(g), &m.hidden)?;
    check(g, "is_restricted", groups.is_restricted(g), &m.restricted)?;
    check(
        g,
        "is_write_restricted",
        groups.is_write_restricted(g),
        &m.write_restricted,
    )?;
    check(g, "parent", groups.parent(g), &f.parent)?;
    check(g, "children", groups.children(g), &f.children)?;
    let pinned: Vec<String> = f.pins.iter().map(|(_, r)| r.clone()).collect();
    check(g, "pinned", groups.pinned(g), &pinned)?;
    let pins = groups
        .pins(g)
        .map(|ps| ps.into_iter().map(|p| (p.tag, p.value)).collect::<Vec<_>>());
    check(g, "pins", pins, &f.pins)?;
    Ok(())
}

fn rendered(groups: &Groups, g: &str, f: &Facts) -> Result<(), String> {
    let at = Timestamp::from_secs(logs::T0);
    let relay = logs::relay().public_key();
    let events = groups
        .render(g, at)
        .map_err(|e| format!("render of {g}: {e:?}"))?;
    for e in &events {
        let fine = e.pubkey == relay && e.created_at == at && e.content.is_empty();
        check(
            g,
            "rendered author, time and content",
            Ok::<_, ()>(fine),
            &true,
        )?;
    }
    let served: Vec<(u16, Vec<Vec<String>>)> = events
        .iter()
        .map(|e| {
            let tags = e.tags.iter().map(|t| t.as_slice().to_vec()).collect();
            (e.kind.as_u16(), tags)
        })
        .collect();
    check(g, "render", Ok::<_, ()>(served), &render::expected(g, f))
}
