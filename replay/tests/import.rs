//! End-to-end tests of `highwater import` as an operator runs it: the relay's write
//! policy applied in file order (forged moderation, demoted admins, promotions in the
//! same batch, a second 9007, client-signed state events, two `h` tags), a 30,000-member
//! relay 39002, the stored policy options, keys, `groups`, and `demo`'s care. What it
//! reads (formats, bad lines, exit statuses, limits) is in `import_input.rs`.

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use std::path::Path;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{AppendOutcome, Store, StoreOptions};
use nostr::prelude::{Event, Timestamp, ToBech32};

use support::imports::{import, json, log_ids, summary};
use support::{RELAY_PUBKEY, Sandbox, key, path_str, relay, sign, write_events};

const AT: u64 = 1_800_000_000;

fn members(db: &support::Db, group: &str) -> Vec<String> {
    json(&db.show(group))["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["pubkey"].as_str().expect("pubkey").to_owned())
        .collect()
}

#[test]
fn forged_moderation_from_a_stranger_is_refused() {
    let sandbox = Sandbox::new();
    let (alice, mallory) = (key(1), key(6));
    let (a, m) = (alice.public_key().to_hex(), mallory.public_key().to_hex());
    let events = [
        sign(&alice, 9007, &[&["h", "pizza"], &["name", "Pizza"]], "", AT),
        sign(
            &mallory,
            9000,
            &[&["h", "pizza"], &["p", &m, "admin"]],
            "",
            AT + 1,
        ),
        sign(
            &mallory,
            9002,
            &[&["h", "pizza"], &["name", "Mine now"]],
            "",
            AT + 2,
        ),
        sign(&mallory, 9001, &[&["h", "pizza"], &["p", &a]], "", AT + 3),
    ];
    let file = sandbox.path("forged.jsonl");
    write_events(&file, &events);
    let db = sandbox.db("db");
    let (code, stdout, _) = import(&db, &file, &[]);
    assert_eq!(code, 1, "{stdout}");
    let s = summary(&stdout);
    assert_eq!((s.accepted, s.rejected), (1, 3), "{stdout}");
    assert_eq!(
        s.causes
            .get("restricted: not authorised to moderate this group")
            .copied(),
        Some(3),
        "{stdout}"
    );
    assert_eq!(
        s.first.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let shown = json(&db.show("pizza"));
    assert_eq!(shown["metadata"]["name"], "Pizza");
    assert_eq!(members(&db, "pizza"), [a]);

    // `--no-policy` is the operator's explicit choice: the dump goes in as it is.
    let raw = sandbox.db("raw");
    let (code, stdout, _) = import(&raw, &file, &["--no-policy"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(json(&raw.show("pizza"))["metadata"]["name"], "Mine now");
}

/// Alice creates and promotes Bob; Bob (an admin since the line before, in the same
/// batch) adds Carol; Alice demotes Bob; Bob's next moderation is refused, and so is
/// his post once removed.
fn promotion_and_demotion() -> Vec<Event> {
    let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4));
    let (b, c, d) = (
        bob.public_key().to_hex(),
        carol.public_key().to_hex(),
        dave.public_key().to_hex(),
    );
    vec![
        // `restricted` (NIP-29): only members post, so the posts below test membership.
        sign(&alice, 9007, &[&["h", "club"], &["restricted"]], "", AT),
        sign(&bob, 9, &[&["h", "club"]], "not a member yet", AT + 1),
        sign(
            &alice,
            9000,
            &[&["h", "club"], &["p", &b, "admin"]],
            "",
            AT + 2,
        ),
        sign(&bob, 9000, &[&["h", "club"], &["p", &c]], "", AT + 3),
        sign(&carol, 9, &[&["h", "club"]], "hello", AT + 4),
        sign(&alice, 9000, &[&["h", "club"], &["p", &b]], "", AT + 5),
        sign(&bob, 9000, &[&["h", "club"], &["p", &d]], "", AT + 6),
        sign(&bob, 9, &[&["h", "club"]], "still a member", AT + 7),
        sign(&alice, 9001, &[&["h", "club"], &["p", &b]], "", AT + 8),
        sign(&bob, 9, &[&["h", "club"]], "removed", AT + 9),
        sign(
            &alice,
            9007,
            &[&["h", "club"], &["restricted"]],
            "",
            AT + 10,
        ),
    ]
}

#[test]
fn decisions_see_every_event_before_them_in_any_batch_size() {
    let sandbox = Sandbox::new();
    let events = promotion_and_demotion();
    let file = sandbox.path("club.jsonl");
    write_events(&file, &events);
    let accepted: Vec<String> = [0, 2, 3, 4, 5, 7, 8]
        .iter()
        .map(|&i| events[i].id.to_hex())
        .collect();
    for batch in ["1", "2", "3", "16384"] {
        let db = sandbox.db(&format!("batch-{batch}"));
        let rejects = sandbox.path(&format!("rejects-{batch}.jsonl"));
        let (code, stdout, _) = import(
            &db,
            &file,
            &["--batch", batch, "--rejects", path_str(&rejects)],
        );
        assert_eq!(code, 1, "{stdout}");
        assert_eq!(log_ids(&sandbox, &db), accepted, "batch {batch}");
        let reasons: Vec<(u64, String)> = support::read_lines(&rejects)
            .iter()
            .map(|l| {
                let v = json(l);
                (
                    v["line"].as_u64().expect("line"),
                    v["reason"].as_str().expect("reason").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    2,
                    "restricted: only members can post to this group".to_owned()
                ),
                (
                    7,
                    "restricted: not authorised to moderate this group".to_owned()
                ),
                (
                    10,
                    "restricted: only members can post to this group".to_owned()
                ),
                (11, "duplicate: group already exists".to_owned()),
            ],
            "batch {batch}"
        );
    }
}

#[test]
fn only_the_relay_publishes_group_state_events() {
    let sandbox = Sandbox::new();
    let (relay, mallory) = (relay(), key(6));
    let m = mallory.public_key().to_hex();
    let mut events = Vec::new();
    for (n, signer) in [(0, &relay), (1, &mallory)] {
        let group = format!("g{n}");
        events.push(sign(
            signer,
            39_000,
            &[&["d", &group], &["name", "State"]],
            "",
            AT + n,
        ));
        events.push(sign(
            signer,
            39_001,
            &[&["d", &group], &["p", &m, "admin"]],
            "",
            AT + n,
        ));
        events.push(sign(
            signer,
            39_002,
            &[&["d", &group], &["p", &m]],
            "",
            AT + n,
        ));
        events.push(sign(
            signer,
            39_003,
            &[&["d", &group], &["role", "admin"]],
            "",
            AT + n,
        ));
    }
    let file = sandbox.path("state.jsonl");
    write_events(&file, &events);
    let db = sandbox.db("db");
    let (code, stdout, _) = import(&db, &file, &[]);
    assert_eq!(code, 1, "{stdout}");
    let s = summary(&stdout);
    assert_eq!((s.accepted, s.rejected), (4, 4), "{stdout}");
    assert_eq!(
        s.causes
            .get("restricted: only the relay publishes group state events")
            .copied(),
        Some(4)
    );
    assert_eq!(json(&db.show("g0"))["state"], "active");
    // g1 has no event in the database at all.
    let run = db.run(&["show", "--group", "g1"]);
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(run.stderr.contains("no such group"), "{run}");
}

#[test]
fn an_event_belongs_to_one_group() {
    let sandbox = Sandbox::new();
    let (alice, mallory) = (key(1), key(6));
    let events = [
        sign(&alice, 9007, &[&["h", "open"]], "", AT),
        sign(&mallory, 9007, &[&["h", "mine"]], "", AT + 1),
        // Mallory is a member of `mine` only: a second `h` must not smuggle this in.
        sign(&mallory, 9, &[&["h", "mine"], &["h", "open"]], "hi", AT + 2),
        sign(&mallory, 9, &[&["h"], &["h", "open"]], "hi", AT + 3),
    ];
    let file = sandbox.path("two.jsonl");
    write_events(&file, &events);
    for (name, extra) in [("policy", &[][..]), ("raw", &["--no-policy"][..])] {
        let db = sandbox.db(name);
        let (code, stdout, _) = import(&db, &file, extra);
        assert_eq!(code, 1, "{stdout}");
        let s = summary(&stdout);
        assert_eq!((s.accepted, s.rejected), (2, 2), "{name}: {stdout}");
        assert!(
            s.first.iter().all(|(_, m)| m.contains("`h` tags")),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn a_relay_39002_of_30000_members_imports_with_default_limits() {
    let sandbox = Sandbox::new();
    let relay = relay();
    let mut tags: Vec<Vec<String>> = vec![vec!["d".into(), "big".into()]];
    for i in 0..30_000u32 {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        bytes[31] = 1;
        tags.push(vec!["p".into(), hex::encode(bytes)]);
    }
    let tags: Vec<Vec<&str>> = tags
        .iter()
        .map(|t| t.iter().map(String::as_str).collect())
        .collect();
    let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
    let members = sign(&relay, 39_002, &tags, "", AT);
    let meta = sign(&relay, 39_000, &[&["d", "big"], &["name", "Big"]], "", AT);
    let file = sandbox.path("big.jsonl");
    write_events(&file, &[meta, members]);
    assert!(std::fs::metadata(&file).expect("file").len() > 2_000_000);
    let db = sandbox.db("db");
    let (code, stdout, stderr) = import(&db, &file, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(json(&db.show("big"))["member_count"], 30_000);

    // What `render` makes of the group, signed by the relay, is accepted by the store
    // with its default limits.
    let store = Store::open(&db.path, StoreOptions::default()).expect("open");
    let mut builder = Engine::builder(store.clone(), EngineOptions::default());
    let groups =
        Groups::register(&mut builder, Nip29Config::new(relay.public_key())).expect("register");
    let _engine = builder.build().expect("engine");
    let rendered = groups
        .render_signed("big", &relay, Timestamp::from_secs(AT + 10))
        .expect("render");
    let members = rendered
        .iter()
        .find(|e| e.kind.as_u16() == 39_002)
        .expect("a 39002");
    assert!(members.tags.len() > 30_000);
    for event in &rendered {
        let outcome = store.append(event);
        let appended = matches!(outcome, Ok(AppendOutcome::Appended(_)));
        assert!(appended, "kind {}: {outcome:?}", event.kind);
    }
}

#[test]
fn policy_options_are_stored_and_a_different_one_applies_to_its_run_only() {
    let sandbox = Sandbox::new();
    let (alice, bob, admin) = (key(1), key(2), key(7));
    let events = [
        sign(&alice, 9007, &[&["h", "open"]], "", AT),
        // Not a member, in a group that is not `restricted`: accepted (NIP-29).
        sign(&bob, 9, &[&["h", "open"]], "hi", AT + 1),
        // A relay admin moderates.
        sign(
            &admin,
            9002,
            &[&["h", "open"], &["name", "Renamed"]],
            "",
            AT + 2,
        ),
    ];
    let file = sandbox.path("open.jsonl");
    write_events(&file, &events);
    let npub = admin.public_key().to_bech32().expect("npub");
    let db = sandbox.db("db");
    let init = db.run(&[
        "init",
        "--relay-pubkey",
        &relay().public_key().to_bech32().expect("npub"),
        "--relay-admin",
        &npub,
        "--auto-join",
    ]);
    assert!(init.status.success(), "{init}");
    let run = db.run(&["import", path_str(&file)]);
    assert_eq!(run.status.code(), Some(0), "{run}");
    assert_eq!(json(&db.show("open"))["metadata"]["name"], "Renamed");

    // Options are configuration, not history: another value applies to that run,
    // says so, and leaves the stored one (`highwater config set` changes it).
    let other = sandbox.db("other");
    other
        .run(&[
            "init",
            "--relay-pubkey",
            &relay().public_key().to_hex(),
            "--relay-admin",
            &npub,
        ])
        .ok();
    let run = other.run(&[
        "import",
        "--relay-admin",
        &key(8).public_key().to_hex(),
        path_str(&file),
    ]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "the admin's 9002 is refused: {run}"
    );
    assert!(run.stderr.contains("policy.relay_admins: ["), "{run}");
    let shown = other.run(&["config", "show"]).ok();
    assert!(
        shown.contains(&format!(
            "policy.relay_admins = [{}]",
            admin.public_key().to_hex()
        )),
        "{shown}"
    );

    // Without the options, the same log is refused in part: the relay admin's 9002.
    // Bob's post is accepted all the same: the group is not `restricted`, and NIP-29
    // lets anyone post to such a group (`--auto-join` matters only to a relay that
    // requires membership).
    let plain = sandbox.db("plain");
    let (code, stdout, _) = import(&plain, &file, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(summary(&stdout).rejected, 1, "{stdout}");
}

#[test]
fn keys_are_hex_or_nip19_and_a_failed_init_leaves_nothing() {
    let sandbox = Sandbox::new();
    let db = sandbox.db("db");
    let nsec = relay().secret_key().to_bech32().expect("nsec");
    for bad in ["abc", nsec.as_str(), "npub1notakey"] {
        let run = db.run(&["init", "--relay-pubkey", bad]);
        assert_eq!(run.status.code(), Some(1), "{run}");
        assert!(
            run.stderr.contains("64 hex characters or an npub1")
                || run.stderr.contains("secret key (nsec)"),
            "{run}"
        );
        assert!(
            !db.path.exists(),
            "a failed init left {}",
            db.path.display()
        );
    }
    let run = db.run(&[
        "init",
        "--relay-pubkey",
        RELAY_PUBKEY,
        "--relay-admin",
        "zz",
    ]);
    assert!(!run.status.success(), "{run}");
    assert!(!db.path.exists());
    let npub = relay().public_key().to_bech32().expect("npub");
    db.run(&["init", "--relay-pubkey", &npub]).ok();
    assert_eq!(db.status()["relay_pubkey"], RELAY_PUBKEY);
}

#[test]
fn groups_lists_every_group_and_unknown_groups_fail() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("club.jsonl");
    write_events(&file, &promotion_and_demotion());
    let db = sandbox.db("db");
    import(&db, &file, &[]);
    let listed = json(&db.run(&["groups", "--json"]).ok());
    assert_eq!(listed[0]["group"], "club");
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[0]["members"], 2);
    assert_eq!(listed[0]["events"], 7);
    let table = db.run(&["groups"]).ok();
    assert!(
        table.contains("club") && table.contains("1 groups"),
        "{table}"
    );
    for command in ["show", "verify"] {
        let run = db.run(&[command, "--group", "nope"]);
        assert_eq!(run.status.code(), Some(1), "{run}");
        assert!(run.stderr.contains("no such group"), "{run}");
    }
}

#[test]
fn demo_leaves_a_directory_it_did_not_make_untouched() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("mine");
    let db = support::Db {
        path: dir.join("highwater.lmdb"),
    };
    let file = sandbox.path("club.jsonl");
    write_events(&file, &promotion_and_demotion());
    import(&db, &file, &[]);
    let before = snapshot_dir(&dir);
    let run = support::highwater(&["demo", "--events", "2000", "--dir", path_str(&dir)]);
    assert!(!run.status.success(), "{run}");
    assert!(run.stderr.contains("not a previous demo"), "{run}");
    assert_eq!(snapshot_dir(&dir), before);

    // --db is where the demo database goes, not silently ignored; a second run in the
    // same places replaces only what the first made.
    let elsewhere = sandbox.path("elsewhere");
    let fresh = sandbox.path("fresh");
    for _ in 0..2 {
        let run = support::highwater(&[
            "--db",
            path_str(&elsewhere),
            "demo",
            "--events",
            "1500",
            "--groups",
            "10",
            "--dir",
            path_str(&fresh),
        ]);
        assert!(run.status.success(), "{run}");
        assert!(elsewhere.join("data.mdb").is_file());
        assert!(!fresh.join("highwater.lmdb").exists());
        assert!(fresh.join("workload.jsonl").is_file());
    }
    // A database the demo did not make is refused as --db too.
    let run = support::highwater(&[
        "--db",
        path_str(&db.path),
        "demo",
        "--events",
        "1500",
        "--dir",
        path_str(&fresh),
    ]);
    assert!(!run.status.success(), "{run}");
    assert!(run.stderr.contains("not a previous demo"), "{run}");
    assert_eq!(snapshot_dir(&dir), before);
}

/// Every file under `dir` with its size and contents' hash.
fn snapshot_dir(dir: &Path) -> Vec<(String, u64, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("readable");
                out.push((
                    path.display().to_string(),
                    bytes.len() as u64,
                    crc32(&bytes),
                ));
            }
        }
    }
    out.sort();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn an_import_decides_under_the_relays_configuration_file() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("create.jsonl");
    write_events(&file, &[sign(&key(1), 9007, &[&["h", "mine"]], "", AT)]);
    let config = sandbox.path("relay.toml");
    std::fs::write(&config, "[groups]\nadmin_create_only = true\n").unwrap();
    let (code, stdout, _) = import(
        &sandbox.db("configured"),
        &file,
        &["--config", path_str(&config)],
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(summary(&stdout).rejected, 1, "{stdout}");
    assert!(
        stdout.contains("only relay admins can create groups"),
        "{stdout}"
    );
    let (code, stdout, _) = import(&sandbox.db("plain"), &file, &[]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn an_import_leaves_its_records_indexed_and_no_tail() {
    // Far fewer events than any merge bound: without the import's own merge at its end
    // every one of them would still be in the index tail.
    let sandbox = Sandbox::new();
    let alice = key(1);
    let mut events = vec![sign(&alice, 9007, &[&["h", "pizza"]], "", AT)];
    events.extend((1..=20).map(|i| sign(&alice, 9, &[&["h", "pizza"]], "hi", AT + i)));
    let file = sandbox.path("events.jsonl");
    write_events(&file, &events);
    let db = sandbox.db("db");
    let (code, stdout, stderr) = import(&db, &file, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let store = Store::open(&db.path, StoreOptions::read_only()).expect("open");
    let report = store.verify_indexes().expect("verify");
    assert_eq!(report.records, 21, "{report:?}");
    assert_eq!(report.tail, 0, "{report:?}");
    assert_eq!(report.watermark, store.head(), "{report:?}");
}
