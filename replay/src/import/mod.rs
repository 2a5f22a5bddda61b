//! The importer behind `highwater import`: reading dumps in the formats relays and
//! tools write (`input`), turning records into events (`parse`), deciding each event
//! with the relay's write policy in file order and submitting batches through one
//! ordered pipeline (`order`), the batch loop (`batches`), the `--rejects` file
//! (`rejects`), and the progress each commit records so that a re-run resumes where an
//! interrupted import stopped (`resume`). The command itself (`src/cli/import/`) parses
//! arguments and prints.

mod batches;
mod input;
mod order;
mod parse;
mod rejects;
mod resume;

use std::collections::BTreeMap;

use highwater_store::Limits;
use nostr::prelude::Event;

pub use self::batches::{Tick, import, import_events};
pub use self::input::{Item, Records};
pub use self::order::Pipeline;
pub use self::parse::{Refusal, human};
pub use self::rejects::Rejects;
pub use self::resume::{PROGRESS_SETTING, Position, Progress, Resume, recorded, skip_decided};

/// Exit status: every record was imported or was already present.
pub const EXIT_OK: u8 = 0;
/// Exit status: some records were refused (the rest were imported).
pub const EXIT_REFUSED: u8 = 1;
/// Exit status: nothing in the input could be read as an event.
pub const EXIT_UNREADABLE: u8 = 2;
/// Exit status: the import could not run or stopped (database, options, I/O, --strict).
pub const EXIT_ERROR: u8 = 3;

/// Validated batches waiting for their decisions (besides the one being validated):
/// room to keep validating through a run of forced commits, within the memory budget.
pub const LOOKAHEAD: usize = 2;

/// How many refusals the summary prints with their line numbers.
pub const SHOWN_REFUSALS: usize = 10;

/// Which events an import keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindFilter {
    /// Every event.
    All,
    /// Events that belong to a group.
    Nip29,
}

impl KindFilter {
    /// Whether an import with this filter keeps `event`.
    pub fn keeps(self, event: &Event) -> bool {
        match self {
            KindFilter::All => true,
            KindFilter::Nip29 => {
                let k = event.kind.as_u16();
                (9_000..=9_030).contains(&k)
                    || (39_000..=39_009).contains(&k)
                    || event.tags.iter().any(|t| t.kind() == "h")
            }
        }
    }
}

/// How to import.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Stop at the first refused record (`--strict`) instead of counting it.
    pub strict: bool,
    /// Which events to keep (`--kinds`).
    pub kinds: KindFilter,
    /// Most events per submitted batch.
    pub batch: usize,
    /// Most encoded bytes per submitted batch.
    pub batch_bytes: usize,
    /// Where deciding starts: before the first record ([`Progress::start`]), or after
    /// the records an earlier run of the same import decided ([`skip_decided`]).
    pub start: Progress,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            strict: false,
            kinds: KindFilter::All,
            batch: 16_384,
            batch_bytes: 16 << 20,
            start: Progress::start(&[]),
        }
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records read (blank lines excluded).
    pub records: u64,
    /// Records that were events.
    pub events: u64,
    /// Events appended to the log.
    pub accepted: u64,
    /// Events the log already held.
    pub duplicate: u64,
    /// Left out by `--kinds`.
    pub skipped: u64,
    /// Refusals by category.
    pub refused: BTreeMap<String, u64>,
    /// The first few refusals: line and message.
    pub first: Vec<(u64, String)>,
    /// Why reading stopped before the end, if it did.
    pub input_error: Option<String>,
    /// Commits forced so that a decision would see the state before it.
    pub flushes: u64,
    /// The progress at the end, counted from the input's first record over every run
    /// of this import (the counts above are this run's).
    pub progress: Progress,
}

impl Summary {
    /// Refused records, all categories together.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Counts a refusal of the record at `line`, keeping its message among the first few.
    pub fn refuse(&mut self, line: u64, refusal: &Refusal) {
        *self.refused.entry(refusal.category.clone()).or_default() += 1;
        if self.first.len() < SHOWN_REFUSALS {
            self.first.push((line, refusal.message.clone()));
        }
    }

    /// The exit status this summary calls for: that of the whole import, earlier runs
    /// of it included, so a resumed import ends as the clean one would.
    pub fn exit_status(&self) -> u8 {
        if self.progress.events == 0 {
            EXIT_UNREADABLE
        } else if self.progress.refused > 0 || self.input_error.is_some() {
            EXIT_REFUSED
        } else {
            EXIT_OK
        }
    }
}

/// The longest record kept in memory: the largest event any kind may have, with room
/// for JSON's escapes. Anything longer is refused after reading no more than this.
pub fn record_cap(limits: &Limits) -> usize {
    limits.max_any_event_bytes() + limits.max_any_event_bytes() / 4 + 4_096
}
