//! Subgroups (NIP-29 "Subgroups"): a group's effective parent and a parent's ordered
//! children, decided across groups from fully loaded metadata.
//!
//! - A group's *declared* parent is the first `parent` tag of the metadata event that
//!   set its metadata (its own fold). It is the *effective* parent while that parent
//!   exists and has not been deleted (9008) since the latest metadata event of the child
//!   naming it: a parent's deletion makes its children roots, and they stay roots after
//!   the parent is re-created until they name it again. The child's *attachment* is the
//!   first event of its run naming the parent that comes after the parent's latest 9008.
//! - A parent's children are the groups whose effective parent it is. Candidates come
//!   from the relay-wide `links` index (every group that ever named it); each is then
//!   checked against its own state. Order: children attached before the parent's latest
//!   metadata event with `child` tags follow that order — every child it names when it
//!   is a relay 39000 (a snapshot of the list, whose children may be logged after it);
//!   the others come after, by attachment.
//!
//! Log positions are compared through the store's id index (`seq_of`), so the folds
//! only record event ids. The rules are written once, over [`Reads`]: a write decision
//! reads them with a writer's overlay (its pending events count as logged, after every
//! committed one), every other query from the committed state.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::groups::Groups;
use crate::metadata::Metadata;
use crate::reads::Reads;

/// The effective link of a child to its parent.
struct Link {
    parent: String,
    /// The log position of the attachment (the order key among siblings).
    attached_at: u64,
}

impl Reads<'_> {
    fn link(&self, child: &str) -> Result<Option<Link>, Error> {
        let (declared, naming) = self.with::<Metadata, _>(child, |s| {
            (s.metadata().parent.clone(), s.naming().to_vec())
        })?;
        let Some(parent) = declared else {
            return Ok(None);
        };
        if parent == child || naming.is_empty() {
            return Ok(None);
        }
        let (exists, deleted_by) = self.with::<Metadata, _>(&parent, |s| {
            (s.lifecycle().exists(), s.deleted_by().copied())
        })?;
        if !exists {
            return Ok(None);
        }
        let deleted_at = match deleted_by {
            Some(id) => self.position(&id)?,
            None => 0,
        };
        // The first naming event after the parent's latest deletion (the run is in log
        // order, so its positions increase): a binary search over positions.
        let (mut low, mut high) = (0, naming.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.position(&naming[middle])? > deleted_at {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        let Some(first) = naming.get(low) else {
            return Ok(None);
        };
        Ok(Some(Link {
            parent,
            attached_at: self.position(first)?,
        }))
    }

    /// The effective parent of `group` (`None` for a root, an unknown or deleted group).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded, [`Error::Store`] when
    /// reading the relay-wide parent links from the log fails.
    pub(crate) fn parent(&self, group: &str) -> Result<Option<String>, Error> {
        Ok(self.link(group)?.map(|l| l.parent))
    }

    /// The children of `group`, in order (empty when it does not exist).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded, [`Error::Store`] when
    /// reading the relay-wide parent links from the log fails.
    pub(crate) fn children(&self, group: &str) -> Result<Vec<String>, Error> {
        let (exists, order, order_by, by_snapshot) = self.with::<Metadata, _>(group, |s| {
            let (order, by) = s.child_order();
            (
                s.lifecycle().exists(),
                order.to_vec(),
                by.copied(),
                s.child_order_by_snapshot(),
            )
        })?;
        if !exists {
            return Ok(Vec::new());
        }
        let candidates = self.candidates(group)?;
        let mut children = Vec::new();
        for candidate in candidates {
            if let Some(link) = self.link(&candidate)?
                && link.parent == group
            {
                children.push((candidate, link.attached_at));
            }
        }
        let ordered_at = match order_by {
            // A relay's 39000 states the whole list, whenever its children were logged.
            Some(_) if by_snapshot => u64::MAX,
            Some(id) => self.position(&id)?,
            None => 0,
        };
        children.sort_by_key(
            |(child, attached_at)| match order.iter().position(|c| c == child) {
                Some(place) if *attached_at < ordered_at => (false, place, 0),
                _ => (true, 0, *attached_at),
            },
        );
        Ok(children.into_iter().map(|(child, _)| child).collect())
    }

    /// Whether making `parent` the parent of `group` would close a cycle: `parent` is
    /// `group` itself or has `group` among its effective ancestors.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded, [`Error::Store`] when
    /// reading the relay-wide parent links from the log fails.
    pub(crate) fn would_cycle(&self, group: &str, parent: &str) -> Result<bool, Error> {
        let mut seen = BTreeSet::new();
        let mut current = Some(parent.to_owned());
        while let Some(ancestor) = current {
            if ancestor == group {
                return Ok(true);
            }
            if !seen.insert(ancestor.clone()) {
                // An existing cycle above (only a log imported without the policy can
                // hold one); `group` is not on it.
                return Ok(false);
            }
            current = self.parent(&ancestor)?;
        }
        Ok(false)
    }
}

impl Groups {
    /// The effective parent of `group` (`None` for a root, an unknown or deleted group).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded, [`Error::Store`] when
    /// reading the relay-wide parent links from the log fails.
    pub fn parent(&self, group: &str) -> Result<Option<String>, Error> {
        Reads::committed(self).parent(group)
    }

    /// The children of `group`, in order (empty when it does not exist).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded, [`Error::Store`] when
    /// reading the relay-wide parent links from the log fails.
    pub fn children(&self, group: &str) -> Result<Vec<String>, Error> {
        Reads::committed(self).children(group)
    }

    /// Whether making `parent` the parent of `group` would close a cycle: `parent` is
    /// `group` itself or has `group` among its effective ancestors.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded, [`Error::Store`] when
    /// reading the relay-wide parent links from the log fails.
    pub fn would_cycle(&self, group: &str, parent: &str) -> Result<bool, Error> {
        Reads::committed(self).would_cycle(group, parent)
    }
}
