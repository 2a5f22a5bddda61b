//! Group numbers: the lookups of the engine's catch-up and reads, in one documented
//! `impl Store` block (see its documentation).

use crate::error::StoreError;
use crate::groups::GroupInfo;
use crate::store::Store;

/// # Group numbers: the engine's fast paths
///
/// The log numbers each group densely from 0 in the order of its first event and
/// never renumbers it ([`GroupInfo::no`]); the group index and the engine's
/// checkpoints are keyed by that number. [`Store::group`] is the lookup by name most
/// callers need. These are the lookups of the engine's catch-up and reads: a read
/// looks its group up once with [`Store::group_no_head`] (which takes in other
/// processes' commits) and goes on by number; a loop over many groups calls
/// [`Store::refresh`] once and then asks this process's in-memory table, which the
/// other three answer from without looking at the log again.
impl Store {
    /// The group with number `no`, as this process last took the log in.
    pub fn group_by_no(&self, no: u32) -> Option<GroupInfo> {
        self.shared().groups.info(no)
    }

    /// The group's number and its head as committed by any process: the hot-path
    /// lookup of every read of the engine.
    ///
    /// # Errors
    ///
    /// When other processes' events cannot be read.
    pub fn group_no_head(&self, name: &str) -> Result<Option<(u32, u64)>, StoreError> {
        self.refresh()?;
        Ok(self.shared().groups.no_head(name))
    }

    /// The group's number as this process last took the log in (no look for other
    /// processes' commits: for loops that [`Store::refresh`] once before).
    pub fn group_no(&self, name: &str) -> Option<u32> {
        self.shared().groups.no(name)
    }

    /// Head of group `no` (0 if unknown) as this process last took it in; call
    /// [`Store::refresh`] first for other processes' commits.
    pub fn group_head(&self, no: u32) -> u64 {
        self.shared().groups.head(no)
    }
}
