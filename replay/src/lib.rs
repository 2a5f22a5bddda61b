//! Library side of the `highwater` command-line tool: what the commands in the binary
//! (`src/cli/`) are built on, kept apart so that the commands read as a small crate.
//!
//! - [`import`]: the importer behind `highwater import` (formats, the write policy in
//!   file order, refusals).
//! - [`progress`]: progress bars on stderr, shared by the commands.
//!
//! The workload generator behind `highwater generate` and `demo` is the
//! `highwater-workload` crate, and the benchmark harness behind `highwater bench` the
//! `highwater-bench` crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod import;
pub mod progress;
