//! NIP-01 filters compiled for matching stored events (zero-copy views) and live ones.

use std::collections::BTreeSet;

use highwater_store::EventRef;
use nostr::prelude::{Event, Filter, MatchEventOptions};

/// Compiles a `REQ`'s filters, each with an explicit `limit`: its own (or
/// `default_limit`), at most `max_limit`, and at most what the filters before it left of
/// `max_limit`, so one `REQ` never asks for more than `max_limit` stored events in all.
/// A filter lowered to 0 still matches live events.
pub(crate) fn compile_req(
    filters: Vec<Filter>,
    default_limit: usize,
    max_limit: usize,
) -> Vec<Compiled> {
    let mut left = max_limit;
    filters
        .into_iter()
        .map(|mut filter| {
            let limit = filter.limit.unwrap_or(default_limit).min(left);
            left -= limit;
            filter.limit = Some(limit);
            Compiled::new(filter)
        })
        .collect()
}

/// A filter with its sets in the byte forms the log stores.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) filter: Filter,
    pub(crate) ids: Option<BTreeSet<[u8; 32]>>,
    pub(crate) authors: Option<BTreeSet<[u8; 32]>>,
    pub(crate) kinds: Option<BTreeSet<u16>>,
    /// `#x` tag constraints: (tag letter as a string, accepted values).
    pub(crate) tags: Vec<(String, BTreeSet<String>)>,
}

impl Compiled {
    pub(crate) fn new(filter: Filter) -> Self {
        let ids = filter
            .ids
            .as_ref()
            .map(|s| s.iter().map(|id| id.to_bytes()).collect());
        let authors = filter
            .authors
            .as_ref()
            .map(|s| s.iter().map(|pk| pk.to_bytes()).collect());
        let kinds = filter
            .kinds
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|s| s.iter().map(nostr::prelude::Kind::as_u16).collect());
        let tags = filter
            .generic_tags
            .iter()
            .map(|(letter, values)| (letter.as_str().to_owned(), values.clone()))
            .collect();
        Self {
            filter,
            ids,
            authors,
            kinds,
            tags,
        }
    }

    /// The values of `#letter`, if the filter constrains that tag.
    pub(crate) fn tag_values(&self, letter: &str) -> Option<&BTreeSet<String>> {
        self.tags
            .iter()
            .find(|(name, _)| name == letter)
            .map(|(_, values)| values)
    }

    /// Whether `kind` can match (cheap pre-check used while scanning an index).
    pub(crate) fn kind_allowed(&self, kind: u16) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// Whether a stored event matches.
    pub(crate) fn matches_ref(&self, event: EventRef<'_>) -> bool {
        if !self.kind_allowed(event.kind()) {
            return false;
        }
        let created_at = event.created_at();
        if self.filter.since.is_some_and(|t| created_at < t.as_secs())
            || self.filter.until.is_some_and(|t| created_at > t.as_secs())
        {
            return false;
        }
        if self.ids.as_ref().is_some_and(|s| !s.contains(event.id()))
            || self
                .authors
                .as_ref()
                .is_some_and(|s| !s.contains(event.pubkey()))
        {
            return false;
        }
        if let Some(search) = self.filter.search.as_deref()
            && !search.is_empty()
            && !event
                .content()
                .as_bytes()
                .windows(search.len())
                .any(|w| w.eq_ignore_ascii_case(search.as_bytes()))
        {
            return false;
        }
        self.tags.iter().all(|(name, values)| {
            event.tags().any(|tag| {
                tag.name() == Some(name.as_str()) && tag.get(1).is_some_and(|v| values.contains(v))
            })
        })
    }

    /// Whether a live event matches.
    pub(crate) fn matches_event(&self, event: &Event) -> bool {
        self.filter.match_event(event, MatchEventOptions::new())
    }
}

#[cfg(test)]
mod tests {
    use super::{Compiled, compile_req};
    use nostr::prelude::{EventBuilder, Filter, FinalizeEvent, Keys, Kind, Tag};

    #[test]
    fn live_and_stored_matching_agree_on_group_filters() {
        let keys = Keys::generate();
        let event = EventBuilder::new(Kind::Custom(9), "hi")
            .tag(Tag::parse(["h", "pizza"]).unwrap())
            .finalize(&keys)
            .unwrap();
        let yes = Compiled::new(Filter::from_json(r##"{"kinds":[9],"#h":["pizza"]}"##).unwrap());
        let no = Compiled::new(Filter::from_json(r##"{"kinds":[9],"#h":["pasta"]}"##).unwrap());
        assert!(yes.matches_event(&event));
        assert!(!no.matches_event(&event));
        assert_eq!(
            yes.tag_values("h").map(std::collections::BTreeSet::len),
            Some(1),
            "the #h values are kept for the group index"
        );
    }

    #[test]
    fn a_req_asks_for_at_most_max_limit_stored_events_over_all_its_filters() {
        let filters = [r#"{"limit":30}"#, "{}", r#"{"limit":5}"#, r#"{"limit":7}"#]
            .iter()
            .map(|json| Filter::from_json(json).unwrap())
            .collect();
        let limits: Vec<Option<usize>> = compile_req(filters, 20, 40)
            .iter()
            .map(|c| c.filter.limit)
            .collect();
        assert_eq!(limits, [Some(30), Some(10), Some(0), Some(0)]);
    }
}
