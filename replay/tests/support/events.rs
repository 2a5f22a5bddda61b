//! Keys, signed events, the scripted relay history, the generated fixture, and reading
//! JSONL files back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, SecretKey, Tag, Timestamp};
use serde_json::Value;

use super::{Sandbox, highwater, path_str, read_lines};

/// Deterministic keys: the secret key is `[n; 32]` (n ≥ 1).
pub fn key(n: u8) -> Keys {
    assert!(n > 0);
    Keys::new(SecretKey::from_slice(&[n; 32]).expect("a valid secret key"))
}

/// The relay's secret key, hex (`[0xee; 32]`): signs the scripted snapshots, and passed
/// to `generate --relay-key`.
pub const RELAY_SECRET: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// The relay's public key, hex (of [`RELAY_SECRET`]).
pub const RELAY_PUBKEY: &str = "a706ad8f73115f90500266f273f7571df9429a4cfb4bbfbcd825227202dabad1";

/// The relay's keys.
pub fn relay() -> Keys {
    key(0xee)
}

/// Signs an event with fixed content, tags and `created_at`. The signature uses fresh
/// randomness, so it differs between runs; the id does not.
pub fn sign(keys: &Keys, kind: u16, tags: &[&[&str]], content: &str, at: u64) -> Event {
    let tags = tags
        .iter()
        .map(|t| Tag::parse(t.iter().copied()).expect("a non-empty tag"));
    EventBuilder::new(Kind::Custom(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(at))
        .finalize(keys)
        .expect("signing succeeds")
}

/// A scripted relay history of four groups, in log order, with `created_at` from
/// 1,800,000,000 on (after any generated workload):
/// - `pizza`: created, described, members put with roles, a join request answered by
///   the relay, a removal, a role change, described again (a 9002 replaces the whole
///   metadata) with the legacy `open` flag, chat;
/// - `gone`: created, described, a member, deleted; a later chat message is ignored;
/// - `seeded`: relay snapshots only (39000–39003; the 39001 is newer than the 39002, so
///   its admin role counts), plus a forged 39002 that is ignored;
/// - `forged`: snapshots signed by a key that is not the relay's, all ignored.
#[expect(
    clippy::too_many_lines,
    reason = "the script reads top to bottom, one event per entry"
)]
pub fn scripted_history() -> Vec<Event> {
    let (alice, bob, carol, dave, mallory, relay) =
        (key(1), key(2), key(3), key(4), key(5), relay());
    let hex = |k: &Keys| k.public_key().to_hex();
    let (pa, pb, pc, pd, pm) = (
        hex(&alice),
        hex(&bob),
        hex(&carol),
        hex(&dave),
        hex(&mallory),
    );
    let script: Vec<(&Keys, u16, Vec<Vec<&str>>, &str)> = vec![
        (&alice, 9007, vec![vec!["h", "pizza"]], ""),
        (
            &alice,
            9002,
            vec![
                vec!["h", "pizza"],
                vec!["name", "Pizza lovers"],
                vec!["about", "Slices, sauce and crust"],
                vec!["picture", "https://example.com/pizza.png"],
                vec!["private"],
                vec!["closed"],
            ],
            "",
        ),
        (
            &alice,
            9000,
            vec![
                vec!["h", "pizza"],
                vec!["p", &pb, "moderator"],
                vec!["p", &pc],
            ],
            "",
        ),
        (&carol, 9, vec![vec!["h", "pizza"]], "hello, pizza people"),
        (&dave, 9021, vec![vec!["h", "pizza"]], "let me in"),
        (&relay, 9000, vec![vec!["h", "pizza"], vec!["p", &pd]], ""),
        (&bob, 9001, vec![vec!["h", "pizza"], vec!["p", &pc]], ""),
        (
            &alice,
            9000,
            vec![vec!["h", "pizza"], vec!["p", &pd, "writer", "moderator"]],
            "",
        ),
        (
            &alice,
            9002,
            vec![
                vec!["h", "pizza"],
                vec!["name", "Pizza lovers"],
                vec!["about", "Slices, sauce and crust"],
                vec!["picture", "https://example.com/pizza.png"],
                vec!["private"],
                vec!["open"],
            ],
            "",
        ),
        (&dave, 9, vec![vec!["h", "pizza"]], "thanks"),
        (&bob, 9007, vec![vec!["h", "gone"]], ""),
        (
            &bob,
            9002,
            vec![
                vec!["h", "gone"],
                vec!["name", "Short-lived"],
                vec!["hidden"],
            ],
            "",
        ),
        (
            &bob,
            9000,
            vec![vec!["h", "gone"], vec!["p", &pa, "admin"]],
            "",
        ),
        (&bob, 9008, vec![vec!["h", "gone"]], ""),
        (&alice, 9, vec![vec!["h", "gone"]], "anyone here?"),
        (
            &relay,
            39_000,
            vec![
                vec!["d", "seeded"],
                vec!["name", "Seeded from snapshots"],
                vec!["about", "Only the relay's word"],
                vec!["public"],
                vec!["restricted"],
            ],
            "",
        ),
        (
            &relay,
            39_002,
            vec![
                vec!["d", "seeded"],
                vec!["p", &pa],
                vec!["p", &pb],
                vec!["p", &pc],
            ],
            "",
        ),
        (
            &relay,
            39_001,
            vec![vec!["d", "seeded"], vec!["p", &pa, "admin"]],
            "",
        ),
        (
            &relay,
            39_003,
            vec![
                vec!["d", "seeded"],
                vec!["role", "admin", "Can do everything"],
            ],
            "",
        ),
        (
            &mallory,
            39_002,
            vec![vec!["d", "seeded"], vec!["p", &pm]],
            "",
        ),
        (
            &mallory,
            39_000,
            vec![vec!["d", "forged"], vec!["name", "Forged"]],
            "",
        ),
        (
            &mallory,
            39_001,
            vec![vec!["d", "forged"], vec!["p", &pm, "admin"]],
            "",
        ),
        (
            &mallory,
            39_002,
            vec![vec!["d", "forged"], vec!["p", &pm]],
            "",
        ),
    ];
    script
        .into_iter()
        .zip(1_800_000_000..)
        .map(|((keys, kind, tags, content), at)| {
            let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
            sign(keys, kind, &tags, content, at)
        })
        .collect()
}

