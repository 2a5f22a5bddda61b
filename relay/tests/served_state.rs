//! What a client reads is what the engine computes: random sequences of relay writes
//! (creations, edits with re-parenting, puts, removals, joins, leaves, pins, deletions,
//! posts, most of them refused by the policy), writes from a second process beside the
//! relay (an import), and restarts. After every step, for every group, the 39000–39005
//! a real client (`nostr-sdk`, authenticated as the relay key, which may see every
//! group) reads from the relay equal `render` of a full replay of the log (the
//! oracle, which loads no checkpoint and keeps no state between questions): same
//! kinds, tags and content, signed by the relay key.
//!
//! `HIGHWATER_SERVED_STATE_STEPS` sets the steps per seed (default 40).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_relay::RelayOptions;
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use nostr_sdk::prelude as sdk;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use support::transcript::Raw;
use support::{client, relay_keys, start};

const GROUPS: [&str; 4] = ["g0", "g1", "g2", "g3"];
const CHILD_ENV: &str = "HIGHWATER_SERVED_STATE_WRITER";
const TEST: &str = "served_state_equals_a_full_replay_through_writes_imports_and_restarts";

fn user(i: u8) -> Keys {
    Keys::parse(&format!("{:064x}", 0x1000 + u32::from(i))).expect("a valid key")
}

fn signed(keys: &Keys, kind: u16, tags: Vec<Vec<String>>, at: u64) -> nostr::prelude::Event {
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags.into_iter().map(|t| Tag::parse(t).expect("a tag")))
        .custom_created_at(Timestamp::from_secs(at))
        .finalize(keys)
        .expect("sign")
}

fn t(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|&p| p.to_owned()).collect()
}

/// One random group event by one random user (the creator most of the time, so that
/// some moderation is accepted).
fn random_event(rng: &mut ChaCha8Rng, ids: &[String], at: u64) -> nostr::prelude::Event {
    let group = *GROUPS.choose(rng).expect("groups");
    let author = user(if rng.random_bool(0.7) {
        0
    } else {
        rng.random_range(1..5)
    });
    let other = user(rng.random_range(0..5)).public_key().to_hex();
    let h = t(&["h", group]);
    let (kind, mut tags) = match rng.random_range(0..11) {
        0 | 1 => {
            let mut tags = vec![
                h,
                t(&["name", &format!("{group} {}", rng.random_range(0..9))]),
            ];
            for flag in ["private", "closed", "hidden"] {
                if rng.random_bool(0.2) {
                    tags.push(t(&[flag]));
                }
            }
            (9007, tags)
        }
        2 | 3 => {
            let mut tags = vec![
                h,
                t(&["name", &format!("renamed {}", rng.random_range(0..9))]),
            ];
            if rng.random_bool(0.5) {
                let parent = *GROUPS.choose(rng).expect("groups");
                tags.push(t(&["parent", parent]));
            }
            if rng.random_bool(0.2) {
                tags.push(t(&["private"]));
            }
            (9002, tags)
        }
        4 => {
            let role = ["admin", "writer", "moderator"].choose(rng).expect("roles");
            (9000, vec![h, t(&["p", &other, role])])
        }
        5 => (9000, vec![h, t(&["p", &other])]),
        6 => (9001, vec![h, t(&["p", &other])]),
        7 => (if rng.random_bool(0.5) { 9021 } else { 9022 }, vec![h]),
        8 => {
            let mut tags = vec![h];
            for id in ids.choose_multiple(rng, 2) {
                tags.push(t(&["e", id]));
            }
            (9010, tags)
        }
        9 => (9008, vec![h]),
        _ => (9, vec![h]),
    };
    if kind == 9007 && rng.random_bool(0.3) {
        let parent = *GROUPS.choose(rng).expect("groups");
        tags.push(t(&["parent", parent]));
    }
    signed(&author, kind, tags, at)
}

/// The other process: appends the events in the JSON file named by the environment.
fn write_elsewhere(spec: &str) {
    let (dir, file) = spec.split_once('\n').expect("dir and file");
    let store = Store::open(dir, StoreOptions::default()).expect("open from the other process");
    let events: Vec<nostr::prelude::Event> =
        serde_json::from_str(&std::fs::read_to_string(file).expect("the events")).expect("JSON");
    for event in events {
        store.append(&event).expect("append");
    }
}

