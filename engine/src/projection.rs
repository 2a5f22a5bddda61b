//! The `Projection` trait: what a pluggable fold declares; the engine does the rest.

use highwater_store::EventRef;
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// Which event kinds a projection folds. Events of other kinds still advance its
/// watermark, without being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kinds {
    /// Every kind.
    All,
    /// Only these kinds.
    Only(Vec<u16>),
}

/// An error returned by [`Projection::apply`]: the event cannot be folded, and the
/// (projection, group) is marked failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// A state that could not be encoded or decoded for a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state codec: {0}")]
pub struct CodecError(pub String);

/// A deterministic per-group fold of the log.
///
/// `apply` must depend only on the state and the event: no clock, no randomness, no
/// iteration order of hash maps. Equal logs must give equal states, whatever mix of
/// checkpoints, catch-ups and live appends produced them.
pub trait Projection: Send + Sync + 'static {
    /// The per-group state.
    type State: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static;

    /// A stable name, 1–64 of `[A-Za-z0-9_-]`; it keys the checkpoints.
    fn name(&self) -> &str;

    /// The version of the fold and of the state encoding. Checkpoints written by
    /// another version are ignored and the group is rebuilt from the log. Include in it
    /// anything of the configuration that changes the fold.
    fn version(&self) -> u64;

    /// The kinds this projection folds.
    fn kinds(&self) -> Kinds;

    /// The kinds only the relay's own key may sign: a writer deciding events for this
    /// engine (the relay, an import) refuses them from anyone else. None by default.
    fn relay_signed(&self) -> Vec<u16> {
        Vec::new()
    }

    /// The state of a group before any event.
    fn init(&self) -> Self::State;

    /// Folds one event into the state.
    ///
    /// # Errors
    ///
    /// An [`ApplyError`] marks this (projection, group) failed at this event; reads of
    /// it then return [`EngineError::Failed`](crate::EngineError::Failed).
    fn apply(&self, state: &mut Self::State, event: &EventRef<'_>) -> Result<(), ApplyError>;

    /// Encodes the state for a checkpoint (usually [`encode_rkyv`]).
    ///
    /// # Errors
    ///
    /// A [`CodecError`] skips this group's checkpoint; the state stays in memory.
    fn encode(&self, state: &Self::State) -> Result<Vec<u8>, CodecError>;

    /// Decodes (and validates) a checkpointed state (usually [`decode_rkyv`]).
    ///
    /// # Errors
    ///
    /// A [`CodecError`] makes the engine ignore the checkpoint and fold the group from
    /// the log.
    fn decode(&self, bytes: &[u8]) -> Result<Self::State, CodecError>;
}

/// Encodes a state with rkyv.
///
/// # Errors
///
/// A [`CodecError`] when rkyv fails to serialize the value.
pub fn encode_rkyv<T>(value: &T) -> Result<Vec<u8>, CodecError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    rkyv::to_bytes::<rancor::Error>(value)
        .map(|v| v.to_vec())
        .map_err(|e| CodecError(e.to_string()))
}

/// Validates and decodes a state encoded by [`encode_rkyv`].
///
/// # Errors
///
/// A [`CodecError`] when the bytes are not a valid archive of `T`.
pub fn decode_rkyv<T>(bytes: &[u8]) -> Result<T, CodecError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    rkyv::from_bytes::<T, rancor::Error>(bytes).map_err(|e| CodecError(e.to_string()))
}

/// A 65,536-bit set of kinds, for a branch-free "does this projection fold kind k".
#[derive(Clone)]
pub(crate) struct KindSet(Box<[u64; 1024]>);

impl KindSet {
    pub(crate) fn new(kinds: &Kinds) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        match kinds {
            Kinds::All => bits.fill(u64::MAX),
            Kinds::Only(list) => {
                for &k in list {
                    bits[usize::from(k) / 64] |= 1 << (k % 64);
                }
            }
        }
        Self(bits)
    }

    pub(crate) fn contains(&self, kind: u16) -> bool {
        self.0[usize::from(kind) / 64] & (1 << (kind % 64)) != 0
    }
}
