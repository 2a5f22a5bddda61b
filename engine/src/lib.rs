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
//!
//! # Changes
//!
//! [`Engine::subscribe`] returns a bounded [`Subscription`] to every later commit, in
//! sequence order. The writer never waits for a subscriber and never converts an event
//! for it: a subscriber that falls behind its capacity gets [`RecvError::Lagged`]
//! with the sequence number to re-read the log from ([`Store::iter_from`]).
//!
//! # Async (feature `tokio`)
//!
//! `append_async` resolves once the event is durable, without blocking a runtime
//! thread (the writer completes the group commit's [`Ticket`](highwater_store::Ticket),
//! which is a future); `read_async` and `load_group_async` run a possible catch-up on
//! tokio's blocking pool; a [`Subscription`] is a `futures_core::Stream`. The feature
//! is off by default, so blocking users compile neither tokio nor `futures-core`.
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # {
//! use std::future::poll_fn;
//! use std::pin::Pin;
//!
//! use futures_core::Stream;
//! use highwater_engine::{ApplyError, CodecError, Engine, EngineOptions, Kinds, Projection};
//! use highwater_store::{AppendOutcome, EventRef, Store, StoreOptions};
//! use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
//!
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
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Builder::new_multi_thread().build()?;
//! runtime.block_on(async {
//!     let dir = tempfile::tempdir()?;
//!     let store = Store::open(dir.path(), StoreOptions::default())?;
//!     let mut builder = Engine::builder(store, EngineOptions::default());
//!     let count = builder.add(Count)?;
//!     let engine = builder.build()?;
//!     let mut changes = engine.subscribe();
//!
//!     // Concurrent appends from tasks share group commits.
//!     let keys = Keys::generate();
//!     let mut tasks = Vec::new();
//!     for i in 0..10 {
//!         let event = EventBuilder::new(Kind::Custom(9), format!("hello {i}"))
//!             .tag(Tag::parse(["h", "pizza"])?)
//!             .finalize(&keys)?;
//!         let engine = engine.clone();
//!         tasks.push(tokio::spawn(async move { engine.append_async(&event).await }));
//!     }
//!     for task in tasks {
//!         assert!(matches!(task.await??, AppendOutcome::Appended(_)));
//!     }
//!     assert_eq!(count.read_async("pizza", |n| *n).await?, 10);
//!
//!     // The changes, as a stream (here polled by hand; `StreamExt::next` works too).
//!     let first = poll_fn(|cx| Pin::new(&mut changes).poll_next(cx)).await;
//!     assert_eq!(first.expect("open")?.seq, 1);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::missing_errors_doc, clippy::missing_panics_doc)]

#[cfg(feature = "tokio")]
mod async_api;
mod builder;
mod checkpoints;
mod engine;
mod error;
mod fold;
mod handle;
mod held;
mod observer;
mod projection;
mod rebuild;
mod registry;
mod relay_wide;
mod retention;
mod runtime;
mod slots;
mod status;
mod subscribe;
mod warmup;

pub use crate::builder::EngineBuilder;
pub use crate::engine::{DEFAULT_SUBSCRIPTION_CAPACITY, Engine, EngineOptions};
pub use crate::error::EngineError;
pub use crate::handle::{Handle, ResolvedGroup};
pub use crate::projection::{ApplyError, CodecError, Kinds, Projection, decode_rkyv, encode_rkyv};
pub use crate::rebuild::{RebuildOptions, RebuildWalk};
pub use crate::relay_wide::{RELAY_WIDE_GROUP, RelayWideHandle, RelayWideProjection};
pub use crate::retention::{DEFAULT_COMPACT_CHUNK, RetentionPolicy};
pub use crate::status::{
    FoldCounters, GroupStatus, LoadState, ProjectionStatus, RebuildReport, RelayWideCounters,
    RelayWideStatus,
};
pub use crate::subscribe::{Notification, RecvError, Subscription};
pub use crate::warmup::Warmup;
pub use highwater_store::{CompactReport, EventRef, Store, StoreError, TagRef};
