//! The relay-wide deletions: each group's latest 9008 (a group's events before it
//! belong to an earlier life of the id and are never served through a later one), and
//! the 9005s (event id → the groups and log positions of the 9005s naming it). A relay
//! decides from them which stored events it may serve.
//!
//! A deletion names events by id, across the whole log, so no per-group fold can answer
//! "is this event deleted" without knowing its group's 9005s first. [`Deletions`] is a
//! relay-wide engine projection: one state, checkpointed, made current before every
//! answer by folding the log tail (9005 and 9008 records only; the rest are passed by
//! their header).

use std::collections::BTreeMap;

use highwater_engine::{
    ApplyError, CodecError, Kinds, RelayWideProjection, decode_rkyv, encode_rkyv,
};
use highwater_store::EventRef;

use crate::config::kind;

/// NIP-29 delete-event.
const DELETE_EVENT: u16 = 9005;

/// A 9005 naming an event: its group and its log position.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Deletion {
    group: String,
    seq: u64,
}

/// What the 9005s and 9008s of the log say, as of the projection's watermark.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct DeletionsState {
    /// Group → log position of its latest 9008.
    group_deleted_at: BTreeMap<String, u64>,
    /// Event id → every 9005 naming it, in log order.
    events: BTreeMap<[u8; 32], Vec<Deletion>>,
}

impl DeletionsState {
    /// Whether the stored event at `seq` with this id and group may be served at all:
    /// not from an earlier life of its group (before the group's latest 9008), and not
    /// deleted by a later 9005 of its own group. A group's admin deletes that group's
    /// events and nothing else (not another group's, and not an event stored after the
    /// deletion); since an event before the group's latest 9008 is not served at all, a
    /// 9005 after the event is in the event's life whenever the event is served.
    pub fn is_served(&self, seq: u64, id: &[u8; 32], group: Option<&str>) -> bool {
        if let Some(g) = group
            && self
                .group_deleted_at
                .get(g)
                .is_some_and(|&deleted| seq < deleted)
        {
            return false;
        }
        !self.events.get(id).is_some_and(|named| {
            named
                .iter()
                .any(|d| Some(d.group.as_str()) == group && d.seq > seq)
        })
    }

    /// The log position of `group`'s latest 9008, if it has one.
    pub fn deleted_at(&self, group: &str) -> Option<u64> {
        self.group_deleted_at.get(group).copied()
    }

    fn take(&mut self, seq: u64, event: EventRef<'_>) {
        let Some(group) = event.first_tag_value("h") else {
            return;
        };
        if event.kind() == kind::DELETE_GROUP {
            let at = self.group_deleted_at.entry(group.to_owned()).or_default();
            *at = (*at).max(seq);
            return;
        }
        for tag in event.tags() {
            if tag.name() == Some("e")
                && let Some(id) = tag.get(1).and_then(crate::parse::parse_hex32)
            {
                let named = self.events.entry(id).or_default();
                if !named.iter().any(|d| d.seq == seq) {
                    named.push(Deletion {
                        group: group.to_owned(),
                        seq,
                    });
                }
            }
        }
    }
}

/// The relay-wide projection `deletions`: 9008 positions per group, 9005 targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deletions;

impl RelayWideProjection for Deletions {
    type State = DeletionsState;

    fn name(&self) -> &'static str {
        "deletions"
    }

    fn version(&self) -> u64 {
        1
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![DELETE_EVENT, kind::DELETE_GROUP])
    }

    /// What was deleted decides what is served, never whether a write is accepted.
    fn read_by_writes(&self) -> bool {
        false
    }

    fn init(&self) -> DeletionsState {
        DeletionsState::default()
    }

    fn apply(
        &self,
        state: &mut DeletionsState,
        seq: u64,
        event: &EventRef<'_>,
    ) -> Result<(), ApplyError> {
        state.take(seq, *event);
        Ok(())
    }

    fn encode(&self, state: &DeletionsState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<DeletionsState, CodecError> {
        decode_rkyv(bytes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_hex_ids() {
        let hex = "00ff".repeat(16);
        let id = crate::parse::parse_hex32(&hex).expect("64 hex digits");
        assert_eq!((id[0], id[1]), (0x00, 0xff));
        assert_eq!(crate::parse::parse_hex32("xyz"), None);
    }
}
