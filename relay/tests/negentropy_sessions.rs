//! NIP-77 sessions opened together on one connection, as Flotilla's space sync opens
//! them: `@welshman/net`'s `pull` sends one `NEG-OPEN` per filter at once (fifteen for a
//! space: members, rooms, room members, each message kind…). The relay answered only the
//! first two and refused the rest with `NEG-ERR` `blocked: at most 2 reconciliations per
//! connection`, so Flotilla never learnt a space's rooms after joining it (its room list
//! comes from the `kinds: [39000, 9008]` reconciliation) nor the messages of its sync.
//! The open sessions of a connection are now bounded by the events they hold together,
//! and by a loose count.

mod support;

use highwater_relay::RelayOptions;
use nostr_sdk::prelude as sdk;
use serde_json::{Value, json};

use support::transcript::Raw;
use support::{client, group_event, send, start};

fn keys(secret_byte: u8) -> sdk::Keys {
    sdk::Keys::new(sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key"))
}

/// A peer that holds no events (Flotilla on a first visit), from the negentropy
/// implementation the relay uses, and its initial message.
fn empty_peer() -> (
    negentropy::Negentropy<'static, negentropy::NegentropyStorageVector>,
    String,
) {
    let mut storage = negentropy::NegentropyStorageVector::new();
    storage.seal().expect("seal an empty set");
    let mut peer = negentropy::Negentropy::owned(storage, 0).expect("a peer");
    let initial = hex::encode(peer.initiate().expect("an initial message"));
    (peer, initial)
}

/// Flotilla's space sync (`syncSpace` in its `app/core/sync.ts`, with `limit: 100`
/// added by its `pullAndListen`), the filters of one `pull`.
fn flotilla_space_filters(me: &str) -> Vec<Value> {
    let mut filters = vec![
        json!({"limit": 1, "kinds": [8000], "#p": [me]}),
        json!({"limit": 1, "kinds": [8001], "#p": [me]}),
        json!({"limit": 1, "kinds": [19004], "#p": [me]}),
        json!({"limit": 100, "kinds": [13534]}),
        json!({"limit": 100, "kinds": [39001, 39002]}),
        json!({"limit": 1000, "kinds": [39000, 9008]}),
        json!({"limit": 100, "kinds": [9000, 9001]}),
        json!({"limit": 100, "kinds": [8000, 8001]}),
    ];
    for kind in [9041, 31923, 11, 9] {
        filters.push(json!({"limit": 100, "kinds": [kind]}));
    }
    filters.push(json!({"limit": 100, "kinds": [1111], "#K": ["9041", "31923", "11"]}));
    filters.push(json!({"limit": 0, "kinds": [1984, 5, 7, 9735]}));
    filters
}

/// Reads `n` answers (skipping `AUTH`), by subscription id.
async fn answers(raw: &mut Raw, n: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while out.len() < n {
        let message = raw.recv().await;
        if message[0] == "AUTH" {
            continue;
        }
        let sub = message[1].as_str().unwrap_or_default().to_owned();
        out.push((sub, message));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_parallel_reconciliations_are_all_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;

    // A room with a message, as a space Flotilla joins has.
    let alice = keys(51);
    let a = client(&relay.url, &alice, true).await;
    for event in [
        group_event(&alice, 9007, "lobby", "", &[]),
        group_event(&alice, 9002, "lobby", "", &[&["name", "Lobby"]]),
        group_event(&alice, 9, "lobby", "hello", &[&["-"]]),
    ] {
        assert_eq!(send(&a, &event).await, Ok(()));
    }
    a.shutdown().await;

    // Flotilla's fifteen NEG-OPENs, sent at once on one connection.
    let (mut rooms_peer, initial) = empty_peer();
    let filters = flotilla_space_filters(&keys(52).public_key().to_hex());
    let mut raw = Raw::connect(&relay.url).await;
    for (i, filter) in filters.iter().enumerate() {
        raw.send(json!(["NEG-OPEN", format!("NEG-{i}"), filter, initial]).to_string())
            .await;
    }
    let replies = answers(&mut raw, filters.len()).await;
    for (sub, reply) in &replies {
        assert_eq!(reply[0], "NEG-MSG", "{sub}: {reply}");
    }

    // The room list's reconciliation (`kinds: [39000, 9008]`) names the room's rendered
    // 39000, and a REQ by its id (what `pull` sends next) returns it.
    let rooms = &replies
        .iter()
        .find(|(sub, _)| sub == "NEG-5")
        .expect("the 39000 session answered")
        .1;
    let reply = hex::decode(rooms[2].as_str().expect("hex")).expect("hex");
    let (mut have, mut need) = (Vec::new(), Vec::new());
    rooms_peer
        .reconcile_with_ids(&reply, &mut have, &mut need)
        .expect("reconcile");
    let need: Vec<String> = need.iter().map(|id| hex::encode(id.as_bytes())).collect();
    assert_eq!(need.len(), 1, "the room's 39000: {need:?}");
    raw.send(json!(["REQ", "by-id", {"ids": need}]).to_string())
        .await;
    let got = answers(&mut raw, 2).await;
    assert_eq!(got[0].1[0], "EVENT", "{}", got[0].1);
    let room = &got[0].1[2];
    assert_eq!(room["kind"], 39000);
    assert_eq!(room["id"], need[0].as_str());
    assert_eq!(room["tags"][0], json!(["d", "lobby"]));
    assert_eq!(got[1].1[0], "EOSE", "{}", got[1].1);

    // The space's messages (`kinds: [9]`): the post.
    let messages = &replies
        .iter()
        .find(|(sub, _)| sub == "NEG-11")
        .expect("the kind 9 session answered")
        .1;
    let (mut peer, _) = empty_peer();
    let reply = hex::decode(messages[2].as_str().expect("hex")).expect("hex");
    let (mut have, mut need) = (Vec::new(), Vec::new());
    peer.reconcile_with_ids(&reply, &mut have, &mut need)
        .expect("reconcile");
    assert_eq!(need.len(), 1, "the post");

    // Closed sessions free their places; the loose count still holds: 64 open at once,
    // the 65th refused until one is closed.
    for i in 0..filters.len() {
        raw.send(json!(["NEG-CLOSE", format!("NEG-{i}")]).to_string())
            .await;
    }
    for i in 0..64 {
        raw.send(json!(["NEG-OPEN", format!("many-{i}"), {"kinds": [9]}, initial]).to_string())
            .await;
    }
    for (sub, reply) in answers(&mut raw, 64).await {
        assert_eq!(reply[0], "NEG-MSG", "{sub}: {reply}");
    }
    raw.send(json!(["NEG-OPEN", "one-more", {"kinds": [9]}, initial]).to_string())
        .await;
    let refused = answers(&mut raw, 1).await.remove(0).1;
    assert_eq!(refused[0], "NEG-ERR", "{refused}");
    assert!(
        refused[2]
            .as_str()
            .unwrap_or_default()
            .starts_with("blocked:"),
        "{refused}"
    );
    raw.send(json!(["NEG-CLOSE", "many-0"]).to_string()).await;
    raw.send(json!(["NEG-OPEN", "one-more", {"kinds": [9]}, initial]).to_string())
        .await;
    let reopened = answers(&mut raw, 1).await.remove(0).1;
    assert_eq!(reopened[0], "NEG-MSG", "{reopened}");

    relay.stop().await;
}
