//! Hostile inputs: events of any kind with hostile tag shapes (huge tags, empty `p`,
//! non-hex pubkeys, duplicate roles, unicode, enormous role lists), hostile contents and
//! group names, a correct id (sometimes a wrong one) and a meaningless signature.

use arbitrary::{Result as ArbitraryResult, Unstructured};
use nostr::prelude::{Event, EventId, Keys, Tag};

use super::checks::hashed_event;
use super::relay;

const KINDS: [u16; 16] = [
    9000, 9001, 9002, 9005, 9007, 9008, 9009, 9021, 9022, 39_000, 39_001, 39_002, 39_003, 9, 1, 0,
];

const WORDS: [&str; 24] = [
    "admin",
    "writer",
    "moderator",
    "",
    " ",
    "ADMIN",
    "admin ",
    "管理者",
    "👑",
    "\u{0}",
    "\u{202e}",
    "private",
    "public",
    "closed",
    "open",
    "hidden",
    "visible",
    "restricted",
    "unrestricted",
    "member_count",
    "p",
    "h",
    "d",
    "null",
];

pub(super) fn pick_group(u: &mut Unstructured<'_>) -> ArbitraryResult<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => u.arbitrary::<String>()?,
        1 => "g".repeat(usize::from(u.arbitrary::<u8>()?) + 1),
        2 => "日本語グループ".to_owned(),
        n => format!("group-{n}"),
    })
}

/// Bytes of generated filler one event may still use: a little over the store's
/// 128 KiB event limit, so oversized events are tried while memory stays bounded.
const EVENT_BUDGET: usize = 160 * 1024;

/// `len` bytes of `c`, at most what `budget` has left.
fn filler(c: &str, len: usize, budget: &mut usize) -> String {
    let len = len.min(*budget);
    *budget -= len;
    c.repeat(len)
}

fn word(u: &mut Unstructured<'_>, budget: &mut usize) -> ArbitraryResult<String> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=5 => (*u.choose(&WORDS)?).to_owned(),
        6 => filler("x", usize::from(u.arbitrary::<u16>()?) % 70_000, budget),
        _ => u.arbitrary::<String>()?,
    })
}

fn pubkey_text(u: &mut Unstructured<'_>, keys: &[Keys]) -> ArbitraryResult<String> {
    let valid = u.choose(keys)?.public_key().to_hex();
    Ok(match u.int_in_range(0..=9u8)? {
        0..=4 => valid,
        5 => valid.to_uppercase(),
        6 => String::new(),
        7 => "g".repeat(64),
        8 => valid[..63].to_owned(),
        _ => u.arbitrary::<String>()?,
    })
}

/// One tag of a hostile shape (never empty: nostr refuses empty tags).
fn hostile_tag(
    u: &mut Unstructured<'_>,
    keys: &[Keys],
    group: &str,
    budget: &mut usize,
) -> ArbitraryResult<Vec<String>> {
    let mut tag: Vec<String> = Vec::new();
    match u.int_in_range(0..=11u8)? {
        0..=2 => {
            tag.push("p".into());
            if u.ratio(9, 10)? {
                tag.push(pubkey_text(u, keys)?);
                // Roles: none, a few (with duplicates), or an enormous list.
                let n = match u.int_in_range(0..=3u8)? {
                    0 => 0,
                    1 | 2 => usize::from(u.int_in_range(1..=6u8)?),
                    _ => usize::from(u.arbitrary::<u16>()?) % 3_000,
                };
                let role = word(u, budget)?;
                for i in 0..n {
                    tag.push(if i % 3 == 0 {
                        role.clone()
                    } else {
                        word(u, budget)?
                    });
                }
            }
        }
        3 => tag.extend(["h".to_owned(), group.to_owned()]),
        4 => tag.extend(["d".to_owned(), group.to_owned()]),
        5 => {
            tag.push((*u.choose(&["name", "about", "picture"])?).to_owned());
            if u.ratio(4, 5)? {
                tag.push(word(u, budget)?);
            }
        }
        6 => tag.push((*u.choose(&WORDS[11..20])?).to_owned()),
        7 => tag.extend(["code".to_owned(), word(u, budget)?]),
        8 => {
            tag.extend(["role".to_owned(), word(u, budget)?]);
            if u.ratio(1, 2)? {
                tag.push(word(u, budget)?);
            }
        }
        9 => {
            let len = usize::from(u.arbitrary::<u16>()?) * 2;
            tag.extend(["x".to_owned(), filler("y", len, budget)]);
        }
        _ => {
            let n = usize::from(u.int_in_range(1..=8u8)?);
            for _ in 0..n {
                tag.push(word(u, budget)?);
            }
        }
    }
    Ok(tag)
}

/// An event with hostile tags and content, a correct id and a meaningless signature.
pub(super) fn hostile_event(
    u: &mut Unstructured<'_>,
    keys: &[Keys],
    group: &str,
) -> ArbitraryResult<Event> {
    let kind = if u.ratio(7, 8)? {
        *u.choose(&KINDS)?
    } else {
        u.arbitrary()?
    };
    let pubkey = match u.int_in_range(0..=9u8)? {
        0..=2 => relay().public_key().to_bytes(),
        3..=8 => u.choose(keys)?.public_key().to_bytes(),
        _ => u.arbitrary()?,
    };
    let created_at = if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        1_700_000_000 + u64::from(u.arbitrary::<u16>()?)
    };
    let mut budget = EVENT_BUDGET;
    let mut tags = Vec::new();
    // Usually the group tag first, as relays write it.
    if u.ratio(7, 8)? {
        let name = if (39_000..=39_003).contains(&kind) {
            "d"
        } else {
            "h"
        };
        tags.push(vec![name.to_owned(), group.to_owned()]);
    }
    let n = match u.int_in_range(0..=7u8)? {
        0 => usize::from(u.arbitrary::<u16>()?) % 2_500,
        n => usize::from(n),
    };
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        tags.push(hostile_tag(u, keys, group, &mut budget)?);
    }
    let content = match u.int_in_range(0..=5u8)? {
        0 => r#"{"private":true,"write-restricted":true,"closed":false}"#.to_owned(),
        1 => format!("{}{}", "[".repeat(200), "]".repeat(200)),
        2 => u.arbitrary()?,
        _ => String::new(),
    };
    let tags = tags
        .into_iter()
        .filter_map(|t| Tag::parse(t).ok())
        .collect();
    let mut sig = [0u8; 64];
    u.fill_buffer(&mut sig)?;
    let event = hashed_event(pubkey, created_at, kind, tags, content, sig);
    // Sometimes the id is wrong: it must be refused whatever else the event is.
    if u.ratio(1, 8)? {
        let mut id = [0u8; 32];
        u.fill_buffer(&mut id)?;
        return Ok(Event::new(
            EventId::from_byte_array(id),
            event.pubkey,
            event.created_at,
            event.kind,
            event.tags,
            event.content,
            event.sig,
        ));
    }
    Ok(event)
}
