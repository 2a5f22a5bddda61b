//! Answering `REQ` filters from the log without loading every group: ids through the
//! id index, `#h` through the group index (one range scan per group), state kinds
//! (39000–39005, by `#d` or for every group) rendered from the engine (`state`),
//! anything else by a scan of the log. Results are the newest `limit` events, newest
//! first (NIP-01); events a 9005 of their own group hid, events of an earlier life of
//! their group, stored copies of state events (the rendered ones supersede them) and
//! events the reader may not read are left out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::ControlFlow;

use highwater_store::{EventRef, StoreError};
use nostr::prelude::{Event, EventId, PublicKey};

use crate::access::Access;
use crate::error::RelayError;
use crate::filter::Compiled;
use crate::index::is_state_kind;
use crate::shared::Shared;

/// Why a `REQ` is refused (its `CLOSED` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The reader must authenticate first (NIP-42).
    AuthRequired(String),
    /// The authenticated reader may not read.
    Restricted(String),
    /// NIP-43 invite codes are made for the asking key, which must authenticate first.
    InviteNeedsAuth,
}

impl Refusal {
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::AuthRequired(g) => {
                format!(
                    "auth-required: group {g} is readable by its members only; authenticate (NIP-42)"
                )
            }
            Refusal::Restricted(g) => {
                format!("restricted: group {g} is readable by its members only")
            }
            Refusal::InviteNeedsAuth => {
                "auth-required: invite codes are made for the key that asks; authenticate (NIP-42)"
                    .to_owned()
            }
        }
    }
}

/// Refuses a `REQ` that names a group the reader may not read: its events by `#h`, or
/// the member lists of a private group by `#d` (so a member who has not authenticated
/// learns to, instead of silently getting the metadata alone). A group that does not
/// exist for the reader (unknown, deleted, or hidden from them) is answered like an
/// empty one, so a refusal never tells an outsider that a hidden group exists.
pub(crate) fn check_groups(
    shared: &Shared,
    reader: Option<PublicKey>,
    filters: &[Compiled],
) -> Option<Refusal> {
    let mut access = Access::new(shared, reader);
    for filter in filters {
        // An invite is answered for the key asking; without one the answer would be
        // empty with nothing to tell the client that authenticating would change it.
        if reader.is_none()
            && filter
                .kinds
                .as_ref()
                .is_some_and(|k| k.contains(&highwater_projections::INVITE_KIND))
        {
            return Some(Refusal::InviteNeedsAuth);
        }
        // Events by `#h`; who is in a group (39001, 39002, 39005) by `#d`.
        let named = match (filter.tag_values("h"), filter.tag_values("d")) {
            (Some(h), _) => h,
            (None, Some(d))
                if filter
                    .kinds
                    .as_ref()
                    .is_some_and(|k| k.iter().any(|&k| crate::access::is_membership_kind(k))) =>
            {
                d
            }
            _ => continue,
        };
        for g in named {
            if access.can_read(g) || !access.can_see_group(g) {
                continue;
            }
            if filter.tag_values("h").is_none() && !access.is_private(g) {
                continue;
            }
            return Some(match reader {
                None => Refusal::AuthRequired(g.clone()),
                Some(_) => Refusal::Restricted(g.clone()),
            });
        }
    }
    None
}

/// The newest `limit` matches of one filter.
struct Newest {
    limit: usize,
    heap: BinaryHeap<Reverse<Entry>>,
}

/// A match, ordered by `created_at`, then log order (rendered state events, which are
/// not in the log, after stored ones), then id.
struct Entry {
    created_at: u64,
    seq: u64,
    event: Event,
}

impl Entry {
    fn key(&self) -> (u64, u64, &EventId) {
        (self.created_at, self.seq, &self.event.id)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The place of rendered state events in the order of matches: after every stored
/// event of the same second.
const RENDERED: u64 = u64::MAX;

impl Newest {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(1_024) + 1),
        }
    }

    /// Whether an event with this key might be kept.
    fn wants(&self, created_at: u64, seq: u64) -> bool {
        self.heap.len() < self.limit
            || self
                .heap
                .peek()
                .is_some_and(|Reverse(min)| (created_at, seq) >= (min.created_at, min.seq))
    }

    fn offer(&mut self, seq: u64, event: Event) {
        let created_at = event.created_at.as_secs();
        if !self.wants(created_at, seq) {
            return;
        }
        self.heap.push(Reverse(Entry {
            created_at,
            seq,
            event,
        }));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }
}

