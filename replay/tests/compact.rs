//! `highwater compact` as a real process, killed (SIGKILL) at many moments — paused
//! between its transactions, and at arbitrary points of its run — and run again: after
//! every kill the database verifies clean and holds every record the compaction must
//! keep and nothing that was not there before; the final run leaves exactly the model's
//! records, no id lookup finds a removed event, and the groups' state is unchanged.

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use highwater_store::{Store, StoreOptions};
use nostr::prelude::EventId;
use serde_json::Value;
use support::{Db, RELAY_SECRET, Sandbox, command, highwater, path_str};

/// The group of an exported event: its `h` tag, or `d` for the relay's 39000–39003.
fn group_of(event: &Value) -> Option<String> {
    let kind = event["kind"].as_u64()?;
    let name = if (39_000..=39_003).contains(&kind) {
        "d"
    } else {
        "h"
    };
    event["tags"]
        .as_array()?
        .iter()
        .find(|t| t[0] == name)
        .and_then(|t| t[1].as_str())
        .map(str::to_owned)
}

/// The lines a compaction with `--older-than 1d --kind 9 --kind 10 --group
/// EXEMPT=never` keeps: every record of the 2023 workload is older than a day, so
/// chat goes unless it is in `exempt`, its group's last record or the log's last.
fn model_kept(lines: &[String], exempt: &str) -> Vec<String> {
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut last_of_group = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(g) = group_of(e) {
            last_of_group.insert(g, i);
        }
    }
    (lines.iter().zip(&events).enumerate())
        .filter(|(i, (_, e))| {
            let group = group_of(e);
            let chat = matches!(e["kind"].as_u64(), Some(9 | 10));
            !chat
                || group.is_none()
                || group.as_deref() == Some(exempt)
                || *i + 1 == lines.len()
                || group.is_some_and(|g| last_of_group[&g] == *i)
        })
        .map(|(_, (line, _))| line.clone())
        .collect()
}

const COMPACT: [&str; 9] = [
    "compact",
    "--older-than",
    "1d",
    "--kind",
    "9",
    "--kind",
    "10",
    "--chunk",
    "40",
];

/// After a kill: `verify` is clean, nothing new appeared and nothing kept is gone.
fn check_consistent(db: &Db, sandbox: &Sandbox, before: &[String], kept: &BTreeSet<&String>) {
    db.run(&["verify"]).ok();
    let now = db.export(&sandbox.path("now.jsonl"));
    let before: BTreeSet<&String> = before.iter().collect();
    for line in &now {
        assert!(before.contains(line), "a record appeared: {line}");
    }
    let now: BTreeSet<&String> = now.iter().collect();
    for line in kept {
        assert!(
            now.contains(line),
            "a record that must stay is gone: {line}"
        );
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: build, kill paused, kill anywhere, finish, compare"
)]
fn a_compaction_killed_at_any_moment_leaves_a_consistent_database_and_a_rerun_finishes() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("workload.jsonl");
    highwater(&[
        "generate",
        "--groups",
        "30",
        "--events",
        "6000",
        "--seed",
        "24",
        "--relay-key",
        RELAY_SECRET,
        path_str(&file),
    ])
    .ok();
    let db = sandbox.db("db");
    db.import(&file, &["--trusted"]);
    let before = db.export(&sandbox.path("before.jsonl"));
    let first: Value = serde_json::from_str(&before[0]).unwrap();
    let exempt = group_of(&first).expect("the first event has a group");
    let kept_lines = model_kept(&before, &exempt);
    let kept: BTreeSet<&String> = kept_lines.iter().collect();
    assert!(
        before.len() - kept_lines.len() > 400,
        "the workload expires too little"
    );
    let groups: Vec<String> = kept_lines
        .iter()
        .filter_map(|l| group_of(&serde_json::from_str(l).unwrap()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(6)
        .collect();
    let shown_before: Vec<String> = groups.iter().map(|g| db.show(g)).collect();
    let exempt_arg = format!("{exempt}=never");
    let mut args: Vec<&str> = vec!["--db", path_str(&db.path)];
    args.extend(COMPACT);
    args.extend(["--group", &exempt_arg]);

    // Killed while paused after 1, 2, 4 and 8 transactions of the run at that moment.
    for pause in [1, 2, 4, 8] {
        let mut child = command()
            .args(&args)
            .args(["--pause-after", &pause.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the compaction ended before pausing"
            );
            if line.starts_with("compact paused after") {
                break;
            }
        }
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().code(), None, "killed by a signal");
        check_consistent(&db, &sandbox, &before, &kept);
    }
    // Killed at arbitrary moments: whatever it was doing (reading, inside a write
    // transaction, committing), what is left is consistent. The delays only spread
    // the kills; nothing is asserted about when they land.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut child = command()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + state % 200));
        let _ = child.kill();
        child.wait().unwrap();
        check_consistent(&db, &sandbox, &before, &kept);
    }

    // A run to the end removes exactly the rest; a second run finds nothing.
    let done = highwater(&args).ok();
    assert!(done.contains("expired records"), "{done}");
    let again = highwater(&args).ok();
    assert!(again.starts_with("removed 0 expired records"), "{again}");
    assert_eq!(db.export(&sandbox.path("after.jsonl")), kept_lines);
    db.run(&["verify"]).ok();
    let shown_after: Vec<String> = groups.iter().map(|g| db.show(g)).collect();
    assert_eq!(
        shown_after, shown_before,
        "a compaction changed a group's state"
    );

    let store = Store::open(&db.path, StoreOptions::read_only()).unwrap();
    assert_eq!(store.event_count().unwrap(), kept_lines.len() as u64);
    assert_eq!(
        store.removed_records().unwrap(),
        (before.len() - kept_lines.len()) as u64
    );
    for line in &before {
        let event: Value = serde_json::from_str(line).unwrap();
        let id = EventId::from_hex(event["id"].as_str().unwrap()).unwrap();
        assert_eq!(
            store.get_by_id(&id).unwrap().is_some(),
            kept.contains(line),
            "{line}"
        );
    }
}
