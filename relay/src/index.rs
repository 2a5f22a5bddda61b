//! What the relay keeps beside the engine to decide which stored events it may serve:
//! the sequence number of each group's latest 9008 (a group's events before it belong
//! to an earlier life of the id and are never served through a later one), and the
//! 9005 deletions (event id → the groups and sequence numbers of the 9005s naming it).
//! Built at start from the group index (reading only 9005 and 9008 records, never
//! folding a group) and advanced after each commit, whichever process made it.
//!
//! A 9005 hides an event only when it is the event's own group's, and later in the
//! log than the event: a group's admin can delete that group's events and nothing else
//! (not another group's, and not an event stored after the deletion). Since an event
//! before the group's latest 9008 is not served at all, a 9005 after the event is in
//! the event's life whenever the event is served.

use std::collections::HashMap;
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

/// Whether events of `kind` decide what else is served (a 9005 or a 9008).
pub(crate) fn is_deletion(kind: u16) -> bool {
    kind == DELETE_EVENT || kind == DELETE_GROUP
}

pub(crate) fn is_state_kind(kind: u16) -> bool {
    (STATE_FIRST..=STATE_LAST).contains(&kind)
}

/// A 9005 naming an event: its group and its place in the log.
#[derive(Debug, Clone)]
struct Deletion {
    group: Box<str>,
    seq: u64,
}

#[derive(Debug, Default)]
struct Deletions {
    /// Group → sequence number of its latest 9008.
    group_deleted_at: HashMap<Box<str>, u64>,
    /// Event id → every 9005 naming it.
    events: HashMap<[u8; 32], Vec<Deletion>>,
}

/// The index; shared by readers and the write path.
#[derive(Debug)]
pub(crate) struct ServedIndex {
    deletions: RwLock<Deletions>,
    /// Every event up to this sequence number has been observed: the relay's own
    /// commits as they are acknowledged, other processes' (an import beside the relay)
    /// by [`ServedIndex::follow`].
    followed: AtomicU64,
}

impl ServedIndex {
    /// Builds the index from the log: per group, only 9005 and 9008.
    pub(crate) fn build(store: &Store) -> Result<Self, StoreError> {
        let index = Self {
            deletions: RwLock::new(Deletions::default()),
            followed: AtomicU64::new(0),
        };
        // Read before the scans: anything committed meanwhile is observed again by
        // `follow`, which is harmless (observing is order-independent and idempotent).
        let head = store.head();
        for group in store.groups() {
            store.scan_group(
                group.no,
                0,
                |k| k == DELETE_EVENT || k == DELETE_GROUP,
                |seq, event| {
                    index.observe(seq, event);
                    ControlFlow::Continue(())
                },
            )?;
        }
        index.followed.store(head, Ordering::Release);
        Ok(index)
    }

    /// Observes what other processes committed since the last look.
    pub(crate) fn follow(&self, store: &Store) -> Result<(), StoreError> {
        let head = store.head();
        let from = self.followed.load(Ordering::Acquire);
        if head <= from {
            return Ok(());
        }
        store.scan_kinds(
            from + 1,
            head,
            |k| k == DELETE_EVENT || k == DELETE_GROUP,
            |_, seq, event| {
                self.observe(seq, event);
                ControlFlow::Continue(())
            },
        )?;
        self.followed.fetch_max(head, Ordering::AcqRel);
        Ok(())
    }

    /// Takes note of a committed event (any kind; only 9005 and 9008 matter).
    /// Idempotent and independent of the order events are observed in.
    pub(crate) fn observe(&self, seq: u64, event: EventRef<'_>) {
        let kind = event.kind();
        if kind != DELETE_EVENT && kind != DELETE_GROUP {
            return;
        }
        let Some(group) = event.first_tag_value("h") else {
            return;
        };
        let mut deletions = self.deletions.write();
        if kind == DELETE_GROUP {
            let at = deletions.group_deleted_at.entry(group.into()).or_default();
            *at = (*at).max(seq);
            return;
        }
        for tag in event.tags() {
            if tag.name() == Some("e")
                && let Some(id) = tag.get(1).and_then(parse_id)
            {
                let named = deletions.events.entry(id).or_default();
                if !named.iter().any(|d| d.seq == seq) {
                    named.push(Deletion {
                        group: group.into(),
                        seq,
                    });
                }
            }
        }
    }

    /// Whether the stored event at `seq` with this id and group may be served at all:
    /// not from an earlier life of its group, and not deleted by a later 9005 of its
    /// own group.
    pub(crate) fn is_served(&self, seq: u64, id: &[u8; 32], group: Option<&str>) -> bool {
        let deletions = self.deletions.read();
        if let Some(g) = group
            && deletions
                .group_deleted_at
                .get(g)
                .is_some_and(|&deleted| seq < deleted)
        {
            return false;
        }
        !deletions.events.get(id).is_some_and(|named| {
            named
                .iter()
                .any(|d| Some(&*d.group) == group && d.seq > seq)
        })
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
