//! [`Reads`]: the state one write decision reads — the committed state, or a writer's
//! [`Overlay`] over it: the groups with accepted, unacknowledged changes answer from
//! their speculative copies, every other group from the engine, and the pending
//! events count as logged (their ids, the parents they name, their positions).

use crate::creator::{Creator, CreatorState};
use crate::error::Error;
use crate::groups::{Groups, Query, Registered};
use crate::life::{Life, Lifecycle};
use crate::links::Links;
use crate::overlay::Overlay;

/// The state a decision reads (see the module's text).
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    groups: &'a Groups,
    overlay: Option<&'a Overlay>,
}

impl<'a> Reads<'a> {
    /// The committed state only.
    pub(crate) fn committed(groups: &'a Groups) -> Self {
        Self {
            groups,
            overlay: None,
        }
    }

    /// The committed state with `overlay`'s changes.
    pub(crate) fn pending(groups: &'a Groups, overlay: &'a Overlay) -> Self {
        Self {
            groups,
            overlay: Some(overlay),
        }
    }

    /// The queries the committed state is read through.
    pub(crate) fn groups(&self) -> &'a Groups {
        self.groups
    }

    /// Resolves `group` for several reads: its speculative copy if it has one.
    pub(crate) fn resolve<'b>(&'b self, group: &'b str) -> Result<Query<'b>, Error> {
        match self.overlay.and_then(|o| o.states(group)) {
            Some(states) => Ok(Groups::resolve_pending(group, states?)),
            None => self.groups.resolve(group),
        }
    }

    /// Reads `P`'s state of `group`.
    pub(crate) fn with<P: Registered, R>(
        &self,
        group: &str,
        f: impl FnOnce(&P::State) -> R,
    ) -> Result<R, Error> {
        self.groups.with_in::<P, R>(self.resolve(group)?, f)
    }

    /// `group`'s life and source.
    pub(crate) fn lifecycle(&self, group: &str) -> Result<Lifecycle, Error> {
        self.with::<Creator, _>(group, CreatorState::lifecycle)
    }

    /// Whether `group` exists.
    pub(crate) fn group_exists(&self, group: &str) -> Result<bool, Error> {
        Ok(self.lifecycle(group)?.life == Life::Active)
    }

    /// Whether an event whose id starts with `prefix` is logged or decided.
    pub(crate) fn has_id_prefix(&self, prefix: &[u8]) -> Result<bool, Error> {
        if self.overlay.is_some_and(|o| o.names_recent(prefix)) {
            return Ok(true);
        }
        Ok(self.groups.store().has_id_prefix(prefix)?)
    }

    /// The log position of a folded (or pending) event: 0 if the id index does not
    /// know it, which a folded event never is.
    pub(crate) fn position(&self, id: &[u8; 32]) -> Result<u64, Error> {
        if let Some(at) = self.overlay.and_then(|o| o.position(id)) {
            return Ok(at);
        }
        Ok(self
            .groups
            .store()
            .seq_of(&nostr::prelude::EventId::from_byte_array(*id))?
            .unwrap_or(0))
    }

    /// The groups that ever named `parent` as their parent, in log order, pending
    /// events last.
    pub(crate) fn candidates(&self, parent: &str) -> Result<Vec<String>, Error> {
        let groups = self.groups;
        let mut candidates = if groups.is_oracle() {
            Links::candidates_by_full_scan(groups.store(), parent)?
        } else {
            groups.links().candidates(groups.store(), parent)?
        };
        if let Some(overlay) = self.overlay {
            for pending in overlay.candidates(parent) {
                if !candidates.contains(pending) {
                    candidates.push(pending.clone());
                }
            }
        }
        Ok(candidates)
    }
}
