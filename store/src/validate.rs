//! Validation of incoming events, run on the caller's thread before the writer sees them.

use nostr::prelude::Event;

use crate::codec::{self, Record};
use crate::error::{InvalidEvent, StoreError};

/// Limits applied to every incoming event. The defaults are those of common relays for
/// ordinary events; the relay's group state events (39000–39003) have their own, larger
/// limits, because a relay's 39002 lists every member of a group in one event (a group
/// of 30,000 members is about 2.5 MB and 30,000 `p` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded event, in bytes (the encoded record is a little smaller than the
    /// event's JSON).
    pub max_event_bytes: usize,
    /// Most tags per event.
    pub max_tags: usize,
    /// Longest group id, in bytes.
    pub max_group_id_bytes: usize,
    /// Largest encoded group state event (kinds 39000–39003), in bytes.
    pub max_state_event_bytes: usize,
    /// Most tags of a group state event (kinds 39000–39003).
    pub max_state_tags: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 128 * 1024,
            max_tags: 2_000,
            max_group_id_bytes: 255,
            max_state_event_bytes: 16 * 1024 * 1024,
            max_state_tags: 150_000,
        }
    }
}

impl Limits {
    /// The size limit (bytes) and tag limit that apply to events of `kind`.
    pub fn for_kind(&self, kind: u16) -> (usize, usize) {
        if is_state_kind(kind) {
            (
                self.max_state_event_bytes.max(self.max_event_bytes),
                self.max_state_tags.max(self.max_tags),
            )
        } else {
            (self.max_event_bytes, self.max_tags)
        }
    }

    /// The largest event of any kind, in bytes.
    pub fn max_any_event_bytes(&self) -> usize {
        self.max_event_bytes.max(self.max_state_event_bytes)
    }
}

/// Whether `kind` is one of the relay's group state events (39000–39003).
pub fn is_state_kind(kind: u16) -> bool {
    (39_000..=39_003).contains(&kind)
}

/// An event that passed validation and is encoded, ready for the writer.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub(crate) id: [u8; 32],
    pub(crate) kind: u16,
    pub(crate) group: Option<Box<str>>,
    pub(crate) bytes: Vec<u8>,
}

impl PreparedEvent {
    /// The event id.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The group this event is indexed under, if any.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Size of the encoded record in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Which tag names a group for `kind`, and whether the kind requires one.
///
/// NIP-29: relay-signed state events (39000–39003, and 39005 pins) name the group in `d`; moderation and
/// user requests (9000–9022) must carry `h`; any other kind may carry `h` to be a group
/// message and is stored ungrouped without it.
pub fn group_tag_for_kind(kind: u16) -> (&'static str, bool) {
    match kind {
        39_000..=39_003 | 39_005 => ("d", true),
        9_000..=9_022 => ("h", true),
        _ => ("h", false),
    }
}

/// The group id an event is indexed under, or the rejection for a missing or bad one.
///
/// An event belongs to at most one group: more than one group tag (`h`, or `d` for the
/// state events), even a bare `["h"]` beside a real one, is refused rather than letting
/// the first one win.
///
/// # Errors
///
/// A [`InvalidEvent`](crate::InvalidEvent) when the kind needs a group id and the tag is
/// missing, empty or too long, or when there is more than one group tag.
pub fn group_of(event: &Event, limits: &Limits) -> Result<Option<Box<str>>, InvalidEvent> {
    let kind = event.kind.as_u16();
    let (tag, required) = group_tag_for_kind(kind);
    let mut named = event
        .tags
        .iter()
        .map(nostr::prelude::Tag::as_slice)
        .filter(|t| t.first().map(String::as_str) == Some(tag));
    let first = named.next();
    let more = named.count();
    if more > 0 {
        return Err(InvalidEvent::ManyGroupTags {
            tag,
            count: more + 1,
        });
    }
    let value = first.and_then(|t| t.get(1));
    match value {
        Some(id) if id.is_empty() || id.len() > limits.max_group_id_bytes => {
            Err(InvalidEvent::BadGroupId {
                len: id.len(),
                limit: limits.max_group_id_bytes,
            })
        }
        Some(id) => Ok(Some(id.as_str().into())),
        None if required => Err(InvalidEvent::MissingGroup { kind, tag }),
        None => Ok(None),
    }
}

/// Checks everything but the signature and the duplicate index: tag count, group id,
/// id hash, size. Returns the encoded event.
pub(crate) fn check_and_encode(
    event: &Event,
    limits: &Limits,
) -> Result<PreparedEvent, StoreError> {
    let (max_bytes, max_tags) = limits.for_kind(event.kind.as_u16());
    let tags = event.tags.len();
    if tags > max_tags {
        return Err(InvalidEvent::TooManyTags {
            count: tags,
            limit: max_tags,
        }
        .into());
    }
    // A cheap bound before hashing or encoding anything large.
    let approx = event.content.len()
        + event
            .tags
            .iter()
            .map(|t| t.as_slice().iter().map(String::len).sum::<usize>())
            .sum::<usize>();
    if approx > max_bytes {
        return Err(InvalidEvent::TooLarge {
            size: approx,
            limit: max_bytes,
        }
        .into());
    }
    let group = group_of(event, limits)?;
    if !event.verify_id() {
        return Err(InvalidEvent::BadId.into());
    }
    let record = Record {
        id: event.id.to_bytes(),
        pubkey: event.pubkey.to_bytes(),
        sig: event.sig.to_bytes(),
        created_at: event.created_at.as_secs(),
        kind: event.kind.as_u16(),
        tags: event.tags.iter().map(|t| t.as_slice().to_vec()).collect(),
        content: event.content.clone(),
    };
    let bytes = codec::encode_record(&record)?;
    if bytes.len() > max_bytes {
        return Err(InvalidEvent::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        }
        .into());
    }
    Ok(PreparedEvent {
        id: record.id,
        kind: record.kind,
        group,
        bytes,
    })
}

/// Verifies the Schnorr signature.
pub(crate) fn check_signature(event: &Event) -> Result<(), InvalidEvent> {
    if event.verify_signature() {
        Ok(())
    } else {
        Err(InvalidEvent::BadSignature)
    }
}
