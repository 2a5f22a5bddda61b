//! The relay-wide parent links: for each group id, every group that ever named it as
//! `parent` in a metadata event (9007, 9002, 39000), in the order first seen. These are
//! only *candidates*: whether a candidate is a child now is decided from its own and
//! its parent's fully loaded metadata (see `subgroups`).
//!
//! A group's children are written in other groups' logs, so no per-group fold can list
//! them. [`ParentLinks`] is a relay-wide engine projection: one state for the whole
//! log, checkpointed, and made current before every answer by folding the log tail
//! after its watermark (records of other kinds are passed by their header alone) — a
//! cold process reads the checkpoint and the tail, never the whole log.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use highwater_engine::{
    ApplyError, CodecError, EngineBuilder, EngineError, Kinds, RelayWideHandle,
    RelayWideProjection, decode_rkyv, encode_rkyv,
};
use highwater_store::{EventRef, Store, StoreError};

use crate::config::kind;

/// The kinds whose `parent` tags make links.
const LINK_KINDS: [u16; 3] = [kind::CREATE_GROUP, kind::EDIT_METADATA, kind::METADATA];

/// Parent id → the groups that ever named it as parent, in the order first seen.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct LinksState {
    candidates: BTreeMap<String, Vec<String>>,
}

impl LinksState {
    /// The groups that ever named `parent` as their parent, in the order first seen.
    pub fn candidates(&self, parent: &str) -> &[String] {
        self.candidates.get(parent).map_or(&[], Vec::as_slice)
    }

    fn take(&mut self, event: EventRef<'_>) {
        let Some(child) = event.group_id() else {
            return;
        };
        for tag in event.tags() {
            if tag.name() != Some("parent") {
                continue;
            }
            let Some(parent) = tag.get(1).filter(|p| !p.is_empty() && *p != child) else {
                continue;
            };
            let children = self.candidates.entry(parent.to_owned()).or_default();
            if !children.iter().any(|c| c == child) {
                children.push(child.to_owned());
            }
        }
    }
}

/// The relay-wide projection `links`: every (parent, child) pair named by a metadata
/// event.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParentLinks;

impl RelayWideProjection for ParentLinks {
    type State = LinksState;

    fn name(&self) -> &'static str {
        "links"
    }

    fn version(&self) -> u64 {
        1
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(LINK_KINDS.to_vec())
    }

    fn init(&self) -> LinksState {
        LinksState::default()
    }

    fn apply(
        &self,
        state: &mut LinksState,
        _: u64,
        event: &EventRef<'_>,
    ) -> Result<(), ApplyError> {
        state.take(*event);
        Ok(())
    }

    fn encode(&self, state: &LinksState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<LinksState, CodecError> {
        decode_rkyv(bytes)
    }
}

/// The parent links of one [`Groups`](crate::Groups) and its clones.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    handle: RelayWideHandle<ParentLinks>,
}

impl Links {
    /// Registers the `links` projection.
    pub(crate) fn register(builder: &mut EngineBuilder) -> Result<Self, EngineError> {
        Ok(Self {
            handle: builder.add_relay_wide(ParentLinks)?,
        })
    }

    /// The engine's handle of the `links` projection.
    pub(crate) fn handle(&self) -> &RelayWideHandle<ParentLinks> {
        &self.handle
    }

    /// The candidate children of `parent`, folded up to the log head. (`_store` is
    /// the store the engine folds; the projection reads it through the engine.)
    pub(crate) fn candidates(
        &self,
        _store: &Store,
        parent: &str,
    ) -> Result<Vec<String>, EngineError> {
        self.handle.read(|s| s.candidates(parent).to_vec())
    }

    /// The candidate children of `parent` from a fresh scan of the whole log, ignoring
    /// memory and the checkpoint (the oracle's answer): every record read whole, not
    /// the header-filtered walk of the engine's catch-ups.
    pub(crate) fn candidates_by_full_scan(
        store: &Store,
        parent: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut state = LinksState::default();
        store.scan(1, |_, event| {
            if LINK_KINDS.contains(&event.kind()) {
                state.take(event);
            }
            ControlFlow::Continue(())
        })?;
        Ok(state.candidates.remove(parent).unwrap_or_default())
    }
}
