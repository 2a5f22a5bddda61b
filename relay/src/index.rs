//! What the relay keeps in memory besides the engine: where each group's latest
//! relay-signed state events (39000–39005) are in the log, which groups' metadata is
//! hidden, and which events a 9005 hid. Built at start from the group index (reading
//! only those kinds' records, never folding a group) and advanced after each commit.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use highwater_store::{EventRef, Store, StoreError};
use parking_lot::RwLock;

/// The first and last kinds of relay-signed group state (39000 metadata … 39005 pins).
pub(crate) const STATE_FIRST: u16 = 39_000;
pub(crate) const STATE_LAST: u16 = 39_005;
/// NIP-29 delete-event.
pub(crate) const DELETE_EVENT: u16 = 9005;
/// NIP-29 delete-group.
pub(crate) const DELETE_GROUP: u16 = 9008;

pub(crate) fn is_state_kind(kind: u16) -> bool {
    (STATE_FIRST..=STATE_LAST).contains(&kind)
}

/// One group's latest state events.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupState {
    /// Sequence number of the latest relay-signed event of each kind 39000..=39005.
    pub(crate) latest: [Option<u64>; 6],
    /// Whether the latest 39000 carries `hidden`.
    pub(crate) hidden: bool,
    /// The newest `created_at` among them (the next rendering is later).
    pub(crate) created_at: u64,
    /// Sequence number of the group's latest 9008: state events before it are void.
    pub(crate) deleted_at: u64,
}

#[derive(Debug, Default)]
struct Inner {
    groups: BTreeMap<Box<str>, GroupState>,
    /// Event id → the group whose 9005 hid it.
    hidden_events: HashMap<[u8; 32], Box<str>>,
}

/// The index; shared by readers and the write path.
#[derive(Debug)]
pub(crate) struct StateIndex {
    relay: [u8; 32],
    inner: RwLock<Inner>,
    /// Every event up to this sequence number has been observed: the relay's own
    /// commits as they are acknowledged, other processes' (an import beside the relay)
    /// by [`StateIndex::follow`].
    followed: AtomicU64,
}

impl StateIndex {
    /// Builds the index from the log: per group, only the state kinds and 9005.
    pub(crate) fn build(store: &Store, relay: [u8; 32]) -> Result<Self, StoreError> {
        let index = Self {
            relay,
            inner: RwLock::new(Inner::default()),
            followed: AtomicU64::new(0),
        };
        // Read before the scans: anything committed meanwhile is observed again by
        // `follow`, which is harmless (observing is order-independent and idempotent).
        let head = store.head();
        for group in store.groups() {
            store.scan_group(
                group.no,
                0,
                |k| k == DELETE_EVENT || k == DELETE_GROUP || is_state_kind(k),
                |seq, event| {
                    index.observe(seq, event);
                    ControlFlow::Continue(())
                },
            )?;
        }
        index.followed.store(head, Ordering::Release);
        Ok(index)
    }

    /// Observes what other processes committed since the last look (the store notices
    /// their commits through LMDB's transaction id): a group another process created or
    /// hid is listed correctly without a restart.
    pub(crate) fn follow(&self, store: &Store) -> Result<(), StoreError> {
        let head = store.head();
        let from = self.followed.load(Ordering::Acquire);
        if head <= from {
            return Ok(());
        }
        store.scan(from + 1, |seq, event| {
            if seq > head {
                return ControlFlow::Break(());
            }
            self.observe(seq, event);
            ControlFlow::Continue(())
        })?;
        self.followed.fetch_max(head, Ordering::AcqRel);
        Ok(())
    }

    /// Takes note of a committed event (any kind; only a few matter).
    pub(crate) fn observe(&self, seq: u64, event: EventRef<'_>) {
        let kind = event.kind();
        if kind == DELETE_EVENT {
            let Some(group) = event.first_tag_value("h") else {
                return;
            };
            let mut inner = self.inner.write();
            for tag in event.tags() {
                if tag.name() == Some("e")
                    && let Some(id) = tag.get(1).and_then(parse_id)
                {
                    inner.hidden_events.insert(id, group.into());
                }
            }
        } else if kind == DELETE_GROUP {
            if let Some(group) = event.first_tag_value("h") {
                // A deleted group is listed no more; a new 9007 renders it again. The
                // state events before the 9008 are void, whatever order they are seen in.
                let mut inner = self.inner.write();
                let state = inner.groups.entry(group.into()).or_default();
                if seq > state.deleted_at {
                    state.deleted_at = seq;
                    for latest in &mut state.latest {
                        if latest.is_some_and(|s| s < seq) {
                            *latest = None;
                        }
                    }
                    if state.latest[0].is_none() {
                        state.hidden = false;
                    }
                }
            }
        } else if is_state_kind(kind) && event.pubkey() == &self.relay {
            let Some(group) = event.first_tag_value("d") else {
                return;
            };
            let mut inner = self.inner.write();
            let state = inner.groups.entry(group.into()).or_default();
            let slot = &mut state.latest[usize::from(kind - STATE_FIRST)];
            // The newest event of each kind wins, in any order of observation.
            if seq < state.deleted_at || slot.is_some_and(|s| s >= seq) {
                return;
            }
            *slot = Some(seq);
            state.created_at = state.created_at.max(event.created_at());
            if kind == STATE_FIRST {
                state.hidden = event.tags().any(|t| t.name() == Some("hidden"));
            }
        }
    }

    /// Whether a 9005 of `group` hid the event `id`.
    pub(crate) fn is_hidden_event(&self, id: &[u8; 32], group: Option<&str>) -> bool {
        self.inner
            .read()
            .hidden_events
            .get(id)
            .is_some_and(|g| Some(&**g) == group)
    }

    /// One group's state, if the relay ever published any.
    pub(crate) fn group(&self, group: &str) -> Option<GroupState> {
        self.inner.read().groups.get(group).copied()
    }

    /// Every group with its state, in group-id order.
    pub(crate) fn all(&self) -> Vec<(Box<str>, GroupState)> {
        self.inner
            .read()
            .groups
            .iter()
            .map(|(g, s)| (g.clone(), *s))
            .collect()
    }
}

fn parse_id(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_hex_ids() {
        let hex = "00ff".repeat(16);
        let id = super::parse_id(&hex).expect("64 hex digits");
        assert_eq!((id[0], id[1]), (0x00, 0xff));
        assert_eq!(super::parse_id("xyz"), None);
    }
}
