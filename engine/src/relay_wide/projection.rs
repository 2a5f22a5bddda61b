//! What a relay-wide projection is: the [`RelayWideProjection`] trait, and the
//! reserved group number its checkpoint is stored under.

use highwater_store::EventRef;

use crate::projection::{ApplyError, CodecError, Kinds};

/// The group number under which a relay-wide projection's one checkpoint is stored
/// (its key is `name ‖ 0x00 ‖ u32::MAX`). Names are unique across the per-group and
/// relay-wide projections of an engine, so no group's checkpoint shares the key; and no
/// group is numbered `u32::MAX`, so listings never mistake it for one.
pub const RELAY_WIDE_GROUP: u32 = u32::MAX;

/// A deterministic fold of the whole log into one state.
///
/// `apply` must depend only on the state, the sequence number and the event: no clock,
/// no randomness, no iteration order of hash maps. Equal logs must give equal states,
/// whatever mix of checkpoints, catch-ups and live commits produced them.
pub trait RelayWideProjection: Send + Sync + 'static {
    /// The state.
    type State: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static;

    /// A stable name, 1–64 of `[A-Za-z0-9_-]`, unique among every projection of the
    /// engine (per-group ones included); it keys the checkpoint.
    fn name(&self) -> &str;

    /// The version of the fold and of the state encoding. A checkpoint written by
    /// another version is ignored and the state is folded from the log.
    fn version(&self) -> u64;

    /// The kinds this projection folds. Records of other kinds are passed by their
    /// header alone.
    fn kinds(&self) -> Kinds;

    /// The kinds only the relay's own key may sign (see
    /// [`Projection::relay_signed`](crate::Projection::relay_signed)). None by default.
    fn relay_signed(&self) -> Vec<u16> {
        Vec::new()
    }

    /// Whether a writer's decisions read this state, so an accepted event of one of its
    /// kinds must be committed before the next event is decided. True by default (the
    /// exact choice); a projection that only serves reads may say false.
    fn read_by_writes(&self) -> bool {
        true
    }

    /// The state before any event.
    fn init(&self) -> Self::State;

    /// Folds the event at log position `seq` into the state.
    ///
    /// # Errors
    ///
    /// An [`ApplyError`] marks the projection failed at this event; reads of it then
    /// return [`EngineError::Failed`](crate::EngineError::Failed) until it is rebuilt.
    fn apply(
        &self,
        state: &mut Self::State,
        seq: u64,
        event: &EventRef<'_>,
    ) -> Result<(), ApplyError>;

    /// Encodes the state for the checkpoint (usually [`encode_rkyv`](crate::encode_rkyv)).
    ///
    /// # Errors
    ///
    /// A [`CodecError`] skips the checkpoint; the state stays in memory.
    fn encode(&self, state: &Self::State) -> Result<Vec<u8>, CodecError>;

    /// Decodes (and validates) a checkpointed state.
    ///
    /// # Errors
    ///
    /// A [`CodecError`] makes the engine ignore the checkpoint and fold the log.
    fn decode(&self, bytes: &[u8]) -> Result<Self::State, CodecError>;
}
