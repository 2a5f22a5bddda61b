//! The in-memory table of groups: name ↔ dense group number, head and event count.
//!
//! Loaded from the `groups` database at open and advanced by the writer after each
//! commit, before any caller is acknowledged, so a read that compares a watermark with
//! a head never sees a head older than an acknowledged append.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::HashMap;

/// A snapshot of one group's position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group id (from the `h` or `d` tag).
    pub name: Arc<str>,
    /// The dense number the store uses for the group in its keys.
    pub no: u32,
    /// Sequence number of the group's last event.
    pub head: u64,
    /// Number of events of the group in the log.
    pub count: u64,
}

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    head: AtomicU64,
    count: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct GroupTable {
    /// Keyed by group ids, which clients choose: a hasher keyed per process (aHash),
    /// so that crafted ids cannot pile up in one probe sequence.
    by_name: HashMap<Arc<str>, u32, ahash::RandomState>,
    by_no: Vec<Slot>,
}

impl GroupTable {
    pub(crate) fn no(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_no.len()
    }

    pub(crate) fn head(&self, no: u32) -> u64 {
        self.by_no
            .get(no as usize)
            .map_or(0, |s| s.head.load(Ordering::Acquire))
    }

    pub(crate) fn info(&self, no: u32) -> Option<GroupInfo> {
        let slot = self.by_no.get(no as usize)?;
        Some(GroupInfo {
            name: slot.name.clone(),
            no,
            head: slot.head.load(Ordering::Acquire),
            count: slot.count.load(Ordering::Acquire),
        })
    }

    pub(crate) fn all(&self) -> Vec<GroupInfo> {
        (0..self.by_no.len() as u32)
            .filter_map(|no| self.info(no))
            .collect()
    }

    /// Inserts or updates a group; `no` must be the next dense number for a new group.
    pub(crate) fn upsert(&mut self, name: &str, no: u32, head: u64, count: u64) {
        if let Some(slot) = self.by_no.get(no as usize) {
            slot.head.store(head, Ordering::Release);
            slot.count.store(count, Ordering::Release);
            return;
        }
        debug_assert_eq!(no as usize, self.by_no.len(), "group numbers are dense");
        let name: Arc<str> = name.into();
        self.by_name.insert(name.clone(), no);
        self.by_no.push(Slot {
            name,
            head: AtomicU64::new(head),
            count: AtomicU64::new(count),
        });
    }

    /// Advances an existing group without the write lock.
    pub(crate) fn advance(&self, no: u32, head: u64, count: u64) -> bool {
        match self.by_no.get(no as usize) {
            Some(slot) => {
                slot.head.store(head, Ordering::Release);
                slot.count.store(count, Ordering::Release);
                true
            }
            None => false,
        }
    }
}