/// The stored and rendered events matching any of `filters` that `reader` may see,
/// newest first.
pub(crate) fn query(
    shared: &Shared,
    reader: Option<PublicKey>,
    filters: &[Compiled],
) -> Result<Vec<Event>, RelayError> {
    let mut access = Access::new(shared, reader);
    let mut all: BTreeMap<EventId, Entry> = BTreeMap::new();
    for filter in filters {
        let limit = filter
            .filter
            .limit
            .unwrap_or(shared.options.limits.default_limit)
            .min(shared.options.limits.max_limit);
        if limit == 0 {
            continue;
        }
        let mut newest = Newest::new(limit);
        run_filter(shared, &mut access, filter, &mut newest)?;
        // NIP-43 invites are made for the asking key, never stored.
        if filter
            .kinds
            .as_ref()
            .is_some_and(|k| k.contains(&highwater_projections::INVITE_KIND))
            && let Some(invite) = crate::nip43::invite(shared, reader.as_ref())
        {
            newest.offer(RENDERED, invite);
        }
        for Reverse(entry) in newest.heap {
            all.insert(entry.event.id, entry);
        }
    }
    let mut out: Vec<Entry> = all.into_values().collect();
    out.sort_by(|a, b| b.cmp(a));
    Ok(newest_versions(out.into_iter().map(|e| e.event)))
}

/// The events of a newest-first answer, with only the newest version of each
/// replaceable (0, 3, 10000–19999) and addressable (30000–39999) event: the log keeps
/// every version a client sent, an answer names one.
fn newest_versions(events: impl Iterator<Item = Event>) -> Vec<Event> {
    let mut seen: std::collections::BTreeSet<(u16, PublicKey, String)> =
        std::collections::BTreeSet::new();
    events
        .filter(|e| {
            let kind = e.kind.as_u16();
            let d = if (30_000..40_000).contains(&kind) {
                e.tags.identifier().unwrap_or_default()
            } else if kind == 0 || kind == 3 || (10_000..20_000).contains(&kind) {
                String::new()
            } else {
                return true;
            };
            seen.insert((kind, e.pubkey, d))
        })
        .collect()
}

