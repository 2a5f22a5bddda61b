//! An attacker's suite for the relay's protocol handling: the attacks of issue 22 that
//! the relay already withstood, kept so that each stays withstood. Forged signatures,
//! malformed message shapes, an oversize message, deeply nested JSON, many idle
//! connections and a flood of subscriptions on one connection. After each attack the
//! relay must still serve a well-behaved client (its `OK` and its stored events), and
//! nothing the attacker sent may be in the log.

mod support;

use highwater_relay::RelayOptions;
use highwater_store::{Store, StoreOptions};
use nostr_sdk::prelude as sdk;
use serde_json::Value;

use support::transcript::Raw;
use support::{client, fetch, group_event, in_group, send, start};

fn keys(secret_byte: u8) -> sdk::Keys {
    sdk::Keys::new(sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key"))
}

/// A well-behaved client posts to the group and reads its post back.
async fn still_serves(url: &str, who: &sdk::Keys, round: &str) {
    let c = client(url, who, true).await;
    let post = group_event(who, 9, "town", round, &[]);
    assert_eq!(send(&c, &post).await, Ok(()), "after {round}: the post");
    let read = fetch(&c, in_group(&[9], "town").limit(1)).await;
    assert_eq!(
        read.iter().map(|e| e.id).collect::<Vec<_>>(),
        [post.id],
        "after {round}: reading it back"
    );
    c.shutdown().await;
}

/// The next message on `raw` that is not an `AUTH` challenge.
async fn answer(raw: &mut Raw) -> Value {
    loop {
        let message = raw.recv().await;
        if message[0] != "AUTH" {
            return message;
        }
    }
}

async fn forged_events(url: &str, alice: &sdk::Keys) {
    // Forged events: a valid event with its content changed (id mismatch), and one with
    // another event's signature. Every one refused with `invalid:`, none stored.
    let mut raw = Raw::connect(url).await;
    for i in 0..200 {
        let real = group_event(alice, 9, "town", &format!("real {i}"), &[]);
        let mut json: Value = serde_json::from_str(&sdk::JsonUtil::as_json(&real)).unwrap();
        if i % 2 == 0 {
            json["content"] = Value::from(format!("forged {i}"));
        } else {
            json["sig"] = Value::from("00".repeat(64));
        }
        raw.send(format!(r#"["EVENT",{json}]"#)).await;
        let ok = answer(&mut raw).await;
        assert_eq!(ok[0], "OK", "{ok}");
        assert_eq!(ok[2], false, "a forged event was accepted: {ok}");
        assert!(
            ok[3].as_str().is_some_and(|m| m.starts_with("invalid:")),
            "{ok}"
        );
    }
}

async fn malformed_messages(url: &str) {
    // Malformed messages, each on its own connection: answered with a NOTICE (or the
    // connection closed), never a crash.
    let shapes = [
        "not json",
        "",
        "null",
        "42",
        "{}",
        "[]",
        r#"["EVENT"]"#,
        r#"["EVENT",1]"#,
        r#"["EVENT",{"id":"x"}]"#,
        r#"["REQ"]"#,
        r#"["REQ",1]"#,
        r#"["REQ","s",1]"#,
        r#"["REQ","s",{"kinds":"x"}]"#,
        r#"["CLOSE"]"#,
        r#"["CLOSE",{}]"#,
        r#"["AUTH",{}]"#,
        r#"["AUTH","x"]"#,
        r#"["COUNT","c",{}]"#,
        r#"["HELLO","world"]"#,
    ];
    for shape in shapes {
        let mut raw = Raw::connect(url).await;
        raw.send(shape.to_owned()).await;
        raw.send(r##"["REQ","after",{"kinds":[9],"#h":["town"],"limit":1}]"##.to_owned())
            .await;
        // The connection still answers the next REQ.
        loop {
            let message = answer(&mut raw).await;
            if message[0] == "EOSE" || message[0] == "CLOSED" && message[1] == "after" {
                break;
            }
        }
    }
}

async fn oversize_and_nested(url: &str) {
    // An oversize message (4 MB, past the 256 KiB bound) and deeply nested JSON.
    {
        use futures_util::{SinkExt, StreamExt};
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let huge = format!(r#"["EVENT",{{"content":"{}"}}]"#, "x".repeat(4 << 20));
        // The relay may reset the connection while the message is still being sent.
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(huge))
            .await;
        let closed = tokio::time::timeout(support::WAIT, async {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the relay closes an oversize connection");
    }
    let mut raw = Raw::connect(url).await;
    raw.send(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))
        .await;
    let notice = answer(&mut raw).await;
    assert_eq!(notice[0], "NOTICE", "{notice}");
}

async fn idle_and_flood(url: &str) -> Vec<Raw> {
    // Many idle connections, then a flood of subscriptions on one connection: past the
    // per-connection bound each further REQ is refused with CLOSED.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(Raw::connect(url).await);
    }
    let mut raw = Raw::connect(url).await;
    let (mut eose, mut closed) = (0, 0);
    for i in 0..1_000 {
        raw.send(format!(
            r##"["REQ","s{i}",{{"kinds":[9],"#h":["town"],"limit":0}}]"##
        ))
        .await;
        let message = answer(&mut raw).await;
        match message[0].as_str() {
            Some("EOSE") => eose += 1,
            Some("CLOSED") => closed += 1,
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!(eose, RelayOptions::default().limits.max_subscriptions);
    assert_eq!(closed, 1_000 - eose);
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_withstands_protocol_attacks_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let alice = keys(41);
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "town", "", &[])).await,
        Ok(())
    );
    a.shutdown().await;
    let store = Store::open(dir.path(), StoreOptions::default()).expect("the same database");
    let head = store.head();

    forged_events(&relay.url, &alice).await;
    assert_eq!(store.head(), head, "a forged event reached the log");
    still_serves(&relay.url, &alice, "forged signatures").await;
    let head = store.head();

    malformed_messages(&relay.url).await;
    still_serves(&relay.url, &alice, "malformed messages").await;

    oversize_and_nested(&relay.url).await;
    still_serves(&relay.url, &alice, "an oversize message and deep nesting").await;

    let idle = idle_and_flood(&relay.url).await;
    still_serves(
        &relay.url,
        &alice,
        "idle connections and a subscription flood",
    )
    .await;
    drop(idle);

    // Nothing the attacker sent was stored: only the well-behaved posts.
    assert_eq!(store.head(), head + 3);
    drop(store);
    relay.stop().await;
}
