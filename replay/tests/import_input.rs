//! End-to-end tests of what `highwater import` reads: every input format (JSONL, JSON
//! arrays, relay messages, BOM, CRLF, blank lines, gzip), mixed bad lines and the
//! rejects file, exit statuses, `--kinds`, and limits named in refusals.

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use std::io::Write as _;

use nostr::prelude::Event;
use serde_json::Value;

use support::imports::{import, json, log_ids, summary};
use support::{Sandbox, key, path_str, sign, write_events};

const AT: u64 = 1_800_000_000;

/// The events every format test imports: a group, a member, chat.
fn small_log() -> Vec<Event> {
    let (alice, bob) = (key(1), key(2));
    let b = bob.public_key().to_hex();
    vec![
        sign(&alice, 9007, &[&["h", "fmt"], &["restricted"]], "", AT),
        sign(&alice, 9000, &[&["h", "fmt"], &["p", &b]], "", AT + 1),
        sign(&bob, 9, &[&["h", "fmt"]], "one", AT + 2),
        sign(&bob, 9, &[&["h", "fmt"]], "two", AT + 3),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

#[test]
fn every_input_format_gives_the_same_log() {
    let sandbox = Sandbox::new();
    let events = small_log();
    let objects: Vec<String> = events.iter().map(Event::as_json).collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.to_hex()).collect();
    let jsonl = objects.join("\n") + "\n";
    let pretty_array =
        serde_json::to_string_pretty(&objects.iter().map(|o| json(o)).collect::<Vec<_>>())
            .expect("JSON");
    let formats: Vec<(&str, Vec<u8>)> = vec![
        ("plain.jsonl", jsonl.clone().into_bytes()),
        ("no-final-newline.jsonl", objects.join("\n").into_bytes()),
        ("crlf.jsonl", objects.join("\r\n").into_bytes()),
        (
            "bom-and-blank-lines.jsonl",
            [
                b"\xef\xbb\xbf".to_vec(),
                format!(
                    "\n\n{}\n   \n\t\n{}\n",
                    objects[..2].join("\n"),
                    objects[2..].join("\n\n")
                )
                .into_bytes(),
            ]
            .concat(),
        ),
        (
            "array.json",
            format!("[{}]", objects.join(",")).into_bytes(),
        ),
        ("pretty-array.json", pretty_array.clone().into_bytes()),
        (
            "bom-array.json",
            [
                b"\xef\xbb\xbf\n".to_vec(),
                pretty_array.clone().into_bytes(),
            ]
            .concat(),
        ),
        (
            "relay-messages.jsonl",
            objects
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    if i % 2 == 0 {
                        format!("[\"EVENT\",{o}]")
                    } else {
                        format!("[\"EVENT\", \"sub{i}\", {o}]")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        ),
        ("compressed.jsonl.gz", gzip(jsonl.as_bytes())),
        ("compressed-array.json.gz", gzip(pretty_array.as_bytes())),
        // Detected by its magic bytes, whatever its name.
        ("gzip-without-the-name.jsonl", gzip(jsonl.as_bytes())),
    ];
    for (name, bytes) in formats {
        let file = sandbox.path(name);
        std::fs::write(&file, bytes).expect("write");
        let db = sandbox.db(&format!("db-{name}"));
        let (code, stdout, stderr) = import(&db, &file, &[]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
        let s = summary(&stdout);
        assert_eq!((s.accepted, s.rejected), (4, 0), "{name}: {stdout}");
        assert_eq!(log_ids(&sandbox, &db), ids, "{name}");
    }
}

#[test]
fn exit_statuses_and_the_rejects_file() {
    let sandbox = Sandbox::new();
    let events = small_log();
    let mallory = key(6);
    let forged = sign(&mallory, 9, &[&["h", "fmt"]], "let me in", AT + 9);
    let lines = [
        events[0].as_json(),
        "not json at all".to_owned(),
        events[1].as_json(),
        "{\"kind\": 1}".to_owned(),
        String::new(),
        forged.as_json(),
        events[2].as_json(),
        "[\"NOTICE\", \"hello\"]".to_owned(),
        events[3].as_json(),
    ];
    let file = sandbox.path("mixed.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let db = sandbox.db("db");
    let rejects = sandbox.path("rejects.jsonl");
    let (code, stdout, _) = import(&db, &file, &["--rejects", path_str(&rejects)]);
    assert_eq!(code, 1, "{stdout}");
    let s = summary(&stdout);
    assert_eq!((s.accepted, s.rejected), (4, 4), "{stdout}");
    let written: Vec<Value> = support::read_lines(&rejects)
        .iter()
        .map(|l| json(l))
        .collect();
    let lines_of: Vec<u64> = written
        .iter()
        .map(|v| v["line"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(lines_of, [2, 4, 6, 8]);
    assert_eq!(written[0]["record"], "not json at all");
    assert!(
        written[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not JSON"))
    );
    assert!(
        written[1]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not an event"))
    );
    assert_eq!(
        written[2]["reason"],
        "restricted: only members can post to this group"
    );
    assert_eq!(
        json(written[2]["record"].as_str().expect("text"))["id"],
        forged.id.to_hex()
    );
    assert!(
        written[3]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not an event"))
    );
    // The summary lists them too, with their lines.
    assert_eq!(
        s.first.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [2, 4, 6, 8]
    );

    // Everything already present: 0.
    let (code, stdout, _) = import(&db, &sandbox.path("mixed.jsonl"), &[]);
    assert_eq!(code, 1, "the bad lines are still bad: {stdout}");
    let clean = sandbox.path("clean.jsonl");
    write_events(&clean, &events);
    let (code, stdout, _) = import(&db, &clean, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(summary(&stdout).duplicate, 4);

    // Nothing readable: 2, and nothing written.
    let mut noise = vec![0u8; 3 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x.to_le_bytes()[0];
    }
    let random = sandbox.path("random.bin");
    std::fs::write(&random, &noise).expect("write");
    let empty = sandbox.path("empty.jsonl");
    std::fs::write(&empty, "\n\n").expect("write");
    let head = db.head();
    for file in [&random, &empty] {
        let (code, stdout, stderr) = import(&db, file, &[]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stderr.contains("no event could be read"), "{stderr}");
    }
    assert_eq!(db.head(), head);

    // The import could not run: 3.
    let missing = db.run(&["import", path_str(&sandbox.path("nope.jsonl"))]);
    assert_eq!(missing.status.code(), Some(3), "{missing}");
    let fake_gz = sandbox.path("plain.gz");
    std::fs::write(&fake_gz, events[0].as_json()).expect("write");
    let run = db.run(&["import", path_str(&fake_gz)]);
    assert_eq!(run.status.code(), Some(3), "{run}");
    assert!(run.stderr.contains("not gzip"), "{run}");
    // Bad usage: clap's 2.
    let usage = db.run(&["import", "--kinds", "some", path_str(&clean)]);
    assert_eq!(usage.status.code(), Some(2), "{usage}");
}

#[test]
fn kinds_nip29_keeps_group_events_only() {
    let sandbox = Sandbox::new();
    let mut events = small_log();
    let bob = key(2);
    events.push(sign(&bob, 1, &[], "a note", AT + 5));
    events.push(sign(&bob, 0, &[], "{}", AT + 6));
    let file = sandbox.path("mixed-kinds.jsonl");
    write_events(&file, &events);
    let db = sandbox.db("db");
    let (code, stdout, _) = import(&db, &file, &["--kinds", "nip29"]);
    assert_eq!(code, 0, "{stdout}");
    let s = summary(&stdout);
    assert_eq!((s.accepted, s.skipped, s.rejected), (4, 2, 0), "{stdout}");
    let all = sandbox.db("all");
    let (code, stdout, _) = import(&all, &file, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(summary(&stdout).accepted, 6);
}

#[test]
fn limits_name_their_flag_and_a_huge_line_is_skipped_unread() {
    let sandbox = Sandbox::new();
    let events = small_log();
    let bob = key(2);
    let big = sign(&bob, 9, &[&["h", "fmt"]], &"x".repeat(200 * 1024), AT + 4);
    let file = sandbox.path("limits.jsonl");
    let mut text = String::new();
    for e in &events[..2] {
        text.push_str(&e.as_json());
        text.push('\n');
    }
    text.push_str(&big.as_json());
    text.push('\n');
    // 8 MB on one line, without a newline until the very end.
    text.push_str(&"z".repeat(8 << 20));
    text.push('\n');
    text.push_str(&events[2].as_json());
    std::fs::write(&file, text).expect("write");
    let db = sandbox.db("db");
    let (code, stdout, _) = import(&db, &file, &["--max-state-event-bytes", "1048576"]);
    assert_eq!(code, 1, "{stdout}");
    let s = summary(&stdout);
    assert_eq!((s.accepted, s.rejected), (3, 2), "{stdout}");
    assert_eq!(s.first[0].0, 3);
    assert!(
        s.first[0].1.contains("exceeds --max-event-bytes 128 KiB"),
        "{stdout}"
    );
    assert_eq!(s.first[1].0, 4);
    assert!(s.first[1].1.contains("skipped unread"), "{stdout}");

    // Raised, the big event goes in.
    let (code, stdout, _) = import(&db, &file, &["--max-event-bytes", "300000"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(summary(&stdout).accepted, 1, "{stdout}");
}
