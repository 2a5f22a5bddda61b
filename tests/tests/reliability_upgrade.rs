//! Upgrades: a database written by format version 1 is kept, frozen, in
//! `tests/fixtures/format-v1/data.mdb`, with the state it must show in
//! `tests/fixtures/format-v1/expected.json`. This test checks that the current code
//! refuses to open a copy of it with an error that names `highwater upgrade`, upgrades
//! the copy (`highwater_store::upgrade`, what the command runs), and checks every
//! event, every group's state (members, roles, metadata, creator, invite codes, role
//! definitions), its checkpoints, and that it still takes appends — so a change of any
//! byte layout, or of what the folds make of an existing log, fails here instead of in
//! a user's database.
//!
//! The fixture is a deterministic workload (`highwater generate`'s generator, seed 1:
//! real signed events with deterministic signatures, including relay snapshots, forged
//! snapshots, deletions and re-creations) appended in one batch, checkpoints of every
//! (projection, group), and the relay key stored as the CLI stores it, converted to
//! format 1 (`downgrade_to_v1`). To write it anew (only together with a deliberate
//! format change):
//!
//! ```text
//! HIGHWATER_WRITE_FIXTURE=1 cargo test -p highwater-tests --test reliability_upgrade
//! ```

mod reliability_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use highwater_engine::{Engine, EngineOptions, Handle, Projection};
use highwater_projections::Groups;
use highwater_store::{Store, StoreError, StoreOptions, UpgradeOutcome};
use highwater_workload::{WorkloadSpec, generate};
use nostr::prelude::{Event, EventId, Keys, Kind, PublicKey, SecretKey, Tag, Tags, Timestamp};
use reliability_support::{open_engine, signed, tag};

const SPEC: WorkloadSpec = WorkloadSpec {
    groups: 6,
    events: 90,
    seed: 1,
    relay_secret: Some([0x11; 32]),
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-v1")
}

/// A signed event with a deterministic signature (auxiliary randomness of zeros).
fn det_signed(keys: &Keys, kind: u16, tags: &[Vec<String>], content: &str, at: u64) -> Event {
    let pubkey = keys.public_key();
    let created_at = Timestamp::from_secs(at);
    let kind = Kind::from(kind);
    let tags = Tags::from_list(
        tags.iter()
            .map(|t| Tag::parse(t.clone()).unwrap())
            .collect(),
    );
    let id = EventId::compute(&pubkey, &created_at, &kind, &tags, content);
    let ctx = secp256k1::Secp256k1::signing_only();
    let sig = keys.sign_schnorr_with_aux_rand(&ctx, id.as_bytes(), &[0; 32]);
    let event = Event::new(id, pubkey, created_at, kind, tags.to_vec(), content, sig);
    assert!(event.verify().is_ok());
    event
}

/// The generated workload, then what it lacks at this size: a group seeded only from
/// relay snapshots (39000–39003), forged snapshots, a deletion and a re-creation by
/// someone else, flags from a JSON content, an invite and a bare `p` that clears roles.
#[expect(clippy::too_many_lines, reason = "the fixture's events, listed")]
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    generate(&SPEC, &|_| {}, &mut |event| {
        out.push(event.clone());
        Ok(())
    })
    .unwrap();
    let relay = SPEC.relay_keys().unwrap();
    let user = |n: u8| Keys::new(SecretKey::from_slice(&[n; 32]).unwrap());
    let (alice, bob, carol, mallory) = (user(1), user(2), user(3), user(4));
    let hex = |k: &Keys| k.public_key().to_hex();
    let at = 1_700_100_000;
    let (d, h) = (|g: &str| tag(&["d", g]), |g: &str| tag(&["h", g]));
    out.extend([
        det_signed(
            &relay,
            39_000,
            &[
                d("seeded"),
                tag(&["name", "Seeded"]),
                tag(&["about", "from snapshots"]),
                tag(&["closed"]),
            ],
            "",
            at,
        ),
        det_signed(
            &relay,
            39_001,
            &[d("seeded"), tag(&["p", &hex(&alice), "admin"])],
            "",
            at + 1,
        ),
        det_signed(
            &relay,
            39_002,
            &[
                d("seeded"),
                tag(&["p", &hex(&alice), "admin"]),
                tag(&["p", &hex(&bob), "writer"]),
            ],
            "",
            at,
        ),
        det_signed(
            &relay,
            39_003,
            &[
                d("seeded"),
                tag(&["role", "admin", "runs it"]),
                tag(&["role", "writer"]),
            ],
            "",
            at,
        ),
        det_signed(
            &mallory,
            39_002,
            &[d("seeded"), tag(&["p", &hex(&mallory), "admin"])],
            "",
            at + 50,
        ),
        det_signed(
            &mallory,
            39_000,
            &[d("seeded"), tag(&["name", "pwned"])],
            "",
            at + 50,
        ),
        det_signed(
            &alice,
            9007,
            &[h("reborn"), tag(&["name", "First life"])],
            "",
            at + 2,
        ),
        det_signed(
            &alice,
            9000,
            &[h("reborn"), tag(&["p", &hex(&bob), "admin"])],
            "",
            at + 3,
        ),
        det_signed(&alice, 9008, &[h("reborn")], "", at + 4),
        det_signed(
            &carol,
            9007,
            &[h("reborn"), tag(&["name", "Second life"])],
            r#"{"hidden":true,"write-restricted":true}"#,
            at + 5,
        ),
        det_signed(
            &carol,
            9000,
            &[
                h("reborn"),
                tag(&["p", &hex(&bob), "writer", "writer", "moderator"]),
                tag(&["p", "not-a-key"]),
            ],
            "",
            at + 6,
        ),
        det_signed(
            &carol,
            9000,
            &[h("reborn"), tag(&["p", &hex(&alice), "admin"])],
            "",
            at + 7,
        ),
        det_signed(
            &carol,
            9000,
            &[h("reborn"), tag(&["p", &hex(&alice)])],
            "",
            at + 8,
        ),
        det_signed(
            &carol,
            9009,
            &[h("reborn"), tag(&["code", "welcome"])],
            "",
            at + 9,
        ),
        det_signed(&bob, 9, &[h("reborn")], "hello, second life", at + 10),
    ]);
    out
}

