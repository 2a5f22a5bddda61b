//! Read access for one reader during one request: which groups' events it may see,
//! asked of the access policy once per group and remembered for the request.

use std::collections::BTreeMap;

use nostr::prelude::PublicKey;

use crate::index::is_state_kind;
use crate::shared::Shared;

/// Read decisions for one reader (`None`: not authenticated).
pub(crate) struct Access<'a> {
    shared: &'a Shared,
    reader: Option<PublicKey>,
    read: BTreeMap<String, bool>,
    metadata: BTreeMap<String, bool>,
}

impl<'a> Access<'a> {
    pub(crate) fn new(shared: &'a Shared, reader: Option<PublicKey>) -> Self {
        Self {
            shared,
            reader,
            read: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Whether the reader may read the group's events. A failed read is a refusal.
    pub(crate) fn can_read(&mut self, group: &str) -> bool {
        if let Some(&known) = self.read.get(group) {
            return known;
        }
        let answer = self
            .shared
            .policy
            .can_read(self.reader.as_ref(), group)
            .unwrap_or_else(|e| {
                tracing::warn!(group, error = %e, "read check failed; refusing");
                false
            });
        self.read.insert(group.to_owned(), answer);
        answer
    }

    /// Whether the reader may see the group's state events: everyone, unless the
    /// relay's latest 39000 says `hidden`; then only members and relay admins.
    pub(crate) fn can_see_state(&mut self, group: &str) -> bool {
        let hidden = self.shared.index.group(group).is_some_and(|s| s.hidden);
        if !hidden {
            return true;
        }
        if let Some(&known) = self.metadata.get(group) {
            return known;
        }
        let answer = self
            .shared
            .policy
            .has_access(self.reader.as_ref(), group)
            .unwrap_or(false);
        self.metadata.insert(group.to_owned(), answer);
        answer
    }

    /// Whether an event of `kind` in `group` (or of no group) may be shown.
    pub(crate) fn visible(&mut self, kind: u16, group: Option<&str>) -> bool {
        match group {
            None => true,
            Some(g) if is_state_kind(kind) => self.can_see_state(g),
            Some(g) => self.can_read(g),
        }
    }
}
