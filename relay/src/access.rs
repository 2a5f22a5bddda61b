//! Read access for one reader during one request: which groups' events and state
//! events it may see, asked of the access policy once per group and remembered for the
//! request.
//!
//! - A group's events: [`AccessPolicy::can_read`](highwater_projections::AccessPolicy::can_read).
//! - Whether the group is there at all for this reader (its 39000; a `#h` refusal):
//!   [`AccessPolicy::has_access`](highwater_projections::AccessPolicy::has_access) —
//!   a `hidden` group is, to everyone but its members and the relay's admins, a group
//!   that does not exist.
//! - Who is in it (39001 admins, 39002 members) and what it pinned (39005): for a
//!   `private` group, only readers who may read its events.
//! - The relay's configured replicas (authenticated with their keys) read everything.

use std::collections::BTreeMap;

use nostr::prelude::PublicKey;

use crate::index::is_state_kind;
use crate::shared::Shared;

/// 39001 admins, 39002 members, 39005 pins: private in a private group.
const MEMBERSHIP_KINDS: [u16; 3] = [39_001, 39_002, 39_005];

/// Whether a state event of `kind` says who is in a group or what it pinned.
pub(crate) fn is_membership_kind(kind: u16) -> bool {
    MEMBERSHIP_KINDS.contains(&kind)
}

/// Read decisions for one reader (`None`: not authenticated).
pub(crate) struct Access<'a> {
    shared: &'a Shared,
    reader: Option<PublicKey>,
    read: BTreeMap<String, bool>,
    exists: BTreeMap<String, bool>,
    private: BTreeMap<String, bool>,
}

impl<'a> Access<'a> {
    pub(crate) fn new(shared: &'a Shared, reader: Option<PublicKey>) -> Self {
        Self {
            shared,
            reader,
            read: BTreeMap::new(),
            exists: BTreeMap::new(),
            private: BTreeMap::new(),
        }
    }

    /// Whether the reader may read the group's events. A failed read is a refusal.
    pub(crate) fn can_read(&mut self, group: &str) -> bool {
        let (shared, reader) = (self.shared, self.reader);
        if crate::replication::is_replica(shared, reader.as_ref()) {
            return true;
        }
        *remember(&mut self.read, group, false, || {
            shared.policy.can_read(reader.as_ref(), group)
        })
    }

    /// Whether the reader is one of the relay's configured replicas.
    pub(crate) fn is_replica(&self) -> bool {
        crate::replication::is_replica(self.shared, self.reader.as_ref())
    }

    /// Whether the group exists for the reader: active, and not hidden from them.
    pub(crate) fn can_see_group(&mut self, group: &str) -> bool {
        let (shared, reader) = (self.shared, self.reader);
        if crate::replication::is_replica(shared, reader.as_ref()) {
            return true;
        }
        *remember(&mut self.exists, group, false, || {
            shared.policy.has_access(reader.as_ref(), group)
        })
    }

    /// Whether the reader may see the group's state event of `kind`.
    pub(crate) fn can_see_state(&mut self, kind: u16, group: &str) -> bool {
        if !self.can_see_group(group) {
            return false;
        }
        if !is_membership_kind(kind) {
            return true;
        }
        !self.is_private(group) || self.can_read(group)
    }

    /// Whether the group is `private` (a failed question answers yes).
    pub(crate) fn is_private(&mut self, group: &str) -> bool {
        let shared = self.shared;
        *remember(&mut self.private, group, true, || {
            shared.policy.groups().is_private(group)
        })
    }

    /// Whether an event of `kind` in `group` (or of no group) may be shown.
    pub(crate) fn visible(&mut self, kind: u16, group: Option<&str>) -> bool {
        match group {
            None => true,
            Some(g) if is_state_kind(kind) => self.can_see_state(kind, g),
            Some(g) => self.can_read(g),
        }
    }
}

/// The remembered answer for `group`, asking once. A question that fails (a group
/// that cannot be loaded) is answered `closed`, the answer that shows less.
fn remember<'m>(
    answers: &'m mut BTreeMap<String, bool>,
    group: &str,
    closed: bool,
    ask: impl FnOnce() -> Result<bool, highwater_projections::Error>,
) -> &'m bool {
    if !answers.contains_key(group) {
        let answer = ask().unwrap_or_else(|e| {
            tracing::warn!(group, error = %e, "an access check failed; refusing");
            closed
        });
        answers.insert(group.to_owned(), answer);
    }
    &answers[group]
}
