//! The live log streams open to replicas (`highwater:log live`, see `replication.rs`),
//! held in the relay's shared state: each connection's outbox and subscription, sent
//! every event the log commits as the live feed delivers it.

use std::collections::BTreeMap;
use std::sync::Arc;

use nostr::prelude::{Event, SubscriptionId};
use parking_lot::Mutex;

use crate::hub::Outbox;

/// One live log stream: its connection's outbox and its subscription id as JSON.
type Stream = (Arc<Outbox>, Arc<str>);

/// The live log streams open on this relay, by (connection, subscription id).
#[derive(Debug, Default)]
pub(crate) struct LogStreams {
    open: Mutex<BTreeMap<(u64, String), Stream>>,
}

impl LogStreams {
    /// Opens (or replaces) the live stream `sub` of the outbox's connection.
    pub(crate) fn add(&self, sub: &SubscriptionId, outbox: Arc<Outbox>) {
        let id_json: Arc<str> = serde_json::Value::String(sub.as_str().to_owned())
            .to_string()
            .into();
        self.open
            .lock()
            .insert((outbox.id, sub.as_str().to_owned()), (outbox, id_json));
    }

    /// Closes stream `sub` of connection `conn`.
    pub(crate) fn remove(&self, conn: u64, sub: &str) {
        self.open.lock().remove(&(conn, sub.to_owned()));
    }

    /// Sends committed events (sequence number, event; in log order) to every live
    /// stream; rendered events (sequence number 0) are not the log's. A stream whose
    /// connection ended is dropped.
    pub(crate) fn deliver(&self, events: &[(u64, Event)]) {
        let mut open = self.open.lock();
        if open.is_empty() {
            return;
        }
        for (seq, event) in events {
            if *seq == 0 {
                continue;
            }
            let json: Arc<str> = event.as_json().into();
            open.retain(|_, (outbox, sub)| outbox.send_event(sub, &json));
        }
    }
}
