//! The `creator` projection: the author of the 9007 that started the group's current
//! life. None before any 9007, after a 9008, and for groups that exist only through
//! moderation events or relay snapshots.

use std::sync::Arc;

use highwater_engine::{CodecError, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;

use crate::dict::{Dictionary, Id};
use crate::life::{Lifecycle, Step};
use crate::nip29::{Nip29, Nip29Fold};
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
pub type Creator = Nip29<CreatorState>;

impl Nip29Fold for CreatorState {
    const NAME: &'static str = "creator";
    const BASE_VERSION: u32 = BASE_VERSION;
    const TYPE_NAME: &'static str = "Creator";

    fn init(shell: &Creator) -> Self {
        Self::new(shell.dict.clone())
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    fn fold(&mut self, step: Step, event: EventRef<'_>, shell: &Creator) {
        match step {
            Step::Create => self.creator = Some(shell.dict.intern(event.pubkey())),
            Step::Delete => self.creator = None,
            Step::Ignore | Step::Moderate { .. } | Step::Snapshot | Step::Other { .. } => {}
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(&self.record())
    }

    fn decode(bytes: &[u8], shell: &Creator) -> Result<Self, CodecError> {
        let record: CreatorRecord = decode_rkyv(bytes)?;
        Ok(CreatorState {
            dict: shell.dict.clone(),
            lifecycle: record.lifecycle,
            creator: record.creator.map(|k| shell.dict.intern(&k)),
        })
    }
}
