//! `highwater upgrade` as a real process: a format-1 database is refused by the other
//! commands with a pointer to `upgrade`; an upgrade killed (SIGKILL) midway leaves the
//! database exactly as it was; a second run completes, and every event, id lookup and
//! group answer is the same as before; a third says it is already current.

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use highwater_store::{Store, StoreOptions, content_digest, downgrade_to_v1};
use nostr::prelude::EventId;
use serde_json::Value;
use support::{RELAY_SECRET, Sandbox, command, highwater, path_str};

#[test]
fn a_killed_upgrade_leaves_format_1_and_a_rerun_upgrades_with_the_same_content() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("workload.jsonl");
    highwater(&[
        "generate",
        "--groups",
        "40",
        "--events",
        "9500",
        "--seed",
        "9",
        "--relay-key",
        RELAY_SECRET,
        path_str(&file),
    ])
    .ok();
    let db = sandbox.db("db");
    db.import(&file, &["--trusted"]);
    let before = db.export(&sandbox.path("before.jsonl"));
    let groups_before = db.run(&["groups", "--json"]).ok();
    let head = db.head();
    assert!(
        head > 8_192,
        "the log is large enough to pause midway: {head}"
    );

    // The same content in format 1, as an older highwater wrote it.
    downgrade_to_v1(&db.path).unwrap();
    let v1 = content_digest(&db.path).unwrap();
    assert_eq!(v1.0, 1);
    let refused = db.run(&["status"]).error_line();
    assert!(refused.contains("highwater upgrade"), "{refused}");
    assert!(refused.contains("format version 1"), "{refused}");

    // Kill the upgrade in the middle of its transaction: it says when it got there.
    let mut child = command()
        .args([
            "--db",
            path_str(&db.path),
            "upgrade",
            "--pause-after",
            "4096",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the upgrade ended before pausing: {seen:?}"
        );
        let paused = line.starts_with("upgrade paused after");
        seen.push(line);
        if paused {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("upgrading: ")),
        "progress is printed off a terminal: {seen:?}"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal: {status:?}");
    drop(child.stdin.take());

    // Still format 1, every entry of every table as it was.
    assert_eq!(content_digest(&db.path).unwrap(), v1);
    db.run(&["status"]).error_line();

    let done = db.run(&["upgrade"]).ok();
    assert!(
        done.contains(&format!(
            "from format version 1 to 4: {head} records rewritten"
        )),
        "{done}"
    );
    let again = db.run(&["upgrade"]).ok();
    assert!(again.contains("already current"), "{again}");

    // Every event, every group answer, the id index.
    assert_eq!(db.export(&sandbox.path("after.jsonl")), before);
    assert_eq!(db.run(&["groups", "--json"]).ok(), groups_before);
    db.run(&["verify"]).ok();
    let store = Store::open(&db.path, StoreOptions::read_only()).unwrap();
    for (seq, line) in (1u64..).zip(&before) {
        let event: Value = serde_json::from_str(line).unwrap();
        let id: [u8; 32] = hex_bytes(event["id"].as_str().unwrap());
        let (found, stored) = store
            .get_by_id(&EventId::from_byte_array(id))
            .unwrap()
            .unwrap();
        assert_eq!(found, seq);
        assert_eq!(stored.id.to_bytes(), id);
    }
}

fn hex_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}
