//! The `metadata` projection: name, about, picture, the four flags, other metadata
//! tags, and the invite codes of a group.
//!
//! 9007 sets the initial metadata from its tags and content; 9002 replaces it entirely
//! (a flag it does not set is false again); a relay-signed 39000 sets it while the
//! group has no history (a newer or equally old one replaces). Invite codes come from
//! 9009 `code` tags while the group exists; they are not metadata, so 9002 keeps them,
//! and a new life (9007 after 9008) or a 9008 clears them.
//!
//! Flags are read in three dialects, with this precedence: all start false; a JSON
//! object in the content is applied first (`private`, `closed`, `hidden`,
//! `restricted`, then `write-restricted`, each only when a boolean); then the tags in
//! event order, later wins — `private`, `closed`, `hidden`, `restricted` set a flag,
//! the legacy `public`, `open`, `visible`, `unrestricted` clear it.

use std::collections::BTreeSet;

use highwater_engine::{ApplyError, CodecError, Kinds, Projection, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;
use serde::Serialize;

use crate::config::{Nip29Config, kind};
use crate::life::{Lifecycle, Step};
use crate::parse::{self, TagView};

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 1;

/// Tags that are read into fields, or never carried over: not kept in `extra_tags`.
const KNOWN_TAGS: [&str; 14] = [
    "d",
    "h",
    "name",
    "about",
    "picture",
    "private",
    "closed",
    "hidden",
    "restricted",
    "public",
    "open",
    "visible",
    "unrestricted",
    "member_count",
];

/// A group's metadata.
#[expect(
    clippy::struct_excessive_bools,
    reason = "the four NIP-29 flags are independent booleans"
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
    /// Only members can read.
    pub private: bool,
    /// Join requests are not accepted without an invite code.
    pub closed: bool,
    /// Invisible to non-members.
    pub hidden: bool,
    /// Write-restricted: only writers post.
    pub restricted: bool,
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
                "private" => out.private = true,
                "public" => out.private = false,
                "closed" => out.closed = true,
                "open" => out.closed = false,
                "hidden" => out.hidden = true,
                "visible" => out.hidden = false,
                "restricted" => out.restricted = true,
                "unrestricted" => out.restricted = false,
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

    fn apply_json(&mut self, content: &str) {
        if !content.trim_start().starts_with('{') {
            return;
        }
        let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(content)
        else {
            return;
        };
        let flag = |key: &str| map.get(key).and_then(serde_json::Value::as_bool);
        let fields: [(&str, &mut bool); 4] = [
            ("private", &mut self.private),
            ("closed", &mut self.closed),
            ("hidden", &mut self.hidden),
            ("restricted", &mut self.restricted),
        ];
        for (key, field) in fields {
            if let Some(value) = flag(key) {
                *field = value;
            }
        }
        // The spelling some relays write; it wins over `restricted` when both are present.
        if let Some(value) = flag("write-restricted") {
            self.restricted = value;
        }
    }
}

fn set_text(field: &mut Option<String>, value: Option<&str>) {
    if let Some(value) = value {
        *field = Some(value.to_owned());
    }
}

/// The metadata and invite codes of one group.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct MetadataState {
    lifecycle: Lifecycle,
    metadata: GroupMetadata,
    invite_codes: BTreeSet<String>,
    /// `created_at` of the 39000 the metadata comes from, while seeded from snapshots.
    snapshot_at: Option<u64>,
}

impl MetadataState {
    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The metadata.
    pub fn metadata(&self) -> &GroupMetadata {
        &self.metadata
    }

    /// The invite codes, sorted.
    pub fn invite_codes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.invite_codes.iter().map(String::as_str)
    }

    /// Whether `code` is a valid invite code.
    pub fn has_invite(&self, code: &str) -> bool {
        self.invite_codes.contains(code)
    }
}

/// The `metadata` projection.
#[derive(Debug, Clone)]
pub struct Metadata {
    config: Nip29Config,
}

impl Metadata {
    /// The projection for the relay in `config`.
    pub fn new(config: Nip29Config) -> Self {
        Self { config }
    }
}

impl Projection for Metadata {
    type State = MetadataState;

    fn name(&self) -> &'static str {
        "metadata"
    }

    fn version(&self) -> u64 {
        self.config.version(BASE_VERSION)
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(kind::life_and(&[kind::CREATE_INVITE]))
    }

    fn init(&self) -> MetadataState {
        MetadataState::default()
    }

    fn apply(&self, state: &mut MetadataState, event: &EventRef<'_>) -> Result<(), ApplyError> {
        match state.lifecycle.step(*event, &self.config.relay_pubkey) {
            Step::Ignore => {}
            Step::Create => {
                *state = MetadataState {
                    lifecycle: state.lifecycle,
                    metadata: GroupMetadata::parse(event.content(), event.tags()),
                    ..MetadataState::default()
                };
            }
            Step::Delete => {
                *state = MetadataState {
                    lifecycle: state.lifecycle,
                    ..MetadataState::default()
                }
            }
            Step::Moderate { .. } => {
                state.snapshot_at = None;
                if event.kind() == kind::EDIT_METADATA {
                    state.metadata = GroupMetadata::parse(event.content(), event.tags());
                }
            }
            Step::Snapshot => {
                let created_at = event.created_at();
                let newer = state.snapshot_at.is_none_or(|at| created_at >= at);
                if event.kind() == kind::METADATA && newer {
                    state.metadata = GroupMetadata::parse(event.content(), event.tags());
                    state.snapshot_at = Some(created_at);
                }
            }
            Step::Other { active } => {
                if event.kind() == kind::CREATE_INVITE && active {
                    state
                        .invite_codes
                        .extend(parse::codes(event.tags()).map(str::to_owned));
                }
            }
        }
        Ok(())
    }

    fn encode(&self, state: &MetadataState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<MetadataState, CodecError> {
        decode_rkyv(bytes)
    }
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::GroupMetadata;

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
            (m.private, m.closed, m.hidden, m.restricted),
            (false, false, false, true)
        );
    }

    #[test]
    fn non_boolean_json_and_garbage_content_set_nothing() {
        for content in [
            r#"{"private":"true"}"#,
            "{",
            "[true]",
            "private",
            r#"{"hidden":1}"#,
        ] {
            assert_eq!(parse(content, &[]), GroupMetadata::default(), "{content}");
        }
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
