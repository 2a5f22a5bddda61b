//! Relay-wide projections: one state and one watermark (a log sequence number) for the
//! whole log, for what no per-group fold can hold — a parent's children are written in
//! other groups' logs, a deletion names events by id.
//!
//! The rules are the per-group ones with the log in place of a group's index: a read
//! first makes the state *current* (its watermark has reached the log head as
//! committed by any process at the start of the read) by loading the checkpoint (if
//! its version matches and it validates) and folding the log tail after its watermark,
//! reading only the headers of records of other kinds ([`Store::scan_where`]); one
//! thread does it while others wait; this process's commits are folded on the writer
//! thread when the state is current, so a hot state never needs a catch-up. A cold
//! process pays for its checkpoint and the tail after it, never for the whole log.
//! Checkpoints live in the per-group checkpoint table under the projection's name and
//! the reserved group number [`RELAY_WIDE_GROUP`].

mod runtime;

use std::sync::Arc;

use highwater_store::EventRef;

use crate::error::EngineError;
use crate::projection::{ApplyError, CodecError, Kinds};
use crate::status::RelayWideCounters;

pub(crate) use runtime::{ErasedRelayWide, RelayWideRuntime};

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
    /// return [`EngineError::Failed`] until it is rebuilt.
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

/// A typed handle to one relay-wide projection.
pub struct RelayWideHandle<P: RelayWideProjection> {
    pub(crate) runtime: Arc<RelayWideRuntime<P>>,
}

impl<P: RelayWideProjection> Clone for RelayWideHandle<P> {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
        }
    }
}

impl<P: RelayWideProjection> std::fmt::Debug for RelayWideHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayWideHandle")
            .field("projection", &self.runtime.name())
            .finish()
    }
}

impl<P: RelayWideProjection> RelayWideHandle<P> {
    /// Calls `f` with the state once it is current (its watermark has reached the log
    /// head as committed by any process at the start of this call), catching it up
    /// first if needed.
    ///
    /// The closure's contract is [`Handle::read`](crate::Handle::read)'s: it may do
    /// anything — append, read this projection again, block — without deadlocking the
    /// engine. While it runs the state's read lock is held: the writer never waits for
    /// it (a commit then leaves the fold to the next read).
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when a fold failed; [`EngineError::Store`] when the log
    /// or the checkpoint cannot be read.
    pub fn read<R>(&self, f: impl FnOnce(&P::State) -> R) -> Result<R, EngineError> {
        self.runtime.read_at(f).map(|(r, _)| r)
    }

    /// [`RelayWideHandle::read`], also returning the log position the state was
    /// folded to.
    ///
    /// # Errors
    ///
    /// As [`RelayWideHandle::read`].
    pub fn read_at<R>(&self, f: impl FnOnce(&P::State) -> R) -> Result<(R, u64), EngineError> {
        self.runtime.read_at(f)
    }

    /// The state by a full replay of the log from sequence 1, ignoring memory and the
    /// checkpoint: the reference the engine's answers must equal.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] when the fold fails; [`EngineError::Store`] when the
    /// log cannot be read.
    pub fn replay(&self) -> Result<P::State, EngineError> {
        self.runtime.replay_until(u64::MAX)
    }

    /// How the state was advanced so far (see [`RelayWideCounters`]).
    pub fn counters(&self) -> RelayWideCounters {
        self.runtime.counters()
    }

    /// The projection itself.
    pub fn projection(&self) -> &P {
        &self.runtime.projection
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        self.runtime.name()
    }
}
