//! Answering `REQ` filters from the log without loading every group: ids through the
//! id index, `#h` through the group index (one range scan per group), state kinds
//! (39000–39005, optionally by `#d`) from the relay's state index, anything else by a
//! scan of the log. Results are the newest `limit` events, newest first (NIP-01);
//! events a 9005 hid and events the reader may not read are left out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::ControlFlow;

use highwater_store::{EventRef, StoreError};
use nostr::prelude::{Event, EventId, PublicKey};

use crate::access::Access;
use crate::filter::Compiled;
use crate::index::{STATE_FIRST, is_state_kind};
use crate::shared::Shared;

/// Why a `REQ` is refused (its `CLOSED` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The reader must authenticate first (NIP-42).
    AuthRequired(String),
    /// The authenticated reader may not read.
    Restricted(String),
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
        }
    }
}

/// Refuses a `REQ` that names (by `#h`) an existing group the reader may not read.
pub(crate) fn check_groups(
    shared: &Shared,
    reader: Option<PublicKey>,
    filters: &[Compiled],
) -> Option<Refusal> {
    let mut access = Access::new(shared, reader);
    for filter in filters {
        let Some(groups) = filter.tag_values("h") else {
            continue;
        };
        for g in groups {
            if access.can_read(g) {
                continue;
            }
            let exists = shared.policy.groups().group_exists(g).unwrap_or(true);
            let hidden = shared.policy.groups().is_hidden(g).unwrap_or(true);
            if !exists || (hidden && reader.is_some()) {
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

struct Entry {
    created_at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.created_at, self.seq) == (other.created_at, other.seq)
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
        (self.created_at, self.seq).cmp(&(other.created_at, other.seq))
    }
}

impl Newest {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(1_024) + 1),
        }
    }

    /// Whether an event with this key would be kept.
    fn wants(&self, created_at: u64, seq: u64) -> bool {
        self.heap.len() < self.limit
            || self
                .heap
                .peek()
                .is_some_and(|Reverse(min)| (created_at, seq) > (min.created_at, min.seq))
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

/// The stored events matching any of `filters` that `reader` may see, newest first.
pub(crate) fn query(
    shared: &Shared,
    reader: Option<PublicKey>,
    filters: &[Compiled],
) -> Result<Vec<Event>, StoreError> {
    shared.index.follow(&shared.store)?;
    let mut access = Access::new(shared, reader);
    let mut all: BTreeMap<u64, Event> = BTreeMap::new();
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
        for Reverse(entry) in newest.heap {
            all.insert(entry.seq, entry.event);
        }
    }
    let mut out: Vec<(u64, Event)> = all.into_iter().collect();
    out.sort_by(|(sa, a), (sb, b)| (b.created_at, sb).cmp(&(a.created_at, sa)));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

fn run_filter(
    shared: &Shared,
    access: &mut Access<'_>,
    filter: &Compiled,
    newest: &mut Newest,
) -> Result<(), StoreError> {
    let store = &shared.store;
    let index = &shared.index;
    // A stored event, checked and offered.
    let mut consider = |seq: u64, event: EventRef<'_>, access: &mut Access<'_>| {
        if !filter.matches_ref(event) || !newest.wants(event.created_at(), seq) {
            return Ok(());
        }
        let group = event.group_id();
        if index.is_hidden_event(event.id(), group) || !access.visible(event.kind(), group) {
            return Ok(());
        }
        newest.offer(seq, event.to_event(seq)?);
        Ok::<(), StoreError>(())
    };
    if let Some(ids) = &filter.ids {
        for id in ids {
            if let Some(seq) = store.seq_of(&EventId::from_byte_array(*id))? {
                store
                    .with_event(seq, |e| consider(seq, e, access))?
                    .transpose()?;
            }
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
                return Err(error);
            }
        }
        return Ok(());
    }
    let state_only = filter
        .kinds
        .as_ref()
        .is_some_and(|k| k.iter().all(|&k| is_state_kind(k)));
    if state_only {
        let groups: Vec<Box<str>> = match filter.tag_values("d") {
            Some(d) => d.iter().map(|g| g.as_str().into()).collect(),
            None => index.all().into_iter().map(|(g, _)| g).collect(),
        };
        for g in groups {
            let Some(state) = index.group(&g) else {
                continue;
            };
            for (i, seq) in state.latest.iter().enumerate() {
                let kind = STATE_FIRST + u16::try_from(i).unwrap_or(0);
                if let Some(seq) = *seq
                    && filter.kind_allowed(kind)
                {
                    store
                        .with_event(seq, |e| consider(seq, e, access))?
                        .transpose()?;
                }
            }
        }
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
    failed.map_or(Ok(()), Err)
}
