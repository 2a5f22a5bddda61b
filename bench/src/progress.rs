//! Progress lines on stderr, stamped with the time since the run started, and the
//! number of cores the rows name.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// A progress line on stderr, stamped with the time since the start.
pub(super) fn say(message: std::fmt::Arguments<'_>) {
    let elapsed = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{elapsed:7.1} s] {message}");
}

/// The cores this process may run on.
pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Starts the clock of [`say`] (the first call to either starts it).
pub(super) fn start() {
    START.get_or_init(Instant::now);
}
