//! The `creator` projection: the author of the 9007 that started the group's current
//! life. None before any 9007, after a 9008, and for groups that exist only through
//! moderation events or relay snapshots.

use highwater_engine::{ApplyError, CodecError, Kinds, Projection, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;

use crate::config::{Nip29Config, kind};
use crate::life::{Lifecycle, Step};

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 2;

/// The creator of one group.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct CreatorState {
    lifecycle: Lifecycle,
    creator: Option<[u8; 32]>,
}

impl CreatorState {
    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The creator of the group's current life.
    pub fn creator(&self) -> Option<&[u8; 32]> {
        self.creator.as_ref()
    }

    /// Whether `pubkey` created the group's current life.
    pub fn is_creator(&self, pubkey: &[u8; 32]) -> bool {
        self.creator.as_ref() == Some(pubkey)
    }
}

/// The `creator` projection.
#[derive(Debug, Clone)]
pub struct Creator {
    config: Nip29Config,
}

impl Creator {
    /// The projection for the relay in `config`.
    pub fn new(config: Nip29Config) -> Self {
        Self { config }
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
        CreatorState::default()
    }

    fn apply(&self, state: &mut CreatorState, event: &EventRef<'_>) -> Result<(), ApplyError> {
        match state.lifecycle.step(*event, self.config.relay_bytes()) {
            Step::Create => state.creator = Some(*event.pubkey()),
            Step::Delete => state.creator = None,
            Step::Ignore | Step::Moderate { .. } | Step::Snapshot | Step::Other { .. } => {}
        }
        Ok(())
    }

    fn encode(&self, state: &CreatorState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<CreatorState, CodecError> {
        decode_rkyv(bytes)
    }
}
