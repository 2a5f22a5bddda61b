//! NIP-77 negentropy (`NEG-OPEN`, `NEG-MSG`, `NEG-CLOSE`, `NEG-ERR`) on the relay's
//! side: a peer reconciles its set of events with the relay's for one filter, and
//! learns which ids each side lacks. The reconciler is rust-nostr's `negentropy` crate
//! (the version nostr-sdk 0.44 speaks); this module only builds its storage view.
//!
//! **What a peer may reconcile** is what it may read: for a reader, the events a `REQ`
//! with the same filter could return (no event of a private group without an
//! authenticated member, none a 9005 hid or of an earlier life of its group, no stored
//! state event, none of the relay's management records) — a `#h` naming a group the
//! reader may not read is refused with `auth-required:`/`restricted:` as a `REQ` is.
//! For a configured replica ([`RelayOptions::replicas`](crate::RelayOptions::replicas)),
//! every event of the log that matches: a replica keeps the whole log.
//!
//! **Memory.** The storage view holds one (`created_at`, id) item — 40 bytes — per
//! matching event, never the events: they are walked with zero-copy views through the
//! id index (`ids`), the group index (`#h`) or the log. A filter matching more than
//! [`MAX_ITEMS`] events is refused with `NEG-ERR` `blocked:` (at most 40 MB per session),
//! and the open sessions of one connection hold at most [`MAX_CONNECTION_ITEMS`] events
//! together (80 MB): a `NEG-OPEN` past that budget is refused with `blocked:` until the
//! peer closes one. Clients open one session per filter at once — Flotilla's space sync
//! (`@welshman/net`'s `pull`) opens fifteen, most of them small — so what is bounded is
//! the events held, and the count of sessions only loosely ([`MAX_SESSIONS`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use highwater_store::{EventRef, StoreError};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use nostr::prelude::{EventId, Filter, PublicKey, RelayMessage, SubscriptionId};

use crate::access::Access;
use crate::filter::Compiled;
use crate::index::is_state_kind;
use crate::reads::{self, Refusal};
use crate::shared::Shared;

/// Most events one session reconciles (40 bytes each while it is open).
pub(crate) const MAX_ITEMS: usize = 1_000_000;
/// Most events the open sessions of one connection hold together (80 MB).
pub(crate) const MAX_CONNECTION_ITEMS: usize = 2 * MAX_ITEMS;
/// Open sessions per connection (as many as `REQ` subscriptions by default).
pub(crate) const MAX_SESSIONS: usize = 64;
/// Largest negentropy message the relay writes, in bytes (twice that as hex).
const FRAME_LIMIT: u64 = 60_000;

type Session = Negentropy<'static, NegentropyStorageVector>;

/// One connection's open reconciliations, by subscription id, each with the number of
/// events its storage view holds.
#[derive(Default)]
pub(crate) struct Sessions {
    open: BTreeMap<String, (Session, usize)>,
}

impl Sessions {
    /// Answers `NEG-OPEN`: builds the storage view of `filter` for `reader`, then
    /// reconciles the peer's first message. Returns the reply to send.
    pub(crate) async fn open(
        &mut self,
        shared: &Arc<Shared>,
        reader: Option<PublicKey>,
        sub: SubscriptionId,
        filter: Filter,
        initial: &str,
    ) -> String {
        self.open.remove(sub.as_str());
        if self.open.len() >= MAX_SESSIONS {
            return error(
                &sub,
                &format!("blocked: at most {MAX_SESSIONS} reconciliations per connection"),
            );
        }
        let held: usize = self.open.values().map(|(_, items)| items).sum();
        let budget = MAX_CONNECTION_ITEMS.saturating_sub(held);
        let Ok(query) = hex::decode(initial) else {
            return error(&sub, "invalid: the message is not hex");
        };
        let shared = shared.clone();
        let built = tokio::task::spawn_blocking(move || {
            let (mut session, items) = build(&shared, reader, filter, budget)?;
            let reply = session.reconcile(&query).map_err(|e| invalid(&e))?;
            Ok::<_, String>((session, items, reply))
        })
        .await;
        match built {
            Ok(Ok((session, items, reply))) => {
                self.open.insert(sub.as_str().to_owned(), (session, items));
                message(&sub, &reply)
            }
            Ok(Err(reason)) => error(&sub, &reason),
            Err(e) => error(&sub, &format!("error: {e}")),
        }
    }

