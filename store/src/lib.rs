//! The append-only LMDB event log of highwater.
//!
//! One LMDB environment holds the log of Nostr events (key: sequence number, never
//! reused; a compaction may leave holes),
//! an event-id index for duplicate detection, a per-group index so that "the events of
//! group G after watermark W" is one range scan, and a checkpoint table for the engine.
//! A single writer thread owns write transactions and commits whatever callers have
//! queued in one durable transaction (group commit). The two indexes follow the log
//! behind an index watermark: a commit writes its records and group heads, and the
//! commit that brings the unmerged tail to [`StoreOptions::index_tail`] records (or a
//! [share](StoreOptions::index_tail_share) of the indexed ones, when more) merges it
//! into both in one sorted pass; every lookup joins the index with the tail, which
//! each process holds in memory, so reads and duplicate checks stay exact. This is the only crate that
//! touches LMDB or raw stored bytes; layouts live in one module (`codec`).
//!
//! Appends acknowledge after the durable commit: [`Store::append`] blocks, and the
//! [`Ticket`] of [`Store::submit`] can be waited on or `.await`ed (it needs no
//! particular async runtime; the writer thread completes it). Errors keep their
//! source: a [`StoreError`] tells a full map, a full disk, too many readers, another
//! process's resize and an existing key apart, with LMDB's or the operating system's
//! error shared behind an `Arc` by every caller of a failed group commit.
//!
//! Feature `test-support` exposes raw hooks for tests and benchmarks (raw record and
//! checkpoint bytes, raw scans, a raw-LMDB append baseline). They bypass validation and
//! can write corrupt bytes: applications never enable it.
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

#![warn(missing_docs, clippy::missing_errors_doc, clippy::missing_panics_doc)]

#[cfg(feature = "test-support")]
mod baseline;
mod checkpoints;
mod codec;
mod commit;
mod compact;
mod env;
mod error;
mod event;
mod follow;
mod groups;
mod ids;
mod indexes;
mod lockfile;
mod merge;
mod numbers;
mod oneshot;
mod options;
mod reads;
mod request;
mod round;
mod shared;
mod store;
mod submit;
mod tail;
mod upgrade;
mod validate;
mod writer;

#[cfg(feature = "test-support")]
pub use crate::baseline::RawLog;
pub use crate::checkpoints::{Checkpoint, CheckpointHeader, CheckpointWrite};
pub use crate::codec::RecordHeader;
#[cfg(feature = "test-support")]
pub use crate::codec::{RECORD_HEADER_LEN, seal_record};
pub use crate::commit::{AppendOutcome, CommitObserver, Committed};
pub use crate::compact::{CompactReport, ExpiryRule};
pub use crate::error::{Corruption, InvalidEvent, StoreError};
pub use crate::event::{EventRef, TagRef};
#[cfg(feature = "test-support")]
pub use crate::follow::read_transactions_on_this_thread;
pub use crate::groups::GroupInfo;
pub use crate::indexes::IndexReport;
#[cfg(feature = "test-support")]
pub use crate::merge::on_index_merge;
pub use crate::options::{BULK_INDEX_TAIL_SHARE, StoreOptions};
pub use crate::reads::{GroupScan, LogIter};
pub use crate::store::Store;
pub use crate::submit::{Pipeline, Prepared, PreparedChunk, Ticket};
pub use crate::upgrade::{UpgradeOutcome, upgrade};
#[cfg(feature = "test-support")]
pub use crate::upgrade::{content_digest, downgrade_to_v1, downgrade_to_v2};
pub use crate::validate::{Limits, PreparedEvent, group_of, group_tag_for_kind, is_state_kind};
/// LMDB's error types (from heed), the sources a [`StoreError`] carries.
pub use heed::{Error as LmdbError, MdbError};
