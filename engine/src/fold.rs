//! One fold step, guarded: an error or a panic of a projection's `apply` becomes a
//! [`Failure`] at the event's sequence number instead of unwinding into the engine;
//! and the comparison of a served state with a replay of the log. Per-group runtimes,
//! full rebuilds and relay-wide runtimes share both.

use std::panic::{AssertUnwindSafe, catch_unwind};

use highwater_store::EventRef;

use crate::error::EngineError;
use crate::projection::{ApplyError, Projection};

/// Why a (projection, group) stopped folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) seq: u64,
    pub(crate) message: String,
}

/// Applies one event, turning an error or a panic into a failure at `seq`.
pub(crate) fn apply_guarded<P: Projection>(
    p: &P,
    state: &mut P::State,
    seq: u64,
    event: EventRef<'_>,
) -> Result<(), Failure> {
    guarded(seq, || p.apply(state, &event))
}

/// Runs one fold step, turning an error or a panic into a failure at `seq`.
pub(crate) fn guarded(
    seq: u64,
    apply: impl FnOnce() -> Result<(), ApplyError>,
) -> Result<(), Failure> {
    match catch_unwind(AssertUnwindSafe(apply)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure { seq, message: e.0 }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(Failure {
                seq,
                message: format!("panicked: {message}"),
            })
        }
    }
}

/// A served state (with the watermark it was folded to) against a replay of the log up
/// to that watermark: `None` when they agree, else the difference in words. Both
/// failing the same way is agreement; a log that cannot be read is an error, not
/// agreement. Per-group and relay-wide verification share it.
pub(crate) fn compare_with_replay<S: PartialEq + std::fmt::Debug>(
    served: Result<(S, u64), EngineError>,
    replayed: Result<S, EngineError>,
) -> Result<Option<String>, EngineError> {
    match (served, replayed) {
        (Ok((a, _)), Ok(b)) if a == b => Ok(None),
        (Ok((a, at)), Ok(b)) => Ok(Some(format!(
            "at sequence {at}: served {a:?}\nreplay {b:?}"
        ))),
        (Err(EngineError::Store(e)), _) | (_, Err(EngineError::Store(e))) => {
            Err(EngineError::Store(e))
        }
        (Err(a), Err(b)) if a.to_string() == b.to_string() => Ok(None),
        (a, b) => Ok(Some(format!(
            "served {:?}\nreplay {:?}",
            a.map(|_| "state"),
            b.map(|_| "state")
        ))),
    }
}
