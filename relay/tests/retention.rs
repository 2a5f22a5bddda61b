//! Retention while serving: a relay with a [`RetentionSchedule`] compacts its log on an
//! interval. With a client connected, expired chat (dated far in the past, accepted
//! because late publication is off) leaves the `REQ` answers and the id lookups, while
//! recent chat, chat of a group kept forever, the moderation events (whatever their
//! date) and every group's state (39000–39002 as the relay renders them) stay as they
//! were. A schedule replaced while the relay serves (a reloaded configuration) takes
//! effect without a restart.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use highwater_engine::RetentionPolicy;
use highwater_relay::{RelayOptions, RetentionSchedule};
use nostr_sdk::prelude as sdk;

use support::transcript::Raw;
use support::{WAIT, client, relay_keys, relay_over, send, serve, start};

const DAY: u64 = 86_400;

/// A signed event of `kind` in `group`, dated `days_ago` days before now.
fn dated(keys: &sdk::Keys, kind: u16, group: &str, days_ago: u64, tags: &[&[&str]]) -> sdk::Event {
    let mut all = vec![sdk::Tag::parse(["h", group]).expect("h tag")];
    all.extend(
        tags.iter()
            .map(|t| sdk::Tag::parse(t.iter().copied()).expect("tag")),
    );
    let at = sdk::Timestamp::now().as_secs() - days_ago * DAY;
    sdk::EventBuilder::new(sdk::Kind::Custom(kind), format!("{kind} {days_ago}d ago"))
        .tags(all)
        .custom_created_at(sdk::Timestamp::from(at))
        .sign_with_keys(keys)
        .expect("sign")
}

