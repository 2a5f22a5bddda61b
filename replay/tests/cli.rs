//! End-to-end tests of the `highwater` binary: every command run as a real process
//! against a temporary database (`--db`), checking what an operator sees — exit
//! status, the import summary, `show --json`, `status --json`, `verify` — including
//! after a killed import and a tampered checkpoint.

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use highwater_store::{Checkpoint, CheckpointWrite, Store, StoreError, StoreOptions};
use serde_json::Value;

use support::{
    RELAY_PUBKEY, RELAY_SECRET, Sandbox, Summary, assert_snapshot, command, distinct_ids,
    events_of, fixture, groups_of, highwater, key, one_line_per_group, path_str, read_lines, relay,
    scripted_history, seeded_by_the_relay, sign, write_events,
};

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

#[test]
fn show_json_of_scripted_and_generated_groups() {
    let sandbox = Sandbox::new();
    let file = fixture(&sandbox);

    // `generate` is deterministic byte for byte.
    let again = sandbox.path("again.jsonl");
    highwater(&[
        "generate",
        "--groups",
        "20",
        "--events",
        "1500",
        "--seed",
        "3",
        "--relay-key",
        RELAY_SECRET,
        path_str(&again),
    ])
    .ok();
    let lines = read_lines(&file);
    assert_eq!(lines[..1500], read_lines(&again)[..]);

    // The fixture holds forgeries the folds must ignore: imported as a relay's own
    // log, without the write policy that would refuse them at the door.
    let db = sandbox.db("db");
    let summary = db.import(&file, &["--no-policy"]);
    assert_eq!(summary.rejected, 0, "{summary:?}");
    assert_eq!(summary.accepted + summary.duplicate, lines.len() as u64);
    assert_eq!(summary.accepted, distinct_ids(&lines).len() as u64);
    assert_eq!(
        (summary.head_before, summary.head_after),
        (0, summary.accepted)
    );

    for group in ["pizza", "gone", "seeded", "forged"] {
        assert_snapshot(&format!("show_{group}"), &db.show(group));
    }
    let alice = key(1).public_key().to_hex();
    let pizza = json(&db.show("pizza"));
    assert_eq!(pizza["state"], "active");
    assert_eq!(pizza["creator"], alice.as_str());
    assert_eq!(pizza["metadata"]["name"], "Pizza lovers");
    assert_eq!(
        (
            pizza["metadata"]["private"].as_bool(),
            pizza["metadata"]["closed"].as_bool()
        ),
        (Some(true), Some(false)),
        "the last 9002 says `private` and `open`"
    );
    let carol = key(3).public_key().to_hex();
    assert!(
        pizza["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["pubkey"] != carol.as_str()),
        "carol was removed"
    );
    let gone = json(&db.show("gone"));
    assert_eq!(gone["state"], "deleted");
    assert_eq!(gone["member_count"], 0);
    let seeded = json(&db.show("seeded"));
    assert_eq!(seeded["state"], "active");
    assert_eq!(seeded["metadata"]["name"], "Seeded from snapshots");
    assert_eq!(seeded["member_count"], 3, "the forged 39002 is ignored");
    assert_eq!(
        seeded["members"][0],
        serde_json::json!({"pubkey": alice, "roles": ["admin"]}),
        "the 39001 is newer than the 39002"
    );
    assert_eq!(json(&db.show("forged"))["state"], "unknown");

    // The generated workload seeds one group from relay snapshots only.
    let mut generated_seeded = seeded_by_the_relay(&file);
    assert!(generated_seeded.contains(&"seeded".to_owned()));
    generated_seeded.retain(|g| g != "seeded");
    assert_eq!(generated_seeded.len(), 1, "{generated_seeded:?}");
    let text = db.show(&generated_seeded[0]);
    assert_eq!(json(&text)["state"], "active");
    assert_snapshot("show_generated_seeded", &text);

    let table = one_line_per_group(&db, &file);
    assert_snapshot("show_all_groups", &table);
    assert_snapshot(
        "show_table_pizza",
        &db.run(&["show", "--group", "pizza"]).ok(),
    );
}

#[test]
fn export_then_import_gives_the_same_state() {
    let sandbox = Sandbox::new();
    let file = fixture(&sandbox);
    let a = sandbox.db("a");
    a.import(&file, &["--no-policy"]);
    let export = sandbox.path("export.jsonl");
    let run = a.run(&["export", path_str(&export)]);
    assert!(run.stderr.contains(RELAY_PUBKEY), "{run}");
    run.ok();
    let exported = read_lines(&export);
    // Log order is file order; duplicates are stored once.
    assert_eq!(distinct_ids(&exported), distinct_ids(&read_lines(&file)));
    assert_eq!(exported.len() as u64, a.head());

    let groups = groups_of(&export);
    let status = a.status();
    assert_eq!(status["groups"], groups.len());
    let shown: BTreeMap<&str, String> = groups.iter().map(|g| (g.as_str(), a.show(g))).collect();

    for (name, extra) in [("b", &["--no-policy"][..]), ("trusted", &["--trusted"][..])] {
        let b = sandbox.db(name);
        let summary = b.import(&export, extra);
        assert_eq!(
            (summary.accepted, summary.duplicate, summary.rejected),
            (exported.len() as u64, 0, 0),
            "{name}"
        );
        let other = b.status();
        for field in ["head", "events", "groups", "relay_pubkey"] {
            assert_eq!(other[field], status[field], "{name}: status {field}");
        }
        for (group, text) in &shown {
            assert_eq!(&b.show(group), text, "{name}: group {group}");
        }
        assert_eq!(
            b.export(&sandbox.path(&format!("{name}.jsonl"))),
            exported,
            "{name}: re-export"
        );
    }

    // One group's export is that group's events, in log order.
    let pizza = sandbox.path("pizza.jsonl");
    a.run(&["export", "--group", "pizza", path_str(&pizza)])
        .ok();
    let expected: Vec<String> = exported
        .iter()
        .zip(events_of(&export))
        .filter(|(_, (_, group))| group.as_deref() == Some("pizza"))
        .map(|(line, _)| line.clone())
        .collect();
    assert_eq!(read_lines(&pizza), expected);
    assert_eq!(expected.len(), 10);
}

/// Imports the fixture and runs `replay`, which writes a checkpoint for every group and
/// projection; returns the database.
fn checkpointed(sandbox: &Sandbox) -> support::Db {
    let db = sandbox.db("db");
    db.import(&fixture(sandbox), &[]);
    let run = db.run(&["verify"]).ok();
    assert!(run.contains(": 0 differences"), "{run}");
    db.run(&["replay"]).ok();
    let status = db.status();
    for p in status["projections"].as_array().expect("projections") {
        assert_eq!(p["with_checkpoint"], status["groups"], "{p}");
        assert_eq!(p["checkpoint_lag"], 0, "{p}");
    }
    db
}

#[test]
fn verify_catches_a_wrong_checkpoint_that_decodes() {
    let sandbox = Sandbox::new();
    let db = checkpointed(&sandbox);
    let before = db.show("pizza");
    {
        // The membership checkpoint of `pizza` gets the state of `seeded`: a valid
        // checksum, a state that decodes, the right watermark — and the wrong members.
        let store = Store::open(&db.path, StoreOptions::default()).expect("open");
        let pizza = store.group("pizza").expect("pizza").no;
        let seeded = store.group("seeded").expect("seeded").no;
        let mine = store
            .read_checkpoint("membership", pizza)
            .expect("read")
            .expect("pizza has a checkpoint");
        let theirs = store
            .read_checkpoint("membership", seeded)
            .expect("read")
            .expect("seeded has a checkpoint");
        assert_ne!(mine.state, theirs.state);
        store
            .write_checkpoints(
                vec![CheckpointWrite {
                    projection: "membership".into(),
                    group: pizza,
                    checkpoint: Checkpoint {
                        state: theirs.state,
                        ..mine
                    },
                }],
                None,
            )
            .expect("write");
    }
    let run = db.run(&["verify"]).fails();
    assert!(
        run.stdout
            .contains("DIFFERENT group pizza projection membership"),
        "{run}"
    );
    assert_eq!(run.stdout.matches("DIFFERENT group").count(), 1, "{run}");
    assert!(run.stdout.contains(": 1 differences"), "{run}");
    db.run(&["verify", "--group", "pizza"]).fails();
    db.run(&["verify", "--group", "seeded"]).ok();
    // A cold read serves the checkpoint: this is what verify is for.
    assert_ne!(db.show("pizza"), before);

    // A full replay rewrites it.
    db.run(&["replay"]).ok();
    db.run(&["verify"]).ok();
    assert_eq!(db.show("pizza"), before);
}

#[test]
fn a_corrupt_checkpoint_is_ignored_and_rebuilt() {
    let sandbox = Sandbox::new();
    let db = checkpointed(&sandbox);
    let before = db.show("pizza");
    {
        let store = Store::open(&db.path, StoreOptions::default()).expect("open");
        let pizza = store.group("pizza").expect("pizza").no;
        let mut bytes = store
            .raw_checkpoint("membership", pizza)
            .expect("read")
            .expect("pizza has a checkpoint");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        store
            .put_raw_checkpoint("membership", pizza, bytes)
            .expect("write");
        assert!(matches!(
            store.read_checkpoint("membership", pizza),
            Err(StoreError::Corrupted(_))
        ));
    }
    let status = db.status();
    let membership = &status["projections"][0];
    assert_eq!(membership["name"], "membership");
    assert_eq!(membership["stale_checkpoints"], 1, "{status}");

    let run = db.run(&["verify"]);
    assert!(run.stderr.contains("corrupted checkpoint"), "{run}");
    let stdout = run.ok();
    assert!(stdout.contains(": 0 differences"), "{stdout}");
    assert_eq!(db.show("pizza"), before);
}

/// An event as one line of a JSONL file.
fn line_of(event: &nostr::prelude::Event) -> Vec<u8> {
    event.as_json().into_bytes()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one table of bad lines, checked under three option sets"
)]
fn import_counts_every_kind_of_bad_line() {
    let sandbox = Sandbox::new();
    let (alice, bob) = (key(1), key(2));
    let b = bob.public_key().to_hex();
    let at = 1_800_000_000;
    let good = [
        sign(&alice, 9007, &[&["h", "lines"]], "", at),
        sign(&alice, 9000, &[&["h", "lines"], &["p", &b]], "", at + 1),
        sign(&bob, 9, &[&["h", "lines"]], "hi", at + 2),
        sign(&bob, 1, &[], "an ungrouped note", at + 3),
    ];
    let mut bad_id = json(&sign(&bob, 9, &[&["h", "lines"]], "signed", at + 4).as_json());
    bad_id["content"] = "changed after signing".into();
    let mut bad_sig = json(&sign(&bob, 9, &[&["h", "lines"]], "mine", at + 5).as_json());
    bad_sig["sig"] = good[0].sig.to_string().into();
    let missing_group = sign(&alice, 9000, &[&["p", &b]], "", at + 6);
    let too_large = sign(&bob, 9, &[&["h", "lines"]], &"x".repeat(130 * 1024), at + 7);
    let too_long_line = sign(&bob, 9, &[&["h", "lines"]], &"y".repeat(300 * 1024), at + 8);
    let mut many: Vec<Vec<String>> = vec![vec!["h".into(), "lines".into()]];
    many.extend((0..2_000).map(|i| vec!["t".into(), format!("tag{i}")]));
    let many: Vec<Vec<&str>> = many
        .iter()
        .map(|t| t.iter().map(String::as_str).collect())
        .collect();
    let many: Vec<&[&str]> = many.iter().map(Vec::as_slice).collect();
    let too_many_tags = sign(&bob, 9, &many, "", at + 9);
    let long_group = "g".repeat(300);
    let bad_group = sign(&bob, 9, &[&["h", &long_group]], "", at + 10);

    let lines: Vec<Vec<u8>> = vec![
        line_of(&good[0]),
        b"this is not JSON".to_vec(),
        b"".to_vec(),
        line_of(&good[1]),
        b"{\"hello\": \"world\"}".to_vec(),
        b"[1, 2, 3]".to_vec(),
        b"   ".to_vec(),
        bad_id.to_string().into_bytes(),
        bad_sig.to_string().into_bytes(),
        line_of(&missing_group),
        vec![0xff, 0xfe, b'{'],
        line_of(&too_large),
        line_of(&too_long_line),
        line_of(&too_many_tags),
        line_of(&bad_group),
        [line_of(&good[2]), b"\r".to_vec()].concat(),
        line_of(&good[1]),
        b"\t".to_vec(),
        line_of(&good[3]),
    ];
    let file = sandbox.path("lines.jsonl");
    std::fs::write(&file, lines.join(&b'\n')).expect("write");

    let causes = |extra: &[(&str, u64)]| -> BTreeMap<String, u64> {
        [
            ("not JSON", 2),
            ("not an event", 2),
            ("bad id", 1),
            ("missing group tag", 1),
            ("too large", 2),
            ("too many tags", 1),
            ("bad group id", 1),
        ]
        .iter()
        .chain(extra)
        .map(|(c, n)| ((*c).to_owned(), *n))
        .collect()
    };
    let refused_lines = |trusted: bool| -> Vec<u64> {
        [2, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15]
            .into_iter()
            .filter(|&l| !(trusted && l == 9))
            .take(10)
            .collect()
    };
    for (name, extra, accepted, expected, trusted) in [
        ("db", &[][..], 4, causes(&[("bad signature", 1)]), false),
        // Small batches: the duplicate is found in the index, not within a batch.
        (
            "batched",
            &["--batch", "2"][..],
            4,
            causes(&[("bad signature", 1)]),
            false,
        ),
        // Trusted input skips signatures (and the policy), and only those.
        ("trusted", &["--trusted"][..], 5, causes(&[]), true),
    ] {
        let db = sandbox.db(name);
        let summary = db.import(&file, extra);
        assert_eq!(
            summary.first.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            refused_lines(trusted),
            "{name}"
        );
        assert_eq!(
            summary,
            Summary {
                accepted,
                duplicate: 1,
                rejected: expected.values().sum(),
                skipped: 0,
                head_before: 0,
                head_after: accepted,
                causes: expected,
                first: summary.first.clone(),
            },
            "{name}"
        );
        assert_eq!(db.head(), accepted, "{name}");
    }
}

