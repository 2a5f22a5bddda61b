//! Resuming an interrupted import where it stopped.
//!
//! Every batch an import commits carries, in the same LMDB transaction (a setting
//! written with [`highwater_store::Pipeline::submit_with_setting`]), the import's
//! [`Progress`]: how many records of the input were decided when the batch was sent,
//! a fingerprint of those records and of what decides them, and how many of them were
//! events and were refused. Whatever stops the import — a kill, a full disk, a power
//! cut — the stored progress describes the log exactly: every event accepted among
//! those records is in it, and nothing decided after them is.
//!
//! A re-run of the same input reads that many records, compares their fingerprint,
//! and skips them without deciding them again; deciding then continues against a log
//! that is the clean import's own prefix, so the log it ends with is the clean
//! import's, byte for byte (as long as nothing else wrote to the database in between).
//! Deciding a refused record again against the later state — which can accept it, or
//! refuse an event the clean import accepted — is what this prevents.
//!
//! The database keeps the progress of one import, the latest. An input whose first
//! records differ from the recorded ones (another file, or the same file with other
//! options) is decided from its first record.

use std::collections::VecDeque;
use std::io;

use anyhow::{Context, Result};
use highwater_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::input::{Item, Records};

/// The setting (`app.import.progress` in the database's `meta` table) that holds the
/// progress of the latest import, as JSON.
pub const PROGRESS_SETTING: &str = "import.progress";

/// Records read while looking for the resume point are kept, up to this many bytes, so
/// that an input that turns out to be another one can be decided from its start
/// without being read again.
const KEEP_BYTES: usize = 16 << 20;

/// How far into an input: the records read (blank lines are not records), the line of
/// the last of them, and a fingerprint of them all and of what decides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Records read.
    pub records: u64,
    /// The line the last of them starts on (0 before the first).
    pub line: u64,
    /// A SHA-256 chain: of the seed, then of each record after the one before.
    pub fingerprint: [u8; 32],
}

impl Position {
    /// Before the first record of an import whose decisions depend on `seed` (the
    /// mode, `--kinds`, the limits, the relay key and the policy options): the same
    /// records decided under other rules are another import.
    pub fn start(seed: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"highwater import 1\0");
        hash.update(seed);
        Self {
            records: 0,
            line: 0,
            fingerprint: hash.finalize().into(),
        }
    }

    /// After `item`, the next record.
    #[must_use]
    pub fn after(&self, item: &Item) -> Self {
        let mut hash = Sha256::new();
        hash.update(self.fingerprint);
        match item {
            Item::Record { bytes, .. } => {
                hash.update([0]);
                hash.update(bytes);
            }
            Item::Oversized { size, .. } => {
                hash.update([1]);
                hash.update(size.to_be_bytes());
            }
            Item::Malformed { message, .. } => {
                hash.update([2]);
                hash.update(message.as_bytes());
            }
        }
        Self {
            records: self.records + 1,
            line: item.line(),
            fingerprint: hash.finalize().into(),
        }
    }
}

/// How far an import got: the records decided (every event accepted among them is in
/// the log, nothing decided after them is), and how many of them were events and were
/// refused, counted from the input's first record over every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The last record decided.
    pub position: Position,
    /// Records that were events (kept by `--kinds`), up to it.
    pub events: u64,
    /// Records refused, up to it.
    pub refused: u64,
    /// The import read its input to the end (or to an error that ended it).
    pub complete: bool,
}

impl Default for Progress {
    /// Nothing decided yet, with an empty seed.
    fn default() -> Self {
        Self::start(&[])
    }
}

/// The stored form of [`Progress`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredProgress {
    records: u64,
    line: u64,
    fingerprint: String,
    events: u64,
    refused: u64,
    complete: bool,
}

impl Progress {
    /// Nothing decided yet, of an import with this `seed` (see [`Position::start`]).
    pub fn start(seed: &[u8]) -> Self {
        Self {
            position: Position::start(seed),
            events: 0,
            refused: 0,
            complete: false,
        }
    }

    /// The stored form (JSON).
    pub fn encode(&self) -> Vec<u8> {
        let stored = StoredProgress {
            records: self.position.records,
            line: self.position.line,
            fingerprint: hex::encode(self.position.fingerprint),
            events: self.events,
            refused: self.refused,
            complete: self.complete,
        };
        serde_json::to_vec(&stored).expect("a struct of numbers and strings serialises")
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let stored: StoredProgress = serde_json::from_slice(bytes)?;
        let fingerprint = hex::decode(&stored.fingerprint)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .context("the fingerprint is not 64 hex digits")?;
        Ok(Self {
            position: Position {
                records: stored.records,
                line: stored.line,
                fingerprint,
            },
            events: stored.events,
            refused: stored.refused,
            complete: stored.complete,
        })
    }
}

/// The progress of the latest import into `store`, if one recorded any.
pub fn recorded(store: &Store) -> Result<Option<Progress>> {
    store
        .setting(PROGRESS_SETTING)?
        .map(|bytes| {
            Progress::decode(&bytes).context(
                "the import progress stored in the database is unreadable (--from-start ignores it)",
            )
        })
        .transpose()
}

/// Where an import of an input starts, found by [`skip_decided`].
#[derive(Debug)]
pub enum Resume {
    /// No import recorded its progress: from the first record.
    Fresh,
    /// The input begins with the records the recorded import decided; they were
    /// read and skipped, and deciding continues after them from this progress.
    After(Progress),
    /// The recorded import was of another input, or had other options.
    Other {
        /// What it recorded.
        recorded: Progress,
        /// The records read to find out were put back, so the input is read again
        /// from its first record; `false` when there were too many to keep (then the
        /// input must be opened again).
        rewound: bool,
    },
}

/// Reads as many records of `records` as `recorded` says were decided, and compares
/// their fingerprint (from `start`, which carries the seed) with the recorded one. When
/// they match, the records stay read: the import goes on from the next one. When they
/// do not (or the input ends first), what was read is put back, if it was at most
/// [`KEEP_BYTES`]: the import decides this input from its first record.
pub fn skip_decided(
    records: &mut Records,
    recorded: Option<Progress>,
    start: Position,
) -> Result<Resume> {
    let Some(recorded) = recorded else {
        return Ok(Resume::Fresh);
    };
    let mut position = start;
    let mut kept: Vec<Item> = Vec::new();
    let mut kept_bytes = 0usize;
    let mut overflowed = false;
    let mut error: Option<io::Error> = None;
    while position.records < recorded.position.records {
        match records.next_item() {
            Ok(Some(item)) => {
                position = position.after(&item);
                if !overflowed {
                    kept_bytes += match &item {
                        Item::Record { bytes, .. } => bytes.len(),
                        Item::Oversized { .. } | Item::Malformed { .. } => 64,
                    };
                    if kept_bytes > KEEP_BYTES {
                        overflowed = true;
                        kept = Vec::new();
                    } else {
                        kept.push(item);
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    if position.records == recorded.position.records
        && position.fingerprint == recorded.position.fingerprint
    {
        return Ok(Resume::After(Progress {
            position,
            complete: false,
            ..recorded
        }));
    }
    if overflowed {
        return Ok(Resume::Other {
            recorded,
            rewound: false,
        });
    }
    records.put_back(VecDeque::from(kept), error);
    Ok(Resume::Other {
        recorded,
        rewound: true,
    })
}
