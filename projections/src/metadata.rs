//! The `metadata` projection: a group's metadata (name, about, picture, banner, the
//! flags, `supported_kinds`, `livekit`, declared `parent`, other tags), the order its
//! own metadata gives its children, its pins, and its invite codes.
//!
//! 9007 sets the initial metadata from its tags and content; 9002 replaces it entirely
//! (a field or flag it does not carry is unset); a relay-signed 39000 sets it while the
//! group has no history (a newer one replaces; at the same `created_at`, the lowest id).
//! Invite codes come from 9009 `code` tags and pins from the latest 9010 while the group
//! exists; they are not metadata, so 9002 keeps them, and a new life or a 9008 clears
//! them.
//!
//! Flags are read in three dialects, with this precedence: all start false; a JSON
//! object in the content is applied first (`private`, `closed`, `hidden`, `restricted`,
//! `write-restricted`, each only when a boolean; `name`, `about`, `picture` when
//! strings); then the tags in event order, later wins — `private`, `closed`, `hidden`,
//! `restricted`, `write-restricted`, `livekit` set a flag, the legacy `public`, `open`,
//! `visible`, `unrestricted` clear one.
//!
//! Subgroups: the state records the declared parent with the run of metadata events
//! naming it (since the group last named another parent or none), the latest `child`
//! order the group's own metadata gave and the event that gave it (and whether that
//! was a relay 39000), and the latest 9008
//! of the group (kept across lives). Which groups are children of which
//! is decided from these records across groups, by [`Groups`](crate::Groups).

use std::collections::BTreeSet;

use highwater_engine::{CodecError, decode_rkyv, encode_rkyv};
use highwater_store::EventRef;

use crate::config::kind;
use crate::fields::{self, GroupMetadata, Pin};
use crate::life::{Lifecycle, Stamp, Step};
use crate::nip29::{Nip29, Nip29Fold};
use crate::parse;

/// Bumped whenever the fold or the state layout changes.
const BASE_VERSION: u32 = 3;

/// The metadata, subgroup records, pins and invite codes of one group.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct MetadataState {
    lifecycle: Lifecycle,
    metadata: GroupMetadata,
    invite_codes: BTreeSet<String>,
    /// The 39000 the metadata comes from, while seeded from snapshots.
    snapshot: Option<Stamp>,
    /// The ids of the run of metadata events naming the declared parent, in log order
    /// (the first attached the group; which one counts depends on the parent's
    /// deletions, decided across groups).
    naming: Vec<[u8; 32]>,
    /// The `child` order of the latest metadata event of this group that carried one.
    child_order: Vec<String>,
    /// The id of that event.
    child_order_by: Option<[u8; 32]>,
    /// Whether that event is a relay 39000 (a snapshot of the order, which holds for
    /// children attached after it too).
    child_order_by_snapshot: bool,
    /// The id of the latest 9008 of this group, whatever life came after it.
    deleted_by: Option<[u8; 32]>,
    /// The references of the latest 9010 of the current life.
    pins: Vec<Pin>,
}

impl MetadataState {
    /// The group's life and source.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The metadata (with the declared parent; see [`GroupMetadata::parent`]).
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

    /// The pinned references, in order.
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// The ids of the run of metadata events naming the declared parent, in log order:
    /// every 9007, 9002 or seeding 39000 of the group since it last named another
    /// parent or none (empty for a root).
    pub fn naming(&self) -> &[[u8; 32]] {
        &self.naming
    }

    /// The `child` order the group's own latest metadata event with `child` tags gave,
    /// and that event's id.
    pub fn child_order(&self) -> (&[String], Option<&[u8; 32]>) {
        (&self.child_order, self.child_order_by.as_ref())
    }

    /// Whether that event is a relay 39000 (see [`MetadataState::child_order`]).
    pub fn child_order_by_snapshot(&self) -> bool {
        self.child_order_by_snapshot
    }

    /// The id of the group's latest 9008, kept across lives.
    pub fn deleted_by(&self) -> Option<&[u8; 32]> {
        self.deleted_by.as_ref()
    }

    /// Takes the metadata `event` sets: keeps the attachment when it names the same
    /// parent as before, and records a `child` order when it carries one.
    fn set_metadata(&mut self, event: EventRef<'_>) {
        let metadata = GroupMetadata::parse(event.content(), event.tags());
        if metadata.parent.is_none() {
            self.naming.clear();
        } else {
            if metadata.parent != self.metadata.parent {
                self.naming.clear();
            }
            self.naming.push(*event.id());
        }
        let order = fields::child_tags(event.tags());
        if !order.is_empty() {
            self.child_order = order;
            self.child_order_by = Some(*event.id());
            self.child_order_by_snapshot = event.kind() == kind::METADATA;
        }
        self.metadata = metadata;
    }
}

/// The `metadata` projection.
pub type Metadata = Nip29<MetadataState>;

impl Nip29Fold for MetadataState {
    const NAME: &'static str = "metadata";
    const BASE_VERSION: u32 = BASE_VERSION;
    const EXTRA_KINDS: &'static [u16] = &[kind::CREATE_INVITE, kind::PIN_LIST];
    const TYPE_NAME: &'static str = "Metadata";
    const NUMBERS_KEYS: bool = false;

    /// NIP-29's relay kinds, 39000–39009 ("MUST be created by the relay master key
    /// only"), declared here for the four NIP-29 projections.
    fn relay_signed() -> Vec<u16> {
        (kind::METADATA..=kind::RELAY_LAST).collect()
    }

    fn init(_: &Metadata) -> Self {
        MetadataState::default()
    }

    fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    fn fold(&mut self, step: Step, event: EventRef<'_>, _: &Metadata) {
        match step {
            Step::Ignore => {}
            Step::Create => {
                *self = MetadataState {
                    lifecycle: self.lifecycle,
                    deleted_by: self.deleted_by,
                    ..MetadataState::default()
                };
                self.set_metadata(event);
            }
            Step::Delete => {
                *self = MetadataState {
                    lifecycle: self.lifecycle,
                    deleted_by: Some(*event.id()),
                    ..MetadataState::default()
                }
            }
            Step::Moderate { .. } => {
                self.snapshot = None;
                if event.kind() == kind::EDIT_METADATA {
                    self.set_metadata(event);
                }
            }
            Step::Snapshot => {
                let stamp = Stamp::of(event);
                if event.kind() == kind::METADATA && stamp.replaces(self.snapshot) {
                    self.set_metadata(event);
                    self.snapshot = Some(stamp);
                }
            }
            Step::Other { active } => match event.kind() {
                kind::CREATE_INVITE if active => {
                    self.invite_codes
                        .extend(parse::codes(event.tags()).map(str::to_owned));
                }
                kind::PIN_LIST if active => self.pins = fields::pins(event.tags()),
                _ => {}
            },
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(self)
    }

    fn decode(bytes: &[u8], _: &Metadata) -> Result<Self, CodecError> {
        decode_rkyv(bytes)
    }
}