fn relay() -> PublicKey {
    SPEC.relay_keys().unwrap().public_key()
}

fn options() -> EngineOptions {
    EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    }
}

/// Writes the fixture: the workload in one commit, checkpoints, the relay key setting.
fn write_fixture(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("data.mdb"));
    let _ = std::fs::remove_file(dir.join("lock.mdb"));
    {
        let (engine, groups) = open_engine(dir, relay(), StoreOptions::default(), options());
        engine
            .store()
            .set_setting("relay_pubkey", relay().to_hex().as_bytes())
            .unwrap();
        for outcome in engine.append_batch(&events()).unwrap() {
            outcome.unwrap();
        }
        engine.rebuild(None, None).unwrap();
        drop(groups);
    }
    highwater_store::downgrade_to_v1(dir).unwrap();
    std::fs::remove_file(dir.join("lock.mdb")).unwrap();
}

/// Everything the fixture must show, as JSON: the head, events per kind, and each
/// group's view (without watermarks, which depend on how it was loaded).
fn state(engine: &Engine, groups: &Groups) -> serde_json::Value {
    let store = engine.store();
    let mut kinds: BTreeMap<u16, u64> = BTreeMap::new();
    let mut ids = Vec::new();
    for item in store.iter_from(1) {
        let event = item.unwrap().1;
        *kinds.entry(event.kind.as_u16()).or_default() += 1;
        ids.push(event.id.to_hex());
    }
    let mut views = serde_json::Map::new();
    let mut names: Vec<String> = store.groups().iter().map(|g| g.name.to_string()).collect();
    names.sort();
    for name in names {
        let mut view = serde_json::to_value(groups.view(engine, &name).unwrap()).unwrap();
        view.as_object_mut().unwrap().remove("watermarks");
        views.insert(name, view);
    }
    serde_json::json!({
        "head": store.head(),
        "groups": store.group_count(),
        "kinds": kinds,
        "views": views,
        "ids": ids,
    })
}

/// Every checkpoint in the fixture decodes at the store level; those of the current
/// projection version decode to the replay up to their watermark. Returns how many.
fn checkpoints<P: Projection>(store: &Store, handle: &Handle<P>) -> usize {
    let projection = handle.projection();
    let mut current = 0;
    for group in store.groups() {
        let checkpoint = store
            .read_checkpoint(projection.name(), group.no)
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "the fixture has a checkpoint of {}/{}",
                    projection.name(),
                    group.name
                )
            });
        assert_eq!(
            (checkpoint.watermark, checkpoint.events),
            (group.head, group.count)
        );
        if checkpoint.version == projection.version() {
            let state = projection.decode(&checkpoint.state).unwrap();
            assert_eq!(
                state,
                handle.replay(&group.name).unwrap(),
                "{}/{}",
                projection.name(),
                group.name
            );
            current += 1;
        }
    }
    current
}

/// The copy is refused as it is, with the way out in the message (read-write and
/// read-only); then upgraded: every record rewritten, every checkpoint kept.
fn refused_then_upgraded(copy: &Path, events: u64) {
    // Refused as it is, with the way out in the message; nothing written.
    for options in [StoreOptions::default(), StoreOptions::read_only()] {
        let error = Store::open(copy, options).unwrap_err();
        assert!(error.to_string().contains("highwater upgrade"), "{error}");
        let needs = matches!(error, StoreError::UpgradeNeeded { found: 1, .. });
        assert!(needs, "{error:?}");
    }
    let mut reports = 0;
    let outcome = highwater_store::upgrade(copy, &mut |_, _| reports += 1).unwrap();
    assert_eq!(
        outcome,
        UpgradeOutcome::Upgraded {
            from: 1,
            to: 4,
            events,
            checkpoints: 32,
        }
    );
    assert!(reports >= 2, "progress at the start and after each chunk");
}

