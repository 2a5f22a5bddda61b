//! The `creator` projection: the author of the 9007 that started the group's current
//! life. None before any 9007, after a 9008, and for groups that exist only through
//! moderation events or relay snapshots.

use std::sync::Arc;

use highwater_engine::{ApplyError, CodecError, Kinds, Projection, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;

use crate::config::{Nip29Config, kind};
use crate::dict::{Dictionary, Id};
use crate::life::{Lifecycle, Step};
use crate::parse::Hex;

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 3;

/// The creator of one group, as an id of the registration's pubkey dictionary; it
/// compares, prints and encodes through the pubkey.
#[derive(Clone)]
pub struct CreatorState {
    dict: Arc<Dictionary>,
    lifecycle: Lifecycle,
    creator: Option<Id>,
}

impl CreatorState {
    fn new(dict: Arc<Dictionary>) -> Self {
        Self {
            dict,
            lifecycle: Lifecycle::default(),
            creator: None,
        }
    }

    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The creator of the group's current life.
    pub fn creator(&self) -> Option<[u8; 32]> {
        self.creator.map(|id| self.dict.key(id))
    }

    /// Whether `pubkey` created the group's current life.
    pub fn is_creator(&self, pubkey: &[u8; 32]) -> bool {
        self.creator.is_some_and(|id| &self.dict.key(id) == pubkey)
    }

    fn record(&self) -> CreatorRecord {
        CreatorRecord {
            lifecycle: self.lifecycle,
            creator: self.creator(),
        }
    }
}

impl PartialEq for CreatorState {
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.dict, &other.dict) {
            self.lifecycle == other.lifecycle && self.creator == other.creator
        } else {
            self.record() == other.record()
        }
    }
}

impl Eq for CreatorState {}

impl std::fmt::Debug for CreatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatorState")
            .field("lifecycle", &self.lifecycle)
            .field("creator", &self.creator().map(Hex))
            .finish_non_exhaustive()
    }
}

/// A creator checkpoint: the pubkey, never a dictionary id.
#[derive(Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct CreatorRecord {
    lifecycle: Lifecycle,
    creator: Option<[u8; 32]>,
}

/// The `creator` projection.
#[derive(Debug, Clone)]
pub struct Creator {
    config: Nip29Config,
    dict: Arc<Dictionary>,
}

impl Creator {
    /// The projection for the relay in `config`, with a pubkey dictionary of its own.
    pub fn new(config: Nip29Config) -> Self {
        Self::with_dictionary(config, Arc::default())
    }

    /// The projection numbering pubkeys in `dict`, shared with the other projections
    /// of one registration.
    pub(crate) fn with_dictionary(config: Nip29Config, dict: Arc<Dictionary>) -> Self {
        Self { config, dict }
    }
}

impl Projection for Creator {
    type State = CreatorState;

    fn name(&self) -> &'static str {
        "creator"
    }

    fn version(&self) -> u64 {
        self.config.version(BASE_VERSION)
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(kind::life_and(&[]))
    }

    fn init(&self) -> CreatorState {
        CreatorState::new(self.dict.clone())
    }

    fn apply(&self, state: &mut CreatorState, event: &EventRef<'_>) -> Result<(), ApplyError> {
        match state.lifecycle.step(*event, self.config.relay_bytes()) {
            Step::Create => state.creator = Some(self.dict.intern(event.pubkey())),
            Step::Delete => state.creator = None,
            Step::Ignore | Step::Moderate { .. } | Step::Snapshot | Step::Other { .. } => {}
        }
        Ok(())
    }

    fn encode(&self, state: &CreatorState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(&state.record())
    }

    fn decode(&self, bytes: &[u8]) -> Result<CreatorState, CodecError> {
        let record: CreatorRecord = decode_rkyv(bytes)?;
        Ok(CreatorState {
            dict: self.dict.clone(),
            lifecycle: record.lifecycle,
            creator: record.creator.map(|k| self.dict.intern(&k)),
        })
    }
}
