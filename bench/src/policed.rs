//! The import through the relay's write policy, as the tool runs it. The harness does
//! not depend on the `highwater` tool (the tool depends on it); the tool hands its
//! importer in through [`Options::importer`](crate::Options::importer), so the policy
//! row times the code `highwater import` runs, not a copy of it.

use anyhow::Result;
use highwater_projections::AccessPolicy;
use highwater_store::Store;
use nostr::prelude::Event;

/// An import in progress that decides each event with the write policy, in order.
pub trait PolicedImport {
    /// Validates and decides `events` in order, submits the accepted ones, and returns
    /// once everything accepted is durable. Returns how many were refused.
    ///
    /// # Errors
    ///
    /// When the store fails; a refusal is not an error.
    fn import(&mut self, events: &[Event]) -> Result<u64>;

    /// Commits forced so far so that a decision would see the state before it.
    fn forced_commits(&self) -> u64;
}

/// Starts a [`PolicedImport`] into `store`, deciding with `policy`, with at most
/// `in_flight` batches submitted and not yet acknowledged.
pub type PolicedImporter =
    for<'a> fn(&'a Store, &'a AccessPolicy, usize) -> Box<dyn PolicedImport + 'a>;
