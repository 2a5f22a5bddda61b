//! Library side of the `highwater` command-line tool.
//!
//! - [`generate`]: the deterministic NIP-29 workload generator behind `highwater generate`.

#![forbid(unsafe_code)]

pub mod generate;
