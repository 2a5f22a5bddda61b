//! The access policy's read and write answers, from the model's facts: who may read a
//! group, see it, and post to it (SEMANTICS A2–A4 and the policy's documented
//! decisions), under a few relay configurations.

use std::collections::BTreeSet;

use highwater_projections::{AccessPolicy, Groups, Policy};

use super::logs;
use super::model::{Facts, Life, Pk};

/// The relay configurations compared: NIP-29's defaults with one relay admin, and a
/// members-only relay with auto-join whose admins keep their powers in private groups.
pub fn configurations() -> Vec<Policy> {
    let admin: BTreeSet<Pk> = [logs::keys()[usize::from(logs::MEMBERS) - 1]
        .public_key()
        .to_bytes()]
    .into_iter()
    .collect();
    vec![
        Policy {
            relay_admins: admin.clone(),
            admins_manage_private: false,
            open_reads: true,
            auto_join: false,
            require_membership: false,
        },
        Policy {
            relay_admins: admin,
            admins_manage_private: true,
            open_reads: false,
            auto_join: true,
            require_membership: true,
        },
    ]
}

/// The relay key, or a relay admin whose powers reach this group.
fn relay_power(p: &Policy, relay: &Pk, who: Option<&Pk>, f: &Facts) -> bool {
    who.is_some_and(|pk| {
        pk == relay || (p.relay_admins.contains(pk) && (!f.meta.private || p.admins_manage_private))
    })
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
                access.can_read(*who, g),
                &can_read(&p, &relay, who.as_ref(), f),
            )?;
            super::compare::check(
                g,
                &what("has_access"),
                access.has_access(*who, g),
                &has_access(&p, &relay, who.as_ref(), f),
            )?;
            if let Some(pk) = who {
                super::compare::check(
                    g,
                    &what("can_write"),
                    access.can_write(g, pk),
                    &can_write(&p, &relay, pk, f),
                )?;
            }
        }
    }
    Ok(())
}
