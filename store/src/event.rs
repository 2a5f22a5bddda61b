//! Zero-copy views of stored events, and conversion back to `nostr::Event`.

use nostr::prelude::{Event, EventId, Kind, PublicKey, Signature, Tag, Tags, Timestamp};
use rkyv::string::ArchivedString;
use rkyv::vec::ArchivedVec;

use crate::codec::ArchivedRecord;
use crate::error::{Corruption, StoreError};

/// A validated, zero-copy view of one stored event. It borrows the LMDB page (or the
/// writer's buffer) it was read from, so it lives only inside the read callback.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    record: &'a ArchivedRecord,
}

impl std::fmt::Debug for EventRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRef")
            .field("kind", &self.kind())
            .field("created_at", &self.created_at())
            .field("tags", &self.tags().len())
            .finish_non_exhaustive()
    }
}

impl<'a> EventRef<'a> {
    pub(crate) fn new(record: &'a ArchivedRecord) -> Self {
        Self { record }
    }

    /// The event id (NIP-01 hash), raw bytes.
    pub fn id(&self) -> &'a [u8; 32] {
        &self.record.id
    }

    /// The author's x-only public key, raw bytes.
    pub fn pubkey(&self) -> &'a [u8; 32] {
        &self.record.pubkey
    }

    /// The Schnorr signature, raw bytes.
    pub fn sig(&self) -> &'a [u8; 64] {
        &self.record.sig
    }

    /// `created_at` in seconds. Folds never order by it; log order is canonical.
    pub fn created_at(&self) -> u64 {
        self.record.created_at.to_native()
    }

    /// The event kind.
    pub fn kind(&self) -> u16 {
        self.record.kind.to_native()
    }

    /// The content string.
    pub fn content(&self) -> &'a str {
        self.record.content.as_str()
    }

    /// The tags, in event order.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = TagRef<'a>> + Clone + use<'a> {
        self.record.tags.iter().map(|values| TagRef { values })
    }

    /// The value (position 1) of the first tag named `name`.
    pub fn first_tag_value(&self, name: &str) -> Option<&'a str> {
        self.tags()
            .find(|t| t.name() == Some(name))
            .and_then(|t| t.get(1))
    }

    /// The group id this event is indexed under: the value of its first `h` tag, or of
    /// its first `d` tag for kinds 39000–39003 (the same rule the store indexes by).
    pub fn group_id(&self) -> Option<&'a str> {
        let (tag, _) = crate::validate::group_tag_for_kind(self.kind());
        self.first_tag_value(tag)
    }

    /// Converts the view into an owned `nostr::Event` (allocates; used by export and
    /// `get`, not by folds).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) when the stored record
    /// does not form a valid event.
    pub fn to_event(&self, seq: u64) -> Result<Event, StoreError> {
        let corrupted = |reason: String| StoreError::Corrupted(Corruption::Record { seq, reason });
        let sig = Signature::from_byte_array(*self.sig());
        let mut tags = Vec::with_capacity(self.tags().len());
        for tag in self.tags() {
            tags.push(Tag::parse(tag.iter()).map_err(|e| corrupted(format!("tag: {e}")))?);
        }
        Ok(Event::new(
            EventId::from_byte_array(*self.id()),
            PublicKey::from_byte_array(*self.pubkey()),
            Timestamp::from_secs(self.created_at()),
            Kind::from(self.kind()),
            Tags::from_list(tags),
            self.content(),
            sig,
        ))
    }
}

/// A zero-copy view of one tag: a list of strings, the first being its name.
#[derive(Clone, Copy)]
pub struct TagRef<'a> {
    values: &'a ArchivedVec<ArchivedString>,
}

impl std::fmt::Debug for TagRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> TagRef<'a> {
    /// The tag name (position 0), if the tag is not empty.
    pub fn name(&self) -> Option<&'a str> {
        self.get(0)
    }

    /// The value at `index`.
    pub fn get(&self, index: usize) -> Option<&'a str> {
        self.values.get(index).map(ArchivedString::as_str)
    }

    /// Number of values, name included.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the tag has no values at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All values, name first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + use<'a> {
        self.values.iter().map(ArchivedString::as_str)
    }
}
