//! The group state events the relay serves (39000 metadata, 39001 admins, 39002
//! members, 39003 roles, 39005 pins): rendered from the engine's projections
//! ([`Groups::render`]) at the head each answer is given from, never read from a
//! stored copy. The relay stores none of them in the log, so nothing can go stale:
//! an import in another process, a restart or a change in another group (a child's
//! parent) is in the next answer because the answer is computed.
//!
//! **`created_at` and signatures.** A rendering is signed with the relay key. This
//! module remembers, per group, the last signed rendering of each kind: while a kind's
//! tags and content are unchanged, the same signed event is served again (one id, no
//! signing on the read path); when they change, the new event is dated
//! `max(now, last + 1)`, so a client that keeps the newest addressable event (NIP-01)
//! always replaces the old one. What is remembered is only ever served after being
//! compared with a fresh rendering, so it is a cache of signatures, not of state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use highwater_projections::{Error, Groups, RENDERED_KINDS};
use nostr::prelude::{Event, Keys, Kind, SignEvent, Timestamp, UnsignedEvent};
use parking_lot::Mutex;

/// One group's last signed rendering of each kind.
#[derive(Debug, Default)]
struct Signed {
    events: BTreeMap<u16, Event>,
    /// Kinds whose event a replica took from its primary and has not yet announced to
    /// its live subscribers.
    unannounced: BTreeSet<u16>,
    /// The newest `created_at` ever given to this group's state events: the next
    /// change is dated after it, also across a deletion and re-creation of the id.
    newest: u64,
}

/// The relay's signed renderings, per group.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    groups: Mutex<HashMap<Box<str>, Signed>>,
}

/// A group's state events now, and which of them changed since the last rendering.
pub(crate) struct Current {
    pub(crate) events: Vec<Event>,
    pub(crate) changed: Vec<Event>,
}

impl Rendered {
    /// The state events of `kinds` (every kind the relay renders, when empty) of
    /// `group` as of the log head — none when the group does not exist or was deleted
    /// — signed with `keys`.
    pub(crate) fn current(
        &self,
        groups: &Groups,
        keys: &Keys,
        group: &str,
        kinds: &[u16],
    ) -> Result<Current, Error> {
        let kinds = if kinds.is_empty() {
            &RENDERED_KINDS[..]
        } else {
            kinds
        };
        let fresh = groups.render_kinds(group, Timestamp::from_secs(0), kinds)?;
        let mut all = self.groups.lock();
        let signed = all.entry(group.into()).or_default();
        let now = Timestamp::now().as_secs();
        // Kinds asked for and not rendered no longer exist (a deleted group).
        signed
            .events
            .retain(|k, _| !kinds.contains(k) || fresh.iter().any(|u| u.kind.as_u16() == *k));
        let mut events = Vec::with_capacity(fresh.len());
        let mut changed = Vec::new();
        for unsigned in fresh {
            let k = unsigned.kind.as_u16();
            if let Some(old) = signed.events.get(&k)
                && old.tags == unsigned.tags
                && old.content == unsigned.content
            {
                events.push(old.clone());
                continue;
            }
            if keys.public_key() != unsigned.pubkey {
                // A replica renders for its primary's key, which it does not hold: it
                // serves the primary's signed event when it says the same, else none.
                continue;
            }
            let created_at = now.max(signed.newest + 1);
            let event = sign(keys, unsigned, created_at)?;
            signed.newest = signed.newest.max(created_at);
            signed.events.insert(k, event.clone());
            changed.push(event.clone());
            events.push(event);
        }
        Ok(Current { events, changed })
    }

    /// Keeps a state event its primary signed (the caller checked the key and the
    /// signature), replacing an older one of the same kind and group. Returns its
    /// group.
    pub(crate) fn adopt(&self, event: Event) -> Option<String> {
        let kind = event.kind.as_u16();
        if !RENDERED_KINDS.contains(&kind) {
            return None;
        }
        let group = crate::hub::group_of(&event)?.to_owned();
        let mut all = self.groups.lock();
        let signed = all.entry(group.as_str().into()).or_default();
        if signed
            .events
            .get(&kind)
            .is_some_and(|old| old.created_at > event.created_at)
        {
            return None;
        }
        signed.newest = signed.newest.max(event.created_at.as_secs());
        signed.events.insert(kind, event);
        signed.unannounced.insert(kind);
        Some(group)
    }

    /// A replica's kept state events of `group` that say what its own rendering says
    /// now and were not announced yet, marked announced.
    pub(crate) fn announce(&self, groups: &Groups, group: &str) -> Result<Vec<Event>, Error> {
        if self
            .groups
            .lock()
            .get(group)
            .is_none_or(|s| s.unannounced.is_empty())
        {
            return Ok(Vec::new());
        }
        let fresh = groups.render_kinds(group, Timestamp::from_secs(0), &RENDERED_KINDS)?;
        let mut all = self.groups.lock();
        let Some(signed) = all.get_mut(group) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for unsigned in fresh {
            let k = unsigned.kind.as_u16();
            if !signed.unannounced.contains(&k) {
                continue;
            }
            if let Some(kept) = signed.events.get(&k)
                && kept.tags == unsigned.tags
                && kept.content == unsigned.content
            {
                signed.unannounced.remove(&k);
                out.push(kept.clone());
            }
        }
        Ok(out)
    }

    /// The group and kind of the signed state event with this id, if it is the last
    /// rendering remembered (a client asking by id after a NIP-77 reconciliation). The
    /// caller renders again and serves the event only if it is still the current one.
    pub(crate) fn remembered(&self, id: &[u8; 32]) -> Option<(String, u16)> {
        self.groups.lock().iter().find_map(|(group, signed)| {
            signed
                .events
                .iter()
                .find(|(_, event)| event.id.as_bytes() == id)
                .map(|(kind, _)| (group.to_string(), *kind))
        })
    }

    /// The groups the last rendering of `group` names as its parent or children.
    pub(crate) fn linked(&self, group: &str) -> BTreeSet<String> {
        self.groups
            .lock()
            .get(group)
            .map(|signed| links(signed.events.values()))
            .unwrap_or_default()
    }
}

/// The groups a 39000 among `events` names as parent or children.
pub(crate) fn links<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeSet<String> {
    events
        .into_iter()
        .filter(|e| e.kind == Kind::from(crate::index::STATE_FIRST))
        .flat_map(|e| e.tags.iter())
        .filter(|t| t.kind() == "parent" || t.kind() == "child")
        .filter_map(|t| t.content().map(str::to_owned))
        .collect()
}

fn sign(keys: &Keys, unsigned: UnsignedEvent, created_at: u64) -> Result<Event, Error> {
    let dated = UnsignedEvent::new(
        unsigned.pubkey,
        Timestamp::from_secs(created_at),
        unsigned.kind,
        unsigned.tags.to_vec(),
        unsigned.content,
    );
    keys.sign_event(dated)
        .map_err(|e| Error::Sign(e.to_string()))
}
