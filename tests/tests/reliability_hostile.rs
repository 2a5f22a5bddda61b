//! Hostile input: bounded runs of the fuzz harnesses (the same code the cargo-fuzz
//! targets in `fuzz/` run for hours), forged and mismatched events, malformed `p` tags,
//! and what hidden and private groups let outsiders learn.
//!
//! The fuzz harnesses live in `fuzz/src/harness.rs` and are included here, so CI runs
//! every target on stable for a bounded number of inputs: seeded random bytes, mutations
//! of real inputs, hand-written hostile lines, and every file under `fuzz/regressions/`
//! and `fuzz/seeds/` (inputs that once crashed a target, and the seed corpus).
//! `HIGHWATER_FUZZ_CI_INPUTS` sets the number of generated inputs per target (default 200).

mod reliability_support;

#[path = "../../fuzz/src/harness.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with the fuzz crate, where it is the public harness API"
)]
mod harness;

use std::path::{Path, PathBuf};

use harness::Harness;
use highwater_engine::EngineOptions;
use highwater_projections::{AccessPolicy, Groups, Life, Policy, Rejection};
use highwater_store::{InvalidEvent, StoreError, StoreOptions};
use highwater_workload::{WorkloadSpec, generate};
use nostr::prelude::{Event, EventId, Keys, Kind, PublicKey, Signature, Tag, Timestamp};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reliability_support::{env_u64, fingerprint, key, open_engine, signed, tag};

