//! Reading NIP-29 tags, the same way for stored events (folds) and incoming
//! `nostr::Event`s (the access policy): pubkeys, role lists, rosters, invite codes.
//!
//! Nothing here panics on hostile input: a tag without the value it needs, or a pubkey
//! that is not 64 hex digits, is skipped (and reported through `tracing`).

use std::collections::{BTreeMap, BTreeSet};

use highwater_store::TagRef;

/// A tag as a list of strings, name first; implemented for stored and owned tags.
pub(crate) trait TagView<'a>: Copy {
    /// The value at `index` (0 is the tag name).
    fn at(self, index: usize) -> Option<&'a str>;

    /// The values from `index` on.
    fn values_from(self, index: usize) -> impl Iterator<Item = &'a str>;

    /// The tag name.
    fn name(self) -> Option<&'a str> {
        self.at(0)
    }
}

impl<'a> TagView<'a> for TagRef<'a> {
    fn at(self, index: usize) -> Option<&'a str> {
        self.get(index)
    }

    fn values_from(self, index: usize) -> impl Iterator<Item = &'a str> {
        // `TagRef::iter` borrows the `TagRef` itself (edition 2024 capture rules), so
        // index instead to hand out values that live as long as the event.
        (index..self.len()).filter_map(move |i| self.get(i))
    }
}

impl<'a> TagView<'a> for &'a nostr::prelude::Tag {
    fn at(self, index: usize) -> Option<&'a str> {
        self.as_slice().get(index).map(String::as_str)
    }

    fn values_from(self, index: usize) -> impl Iterator<Item = &'a str> {
        self.as_slice().iter().skip(index).map(String::as_str)
    }
}

/// A pubkey from 64 hex digits (either case); anything else is `None`.
pub(crate) fn parse_pubkey(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *slot = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex of a pubkey.
pub(crate) fn to_hex(pubkey: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in pubkey {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A pubkey that prints (`Debug`) as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Hex(pub(crate) [u8; 32]);

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

/// Calls `f` with the pubkey and the tag of every well-formed `p` tag, in tag order.
/// Malformed ones (no value, not 64 hex digits) are skipped with a warning.
pub(crate) fn each_p<'a, T: TagView<'a>>(
    kind: u16,
    tags: impl IntoIterator<Item = T>,
    mut f: impl FnMut([u8; 32], T),
) {
    for tag in tags {
        if tag.name() != Some("p") {
            continue;
        }
        if let Some(pubkey) = tag.at(1).and_then(parse_pubkey) {
            f(pubkey, tag);
        } else {
            // Debug, not warn: a fold runs again on every catch-up, rebuild and verify,
            // and per projection; the write path (import) warns once per event.
            tracing::debug!(kind, value = ?tag.at(1), "ignoring a `p` tag without a valid pubkey");
        }
    }
}

/// The role names at positions 2+ of a `p` tag: deduplicated, sorted, empty ones
/// dropped.
pub(crate) fn roles_of<'a, T: TagView<'a>>(tag: T) -> BTreeSet<String> {
    tag.values_from(2)
        .filter(|role| !role.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every well-formed `p` tag with its roles; a pubkey listed twice keeps its last tag.
pub(crate) fn roster<'a, T: TagView<'a>>(
    kind: u16,
    tags: impl IntoIterator<Item = T>,
) -> BTreeMap<[u8; 32], BTreeSet<String>> {
    let mut out = BTreeMap::new();
    each_p(kind, tags, |pubkey, tag| {
        out.insert(pubkey, roles_of(tag));
    });
    out
}

/// The non-empty values of `code` tags.
pub(crate) fn codes<'a, T: TagView<'a>>(
    tags: impl IntoIterator<Item = T>,
) -> impl Iterator<Item = &'a str> {
    tags.into_iter()
        .filter(|tag| tag.name() == Some("code"))
        .filter_map(|tag| tag.at(1))
        .filter(|code| !code.is_empty())
}

/// Role definitions of a 39003: `["role", name, optional description]`, by name; a
/// name listed twice keeps its last tag.
pub(crate) fn role_definitions<'a, T: TagView<'a>>(
    tags: impl IntoIterator<Item = T>,
) -> BTreeMap<String, Option<String>> {
    tags.into_iter()
        .filter(|tag| tag.name() == Some("role"))
        .filter_map(|tag| {
            let name = tag.at(1).filter(|n| !n.is_empty())?;
            Some((name.to_owned(), tag.at(2).map(str::to_owned)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubkeys_round_trip_and_reject_garbage() {
        let key = [0xab; 32];
        assert_eq!(parse_pubkey(&to_hex(&key)), Some(key));
        assert_eq!(parse_pubkey(&to_hex(&key).to_uppercase()), Some(key));
        for bad in [
            "",
            "ab",
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            &"é".repeat(32),
        ] {
            assert_eq!(parse_pubkey(bad), None, "{bad:?}");
        }
    }
}