/// Writes events as JSONL.
pub fn write_events(path: &Path, events: &[Event]) {
    let mut text = String::new();
    for event in events {
        writeln!(text, "{}", event.as_json()).expect("writing to a string");
    }
    std::fs::write(path, text).expect("writing the JSONL file");
}

/// The workload of the snapshot and round-trip tests: a generated workload (20 groups,
/// 1,500 events, seed 3, signed by [`RELAY_SECRET`]) followed by [`scripted_history`].
/// Returns the file.
pub fn fixture(sandbox: &Sandbox) -> PathBuf {
    let file = sandbox.path("fixture.jsonl");
    let stdout = highwater(&[
        "generate",
        "--groups",
        "20",
        "--events",
        "1500",
        "--seed",
        "3",
        "--relay-key",
        RELAY_SECRET,
        path_str(&file),
    ])
    .ok();
    assert_eq!(stdout.trim(), format!("relay pubkey {RELAY_PUBKEY}"));
    assert_eq!(relay().public_key().to_hex(), RELAY_PUBKEY);
    let mut text = std::fs::read_to_string(&file).expect("the workload is written");
    for event in scripted_history() {
        writeln!(text, "{}", event.as_json()).expect("writing to a string");
    }
    std::fs::write(&file, text).expect("appending the scripted history");
    file
}

/// The parsed events of a JSONL file, with their group (first `h` or `d` tag).
pub fn events_of(path: &Path) -> Vec<(Value, Option<String>)> {
    read_lines(path)
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("a JSON line");
            let group = event["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .find(|t| matches!(t[0].as_str(), Some("h" | "d")))
                .and_then(|t| t[1].as_str())
                .map(str::to_owned);
            (event, group)
        })
        .collect()
}

/// Every group named by an `h` or `d` tag in a JSONL file.
pub fn groups_of(path: &Path) -> BTreeSet<String> {
    events_of(path).into_iter().filter_map(|(_, g)| g).collect()
}

/// The event ids of a JSONL file, first occurrence only, in file order.
pub fn distinct_ids(lines: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    lines
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("a JSON line");
            event["id"].as_str().expect("an id").to_owned()
        })
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Groups whose first event is a relay-signed snapshot (39000–39003).
pub fn seeded_by_the_relay(file: &Path) -> Vec<String> {
    let mut first: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for (event, group) in events_of(file) {
        if let Some(group) = group {
            first.entry(group).or_insert((
                event["kind"].as_u64().expect("kind"),
                event["pubkey"].as_str().expect("pubkey").to_owned(),
            ));
        }
    }
    first
        .into_iter()
        .filter(|(_, (kind, pubkey))| (39_000..=39_003).contains(kind) && pubkey == RELAY_PUBKEY)
        .map(|(group, _)| group)
        .collect()
}