type Target = fn(&mut Harness, &[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("import_line", harness::import_line),
    ("validate_event", harness::validate_event),
    ("record_decode", harness::record_decode),
    ("checkpoint_decode", harness::checkpoint_decode),
    ("fold_tags", harness::fold_tags),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`, sorted.
fn files(kind: &str, target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Random bytes, mostly short, sometimes long.
fn random_input(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = if rng.random_ratio(1, 8) {
        rng.random_range(0..65_536)
    } else {
        rng.random_range(0..2_048)
    };
    let mut out = vec![0; len];
    rng.fill_bytes(&mut out);
    out
}

/// A copy of `input` with a few random flips, insertions, deletions or a truncation.
fn mutate(input: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..4) {
            0 => out[at] ^= rng.random_range(1..=255u8),
            1 => out.insert(at, rng.random()),
            2 => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Real inputs of each target to mutate: generated JSONL lines, stored records (with
/// and without their checksum) and encoded projection states.
fn real_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let spec = WorkloadSpec {
        groups: 4,
        events: 120,
        seed: 31,
        relay_secret: None,
    };
    let mut lines = Vec::new();
    generate(&spec, &|_| {}, &mut |event| {
        lines.push(event.as_json().into_bytes());
        Ok(())
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let relay = harness::relay().public_key();
    let options = EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    };
    let (engine, groups) = open_engine(
        dir.path(),
        relay,
        StoreOptions {
            trusted: true,
            ..StoreOptions::default()
        },
        options,
    );
    let events: Vec<Event> = lines.iter().map(|l| Event::from_json(l).unwrap()).collect();
    for outcome in engine.append_batch(&events).unwrap() {
        outcome.unwrap();
    }
    engine.rebuild(None, None).unwrap();
    let store = engine.store();
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for line in lines.iter().step_by(7) {
        out.push(("import_line", line.clone()));
    }
    for seq in (1..=store.head()).step_by(9) {
        let raw = store.raw_record(seq).unwrap().unwrap();
        out.push(("record_decode", [&[0u8][..], &raw].concat()));
        out.push((
            "record_decode",
            [&[1u8][..], &raw[highwater_store::RECORD_HEADER_LEN..]].concat(),
        ));
    }
    for (n, group) in store.groups().iter().enumerate() {
        let states = [
            groups
                .membership_projection()
                .read(&group.name, |s| {
                    engine_encode(groups.membership_projection(), s)
                })
                .unwrap(),
            groups
                .roles_projection()
                .read(&group.name, |s| engine_encode(groups.roles_projection(), s))
                .unwrap(),
            groups
                .metadata_projection()
                .read(&group.name, |s| {
                    engine_encode(groups.metadata_projection(), s)
                })
                .unwrap(),
            groups
                .creator_projection()
                .read(&group.name, |s| {
                    engine_encode(groups.creator_projection(), s)
                })
                .unwrap(),
        ];
        for (p, state) in states.into_iter().enumerate() {
            out.push((
                "checkpoint_decode",
                [&[(2 * (n + p)) as u8 | 1][..], &state].concat(),
            ));
        }
        for projection in engine.projections() {
            let raw = store
                .raw_checkpoint(&projection, group.no)
                .unwrap()
                .unwrap();
            out.push(("checkpoint_decode", [&[0u8][..], &raw].concat()));
            out.push(("checkpoint_decode", [&[1u8][..], &raw[4..]].concat()));
        }
    }
    out
}

fn engine_encode<P: highwater_engine::Projection>(
    handle: &highwater_engine::Handle<P>,
    state: &P::State,
) -> Vec<u8> {
    handle.projection().encode(state).unwrap()
}

/// Hand-written hostile JSONL lines.
fn hostile_lines() -> Vec<Vec<u8>> {
    let keys = key(9);
    let good = signed(
        &keys,
        9000,
        &[
            tag(&["h", "g"]),
            tag(&["p", &keys.public_key().to_hex(), "admin"]),
        ],
        "",
        1_700_000_000,
    );
    let json = good.as_json();
    let mut lines: Vec<String> = vec![
        String::new(),
        "{}".into(),
        "null".into(),
        "[]".into(),
        "{\"id\":1}".into(),
        json.replace("\"kind\":9000", "\"kind\":99999999999"),
        json.replace("\"kind\":9000", "\"kind\":-1"),
        json.replace(
            "\"created_at\":1700000000",
            "\"created_at\":18446744073709551616",
        ),
        json.replace("\"created_at\":1700000000", "\"created_at\":-5"),
        json.replace("\"tags\":[", "\"tags\":[[],"),
        json.replace("\"tags\":[", "\"tags\":[[\"p\"],"),
        json.replace("\"tags\":[", "\"tags\":[[1,2],"),
        json.replace("\"content\":\"\"", "\"content\":\"\\ud800\""),
        json.replace(
            "\"content\":\"\"",
            &format!("\"content\":\"{}\"", "a".repeat(200_000)),
        ),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        json[..json.len() / 2].to_owned(),
        json.clone() + &json,
    ];
    lines.push(json);
    lines.into_iter().map(String::into_bytes).collect()
}

/// Hand-written lines at least this long are not written to the seed corpus.
const LONG: usize = 4_096;

/// Writes the real and hand-written inputs as the seed corpus of the cargo-fuzz
/// targets (`HIGHWATER_WRITE_FUZZ_SEEDS=1`); they are deterministic.
fn write_seeds(real: &[(&'static str, Vec<u8>)], hostile: &[Vec<u8>]) {
    let seeds = fuzz_dir().join("seeds");
    let _ = std::fs::remove_dir_all(&seeds);
    // Long lines stay out of the corpus (see `LONG`).
    let hostile = hostile
        .iter()
        .filter(|l| l.len() < LONG)
        .map(|line| ("import_line", line));
    for (n, (target, input)) in real.iter().map(|(t, i)| (*t, i)).chain(hostile).enumerate() {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{n:03}")), input).unwrap();
    }
}

#[test]
fn fuzz_targets_run_bounded_on_stable_without_a_panic() {
    let inputs = env_u64("HIGHWATER_FUZZ_CI_INPUTS", 200);
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let real = real_inputs();
    let hostile = hostile_lines();
    if std::env::var_os("HIGHWATER_WRITE_FUZZ_SEEDS").is_some() {
        write_seeds(&real, &hostile);
    }
    let started = std::time::Instant::now();
    for (name, target) in TARGETS {
        let mut harness = Harness::new(None);
        let mut corpus: Vec<Vec<u8>> = files("regressions", name);
        let regressions = corpus.len();
        corpus.extend(files("seeds", name));
        let seeds = corpus.len() - regressions;
        // The seeds are the real and hand-written inputs, once written to fuzz/seeds.
        if seeds == 0 {
            let real = real.iter().filter(|(t, _)| *t == name);
            corpus.extend(real.map(|(_, input)| input.clone()));
        }
        if name == "import_line" {
            let written = |line: &&Vec<u8>| seeds > 0 && line.len() < LONG;
            corpus.extend(hostile.iter().filter(|l| !written(l)).cloned());
        }
        for input in &corpus {
            target(&mut harness, input);
        }
        for _ in 0..inputs {
            let input = if !corpus.is_empty() && rng.random_ratio(1, 2) {
                let base = &corpus[rng.random_range(0..corpus.len())];
                mutate(base, &mut rng)
            } else {
                random_input(&mut rng)
            };
            target(&mut harness, &input);
        }
        assert_eq!(harness.runs(), corpus.len() as u64 + inputs);
        eprintln!(
            "{name}: {} inputs ({regressions} regressions, {seeds} seeds, {} real or hand-written, {inputs} generated) \
             without a panic, {:.1}s",
            harness.runs(),
            corpus.len() - regressions - seeds,
            started.elapsed().as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Forgery

fn relay() -> Keys {
    key(0x77)
}

/// An engine over a fresh directory, with the relay of these tests.
fn harness() -> (tempfile::TempDir, highwater_engine::Engine, Groups) {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    };
    let (engine, groups) = open_engine(
        dir.path(),
        relay().public_key(),
        StoreOptions::default(),
        options,
    );
    (dir, engine, groups)
}

fn append_all(engine: &highwater_engine::Engine, events: &[Event]) {
    for event in events {
        engine.append(event).unwrap();
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one forgery scenario, read top to bottom"
)]
fn snapshot_events_signed_by_another_key_change_nothing() {
    let (_dir, engine, groups) = harness();
    let (alice, bob, mallory) = (key(1), key(2), key(3));
    let mallory_hex = mallory.public_key().to_hex();
    let at = 1_700_000_000;
    // A group with history, and a group seeded only from genuine relay snapshots.
    append_all(
        &engine,
        &[
            signed(
                &alice,
                9007,
                &[tag(&["h", "history"]), tag(&["name", "History"])],
                "",
                at,
            ),
            signed(
                &alice,
                9000,
                &[
                    tag(&["h", "history"]),
                    tag(&["p", &bob.public_key().to_hex(), "writer"]),
                ],
                "",
                at + 1,
            ),
            signed(
                &relay(),
                39_000,
                &[
                    tag(&["d", "seeded"]),
                    tag(&["name", "Seeded"]),
                    tag(&["private"]),
                ],
                "",
                at,
            ),
            signed(
                &relay(),
                39_002,
                &[
                    tag(&["d", "seeded"]),
                    tag(&["p", &bob.public_key().to_hex(), "writer"]),
                ],
                "",
                at,
            ),
            signed(
                &relay(),
                39_003,
                &[tag(&["d", "seeded"]), tag(&["role", "writer", "posts"])],
                "",
                at,
            ),
        ],
    );
    let names = ["history", "seeded", "unknown"];
    let before: Vec<String> = names
        .iter()
        .map(|g| fingerprint(&groups, g, false).unwrap())
        .collect();
    assert_eq!(groups.group_state("unknown").unwrap(), Life::Unknown);
    let policy = AccessPolicy::new(groups.clone(), Policy::default());
    // Mallory's snapshots, newer than the genuine ones, for all three groups.
    for group in names {
        let forged = [
            signed(
                &mallory,
                39_000,
                &[
                    tag(&["d", group]),
                    tag(&["name", "pwned"]),
                    tag(&["public"]),
                    tag(&["open"]),
                ],
                "",
                at + 100,
            ),
            signed(
                &mallory,
                39_001,
                &[tag(&["d", group]), tag(&["p", &mallory_hex, "admin"])],
                "",
                at + 100,
            ),
            signed(
                &mallory,
                39_002,
                &[
                    tag(&["d", group]),
                    tag(&["p", &mallory_hex, "admin", "writer"]),
                ],
                "",
                at + 100,
            ),
            signed(
                &mallory,
                39_003,
                &[tag(&["d", group]), tag(&["role", "admin", "everything"])],
                "",
                at + 100,
            ),
        ];
        for event in &forged {
            assert_eq!(policy.check_write(event), Err(Rejection::RelayOnly));
        }
        // Stored (they are valid events), but folded by no projection.
        append_all(&engine, &forged);
    }
    engine.evict_all();
    for (group, before) in names.iter().zip(&before) {
        assert_eq!(
            &fingerprint(&groups, group, false).unwrap(),
            before,
            "{group} changed"
        );
        assert_eq!(
            &fingerprint(&groups, group, true).unwrap(),
            before,
            "{group} replay changed"
        );
        assert!(!groups.is_member(group, &mallory.public_key()).unwrap());
    }
    assert_eq!(
        groups.group_state("unknown").unwrap(),
        Life::Unknown,
        "forged snapshots created a group"
    );
}

#[test]
fn an_event_whose_id_or_signature_does_not_match_is_never_stored() {
    let (_dir, engine, _groups) = harness();
    let store = engine.store();
    let alice = key(1);
    let good = signed(&alice, 9007, &[tag(&["h", "g"])], "", 1_700_000_000);
    let other = signed(&alice, 9007, &[tag(&["h", "g"])], "other", 1_700_000_000);
    let with = |id: EventId, content: &str, sig: Signature, pubkey: PublicKey| {
        Event::new(
            id,
            pubkey,
            good.created_at,
            good.kind,
            good.tags.clone().to_vec(),
            content,
            sig,
        )
    };
    let cases = [
        // Content changed after signing: the id no longer hashes.
        (
            "tampered content",
            with(good.id, "tampered", good.sig, good.pubkey),
            InvalidEvent::BadId,
        ),
        // An arbitrary id.
        (
            "random id",
            with(EventId::from_byte_array([7; 32]), "", good.sig, good.pubkey),
            InvalidEvent::BadId,
        ),
        // A correct id with another event's signature.
        (
            "borrowed signature",
            with(good.id, "", other.sig, good.pubkey),
            InvalidEvent::BadSignature,
        ),
        // A correct id with a signature by someone else, claiming alice.
        (
            "someone else's signature",
            {
                let mallory = signed(&key(3), 9007, &[tag(&["h", "g"])], "", 1_700_000_000);
                with(good.id, "", mallory.sig, good.pubkey)
            },
            InvalidEvent::BadSignature,
        ),
        (
            "zero signature",
            with(
                good.id,
                "",
                Signature::from_byte_array([0; 64]),
                good.pubkey,
            ),
            InvalidEvent::BadSignature,
        ),
    ];
    for (what, event, expected) in cases {
        match engine.append(&event) {
            Err(highwater_engine::EngineError::Store(StoreError::Invalid(r))) => {
                assert_eq!(r, expected, "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        let ok = matches!(store.prepare(&event), Err(StoreError::Invalid(r)) if r == expected);
        assert!(ok, "{what}");
        assert_eq!(store.head(), 0, "{what}: something was written");
        assert_eq!(store.get_by_id(&event.id).unwrap(), None, "{what}");
    }
    // The genuine event goes in, and its tampered twin still cannot replace it.
    engine.append(&good).unwrap();
    assert_eq!(store.head(), 1);
    assert_eq!(store.get(1).unwrap(), Some(good));
}

#[test]
fn p_tags_with_invalid_pubkeys_are_ignored_not_a_crash() {
    let (_dir, engine, groups) = harness();
    let alice = key(1);
    let bob = key(2);
    let valid = bob.public_key().to_hex();
    let bad = [
        vec!["p".to_owned()],
        tag(&["p", ""]),
        tag(&["p", "not a pubkey"]),
        tag(&["p", &valid[..63]]),
        tag(&["p", &format!("{valid}0")]),
        tag(&["p", &"g".repeat(64)]),
        tag(&["p", &"é".repeat(32)]),
        tag(&["p", &"\u{0}".repeat(64)]),
    ];
    let at = 1_700_000_000;
    let mut put = vec![tag(&["h", "g"])];
    put.extend(bad.iter().cloned());
    put.push(tag(&[
        "p",
        &valid.to_uppercase(),
        "writer",
        "writer",
        "",
        "管理者",
    ]));
    append_all(
        &engine,
        &[
            signed(&alice, 9007, &[tag(&["h", "g"])], "", at),
            signed(&alice, 9000, &put, "", at + 1),
            signed(
                &alice,
                9001,
                &[[tag(&["h", "g"])].as_slice(), &bad].concat(),
                "",
                at + 2,
            ),
            signed(
                &relay(),
                39_002,
                &[[tag(&["d", "seeded"])].as_slice(), &bad].concat(),
                "",
                at,
            ),
        ],
    );
    // Only the well-formed (uppercase hex) `p` counted: alice and bob; roles deduplicated.
    let members = groups.members("g").unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(groups.is_member("g", &bob.public_key()).unwrap());
    assert_eq!(
        groups.roles("g", &bob.public_key()).unwrap(),
        ["writer", "管理者"]
    );
    assert_eq!(groups.member_count("seeded").unwrap(), 0);
    assert_eq!(groups.group_state("seeded").unwrap(), Life::Active);
    for group in ["g", "seeded"] {
        for projection in engine.projections() {
            assert_eq!(engine.verify_group(&projection, group).unwrap(), None);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Information leaks

#[test]
#[expect(clippy::too_many_lines, reason = "one probe per kind, listed")]
fn outsiders_learn_nothing_of_a_hidden_group() {
    let (_dir, engine, groups) = harness();
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let at = 1_700_000_000;
    append_all(
        &engine,
        &[
            signed(
                &alice,
                9007,
                &[
                    tag(&["h", "secret"]),
                    tag(&["name", "Secret"]),
                    tag(&["hidden"]),
                    tag(&["private"]),
                    // Closed too: NIP-29 honours joins to a group that is not closed,
                    // hidden or not, and a join answered reveals the group.
                    tag(&["closed"]),
                ],
                "",
                at,
            ),
            signed(
                &alice,
                9000,
                &[
                    tag(&["h", "secret"]),
                    tag(&["p", &carol.public_key().to_hex()]),
                ],
                "",
                at + 1,
            ),
            signed(
                &alice,
                9009,
                &[tag(&["h", "secret"]), tag(&["code", "letmein"])],
                "",
                at + 2,
            ),
        ],
    );
    let policy = AccessPolicy::new(
        groups.clone(),
        Policy {
            open_reads: true,
            auto_join: true,
            ..Policy::default()
        },
    );
    let bob_pk = bob.public_key();
    let probes = |group: &str| {
        let h = tag(&["h", group]);
        [
            signed(&bob, 9, std::slice::from_ref(&h), "hello?", at + 3),
            signed(&bob, 9021, std::slice::from_ref(&h), "", at + 3),
            signed(
                &bob,
                9021,
                &[h.clone(), tag(&["code", "guess"])],
                "",
                at + 3,
            ),
            signed(&bob, 9022, std::slice::from_ref(&h), "", at + 3),
            signed(
                &bob,
                9000,
                &[h.clone(), tag(&["p", &bob.public_key().to_hex(), "admin"])],
                "",
                at + 3,
            ),
            signed(
                &bob,
                9001,
                &[h.clone(), tag(&["p", &carol.public_key().to_hex()])],
                "",
                at + 3,
            ),
            signed(&bob, 9002, &[h.clone(), tag(&["name", "mine"])], "", at + 3),
            signed(&bob, 9008, &[h], "", at + 3),
        ]
    };
    // Every answer to an outsider is the one for a group that does not exist.
    for (hidden, absent) in probes("secret").iter().zip(probes("no-such-group").iter()) {
        let answer = policy.check_write(hidden);
        assert_eq!(
            answer,
            Err(Rejection::GroupNotFound),
            "kind {}",
            hidden.kind
        );
        assert_eq!(answer, policy.check_write(absent), "kind {}", hidden.kind);
        assert_eq!(answer.unwrap_err().to_string(), "invalid: group not found");
    }
    for reader in [None, Some(&bob_pk)] {
        assert!(!policy.can_read(reader, "secret").unwrap());
        assert!(!policy.has_access(reader, "secret").unwrap());
        assert_eq!(
            policy.can_read(reader, "secret").unwrap(),
            policy.can_read(reader, "no-such-group").unwrap()
        );
    }
    // The one bit a hidden group cannot hide: its id is taken, so creating it again is
    // refused (as for any existing group); nothing else about it is revealed.
    assert_eq!(
        policy.check_write(&signed(&bob, 9007, &[tag(&["h", "secret"])], "", at + 3)),
        Err(Rejection::AlreadyExists)
    );
    // Members, and outsiders with a valid invite code, do get through.
    let carol_pk = carol.public_key();
    assert!(policy.can_read(Some(&carol_pk), "secret").unwrap());
    assert_eq!(
        policy.check_write(&signed(&carol, 9, &[tag(&["h", "secret"])], "hi", at + 4)),
        Ok(())
    );
    assert_eq!(
        policy.check_write(&signed(
            &bob,
            9021,
            &[tag(&["h", "secret"]), tag(&["code", "letmein"])],
            "",
            at + 4
        )),
        Ok(())
    );
}

#[test]
fn private_groups_render_no_member_count() {
    let (_dir, engine, groups) = harness();
    let alice = key(1);
    let at = 1_700_000_000;
    append_all(
        &engine,
        &[
            signed(
                &alice,
                9007,
                &[tag(&["h", "private"]), tag(&["private"])],
                "",
                at,
            ),
            signed(
                &alice,
                9007,
                &[tag(&["h", "json-private"])],
                r#"{"private":true}"#,
                at,
            ),
            signed(&alice, 9007, &[tag(&["h", "public"])], "", at),
            signed(&alice, 9007, &[tag(&["h", "made-private"])], "", at),
            signed(
                &alice,
                9002,
                &[tag(&["h", "made-private"]), tag(&["private"])],
                "",
                at + 1,
            ),
            signed(
                &relay(),
                39_000,
                &[tag(&["d", "seeded-private"]), tag(&["private"])],
                "",
                at,
            ),
        ],
    );
    let has_member_count = |group: &str| {
        let rendered = groups.render(group, Timestamp::from_secs(at + 10)).unwrap();
        let metadata = rendered
            .iter()
            .find(|e| e.kind == Kind::from(39_000u16))
            .unwrap();
        metadata
            .tags
            .iter()
            .any(|t: &Tag| t.kind() == "member_count")
    };
    for group in ["private", "json-private", "made-private", "seeded-private"] {
        assert!(groups.is_private(group).unwrap(), "{group}");
        assert!(
            !has_member_count(group),
            "{group} rendered its member count"
        );
    }
    assert!(has_member_count("public"));
    // A signed rendering says the same.
    let signed_events = groups
        .render_signed("private", &relay(), Timestamp::from_secs(at + 10))
        .unwrap();
    assert!(signed_events.iter().all(|e| e.verify().is_ok()));
    assert!(
        signed_events
            .iter()
            .all(|e| !e.tags.iter().any(|t| t.kind() == "member_count"))
    );
}
