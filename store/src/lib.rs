//! The append-only LMDB event log of highwater.
//!
//! One LMDB environment holds the log of Nostr events (key: dense sequence number),
//! an event-id index for duplicate detection, a per-group index so that "the events of
//! group G after watermark W" is one range scan, and a checkpoint table for the engine.
//! A single writer thread owns write transactions and commits whatever callers have
//! queued in one durable transaction (group commit). This is the only crate that
//! touches LMDB or raw stored bytes; layouts live in one module (`codec`).
//!
//! ```
//! use highwater_store::{Store, StoreOptions, AppendOutcome};
//! use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), StoreOptions::default())?;
//! let keys = Keys::generate();
//! let event = EventBuilder::new(Kind::GroupCreateGroup, "")
//!     .tag(Tag::parse(["h", "pizza"])?)
//!     .finalize(&keys)?;
//! assert_eq!(store.append(&event)?, AppendOutcome::Appended(1));
//! assert_eq!(store.append(&event)?, AppendOutcome::Duplicate(1));
//! assert_eq!(store.group("pizza").map(|g| g.head), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod baseline;
mod checkpoints;
mod codec;
mod env;
mod error;
mod event;
mod groups;
mod reads;
mod store;
mod validate;
mod writer;

#[doc(hidden)]
pub use crate::baseline::RawLog;
pub use crate::checkpoints::{Checkpoint, CheckpointHeader, CheckpointWrite};
pub use crate::error::{Corruption, Rejection, StoreError};
pub use crate::event::{EventRef, TagRef};
pub use crate::groups::GroupInfo;
pub use crate::reads::{GroupScan, LogIter};
pub use crate::store::{Prepared, Store, StoreOptions, Ticket};
pub use crate::validate::{Limits, PreparedEvent, group_of, group_tag_for_kind, is_state_kind};
pub use crate::writer::{AppendOutcome, CommitObserver, Committed};
