//! The relay's write path decides like one event at a time, under concurrent load.
//!
//! Four raw WebSocket connections send a seeded random NIP-29 workload (creations,
//! puts and removals, metadata edits with flags, deletions, invites, joins and leaves,
//! forged and relay state events, chat) without waiting for answers, so the sequencer
//! sees many events at once and many commits are in flight. Afterwards the relay's log
//! is replayed, in log order, into a second database through `AccessPolicy::check_write`
//! and plain appends (one at a time, nothing pipelined): every client event the relay
//! logged must be accepted there against the state of the log before it. Every `OK`
//! true is in the log and every logged client event got `OK` true; the relay's answer
//! to each accepted 9021 follows it in the log.
//!
//! A sequencer that decided an event against a state missing a change still in flight
//! (a post after its author's pending removal, a put after the group's pending
//! deletion) logs an event the one-at-a-time replay refuses.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config};
use highwater_relay::RelayOptions;
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

use support::transcript::Raw;
use support::{relay_keys, start};

const GROUPS: [&str; 3] = ["a", "b", "c"];
const CONNECTIONS: usize = 4;
const EVENTS: usize = 900;

/// A small deterministic generator (xorshift64*): the workload is the same every run.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("small")
    }
}

fn tag(parts: &[&str]) -> Tag {
    Tag::parse(parts.iter().copied()).expect("a valid tag")
}

/// One random event; `n` makes every event distinct.
fn draw_event(draw: &mut Draw, users: &[Keys], n: usize) -> Event {
    let relay = relay_keys();
    let author = &users[draw.below(users.len())];
    let target = users[draw.below(users.len())].public_key().to_hex();
    let group = GROUPS[draw.below(GROUPS.len())];
    let nonce = n.to_string();
    let mut tags = vec![tag(&["h", group])];
    let (kind, signer) = match draw.below(20) {
        0..=6 => (9, author),
        7..=8 => {
            if draw.below(2) == 0 {
                tags.push(tag(&["p", &target, "admin"]));
            } else {
                tags.push(tag(&["p", &target]));
            }
            (9000, author)
        }
        9 => {
            tags.push(tag(&["p", &target]));
            (9001, author)
        }
        10 => {
            for flag in ["private", "closed", "restricted", "hidden"] {
                if draw.below(3) == 0 {
                    tags.push(tag(&[flag]));
                }
            }
            tags.push(tag(&["name", &format!("group {group} {n}")]));
            (9002, author)
        }
        11..=12 => (9007, author),
        13 => (9008, author),
        14 => {
            tags.push(tag(&["code", &format!("code{}", draw.below(2))]));
            (9009, author)
        }
        15..=16 => {
            if draw.below(2) == 0 {
                tags.push(tag(&["code", &format!("code{}", draw.below(2))]));
            }
            (9021, author)
        }
        17 => (9022, author),
        18 => {
            tags = vec![tag(&["d", group]), tag(&["name", "forged"])];
            (39_000, author)
        }
        _ => {
            tags = vec![tag(&["d", group]), tag(&["p", &target])];
            (39_002, &relay)
        }
    };
    tags.push(tag(&["nonce", &nonce]));
    EventBuilder::new(Kind::from(kind), format!("event {n}"))
        .tags(tags)
        .finalize(signer)
        .expect("sign")
}

/// Sends `events` on one connection without waiting, then reads one `OK` for each.
async fn send_all(url: String, events: Vec<Event>) -> Vec<(String, bool, String)> {
    let mut raw = Raw::connect(&url).await;
    for event in &events {
        raw.send(serde_json::json!(["EVENT", event]).to_string())
            .await;
    }
    let mut oks = Vec::new();
    while oks.len() < events.len() {
        let message = raw.recv().await;
        if message[0] == "OK" {
            oks.push((
                message[1].as_str().expect("an id").to_owned(),
                message[2].as_bool().expect("a flag"),
                message[3].as_str().expect("a message").to_owned(),
            ));
        }
    }
    oks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_decided_as_one_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = RelayOptions::default();
    let policy = options.policy.clone();
    let running = start(dir.path(), options).await;

    let users: Vec<Keys> = (0..5).map(|_| Keys::generate()).collect();
    let mut draw = Draw(0x9E37_79B9_7F4A_7C15);
    let mut per_connection = vec![Vec::new(); CONNECTIONS];
    for n in 0..EVENTS {
        let event = draw_event(&mut draw, &users, n);
        per_connection[n % CONNECTIONS].push(event);
    }
    let sent: BTreeMap<String, Event> = per_connection
        .iter()
        .flatten()
        .map(|e| (e.id.to_hex(), e.clone()))
        .collect();
    let tasks: Vec<_> = per_connection
        .into_iter()
        .map(|events| tokio::spawn(send_all(running.url.clone(), events)))
        .collect();
    let mut accepted = BTreeSet::new();
    let mut refused = 0usize;
    for task in tasks {
        for (id, ok, message) in task.await.expect("a sender task") {
            assert!(
                !message.starts_with("error:"),
                "the relay failed on {id}: {message}"
            );
            if ok {
                accepted.insert(id);
            } else {
                refused += 1;
            }
        }
    }
    running.stop().await;

    let relay = relay_keys().public_key();
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let logged: Vec<Event> = store
        .iter_from(1)
        .map(|r| r.expect("a logged event").1)
        .collect();
    let logged_clients: BTreeSet<String> = logged
        .iter()
        .filter(|e| sent.contains_key(&e.id.to_hex()))
        .map(|e| e.id.to_hex())
        .collect();
    assert_eq!(
        logged_clients, accepted,
        "the clients' events in the log are exactly those answered OK true"
    );
    // The workload must exercise both answers and the relay's own writes.
    assert!(
        accepted.len() > 100 && refused > 100,
        "accepted {}, refused {refused}",
        accepted.len()
    );
    let answers = logged
        .iter()
        .filter(|e| e.pubkey == relay && e.kind.as_u16() == 9000)
        .count();
    assert!(answers > 0, "no accepted join was answered");

    // One at a time, in the relay's log order, on a second database.
    let model_dir = tempfile::tempdir().expect("tempdir");
    let model_store = Store::open(model_dir.path(), StoreOptions::default()).expect("open");
    let mut builder = Engine::builder(model_store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(relay)).expect("register");
    let engine = builder.build().expect("engine");
    let model = AccessPolicy::new(groups, policy);
    for (i, event) in logged.iter().enumerate() {
        if event.pubkey != relay
            && let Err(rejection) = model.check_write(event)
        {
            panic!(
                "log position {}: the relay accepted a kind {} that one-at-a-time decisions refuse: {rejection}",
                i + 1,
                event.kind.as_u16()
            );
        }
        if event.kind.as_u16() == 9021 && event.pubkey != relay {
            let next = logged
                .get(i + 1)
                .expect("the relay's answer follows the join");
            assert!(
                next.pubkey == relay && next.kind.as_u16() == 9000,
                "log position {}: an accepted 9021 is not followed by the relay's 9000",
                i + 1
            );
        }
        engine.append(event).expect("append to the model");
    }
}
