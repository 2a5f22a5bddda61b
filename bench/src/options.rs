//! What a run measures: the workload's size and seed, where to work, what to print, and
//! the importer the policy row times.

use std::path::PathBuf;

use super::policed::PolicedImporter;

/// What to measure: the workload's size and seed, and where to work.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events in the generated workload (at least 10).
    pub events: usize,
    /// Groups in the generated workload.
    pub groups: usize,
    /// Seed of the workload (the same seed gives the same events).
    pub seed: u64,
    /// Print one JSON object per row instead of a table.
    pub json: bool,
    /// Where to create the temporary working directory (default: the system's).
    pub dir: Option<PathBuf>,
    /// Reuse this workload file if it exists (it must come from the same `events`,
    /// `groups` and `seed`), or generate it there and keep it.
    pub workload: Option<PathBuf>,
    /// Measure only the import-rate-as-the-log-grows row (for `--events 10000000`).
    pub growth_only: bool,
    /// Also draw the rows against their goals as an SVG chart in this file.
    pub plot: Option<PathBuf>,
    /// The tool's import through the write policy, timed by the policy row.
    pub importer: PolicedImporter,
}