/// The stored answer to one `REQ`, as the events' JSON.
async fn req(raw: &mut Raw, filter: &str) -> Vec<serde_json::Value> {
    raw.send(format!(r#"["REQ","q",{filter}]"#)).await;
    let mut events = Vec::new();
    loop {
        let message = raw.recv().await;
        match message[0].as_str() {
            Some("EVENT") => events.push(message[2].clone()),
            Some("EOSE") => break,
            // The relay's NIP-42 challenge, sent on connecting; reads need no auth here.
            Some("AUTH") => {}
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
    raw.send(r#"["CLOSE","q"]"#.to_owned()).await;
    events
}

/// The ids of a `REQ`'s answer.
async fn ids(raw: &mut Raw, filter: &str) -> Vec<String> {
    let mut ids: Vec<String> = req(raw, filter)
        .await
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Which of `wanted` the relay serves, looked up by id (sorted).
async fn ids_among(raw: &mut Raw, wanted: &[String]) -> Vec<String> {
    let filter = format!(
        r#"{{"ids":{}}}"#,
        serde_json::to_string(wanted).expect("json")
    );
    ids(raw, &filter).await
}

/// Waits (with a bound) until none of `gone` is served.
async fn wait_until_gone(raw: &mut Raw, gone: &[String]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = ids_among(raw, gone).await;
        if found.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired posts still served: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every group's state as the relay renders it: kind and `d` → tags (the signature
/// and date of a rendered event are not the state).
async fn state(raw: &mut Raw) -> BTreeMap<String, String> {
    req(raw, r#"{"kinds":[39000,39001,39002]}"#)
        .await
        .iter()
        .map(|e| {
            let d = e["tags"]
                .as_array()
                .and_then(|tags| tags.iter().find(|t| t[0] == "d"))
                .map(|t| t[1].to_string())
                .unwrap_or_default();
            (format!("{} {d}", e["kind"]), e["tags"].to_string())
        })
        .collect()
}

/// The ids of what was written: the chat that expires, and everything that stays.
struct Written {
    old_chat: Vec<String>,
    kept: Vec<String>,
}

/// Two groups, `pizza` (chat expires) and `archive` (kept forever).
async fn write_groups(a: &sdk::Client, alice: &sdk::Keys, bob: &sdk::Keys) -> Written {
    // Everything but the recent posts is dated 30 days ago: creations, a member added
    // and a rename (folded kinds, which never expire) and chat (which does, except in
    // `archive`).
    let mut old_chat = Vec::new();
    let mut kept = Vec::new();
    for group in ["pizza", "archive"] {
        let writes = [
            dated(alice, 9007, group, 30, &[&["name", group]]),
            dated(
                alice,
                9000,
                group,
                30,
                &[&["p", &bob.public_key().to_hex()]],
            ),
            dated(
                alice,
                9002,
                group,
                30,
                &[&["name", &format!("{group}, renamed")]],
            ),
        ];
        for event in writes {
            assert_eq!(send(a, &event).await, Ok(()), "{group} {}", event.kind);
            kept.push(event.id.to_hex());
        }
        for i in 0..3 {
            let post = dated(alice, 9, group, 30 + i, &[]);
            assert_eq!(send(a, &post).await, Ok(()));
            if group == "archive" {
                kept.push(post.id.to_hex());
            } else {
                old_chat.push(post.id.to_hex());
            }
        }
        // The newest record of each group: never an expired one, so every old post can go.
        let recent = dated(alice, 9, group, 0, &[]);
        assert_eq!(send(a, &recent).await, Ok(()));
        kept.push(recent.id.to_hex());
    }
    kept.sort();
    old_chat.sort();

    Written { old_chat, kept }
}

/// A served relay with both groups written (by alice, with bob a member), a raw
/// connection to read it, and every group's state before any compaction.
struct Served {
    a: sdk::Client,
    bob: sdk::Keys,
    written: Written,
    raw: Raw,
    before: BTreeMap<String, String>,
}

async fn write_and_read(url: &str) -> Served {
    let alice =
        sdk::Keys::parse("0000000000000000000000000000000000000000000000000000000000000a11")
            .expect("alice");
    let bob = sdk::Keys::generate();
    let a = client(url, &alice, true).await;
    let written = write_groups(&a, &alice, &bob).await;
    let mut raw = Raw::connect(url).await;
    let before = state(&mut raw).await;
    Served {
        a,
        bob,
        written,
        raw,
        before,
    }
}

/// Compacts every 50 ms: records older than a week expire, except in `archive`.
fn week_but_archive() -> RetentionSchedule {
    RetentionSchedule {
        every: Duration::from_millis(50),
        policy: RetentionPolicy {
            default: Some(Duration::from_secs(7 * DAY)),
            per_group: [("archive".to_owned(), Duration::MAX)].into(),
            kinds: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_chat_leaves_the_answers_while_state_and_recent_chat_stay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = RelayOptions {
        late_publication_secs: None,
        retention: Some(week_but_archive()),
        ..RelayOptions::default()
    };
    let relay = start(dir.path(), options).await;
    let Served {
        a,
        bob,
        written: Written { old_chat, kept },
        mut raw,
        before,
    } = write_and_read(&relay.url).await;

    assert_eq!(before.len(), 6, "39000–39002 of both groups: {before:?}");
    assert!(
        before.values().any(|tags| tags.contains("pizza, renamed")),
        "{before:?}"
    );
    assert!(
        before
            .values()
            .any(|tags| tags.contains(&bob.public_key().to_hex())),
        "{before:?}"
    );

    // The compaction runs on its own; wait (with a bound) for the expired posts to go.
    wait_until_gone(&mut raw, &old_chat).await;

    let pizza_chat = ids(&mut raw, r##"{"kinds":[9],"#h":["pizza"]}"##).await;
    assert_eq!(pizza_chat.len(), 1, "only the recent post: {pizza_chat:?}");
    assert!(old_chat.iter().all(|id| !pizza_chat.contains(id)));
    let archive_chat = ids(&mut raw, r##"{"kinds":[9],"#h":["archive"]}"##).await;
    assert_eq!(
        archive_chat.len(),
        4,
        "archive keeps its posts: {archive_chat:?}"
    );

    let found = ids_among(&mut raw, &kept).await;
    assert_eq!(found, kept, "moderation, archive and recent posts by id");
    for id in &old_chat {
        let found = ids_among(&mut raw, std::slice::from_ref(id)).await;
        assert!(found.is_empty(), "{id} by id: {found:?}");
    }

    assert_eq!(
        state(&mut raw).await,
        before,
        "every group's state is unchanged"
    );
    drop(raw);
    a.disconnect().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_set_while_serving_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Started without retention: nothing expires.
    let options = RelayOptions {
        late_publication_secs: None,
        ..RelayOptions::default()
    };
    let relay = relay_over(dir.path(), relay_keys(), options);
    let control = relay.control();
    assert_eq!(control.retention(), None);
    let relay = serve(relay, "127.0.0.1:0").await;
    let Served {
        a,
        written: Written { old_chat, kept },
        mut raw,
        before,
        ..
    } = write_and_read(&relay.url).await;
    assert_eq!(
        ids_among(&mut raw, &old_chat).await,
        old_chat,
        "without a schedule the old posts are served"
    );

    // A schedule set on the running relay (what a reload does): the old posts go.
    let schedule = week_but_archive();
    control.set_retention(Some(schedule.clone()));
    assert_eq!(control.retention(), Some(schedule));
    wait_until_gone(&mut raw, &old_chat).await;
    assert_eq!(ids_among(&mut raw, &kept).await, kept);

    // Replaced again: `archive` no longer kept forever, and its old posts go too.
    let archive_old: Vec<String> = req(&mut raw, r##"{"kinds":[9],"#h":["archive"]}"##)
        .await
        .iter()
        .filter(|e| {
            e["created_at"].as_u64().expect("a date") < sdk::Timestamp::now().as_secs() - DAY
        })
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect();
    assert_eq!(archive_old.len(), 3, "{archive_old:?}");
    control.set_retention(Some(RetentionSchedule {
        every: Duration::from_millis(50),
        policy: RetentionPolicy {
            default: Some(Duration::from_secs(7 * DAY)),
            ..RetentionPolicy::default()
        },
    }));
    wait_until_gone(&mut raw, &archive_old).await;
    assert_eq!(
        state(&mut raw).await,
        before,
        "every group's state is unchanged"
    );
    drop(raw);
    a.disconnect().await;
    relay.stop().await;
}
