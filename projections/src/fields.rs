//! [`GroupMetadata`]: the metadata fields of a group and how one 9007, 9002 or 39000
//! sets them (JSON content first, then the tags in order), plus the `child` order and
//! pin references read from events.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::parse::TagView;

/// Tags that are read into fields, or never carried over: not kept in `extra_tags`.
const KNOWN_TAGS: [&str; 22] = [
    "d",
    "h",
    "name",
    "about",
    "picture",
    "banner",
    "private",
    "closed",
    "hidden",
    "restricted",
    "write-restricted",
    "livekit",
    "supported_kinds",
    "parent",
    "child",
    "public",
    "open",
    "visible",
    "unrestricted",
    "member_count",
    "previous",
    "code",
];

/// A group's metadata.
#[expect(
    clippy::struct_excessive_bools,
    reason = "the NIP-29 flags are independent booleans"
)]
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct GroupMetadata {
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub about: Option<String>,
    /// Picture URL.
    pub picture: Option<String>,
    /// Banner URL.
    pub banner: Option<String>,
    /// Only members can read (NIP-29 `private`).
    pub private: bool,
    /// Join requests are not honoured without an invite code (NIP-29 `closed`).
    pub closed: bool,
    /// Metadata hidden from non-members (NIP-29 `hidden`).
    pub hidden: bool,
    /// Only members can write (NIP-29 `restricted`); without it anyone may write.
    pub restricted: bool,
    /// Only `writer` role holders, the creator and relay admins post (the seed relay's
    /// `write-restricted`); independent of `restricted`.
    pub write_restricted: bool,
    /// The group has a `LiveKit` audio/video room (NIP-29 `livekit`).
    pub livekit: bool,
    /// The kinds the group accepts: `None` = every kind; `Some(empty)` = none.
    pub supported_kinds: Option<Vec<u16>>,
    /// The parent group. In the fold's state, the declared parent (first `parent` tag);
    /// from [`Groups::metadata`](crate::Groups::metadata), the effective parent (the
    /// declared one while it exists and has not been deleted since the attachment).
    pub parent: Option<String>,
    /// Other tags, in event order, exact duplicates dropped, kept for rendering.
    pub extra_tags: Vec<Vec<String>>,
}

impl GroupMetadata {
    /// The metadata a 9007, 9002 or 39000 with this content and these tags sets.
    pub(crate) fn parse<'a, T: TagView<'a>>(
        content: &str,
        tags: impl IntoIterator<Item = T>,
    ) -> Self {
        let mut out = GroupMetadata::default();
        out.apply_json(content);
        let mut seen_extra: BTreeSet<Vec<&'a str>> = BTreeSet::new();
        for tag in tags {
            let Some(name) = tag.name() else { continue };
            match name {
                "name" => set_text(&mut out.name, tag.at(1)),
                "about" => set_text(&mut out.about, tag.at(1)),
                "picture" => set_text(&mut out.picture, tag.at(1)),
                "banner" => set_text(&mut out.banner, tag.at(1)),
                "private" => out.private = true,
                "public" => out.private = false,
                "closed" => out.closed = true,
                "open" => out.closed = false,
                "hidden" => out.hidden = true,
                "visible" => out.hidden = false,
                "restricted" => out.restricted = true,
                "unrestricted" => out.restricted = false,
                "write-restricted" => out.write_restricted = true,
                "livekit" => out.livekit = true,
                "supported_kinds" => {
                    out.supported_kinds =
                        Some(tag.values_from(1).filter_map(|v| v.parse().ok()).collect());
                }
                "parent" => {
                    if out.parent.is_none() {
                        out.parent = tag.at(1).filter(|p| !p.is_empty()).map(str::to_owned);
                    }
                }
                _ if KNOWN_TAGS.contains(&name) => {}
                _ => {
                    let values: Vec<&'a str> = tag.values_from(0).collect();
                    if seen_extra.insert(values.clone()) {
                        out.extra_tags
                            .push(values.into_iter().map(str::to_owned).collect());
                    }
                }
            }
        }
        out
    }

    /// The metadata an incoming 9007, 9002 or 39000 sets.
    pub fn from_event(event: &nostr::prelude::Event) -> Self {
        Self::parse(&event.content, event.tags.iter())
    }

    /// Whether `kind` may be posted to the group (`supported_kinds`).
    pub fn supports_kind(&self, kind: u16) -> bool {
        self.supported_kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&kind))
    }

    fn apply_json(&mut self, content: &str) {
        if !content.trim_start().starts_with('{') {
            return;
        }
        let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(content)
        else {
            return;
        };
        let flag = |key: &str| map.get(key).and_then(serde_json::Value::as_bool);
        let fields: [(&str, &mut bool); 5] = [
            ("private", &mut self.private),
            ("closed", &mut self.closed),
            ("hidden", &mut self.hidden),
            ("restricted", &mut self.restricted),
            ("write-restricted", &mut self.write_restricted),
        ];
        for (key, field) in fields {
            if let Some(value) = flag(key) {
                *field = value;
            }
        }
        let text = |key: &str| map.get(key).and_then(serde_json::Value::as_str);
        let texts: [(&str, &mut Option<String>); 3] = [
            ("name", &mut self.name),
            ("about", &mut self.about),
            ("picture", &mut self.picture),
        ];
        for (key, field) in texts {
            set_text(field, text(key));
        }
    }
}

fn set_text(field: &mut Option<String>, value: Option<&str>) {
    if let Some(value) = value {
        *field = Some(value.to_owned());
    }
}