#[test]
fn a_format_v1_database_opens_with_the_same_state() {
    let fixture = fixture_dir();
    if std::env::var_os("HIGHWATER_WRITE_FIXTURE").is_some() {
        std::fs::create_dir_all(&fixture).unwrap();
        write_fixture(&fixture);
        let (engine, groups) = {
            let copy = tempfile::tempdir().unwrap();
            std::fs::copy(fixture.join("data.mdb"), copy.path().join("data.mdb")).unwrap();
            highwater_store::upgrade(copy.path(), &mut |_, _| {}).unwrap();
            let opened = open_engine(copy.path(), relay(), StoreOptions::default(), options());
            let expected = state(&opened.0, &opened.1);
            std::fs::write(
                fixture.join("expected.json"),
                serde_json::to_string_pretty(&expected).unwrap() + "\n",
            )
            .unwrap();
            opened
        };
        drop((engine, groups));
        eprintln!("wrote {}", fixture.display());
    }
    let size = std::fs::metadata(fixture.join("data.mdb")).unwrap().len();
    assert!(
        size < 200 * 1024,
        "the fixture should stay small ({size} bytes)"
    );
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();

    // Open a copy: the fixture itself is never written.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("data.mdb"), copy.path().join("data.mdb")).unwrap();
    let ids = expected["ids"].as_array().unwrap();
    refused_then_upgraded(copy.path(), ids.len() as u64);
    let store = Store::open(copy.path(), StoreOptions::default()).unwrap();
    let stored_relay = String::from_utf8(store.setting("relay_pubkey").unwrap().unwrap()).unwrap();
    assert_eq!(PublicKey::from_hex(&stored_relay).unwrap(), relay());
    drop(store);
    let (engine, groups) = open_engine(copy.path(), relay(), StoreOptions::default(), options());
    let store = engine.store().clone();

    // Every event reads back with its recorded id, its id and signature verify (so
    // every field came back byte for byte), and the id index finds it. The generator is
    // not consulted here: it may change without the storage format changing.
    assert_eq!(store.head(), ids.len() as u64);
    for (seq, id) in (1..).zip(ids) {
        let event = store.get(seq).unwrap().unwrap();
        assert_eq!(event.id.to_hex(), id.as_str().unwrap(), "event {seq}");
        assert!(event.verify().is_ok(), "event {seq}");
        assert_eq!(store.get_by_id(&event.id).unwrap(), Some((seq, event)));
    }

    // Checkpoints: as served from them and as replayed, the same expected state.
    let current = checkpoints(&store, groups.membership_projection())
        + checkpoints(&store, groups.roles_projection())
        + checkpoints(&store, groups.metadata_projection())
        + checkpoints(&store, groups.creator_projection());
    eprintln!(
        "{current} of {} checkpoints are of the current projection versions",
        4 * store.group_count()
    );
    assert_eq!(state(&engine, &groups), expected, "served from checkpoints");
    store.delete_checkpoints(None).unwrap();
    engine.evict_all();
    assert_eq!(state(&engine, &groups), expected, "replayed from the log");
    assert_eq!(state(&engine, &groups.oracle()), expected, "full replay");

    // Spot checks that do not depend on the JSON above.
    let views = expected["views"].as_object().unwrap();
    assert!(views.len() >= 3, "the fixture has several groups");
    assert_eq!(views["seeded"]["source"], "snapshots");
    assert_eq!(views["seeded"]["metadata"]["name"], "Seeded");
    assert_eq!(views["reborn"]["metadata"]["name"], "Second life");
    assert_eq!(views["reborn"]["metadata"]["hidden"], true);
    assert!(views.values().any(|v| {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| !m["roles"].as_array().unwrap().is_empty())
    }));
    assert!(views.values().any(|v| v["metadata"]["name"].is_string()));
    let kinds = expected["kinds"].as_object().unwrap();
    for kind in [
        "9000", "9001", "9002", "9007", "9008", "9009", "39000", "39001", "39002", "39003",
    ] {
        assert!(kinds.contains_key(kind), "the fixture has kind {kind}");
    }

    // The old database still takes appends.
    let keys = reliability_support::key(42);
    let (group, _) = views.iter().next().unwrap();
    let put = signed(
        &keys,
        9,
        &[tag(&["h", group])],
        "after the upgrade",
        1_800_000_000,
    );
    let matched = matches!(engine.append(&put).unwrap(), highwater_store::AppendOutcome::Appended(seq) if seq == ids.len() as u64 + 1);
    assert!(matched);
    assert_eq!(store.get(store.head()).unwrap(), Some(put));
}