#[test]
fn strict_import_stops_at_the_first_bad_line() {
    let sandbox = Sandbox::new();
    let alice = key(1);
    let events: Vec<_> = (0..5)
        .map(|i| {
            sign(
                &alice,
                9,
                &[&["h", "strict"]],
                &format!("message {i}"),
                1_800_000_000 + i,
            )
        })
        .collect();
    let line = |i: usize| events[i].as_json();
    // Line 5 is the bad one; line 2 is blank and still counts.
    let text = [
        line(0),
        String::new(),
        line(1),
        line(2),
        "{oops".into(),
        line(3),
        line(4),
    ]
    .join("\n");
    let file = sandbox.path("strict.jsonl");
    std::fs::write(&file, text).expect("write");
    let ids = |n: usize| -> Vec<String> { events[..n].iter().map(|e| e.id.to_hex()).collect() };

    // Chat in a group that was never created: only --no-policy takes it.
    for (name, extra) in [
        ("db", &["--no-policy"][..]),
        ("batched", &["--no-policy", "--batch", "2"][..]),
    ] {
        let db = sandbox.db(name);
        let mut args = vec!["import", "--strict", "--relay-pubkey", RELAY_PUBKEY];
        args.extend_from_slice(extra);
        args.push(path_str(&file));
        let error = db.run(&args).error_line();
        assert!(error.starts_with("error: line 5: not JSON: "), "{error}");
        assert!(
            error.ends_with("(--strict stops here; the 3 events before it are committed)"),
            "{error}"
        );
        assert_eq!(db.head(), 3, "{name}");
        let export = sandbox.path(&format!("{name}.jsonl"));
        assert_eq!(distinct_ids(&db.export(&export)), ids(3), "{name}");

        // Without --strict the rest goes in, from the refused line on: the committed
        // part is skipped, not decided again.
        let summary = db.import(&file, extra);
        assert_eq!(
            (summary.accepted, summary.duplicate, summary.rejected),
            (2, 0, 1),
            "{name}"
        );
        assert_eq!(distinct_ids(&db.export(&export)), ids(5), "{name}");
    }
}

