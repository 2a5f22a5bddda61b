//! The live feed's position: how far every committed event, whichever process wrote it
//! (this relay, an import beside it, another relay process on the same database), has
//! been handed to the live subscriptions, in log order, once, together with the
//! re-rendered state events of every group it changed.
//!
//! One position, `delivered`, says how far the feed got. The acknowledger advances it
//! over this relay's own commits before their authors get `OK` (with the events it
//! already holds, reading only the gaps — other processes' commits in between — back
//! from the log); a follower thread advances it to the log head a few times a second,
//! which is how other processes' commits arrive when this relay is not writing. Both
//! hold one lock while they deliver, so deliveries never interleave or repeat. The
//! position is held in the relay's shared state; the delivery, which reads the whole of
//! that state, is `delivery.rs`.

use parking_lot::{Mutex, MutexGuard};

/// How far the live feed got.
#[derive(Debug)]
pub(crate) struct Feed {
    delivered: Mutex<u64>,
}

impl Feed {
    /// A feed that starts after `head` (what is already in the log when the relay
    /// starts is history, not news).
    pub(crate) fn new(head: u64) -> Self {
        Self {
            delivered: Mutex::new(head),
        }
    }

    /// The position, held for one delivery: no other delivery runs until it is
    /// dropped.
    pub(crate) fn hold(&self) -> MutexGuard<'_, u64> {
        self.delivered.lock()
    }
}