    /// Answers `NEG-MSG` of an open session.
    pub(crate) async fn message(&mut self, sub: SubscriptionId, text: &str) -> String {
        let Some((mut session, items)) = self.open.remove(sub.as_str()) else {
            return error(&sub, "closed: no such reconciliation; send NEG-OPEN");
        };
        let Ok(query) = hex::decode(text) else {
            return error(&sub, "invalid: the message is not hex");
        };
        let done = tokio::task::spawn_blocking(move || {
            let reply = session.reconcile(&query);
            (session, reply)
        })
        .await;
        match done {
            Ok((session, Ok(reply))) => {
                self.open.insert(sub.as_str().to_owned(), (session, items));
                message(&sub, &reply)
            }
            Ok((_, Err(e))) => error(&sub, &invalid(&e)),
            Err(e) => error(&sub, &format!("error: {e}")),
        }
    }

    /// `NEG-CLOSE`: forgets the session.
    pub(crate) fn close(&mut self, sub: &SubscriptionId) {
        self.open.remove(sub.as_str());
    }
}

fn invalid(e: &negentropy::Error) -> String {
    format!("invalid: {e}")
}

fn message(sub: &SubscriptionId, bytes: &[u8]) -> String {
    RelayMessage::NegMsg {
        subscription_id: std::borrow::Cow::Borrowed(sub),
        message: std::borrow::Cow::Owned(hex::encode(bytes)),
    }
    .as_json()
}

fn error(sub: &SubscriptionId, reason: &str) -> String {
    RelayMessage::NegErr {
        subscription_id: std::borrow::Cow::Borrowed(sub),
        message: std::borrow::Cow::Borrowed(reason),
    }
    .as_json()
}

/// The sealed storage view of what `reader` may reconcile under `filter`, or the
/// reason it is refused (a `NEG-ERR` message). `budget`: the events the connection's other open sessions leave room for. Also
/// returns the number of events the view holds.
fn build(
    shared: &Shared,
    reader: Option<PublicKey>,
    mut filter: Filter,
    budget: usize,
) -> Result<(Session, usize), String> {
    // NIP-77 reconciles every match; a `limit` would make the sets depend on it.
    filter.limit = None;
    let compiled = [Compiled::new(filter)];
    let replica = crate::replication::is_replica(shared, reader.as_ref());
    if !replica && let Some(refusal) = reads::check_groups(shared, reader, &compiled) {
        return Err(match refusal {
            Refusal::AuthRequired(_) | Refusal::Restricted(_) | Refusal::InviteNeedsAuth => {
                refusal.message()
            }
        });
    }
    let cap = budget.min(MAX_ITEMS);
    let (items, count) = items(shared, reader, replica, &compiled[0], cap).map_err(|e| match e {
        Walk::TooMany if cap == MAX_ITEMS => format!(
            "blocked: the filter matches more than {MAX_ITEMS} events; narrow it (by #h, since, until)"
        ),
        Walk::TooMany => format!(
            "blocked: this connection's open reconciliations hold {} events, at most \
             {MAX_CONNECTION_ITEMS} together; close one (NEG-CLOSE) or narrow the filter",
            MAX_CONNECTION_ITEMS - budget
        ),
        Walk::Failed(e) => format!("error: {e}"),
    })?;
    let session = Negentropy::owned(items, FRAME_LIMIT).map_err(|e| format!("error: {e}"))?;
    Ok((session, count))
}

enum Walk {
    TooMany,
    Failed(String),
}