#[test]
fn the_relay_key_is_stored_and_a_different_one_refused() {
    let sandbox = Sandbox::new();
    let seeded: Vec<_> = scripted_history()
        .into_iter()
        .filter(|e| e.tags.iter().any(|t| t.as_slice() == ["d", "seeded"]))
        .filter(|e| e.pubkey == relay().public_key())
        .collect();
    assert_eq!(seeded.len(), 4);
    let file = sandbox.path("seeded.jsonl");
    write_events(&file, &seeded);
    let other = key(9).public_key().to_hex();

    let db = sandbox.db("db");
    db.import(&file, &[]);
    let head = db.head();
    for args in [
        vec!["import", "--relay-pubkey", &other, path_str(&file)],
        vec!["init", "--relay-pubkey", &other],
    ] {
        let error = db.run(&args).error_line();
        assert!(
            error.contains(RELAY_PUBKEY) && error.contains(&other),
            "{error}"
        );
    }
    assert_eq!(db.head(), head);
    assert_eq!(db.status()["relay_pubkey"], RELAY_PUBKEY);

    // `init` stores the key; a later import without the flag uses it.
    let init = sandbox.db("init");
    let stdout = init.run(&["init", "--relay-pubkey", RELAY_PUBKEY]).ok();
    assert!(stdout.contains(RELAY_PUBKEY), "{stdout}");
    let run = init.run(&["import", path_str(&file)]);
    assert_eq!(run.stderr, "", "{run}");
    run.ok();
    let seeded = json(&init.show("seeded"));
    assert_eq!(seeded["state"], "active");
    assert_eq!(seeded["metadata"]["name"], "Seeded from snapshots");
    assert_eq!(seeded["member_count"], 3);

    // Without any key, relay snapshots are refused (no key is the relay's), and the
    // import says so; imported without the policy, the folds ignore them.
    let keyless = sandbox.db("keyless");
    let run = keyless.run(&["import", path_str(&file)]);
    assert!(run.stderr.contains("warning: no relay key"), "{run}");
    assert_eq!(run.status.code(), Some(1), "{run}");
    let summary = Summary::parse(&run.stdout);
    assert_eq!((summary.accepted, summary.rejected), (0, 4), "{run}");
    let shown = keyless.run(&["show", "--group", "seeded"]).fails();
    assert!(shown.stderr.contains("no such group"), "{shown}");
    let raw = sandbox.db("keyless-raw");
    let run = raw.run(&["import", "--no-policy", path_str(&file)]);
    assert!(run.stderr.contains("warning: no relay key"), "{run}");
    run.ok();
    assert_eq!(json(&raw.show("seeded"))["state"], "unknown");
    assert_eq!(raw.status()["relay_pubkey"], Value::Null);
}

