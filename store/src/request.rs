//! What callers send the writer thread: batches to append and write jobs, and what a
//! compaction job answers so that the writer takes its counts into memory.

use std::any::Any;
use std::sync::Arc;

use crossbeam_channel::Sender;
use heed::RwTxn;

use crate::codec::GroupEntry;
use crate::commit::AppendOutcome;
use crate::env::Dbs;
use crate::error::StoreError;
use crate::validate::PreparedEvent;

pub(crate) type AnyBox = Box<dyn Any + Send>;
pub(crate) type Job = Box<dyn Fn(&mut RwTxn<'_>, &Dbs) -> Result<AnyBox, StoreError> + Send>;

pub(crate) enum Request {
    Append(Append),
    Exec {
        job: Job,
        reply: Sender<Result<AnyBox, StoreError>>,
    },
}

/// A batch of events to append, as submitted.
pub(crate) struct Append {
    pub(crate) events: Vec<PreparedEvent>,
    /// The ordered pipeline this batch belongs to, if any.
    pub(crate) pipeline: Option<u64>,
    /// A `meta` entry written in the batch's transaction: durable exactly when the
    /// batch is.
    pub(crate) setting: Option<Setting>,
    pub(crate) reply: crate::oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
}

/// An application setting as a `meta` entry: its full key and its value.
pub(crate) struct Setting {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// What one compaction transaction did, taken into this process's memory by the writer
/// after its commit.
pub(crate) struct Removed {
    /// The entries of the groups it changed, as committed.
    pub(crate) groups: Vec<(Arc<str>, GroupEntry)>,
    /// `removed_records` before and after the transaction.
    pub(crate) before: u64,
    pub(crate) after: u64,
    /// Expired records kept as heads.
    pub(crate) kept_heads: u64,
    /// The index watermark after the transaction, which merged the tail first.
    pub(crate) watermark: u64,
}
