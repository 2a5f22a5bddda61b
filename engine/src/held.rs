//! The slots whose read lock this thread holds while a read closure runs, so that a
//! nested read of the same slot neither waits for its own lock nor deadlocks. Per-group
//! and relay-wide reads share it.

use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn key<T>(slot: &Arc<T>) -> usize {
    Arc::as_ptr(slot).cast::<()>() as usize
}

/// Removes its slot from the thread's list when the read ends (or unwinds).
pub(crate) struct Guard(usize);

/// Adds `slot` to the thread's list, and says whether it was there already (a
/// nested read of the same slot).
pub(crate) fn enter<T>(slot: &Arc<T>) -> (Guard, bool) {
    let k = key(slot);
    let nested = HELD.with(|h| {
        let mut h = h.borrow_mut();
        let nested = h.contains(&k);
        h.push(k);
        nested
    });
    (Guard(k), nested)
}

impl Drop for Guard {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|&k| k == self.0) {
                h.remove(i);
            }
        });
    }
}
