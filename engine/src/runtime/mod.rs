//! One per-group projection's runtime, `Runtime<P>`, in rooms of one concern each:
//!
//! - `state` — the runtime and its slots (state, watermark, event count, status per
//!   group), the eviction epoch and the counters; everything below builds on it.
//! - `catch_up` — loading a group (checkpoint plus tail) and folding a loaded group's
//!   tail in place, single flight per group.
//! - `read` — the fully-loaded read, over `catch_up`.
//! - `live` — folding this process's commits into loaded, current groups, and eviction.
//! - `checkpoint` — encoding checkpoints of loaded groups and of rebuilt states.
//! - `replay` — the oracle: a full replay of one group, and verify against it.
//! - `rebuild_sink` — rebuilds from sequence 1: one group on the calling thread, and
//!   this projection's side of a full rebuild (`crate::rebuild` walks the log).
//! - `status` — per-projection and per-group reports.
//! - `erased` — `ErasedRuntime`, what the engine needs of a runtime without its state
//!   type, delegating to the rooms above.
//!
//! The rooms depend on each other in that order, never back up it.

mod catch_up;
mod checkpoint;
mod erased;
mod live;
mod read;
mod rebuild_sink;
mod replay;
mod state;
mod status;

pub(crate) use erased::ErasedRuntime;
pub(crate) use state::Runtime;
