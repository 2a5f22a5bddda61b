//! Shared code of the fuzz targets: the harnesses (also run, bounded, by
//! `tests/tests/reliability_hostile.rs`) and one long-lived harness per fuzzing process.

pub mod harness;

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use harness::{Harness, RUNS_PER_HARNESS};

static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

/// Runs `target` on `data` with the process's harness, rebuilt every
/// [`RUNS_PER_HARNESS`] inputs so disk and memory stay bounded. The stores live in
/// `/dev/shm` when it exists, where `fsync` costs nothing.
pub fn run(target: fn(&mut Harness, &[u8]), data: &[u8]) {
    let mut guard = HARNESS.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.as_ref().is_some_and(|h| h.runs() >= RUNS_PER_HARNESS) {
        *guard = None;
    }
    let shm = Path::new("/dev/shm");
    let harness = guard.get_or_insert_with(|| Harness::new(shm.is_dir().then_some(shm)));
    target(harness, data);
}
