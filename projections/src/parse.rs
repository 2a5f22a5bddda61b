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

/// What [`NIBBLES`] maps a byte that is not a hex digit to: its high bits are set.
const NOT_HEX: u8 = 0xF0;

/// Each byte's value as a hex digit (either case), or [`NOT_HEX`].
const NIBBLES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// 32 bytes (a pubkey, an event id) from 64 hex digits (either case); anything else is
/// `None`.
///
/// Every fold of a `p` tag parses one, so this is a table lookup per digit with one
/// check at the end instead of a branch per digit, which random hex digits mispredict
/// (BENCHMARKS.md, "Rebuild").
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let digits: &[u8; 64] = text.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        seen |= high | low;
        *byte = (high << 4) | low;
    }
    (seen & NOT_HEX == 0).then_some(out)
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
        if let Some(pubkey) = tag.at(1).and_then(parse_hex32) {
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

/// The values of `previous` tags (NIP-29 timeline references), in tag order.
pub(crate) fn previous<'a, T: TagView<'a>>(
    tags: impl IntoIterator<Item = T>,
) -> impl Iterator<Item = &'a str> {
    tags.into_iter()
        .filter(|tag| tag.name() == Some("previous"))
        .flat_map(|tag| tag.values_from(1))
}

/// The bytes a timeline reference names: the first 4 to 32 bytes of an event id,
/// written as 8 to 64 hex digits (either case), an even number; anything else is
/// `None`.
pub(crate) fn id_prefix(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !(8..=64).contains(&digits.len()) || !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut seen = 0u8;
    let out = digits
        .chunks_exact(2)
        .map(|pair| {
            let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
            seen |= high | low;
            (high << 4) | low
        })
        .collect();
    (seen & NOT_HEX == 0).then_some(out)
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
        assert_eq!(parse_hex32(&to_hex(&key)), Some(key));
        assert_eq!(parse_hex32(&to_hex(&key).to_uppercase()), Some(key));
        for bad in [
            "",
            "ab",
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            &"é".repeat(32),
        ] {
            assert_eq!(parse_hex32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn id_prefixes_are_8_to_64_hex_digits_in_pairs() {
        assert_eq!(id_prefix("0a1B2c3D"), Some(vec![0x0a, 0x1b, 0x2c, 0x3d]));
        assert_eq!(id_prefix(&"ab".repeat(32)), Some(vec![0xab; 32]));
        assert_eq!(id_prefix(&"ab".repeat(5)), Some(vec![0xab; 5]));
        for bad in [
            "",
            "0a1b2c3",
            "0a1b2c3d4",
            "0a1b2c3g",
            &"a".repeat(66),
            "0a1b2cé",
        ] {
            assert_eq!(id_prefix(bad), None, "{bad:?}");
        }
    }

    /// An independent reading of one hex digit.
    fn digit(c: char) -> Option<u8> {
        c.to_digit(16).map(|d| d as u8)
    }

    #[test]
    fn every_character_at_every_position_is_read_as_hex_or_refused() {
        let valid: String = (0..64)
            .map(|i| char::from(b"0123456789abcdefABCDEF"[i * 7 % 22]))
            .collect();
        let expected = |text: &str| -> Option<[u8; 32]> {
            let chars: Vec<char> = text.chars().collect();
            if text.len() != 64 || chars.len() != 64 {
                return None;
            }
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = digit(chars[2 * i])? * 16 + digit(chars[2 * i + 1])?;
            }
            Some(out)
        };
        assert!(expected(&valid).is_some());
        assert_eq!(parse_hex32(&valid), expected(&valid));
        for position in 0..64 {
            for c in (0u8..128).map(char::from).chain(['é', 'ｆ', '\u{660}']) {
                let mut text = valid.clone();
                text.replace_range(position..=position, c.encode_utf8(&mut [0; 4]));
                assert_eq!(parse_hex32(&text), expected(&text), "{text:?}");
            }
        }
        // Two bad digits of one byte, and of two bytes.
        for bad in ["zz", "g:", "  ", "\0\0"] {
            for at in [0, 30, 62] {
                let mut text = valid.clone();
                text.replace_range(at..at + 2, bad);
                assert_eq!(parse_hex32(&text), None, "{text:?}");
            }
        }
    }
}
