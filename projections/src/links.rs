//! The relay-wide parent links: for each group id, every group that ever named it as
//! `parent` in a metadata event (9007, 9002, 39000), in the order first seen. These are
//! only *candidates*: whether a candidate is a child now is decided from its own and
//! its parent's fully loaded metadata (see `subgroups`).
//!
//! A group's children are written in other groups' logs, so no per-group fold can list
//! them. The index is built lazily, on the first subgroup question: one pass over every
//! group's index entries, reading only the records of the three kinds (the group index
//! carries each event's kind, so other events are skipped without being read). From
//! then on it is kept exact by scanning the log tail from its watermark up to the log
//! head before every answer — the same "fully loaded" rule as the projections,
//! relay-wide for this one small index.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};

use highwater_store::{EventRef, Store, StoreError};

use crate::config::kind;

/// The candidates and how far the log was scanned for them.
#[derive(Debug, Default)]
struct Index {
    /// Whether the first pass over every group has run.
    built: bool,
    /// The log position up to which every event has been taken.
    scanned: u64,
    /// Parent id → candidate children, in the order first seen.
    candidates: BTreeMap<String, Vec<String>>,
    /// (parent, child) pairs already in `candidates`.
    seen: BTreeSet<(String, String)>,
}

impl Index {
    fn take(&mut self, event: EventRef<'_>) {
        if !is_link_kind(event.kind()) {
            return;
        }
        let Some(child) = event.group_id() else {
            return;
        };
        for tag in event.tags() {
            if tag.name() != Some("parent") {
                continue;
            }
            let Some(parent) = tag.get(1).filter(|p| !p.is_empty() && *p != child) else {
                continue;
            };
            if self.seen.insert((parent.to_owned(), child.to_owned())) {
                self.candidates
                    .entry(parent.to_owned())
                    .or_default()
                    .push(child.to_owned());
            }
        }
    }

    fn catch_up(&mut self, store: &Store) -> Result<(), StoreError> {
        if !self.built {
            // Everything up to `head` is covered by the per-group passes (which may see
            // later events too; `seen` makes taking an event twice harmless).
            let head = store.head();
            for group in store.groups() {
                store.scan_group(group.no, 0, is_link_kind, |_, event| {
                    self.take(event);
                    ControlFlow::Continue(())
                })?;
            }
            self.scanned = head;
            self.built = true;
        }
        let head = store.head();
        if self.scanned >= head {
            return Ok(());
        }
        let from = self.scanned + 1;
        store.scan(from, |seq, event| {
            if seq > head {
                return ControlFlow::Break(());
            }
            self.take(event);
            self.scanned = seq;
            ControlFlow::Continue(())
        })
    }
}

/// The kinds whose `parent` tags make links.
fn is_link_kind(k: u16) -> bool {
    [kind::CREATE_GROUP, kind::EDIT_METADATA, kind::METADATA].contains(&k)
}

/// The shared, lazily built index (one per [`Groups`](crate::Groups) and its clones).
#[derive(Debug, Clone, Default)]
pub(crate) struct Links {
    index: Arc<Mutex<Index>>,
}

impl Links {
    /// The candidate children of `parent`, after scanning the log up to its head.
    pub(crate) fn candidates(
        &self,
        store: &Store,
        parent: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        index.catch_up(store)?;
        Ok(index.candidates.get(parent).cloned().unwrap_or_default())
    }

    /// The candidate children of `parent` from a fresh scan of the whole log, ignoring
    /// what this index holds (the oracle's answer).
    pub(crate) fn candidates_by_full_scan(
        store: &Store,
        parent: &str,
    ) -> Result<Vec<String>, StoreError> {
        // A plain scan of the whole log, not the per-group first pass: the oracle takes
        // the other path.
        let mut index = Index {
            built: true,
            ..Index::default()
        };
        index.catch_up(store)?;
        Ok(index.candidates.remove(parent).unwrap_or_default())
    }
}
