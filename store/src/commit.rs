//! What a commit tells its callers and observers: the outcome of each appended event,
//! and the committed events shown to [`CommitObserver`]s.

use crate::event::EventRef;

/// What happened to one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendOutcome {
    /// Written at this sequence number.
    Appended(u64),
    /// Already in the log at this sequence number; nothing was written.
    Duplicate(u64),
}

impl AppendOutcome {
    /// The event's sequence number, new or existing.
    pub fn seq(self) -> u64 {
        match self {
            AppendOutcome::Appended(seq) | AppendOutcome::Duplicate(seq) => seq,
        }
    }
}

/// One committed event, as shown to commit observers.
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Its group (name, number), if it has one.
    pub group: Option<(&'a str, u32)>,
    /// The group's head before this event (0 for its first event, or no group). A
    /// projection whose watermark equals it can fold this event and stay current.
    pub prev_head: u64,
    /// The event itself.
    pub event: EventRef<'a>,
}

/// Called on the writer thread after each commit and before callers are acknowledged.
/// Must be quick and must not call back into the store's write path.
pub trait CommitObserver: Send + Sync {
    /// Receives the events of one commit, in sequence order.
    fn on_commit(&self, batch: &[Committed<'_>]);
}