impl From<StoreError> for Walk {
    fn from(e: StoreError) -> Self {
        Walk::Failed(e.to_string())
    }
}

impl From<highwater_engine::EngineError> for Walk {
    fn from(e: highwater_engine::EngineError) -> Self {
        Walk::Failed(e.to_string())
    }
}

/// The (`created_at`, id) of every event `filter` matches that the reader may see
/// (every match, for a replica), sealed (sorted), and their number; [`Walk::TooMany`]
/// past `cap` of them.
fn items(
    shared: &Shared,
    reader: Option<PublicKey>,
    replica: bool,
    filter: &Compiled,
    cap: usize,
) -> Result<(NegentropyStorageVector, usize), Walk> {
    let store = &shared.store;
    let banned = if replica {
        std::collections::BTreeSet::default()
    } else {
        crate::nip86::banned_events(shared)?
    };
    let mut access = Access::new(shared, reader);
    let mut out = NegentropyStorageVector::new();
    let mut count = 0usize;
    let too_many = std::cell::Cell::new(false);
    let mut consider = |seq: u64, event: EventRef<'_>, access: &mut Access<'_>| {
        if !filter.matches_ref(event) {
            return ControlFlow::Continue(());
        }
        if !replica {
            let group = event.group_id();
            if is_state_kind(event.kind())
                || event.kind() == highwater_projections::MANAGEMENT_KIND
                || banned.contains(event.id())
                || !shared.index.is_served(seq, event.id(), group)
                || !access.visible(event.kind(), group)
            {
                return ControlFlow::Continue(());
            }
        }
        count += 1;
        if count > cap {
            too_many.set(true);
            return ControlFlow::Break(());
        }
        // Inserting into an unsealed vector cannot fail.
        let _ = out.insert(event.created_at(), Id::from_byte_array(*event.id()));
        ControlFlow::Continue(())
    };
    if let Some(ids) = &filter.ids {
        for id in ids {
            if let Some(seq) = store.seq_of(&EventId::from_byte_array(*id))? {
                store.with_event(seq, |e| consider(seq, e, &mut access))?;
            }
        }
    } else if let Some(groups) = filter.tag_values("h") {
        for g in groups {
            let Some(info) = store.group(g) else { continue };
            if !replica && !access.can_read(g) {
                continue;
            }
            store.scan_group(
                info.no,
                0,
                |k| filter.kind_allowed(k),
                |seq, e| consider(seq, e, &mut access),
            )?;
            if too_many.get() {
                break;
            }
        }
    } else if replica || !state_only(filter) {
        store.scan(1, |seq, e| consider(seq, e, &mut access))?;
    }
    if too_many.get() {
        return Err(Walk::TooMany);
    }
    // The group state events (39000–39005) a `REQ` with this filter returns are rendered,
    // never stored: the view holds the same signed events (Flotilla learns a space's
    // rooms by reconciling `kinds: [39000, 9008]`).
    if !replica && filter.ids.is_none() && filter.tag_values("h").is_none() {
        for event in rendered(shared, &mut access, filter)? {
            count += 1;
            if count > cap {
                return Err(Walk::TooMany);
            }
            let _ = out.insert(
                event.created_at.as_secs(),
                Id::from_byte_array(event.id.to_bytes()),
            );
        }
    }
    let _ = out.seal();
    Ok((out, count))
}

/// Whether every kind `filter` names is a state kind (none stored for a non-replica).
fn state_only(filter: &Compiled) -> bool {
    filter
        .kinds
        .as_ref()
        .is_some_and(|k| k.iter().all(|&k| is_state_kind(k)))
}

/// What a `REQ` with `filter` is offered of the rendered state events.
fn rendered(
    shared: &Shared,
    access: &mut Access<'_>,
    filter: &Compiled,
) -> Result<Vec<nostr::prelude::Event>, Walk> {
    reads::rendered_matching(shared, access, filter).map_err(|e| Walk::Failed(e.to_string()))
}