/// The group ids of the `child` tags, in order, empty and repeated ones dropped.
pub(crate) fn child_tags<'a, T: TagView<'a>>(tags: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tags.into_iter()
        .filter(|t| t.name() == Some("child"))
        .filter_map(|t| t.at(1))
        .filter(|c| !c.is_empty() && seen.insert(*c))
        .map(str::to_owned)
        .collect()
}

/// How many `parent` tags an event carries (the policy allows at most one).
pub(crate) fn parent_tag_count<'a, T: TagView<'a>>(tags: impl IntoIterator<Item = T>) -> usize {
    tags.into_iter()
        .filter(|t| t.name() == Some("parent"))
        .count()
}

/// One pinned reference of a 9010: an `e` (event id) or `a` (address) tag value.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Pin {
    /// `e` or `a`.
    pub tag: String,
    /// The event id or address.
    pub value: String,
}

/// The `e`/`a` references of a 9010, in order, empty values skipped.
pub(crate) fn pins<'a, T: TagView<'a>>(tags: impl IntoIterator<Item = T>) -> Vec<Pin> {
    tags.into_iter()
        .filter_map(|t| {
            let tag = t.name().filter(|n| *n == "e" || *n == "a")?;
            let value = t.at(1).filter(|v| !v.is_empty())?;
            Some(Pin {
                tag: tag.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::{GroupMetadata, Pin, child_tags, parent_tag_count, pins};

    fn tags(list: &[&[&str]]) -> Vec<Tag> {
        list.iter()
            .map(|t| Tag::parse(t.iter().copied()).unwrap())
            .collect()
    }

    #[test]
    fn child_tags_keep_order_without_empties_or_repeats() {
        let t = tags(&[
            &["child", "b"],
            &["child"],
            &["child", ""],
            &["child", "a"],
            &["child", "b"],
            &["parent", "x"],
            &["parent", "y"],
        ]);
        assert_eq!(child_tags(t.iter()), ["b", "a"]);
        assert_eq!(parent_tag_count(t.iter()), 2);
    }

    #[test]
    fn pins_are_e_and_a_values_in_order() {
        let t = tags(&[
            &["a", "30023:k:d"],
            &["p", "x"],
            &["e", ""],
            &["e"],
            &["e", "id"],
        ]);
        let pin = |tag: &str, value: &str| Pin {
            tag: tag.into(),
            value: value.into(),
        };
        assert_eq!(pins(t.iter()), [pin("a", "30023:k:d"), pin("e", "id")]);
    }

    fn parse(content: &str, tags: &[&[&str]]) -> GroupMetadata {
        let tags = tags.iter().map(|t| Tag::parse(t.iter().copied()).unwrap());
        let event = EventBuilder::new(Kind::GroupEditMetadata, content)
            .tags(tags)
            .finalize(&Keys::generate())
            .unwrap();
        GroupMetadata::from_event(&event)
    }

    #[test]
    fn json_first_then_tags_in_order() {
        let m = parse(
            r#"{"private":true,"closed":true,"restricted":false,"write-restricted":true}"#,
            &[&["h", "g"], &["open"], &["private"], &["public"]],
        );
        assert_eq!(
            (
                m.private,
                m.closed,
                m.hidden,
                m.restricted,
                m.write_restricted
            ),
            (false, false, false, false, true)
        );
    }

    #[test]
    fn json_names_yield_to_tags() {
        let m = parse(
            r#"{"name":"J","about":"A","picture":"P","private":true}"#,
            &[&["h", "g"], &["name", "T"]],
        );
        assert_eq!(m.name.as_deref(), Some("T"));
        assert_eq!(m.about.as_deref(), Some("A"));
        assert_eq!(m.picture.as_deref(), Some("P"));
        assert!(m.private);
    }

    #[test]
    fn non_boolean_json_and_garbage_content_set_nothing() {
        for content in [
            r#"{"private":"true"}"#,
            "{",
            "[true]",
            "private",
            r#"{"hidden":1}"#,
            r#"{"name":1}"#,
        ] {
            assert_eq!(parse(content, &[]), GroupMetadata::default(), "{content}");
        }
    }

    #[test]
    fn supported_kinds_absent_empty_and_listed() {
        assert_eq!(parse("", &[]).supported_kinds, None);
        assert!(parse("", &[]).supports_kind(1));
        let none = parse("", &[&["supported_kinds"]]);
        assert_eq!(none.supported_kinds, Some(vec![]));
        assert!(!none.supports_kind(9));
        let some = parse("", &[&["supported_kinds", "9", "x", "11", "70000"]]);
        assert_eq!(some.supported_kinds, Some(vec![9, 11]));
        assert!(some.supports_kind(11) && !some.supports_kind(1));
    }

    #[test]
    fn the_first_parent_counts() {
        let m = parse("", &[&["parent", ""], &["parent", "a"], &["parent", "b"]]);
        assert_eq!(m.parent.as_deref(), Some("a"));
    }

    #[test]
    fn unknown_tags_keep_event_order_without_duplicates() {
        let m = parse(
            "",
            &[
                &["h", "g"],
                &["t", "b"],
                &["name"],
                &["t", "a"],
                &["t", "b"],
                &["member_count", "9"],
                &["child", "c"],
                &["name", "N"],
                &["name", "M"],
            ],
        );
        assert_eq!(
            m.extra_tags,
            [
                vec!["t".to_owned(), "b".to_owned()],
                vec!["t".to_owned(), "a".to_owned()]
            ]
        );
        assert_eq!(m.name.as_deref(), Some("M"));
    }
}
