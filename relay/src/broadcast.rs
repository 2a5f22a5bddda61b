//! The live delivery of committed events: each to the subscriptions it matches (`hub.rs`
//! indexes them by group) whose reader may see it (`access.rs`). Apart from the hub so
//! the hub, which the relay's shared state holds, needs neither the access decisions
//! nor that shared state.

use std::sync::Arc;

use nostr::prelude::Event;

use crate::access::Access;
use crate::hub::{Hub, group_of};
use crate::shared::Shared;

impl Hub {
    /// Delivers committed events to the subscriptions they match, in order.
    pub(crate) fn broadcast(&self, shared: &Shared, events: &[(u64, Event)]) {
        for (_, event) in events {
            // The relay's management events (NIP-86) are its own records, never served.
            if event.kind.as_u16() == highwater_projections::MANAGEMENT_KIND {
                continue;
            }
            let group = group_of(event);
            let targets = self.candidates(group);
            if targets.is_empty() {
                continue;
            }
            // Shared by every subscriber's queue; each writer adds its subscription id.
            let json: Arc<str> = event.as_json().into();
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
                sub.outbox.send_event(&sub.id_json, &json);
            }
        }
    }
}
