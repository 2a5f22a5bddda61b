//! Live subscriptions and fan-out. Subscriptions whose every filter names groups
//! (`#h`, or `#d` for state kinds) are indexed by group, so a committed event wakes only
//! the subscribers of its own group; the rest are checked against every event.
//! Each connection has a bounded outbox: a client that lets it fill is disconnected,
//! never buffered without bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nostr::prelude::{Event, PublicKey};
use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};

use crate::access::Access;
use crate::filter::Compiled;
use crate::index::is_state_kind;
use crate::shared::Shared;

/// The sending side of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) id: u64,
    tx: mpsc::Sender<String>,
    kill: watch::Sender<bool>,
    killed: AtomicBool,
    /// The pubkey authenticated with NIP-42, if any.
    reader: RwLock<Option<PublicKey>>,
    pub(crate) sent: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(id: u64, capacity: usize) -> (Arc<Self>, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (kill, _) = watch::channel(false);
        let outbox = Arc::new(Self {
            id,
            tx,
            kill,
            killed: AtomicBool::new(false),
            reader: RwLock::new(None),
            sent: AtomicU64::new(0),
        });
        (outbox, rx)
    }

    /// Queues a message; a full queue disconnects the client. Returns whether queued.
    pub(crate) fn send(&self, message: String) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.killed.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        conn = self.id,
                        "send queue full: disconnecting a slow client"
                    );
                    self.kill.send_replace(true);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Resolves when the connection is to be dropped (its queue overflowed).
    pub(crate) fn killed(&self) -> watch::Receiver<bool> {
        self.kill.subscribe()
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub(crate) fn reader(&self) -> Option<PublicKey> {
        *self.reader.read()
    }

    pub(crate) fn set_reader(&self, pubkey: PublicKey) {
        *self.reader.write() = Some(pubkey);
    }
}

/// One open subscription.
#[derive(Debug)]
pub(crate) struct Sub {
    pub(crate) outbox: Arc<Outbox>,
    /// The subscription id as a JSON string, ready to splice into messages.
    pub(crate) id_json: String,
    pub(crate) filters: Vec<Compiled>,
}

type Key = (u64, String);

#[derive(Debug, Default)]
struct Inner {
    by_group: HashMap<Box<str>, BTreeMap<Key, Arc<Sub>>>,
    others: BTreeMap<Key, Arc<Sub>>,
    groups_of: HashMap<Key, Vec<Box<str>>>,
}

/// Every live subscription of the relay.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    inner: RwLock<Inner>,
}

/// The groups a filter confines events to, if it does.
fn filter_groups(filter: &Compiled) -> Option<Vec<Box<str>>> {
    if let Some(h) = filter.tag_values("h") {
        return Some(h.iter().map(|g| g.as_str().into()).collect());
    }
    let state_only = filter
        .kinds
        .as_ref()
        .is_some_and(|k| k.iter().all(|&k| is_state_kind(k)));
    match filter.tag_values("d") {
        Some(d) if state_only => Some(d.iter().map(|g| g.as_str().into()).collect()),
        _ => None,
    }
}

impl Hub {
    /// Adds (or replaces) subscription `id` of the outbox's connection.
    pub(crate) fn add(&self, id: &str, sub: Arc<Sub>) {
        let key = (sub.outbox.id, id.to_owned());
        let groups: Option<Vec<Box<str>>> = sub
            .filters
            .iter()
            .map(filter_groups)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect());
        let mut inner = self.inner.write();
        remove_locked(&mut inner, &key);
        match groups {
            Some(groups) => {
                for g in &groups {
                    inner
                        .by_group
                        .entry(g.clone())
                        .or_default()
                        .insert(key.clone(), sub.clone());
                }
                inner.groups_of.insert(key, groups);
            }
            None => {
                inner.others.insert(key, sub);
            }
        }
    }

    pub(crate) fn remove(&self, conn: u64, id: &str) {
        remove_locked(&mut self.inner.write(), &(conn, id.to_owned()));
    }

    /// Delivers committed events to the subscriptions they match, in order.
    pub(crate) fn broadcast(&self, shared: &Shared, events: &[(u64, Event)]) {
        for (_, event) in events {
            let group = group_of(event);
            let targets: Vec<Arc<Sub>> = {
                let inner = self.inner.read();
                let grouped = group
                    .and_then(|g| inner.by_group.get(g))
                    .into_iter()
                    .flat_map(|m| m.values());
                grouped.chain(inner.others.values()).cloned().collect()
            };
            if targets.is_empty() {
                continue;
            }
            let json = event.as_json();
            // Whether anyone may see it decides most deliveries at once.
            let mut anonymous = Access::new(shared, None);
            let public = anonymous.visible(event.kind.as_u16(), group);
            for sub in targets {
                if sub.outbox.is_killed() || !sub.filters.iter().any(|f| f.matches_event(event)) {
                    continue;
                }
                if !public {
                    let reader = sub.outbox.reader();
                    if reader.is_none()
                        || !Access::new(shared, reader).visible(event.kind.as_u16(), group)
                    {
                        continue;
                    }
                }
                sub.outbox
                    .send(format!(r#"["EVENT",{},{json}]"#, sub.id_json));
            }
        }
    }
}

fn remove_locked(inner: &mut Inner, key: &Key) {
    inner.others.remove(key);
    if let Some(groups) = inner.groups_of.remove(key) {
        for g in groups {
            if let Some(map) = inner.by_group.get_mut(&g) {
                map.remove(key);
                if map.is_empty() {
                    inner.by_group.remove(&g);
                }
            }
        }
    }
}

/// The group an event belongs to: `d` for state kinds, `h` otherwise.
pub(crate) fn group_of(event: &Event) -> Option<&str> {
    let name = if is_state_kind(event.kind.as_u16()) {
        "d"
    } else {
        "h"
    };
    event
        .tags
        .iter()
        .find(|t| t.kind() == name)
        .and_then(|t| t.content())
        .filter(|g| !g.is_empty())
}
