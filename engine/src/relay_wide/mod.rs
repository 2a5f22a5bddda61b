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
//!
//! `projection.rs` holds the trait, `runtime.rs` the one state and its watermark (read,
//! catch-up, live folds, checkpoints, rebuild, verify), `handle.rs` the typed handle;
//! this file only names them for the rest of the crate.

mod handle;
mod projection;
mod runtime;

pub use handle::RelayWideHandle;
pub use projection::{RELAY_WIDE_GROUP, RelayWideProjection};
pub(crate) use runtime::{ErasedRelayWide, RelayWideRuntime};