/// Every group's 39000–39005 as a client reads them after NIP-42 `AUTH` as the relay
/// key (which may see hidden and private groups): (group, kind) → (tags, content).
///
/// The subscription is live while its stored answer is read, so a state event the
/// relay republishes meanwhile (after another process's commit) may arrive before
/// `EOSE` too: a NIP-01 client keeps the newer of two versions of an addressable event,
/// and so does this one. The stored answer itself holds one version of each.
async fn served(url: &str) -> BTreeMap<(String, u16), String> {
    let mut raw = Raw::connect(url).await;
    let challenge = raw.recv().await;
    assert_eq!(challenge[0], "AUTH", "{challenge}");
    let challenge = challenge[1].as_str().expect("a challenge").to_owned();
    let auth = EventBuilder::new(Kind::from(22_242u16), "")
        .tags([
            Tag::parse(["relay", url]).expect("tag"),
            Tag::parse(["challenge", challenge.as_str()]).expect("tag"),
        ])
        .finalize(&relay_keys())
        .expect("sign");
    raw.send(format!(
        r#"["AUTH",{}]"#,
        serde_json::to_string(&auth).expect("JSON")
    ))
    .await;
    let ok = raw.recv().await;
    assert_eq!(ok[2], true, "{ok}");
    raw.send(format!(
        r##"["REQ","state",{{"kinds":[39000,39001,39002,39003,39005],"#d":{}}}]"##,
        serde_json::to_string(&GROUPS).expect("JSON")
    ))
    .await;
    let mut out: BTreeMap<(String, u16), (u64, String)> = BTreeMap::new();
    loop {
        let message = raw.recv().await;
        match message[0].as_str() {
            Some("EOSE") => return out.into_iter().map(|(k, (_, v))| (k, v)).collect(),
            Some("EVENT") => {}
            _ => panic!("unexpected answer {message}"),
        }
        let event: nostr::prelude::Event =
            serde_json::from_value(message[2].clone()).expect("an event");
        assert_eq!(event.pubkey, relay_keys().public_key(), "{event:?}");
        assert!(event.verify().is_ok(), "a valid signature");
        let group = event
            .tags
            .iter()
            .find(|t| t.kind() == "d")
            .and_then(|t| t.content())
            .expect("a d tag")
            .to_owned();
        let version = serde_json::json!([event.tags, event.content]).to_string();
        let at = event.created_at.as_secs();
        match out.entry((group, event.kind.as_u16())) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert((at, version));
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let (seen_at, seen) = slot.get();
                assert!(
                    at != *seen_at || version == *seen,
                    "two versions of one state event with the same created_at"
                );
                if at > *seen_at {
                    slot.insert((at, version));
                }
            }
        }
    }
}

/// The same from a full replay of the log.
fn replayed(dir: &Path) -> BTreeMap<(String, u16), String> {
    // The handle the relay uses (one per path and process); the oracle reads the log.
    let store = Store::open(dir, StoreOptions::default()).expect("open");
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(relay_keys().public_key()))
        .expect("register");
    let _engine = builder.build().expect("engine");
    let oracle = groups.oracle();
    let mut out = BTreeMap::new();
    for g in GROUPS {
        for event in oracle.render(g, Timestamp::from_secs(0)).expect("render") {
            out.insert(
                (g.to_owned(), event.kind.as_u16()),
                serde_json::json!([event.tags, event.content]).to_string(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_state_equals_a_full_replay_through_writes_imports_and_restarts() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        write_elsewhere(&spec);
        return;
    }
    let steps: usize = std::env::var("HIGHWATER_SERVED_STATE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut relay = start(dir.path(), RelayOptions::default()).await;
        let mut ids: Vec<String> = Vec::new();
        // Dated now: the relay refuses late publication.
        let mut at = Timestamp::now().as_secs();
        let (mut accepted, mut imported, mut restarts) = (0, 0, 0);
        for step in 0..steps {
            match rng.random_range(0..10) {
                0 => {
                    // A second process writes beside the relay (no policy: an import
                    // of another relay's dump may hold anything).
                    let events: Vec<_> = (0..rng.random_range(1..4))
                        .map(|_| {
                            at += 1;
                            random_event(&mut rng, &ids, at)
                        })
                        .collect();
                    ids.extend(events.iter().map(|e| e.id.to_hex()));
                    let file = dir.path().join("import.json");
                    std::fs::write(&file, serde_json::to_string(&events).expect("JSON"))
                        .expect("write the events");
                    let status = Command::new(std::env::current_exe().expect("test binary"))
                        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                        .env(
                            CHILD_ENV,
                            format!("{}\n{}", dir.path().display(), file.display()),
                        )
                        .status()
                        .expect("run the other process");
                    assert!(status.success(), "the other process failed");
                    imported += events.len();
                }
                1 => {
                    relay.stop().await;
                    relay = start(dir.path(), RelayOptions::default()).await;
                    restarts += 1;
                }
                _ => {
                    at += 1;
                    let event = random_event(&mut rng, &ids, at);
                    let keys = sdk::Keys::parse(
                        &user_secret(&event.pubkey.to_hex()).expect("one of the users"),
                    )
                    .expect("keys");
                    let writer = client(&relay.url, &keys, true).await;
                    let json = serde_json::to_string(&event).expect("JSON");
                    let event: sdk::Event = sdk::JsonUtil::from_json(json).expect("same event");
                    if support::send(&writer, &event).await.is_ok() {
                        accepted += 1;
                        ids.push(event.id.to_hex());
                    }
                    writer.shutdown().await;
                }
            }
            let read = served(&relay.url).await;
            let expected = replayed(dir.path());
            assert_eq!(
                read, expected,
                "seed {seed}, step {step}: served != full replay"
            );
        }
        println!(
            "seed {seed}: {steps} steps, {accepted} relay writes accepted, {imported} events imported beside it, {restarts} restarts"
        );
        relay.stop().await;
    }
}

/// The secret key of the test user with this public key.
fn user_secret(pubkey: &str) -> Option<String> {
    (0..5u8)
        .map(user)
        .find(|k| k.public_key().to_hex() == pubkey)
        .map(|k| k.secret_key().to_secret_hex())
}