fn run_filter(
    shared: &Shared,
    access: &mut Access<'_>,
    filter: &Compiled,
    newest: &mut Newest,
) -> Result<(), RelayError> {
    let store = &shared.store;
    let index = &shared.index;
    let kinds = filter.kinds.as_ref();
    let state_only = kinds.is_some_and(|k| k.iter().all(|&k| is_state_kind(k)));
    if filter.ids.is_none()
        && filter.tag_values("h").is_none()
        && kinds.is_some_and(|k| k.iter().any(|&k| is_state_kind(k)))
    {
        offer_rendered(shared, access, filter, newest)?;
    }
    // A stored event, checked and offered. Stored state events are never served: the
    // rendered ones (below) are what the relay says a group's state is.
    // Events banned over NIP-86, and the relay's own management records, are never
    // served.
    let banned = crate::nip86::banned_events(shared)?;
    // A replica asking for ids gets them as the log holds them (it keeps the whole log).
    let raw = filter.ids.is_some() && access.is_replica();
    let mut consider = |seq: u64, event: EventRef<'_>, access: &mut Access<'_>| {
        if raw {
            if filter.matches_ref(event) && newest.wants(event.created_at(), seq) {
                newest.offer(seq, event.to_event(seq)?);
            }
            return Ok(());
        }
        if is_state_kind(event.kind())
            || event.kind() == highwater_projections::MANAGEMENT_KIND
            || banned.contains(event.id())
            || !filter.matches_ref(event)
            || !newest.wants(event.created_at(), seq)
        {
            return Ok(());
        }
        let group = event.group_id();
        if !index.is_served(seq, event.id(), group) || !access.visible(event.kind(), group) {
            return Ok(());
        }
        newest.offer(seq, event.to_event(seq)?);
        Ok::<(), StoreError>(())
    };
    if let Some(ids) = &filter.ids {
        let mut unstored = Vec::new();
        for id in ids {
            if let Some(seq) = store.seq_of(&EventId::from_byte_array(*id))? {
                store
                    .with_event(seq, |e| consider(seq, e, access))?
                    .transpose()?;
            } else if !raw {
                unstored.push(id);
            }
        }
        for id in unstored {
            offer_rendered_id(shared, access, filter, id, newest)?;
        }
        return Ok(());
    }
    if let Some(groups) = filter.tag_values("h") {
        for g in groups {
            let Some(info) = store.group(g) else { continue };
            if !access.can_read(g) {
                continue;
            }
            let mut failed = None;
            store.scan_group(
                info.no,
                0,
                |k| filter.kind_allowed(k),
                |seq, e| match consider(seq, e, access) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(error) => {
                        failed = Some(error);
                        ControlFlow::Break(())
                    }
                },
            )?;
            if let Some(error) = failed {
                return Err(error.into());
            }
        }
        return Ok(());
    }
    if state_only {
        return Ok(());
    }
    let mut failed = None;
    store.scan(1, |seq, e| match consider(seq, e, access) {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => {
            failed = Some(error);
            ControlFlow::Break(())
        }
    })?;
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// Offers the rendered state event with this id, while it is its group's current one
/// and the reader may see it: a NIP-77 peer reconciled it (`negentropy.rs` holds the
/// rendered events in its views) and now asks for it by id.
fn offer_rendered_id(
    shared: &Shared,
    access: &mut Access<'_>,
    filter: &Compiled,
    id: &[u8; 32],
    newest: &mut Newest,
) -> Result<(), RelayError> {
    let Some((group, kind)) = shared.rendered.remembered(id) else {
        return Ok(());
    };
    if !access.can_see_group(&group) || !access.can_see_state(kind, &group) {
        return Ok(());
    }
    let current = shared
        .rendered
        .current(shared.policy.groups(), &shared.keys, &group, &[kind])?;
    for event in current.events {
        if event.id.as_bytes() == id && filter.matches_event(&event) {
            newest.offer(RENDERED, event);
        }
    }
    Ok(())
}

/// The rendered state events of the groups `filter` names by `#d` (of every group, else)
/// that it matches and the reader may see — what a `REQ` with it is offered (and what a
/// NIP-77 view of it holds).
pub(crate) fn rendered_matching(
    shared: &Shared,
    access: &mut Access<'_>,
    filter: &Compiled,
) -> Result<Vec<Event>, RelayError> {
    let kinds: Vec<u16> = filter
        .kinds
        .as_ref()
        .map(|k| k.iter().copied().filter(|&k| is_state_kind(k)).collect())
        .unwrap_or_default();
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let groups: Vec<String> = match filter.tag_values("d") {
        Some(d) => d.iter().cloned().collect(),
        None => shared
            .store
            .groups()
            .into_iter()
            .map(|g| g.name.to_string())
            .collect(),
    };
    let mut out = Vec::new();
    for g in groups {
        if !access.can_see_group(&g) {
            continue;
        }
        let current = shared
            .rendered
            .current(shared.policy.groups(), &shared.keys, &g, &kinds)?;
        for event in current.events {
            let kind = event.kind.as_u16();
            if filter.kind_allowed(kind)
                && filter.matches_event(&event)
                && access.can_see_state(kind, &g)
            {
                out.push(event);
            }
        }
    }
    Ok(out)
}

/// Offers [`rendered_matching`]'s events.
fn offer_rendered(
    shared: &Shared,
    access: &mut Access<'_>,
    filter: &Compiled,
    newest: &mut Newest,
) -> Result<(), RelayError> {
    for event in rendered_matching(shared, access, filter)? {
        newest.offer(RENDERED, event);
    }
    Ok(())
}
