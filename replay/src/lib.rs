//! Library side of the `highwater` command-line tool: what the commands in the binary
//! (`src/cli/`) are built on, kept apart so that the commands read as a small crate.
//!
//! - [`generate`]: the deterministic NIP-29 workload generator behind `highwater generate`.
//! - [`bench`]: the benchmark harness behind `highwater bench` — every row, its
//!   baselines and the report.
//! - [`import`]: the importer behind `highwater import` (formats, the write policy in
//!   file order, refusals).
//! - [`progress`]: progress bars on stderr, shared by the commands and the harness.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod generate;
pub mod import;
pub mod progress;