#[test]
fn importing_the_same_file_twice_changes_nothing() {
    let sandbox = Sandbox::new();
    let file = fixture(&sandbox);
    // A second run finds that the first decided every record and decides nothing;
    // `--from-start` decides them all again and finds every one already present.
    let db = sandbox.db("db");
    let first = db.import(&file, &["--no-policy"]);
    let lines = read_lines(&file).len() as u64;
    let pizza = db.show("pizza");
    let second = db.import(&file, &["--no-policy"]);
    assert_eq!(
        second,
        Summary {
            accepted: 0,
            duplicate: 0,
            rejected: 0,
            skipped: 0,
            head_before: first.head_after,
            head_after: first.head_after,
            causes: BTreeMap::new(),
            first: Vec::new(),
        }
    );
    let third = db.import(&file, &["--no-policy", "--from-start"]);
    assert_eq!(
        third,
        Summary {
            accepted: 0,
            duplicate: lines,
            rejected: 0,
            skipped: 0,
            head_before: first.head_after,
            head_after: first.head_after,
            causes: BTreeMap::new(),
            first: Vec::new(),
        }
    );
    assert_eq!(db.head(), first.head_after);
    assert_eq!(db.show("pizza"), pizza);
}

#[test]
fn a_killed_import_resumes_with_nothing_lost() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("big.jsonl");
    highwater(&[
        "generate",
        "--groups",
        "50",
        "--events",
        "30000",
        "--seed",
        "5",
        "--relay-key",
        RELAY_SECRET,
        path_str(&file),
    ])
    .ok();
    let lines = read_lines(&file);
    let ids = distinct_ids(&lines);
    let db = sandbox.db("db");
    db.run(&["init", "--relay-pubkey", RELAY_PUBKEY]).ok();

    // Small batches: many commits, so the kill lands between and inside them.
    let mut child = command()
        .args([
            "--db",
            path_str(&db.path),
            "import",
            "--no-policy",
            "--batch",
            "256",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the import");
    let data = db.path.join("data.mdb");
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().expect("poll the import").is_none(),
            "the import finished before it could be killed"
        );
        if std::fs::metadata(&data).is_ok_and(|m| m.len() > 3 << 20) {
            break;
        }
        assert!(started.elapsed() < Duration::from_mins(1), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    assert!(!child.wait().expect("reap").success());

    let committed = db.head();
    assert!(
        0 < committed && committed < ids.len() as u64,
        "{committed} of {} committed at the kill",
        ids.len()
    );
    // The re-run skips the records the killed run committed and decides the rest.
    let run = db.run(&["import", "--no-policy", path_str(&file)]);
    assert_eq!(run.status.code(), Some(0), "{run}");
    let summary = Summary::parse(&run.stdout);
    assert_eq!(summary.rejected, 0, "{summary:?}");
    assert_eq!(summary.head_before, committed);
    assert_eq!(summary.accepted, ids.len() as u64 - committed);
    let skipped: u64 = run
        .stdout
        .split_once("an earlier run of this import decided the ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("not resumed: {run}"));
    assert_eq!(
        skipped + summary.accepted + summary.duplicate,
        lines.len() as u64
    );
    assert_eq!(db.head(), ids.len() as u64);
    let stdout = db.run(&["verify"]).ok();
    assert!(stdout.contains(": 0 differences"), "{stdout}");
    assert_eq!(distinct_ids(&db.export(&sandbox.path("export.jsonl"))), ids);
}

#[test]
fn help_is_there_and_mistakes_are_explained() {
    for sub in [
        None,
        Some("init"),
        Some("import"),
        Some("groups"),
        Some("show"),
        Some("replay"),
        Some("verify"),
        Some("status"),
        Some("export"),
        Some("generate"),
        Some("demo"),
        Some("bench"),
    ] {
        let args: Vec<&str> = sub.into_iter().chain(["--help"]).collect();
        let stdout = highwater(&args).ok();
        assert!(stdout.contains("Example"), "{sub:?}:\n{stdout}");
    }

    let sandbox = Sandbox::new();
    let db = sandbox.db("db");
    let file = sandbox.path("scripted.jsonl");
    write_events(&file, &scripted_history());
    db.import(&file, &[]);

    let run = db.run(&["status", "--no-such-flag"]).fails();
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("--no-such-flag"), "{run}");
    db.run(&["frobnicate"]).fails();

    let nothing = db
        .run(&["show", "--group", "nonexistent", "--json"])
        .fails();
    assert_eq!(nothing.status.code(), Some(1), "{nothing}");
    assert!(nothing.stderr.contains("no such group"), "{nothing}");
    assert_eq!(nothing.stdout, "");

    let out = sandbox.path("nothing.jsonl");
    let error = db
        .run(&["export", "--group", "nonexistent", path_str(&out)])
        .error_line();
    assert!(error.contains("\"nonexistent\" has no events"), "{error}");
    assert!(!out.exists(), "no empty export is left behind");

    // A mistyped file or key creates no database and binds none to a key.
    let fresh = sandbox.db("fresh");
    let missing = sandbox.path("missing.jsonl");
    let error = fresh
        .run(&["import", "--relay-pubkey", RELAY_PUBKEY, path_str(&missing)])
        .error_line();
    assert!(error.contains(path_str(&missing)), "{error}");
    let error = fresh
        .run(&["import", "--relay-pubkey", "c0ffee", path_str(&file)])
        .error_line();
    assert!(error.contains("\"c0ffee\" is not a public key"), "{error}");
    assert!(!fresh.path.exists());
}

#[test]
fn demo_runs_end_to_end_without_differences() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("demo");
    let stdout = highwater(&[
        "demo",
        "--dir",
        path_str(&dir),
        "--events",
        "3000",
        "--groups",
        "20",
    ])
    .ok();
    let verify = stdout
        .lines()
        .find(|l| l.contains("verify (served == replay)"))
        .unwrap_or_else(|| panic!("no verify timing in:\n{stdout}"));
    assert!(verify.ends_with(", 0 differences"), "{verify}");
    // The demo's database is an ordinary one.
    let db = support::Db {
        path: dir.join("highwater.lmdb"),
    };
    let stdout = db.run(&["verify"]).ok();
    assert!(stdout.contains(": 0 differences"), "{stdout}");
    // The generated workload holds events the relay's rules refuse (forgeries,
    // outsiders); the rest is the log.
    assert!(db.head() > 1_500);
}
