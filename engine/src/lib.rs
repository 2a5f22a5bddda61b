//! The projection engine of highwater: per-group watermarks, fully-loaded reads,
//! checkpoints.
//!
//! Register [`Projection`]s (pure, deterministic folds) over a [`Store`]; read a
//! group's state through the returned [`Handle`]. A read first makes the group *fully
//! loaded* — its watermark equals the group's head in the log — by loading its
//! checkpoint (if valid and of the same version) and folding the group's tail; one
//! thread does this per group while others wait. Commits are folded into groups that
//! are already loaded, so hot groups never need a catch-up. Checkpoints only save time:
//! deleting them all changes no answer. There is no global "warmed" state anywhere.
//! The engine knows nothing about NIP-29.
//!
//! ```
//! use highwater_engine::{ApplyError, CodecError, Engine, EngineOptions, Kinds, Projection};
//! use highwater_store::{EventRef, Store, StoreOptions};
//! use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
//!
//! /// Counts the events of each group.
//! struct Count;
//! impl Projection for Count {
//!     type State = u64;
//!     fn name(&self) -> &str { "count" }
//!     fn version(&self) -> u64 { 1 }
//!     fn kinds(&self) -> Kinds { Kinds::All }
//!     fn init(&self) -> u64 { 0 }
//!     fn apply(&self, n: &mut u64, _: &EventRef<'_>) -> Result<(), ApplyError> { *n += 1; Ok(()) }
//!     fn encode(&self, n: &u64) -> Result<Vec<u8>, CodecError> { highwater_engine::encode_rkyv(n) }
//!     fn decode(&self, b: &[u8]) -> Result<u64, CodecError> { highwater_engine::decode_rkyv(b) }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), StoreOptions::default())?;
//! let mut builder = Engine::builder(store, EngineOptions::default());
//! let count = builder.add(Count)?;
//! let engine = builder.build()?;
//! let keys = Keys::generate();
//! for text in ["a", "b"] {
//!     let event = EventBuilder::new(Kind::Custom(9), text).tag(Tag::parse(["h", "g"])?).finalize(&keys)?;
//!     engine.append(&event)?;
//! }
//! assert_eq!(count.read("g", |n| *n)?, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod async_api;
mod engine;
mod error;
mod projection;
mod rebuild;
mod runtime;
mod status;
mod subscribe;
mod warmup;

pub use crate::engine::{
    DEFAULT_SUBSCRIPTION_CAPACITY, Engine, EngineBuilder, EngineOptions, Handle,
};
pub use crate::error::EngineError;
pub use crate::projection::{ApplyError, CodecError, Kinds, Projection, decode_rkyv, encode_rkyv};
pub use crate::status::{GroupStatus, LoadState, ProjectionStatus, RebuildReport};
pub use crate::subscribe::{Notification, RecvError, Subscription};
pub use crate::warmup::Warmup;
pub use highwater_store::{EventRef, Store, StoreError, TagRef};
