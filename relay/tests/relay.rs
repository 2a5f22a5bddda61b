//! The relay driven over a real socket by rust-nostr's `nostr-sdk` client: a group's
//! life (create, join with the relay's automatic 9000, post, moderate, leave, edit),
//! refusals with NIP-01 prefixes, private reads before and after NIP-42 AUTH, group
//! listing, 9005 hiding, a restart with nothing lost, and a snapshot of a scripted
//! session's transcript.

mod support;

use highwater_relay::{ConnectionLimits, RelayOptions};
use nostr_sdk::prelude as sdk;
use sdk::JsonUtil;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::transcript::Raw;
use support::{WAIT, client, fetch, group_event, in_group, p_tags, relay_pubkey, send, start, tag};

fn keys(secret_byte: u8) -> sdk::Keys {
    let secret = sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key");
    sdk::Keys::new(secret)
}

/// Waits for the next event of `kind` delivered to any subscription of `client`.
async fn next_live(
    notifications: &mut tokio::sync::broadcast::Receiver<sdk::RelayPoolNotification>,
    kind: u16,
) -> sdk::Event {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(sdk::RelayPoolNotification::Event { event, .. }) = notifications.recv().await
                && event.kind.as_u16() == kind
            {
                return *event;
            }
        }
    })
    .await
    .expect("the live event arrives in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_lives_through_a_real_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, bob, carol) = (keys(1), keys(2), keys(3));
    let a = client(&relay.url, &alice, true).await;
    let b = client(&relay.url, &bob, true).await;
    let c = client(&relay.url, &carol, true).await;

    // Create: the relay answers with its state events; the group is listed. It is
    // `restricted` (NIP-29: only members write), so a stranger's post is refused below.
    let create = group_event(
        &alice,
        9007,
        "pizza",
        "",
        &[&["name", "Pizza"], &["restricted"]],
    );
    assert_eq!(send(&a, &create).await, Ok(()));
    let listed = fetch(&c, sdk::Filter::new().kind(sdk::Kind::Custom(39_000))).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(tag(&listed[0], "d"), Some("pizza"));
    assert_eq!(tag(&listed[0], "name"), Some("Pizza"));
    assert_eq!(listed[0].pubkey, relay_pubkey());

    // Join: the relay's 9000 arrives live on a subscription opened before.
    let mut live = b.notifications();
    b.subscribe(in_group(&[9000], "pizza"), None)
        .await
        .expect("subscribe");
    let join = group_event(&bob, 9021, "pizza", "", &[]);
    assert_eq!(send(&b, &join).await, Ok(()));
    let put = next_live(&mut live, 9000).await;
    assert_eq!(put.pubkey, relay_pubkey());
    assert_eq!(p_tags(&put), [bob.public_key().to_hex()]);
    let members = fetch(&c, in_group(&[], "pizza").kind(sdk::Kind::Custom(39_002))).await;
    assert!(
        members.is_empty(),
        "#h does not name state events (they use #d)"
    );
    let members = fetch(
        &c,
        sdk::Filter::new()
            .kind(sdk::Kind::Custom(39_002))
            .identifier("pizza"),
    )
    .await;
    assert_eq!(members.len(), 1);
    assert!(p_tags(&members[0]).contains(&bob.public_key().to_hex()));

    // Post; a stranger cannot post or moderate.
    let post = group_event(&bob, 9, "pizza", "hello", &[]);
    assert_eq!(send(&b, &post).await, Ok(()));
    let stranger_post = group_event(&carol, 9, "pizza", "hi?", &[]);
    let refused = send(&c, &stranger_post).await.expect_err("not a member");
    assert!(refused.starts_with("restricted:"), "{refused}");
    let kick = group_event(
        &carol,
        9001,
        "pizza",
        "",
        &[&["p", &bob.public_key().to_hex()]],
    );
    let refused = send(&c, &kick).await.expect_err("a stranger's moderation");
    assert!(refused.starts_with("restricted:"), "{refused}");
    let chat = fetch(&c, in_group(&[9], "pizza")).await;
    assert_eq!(chat.iter().map(|e| e.id).collect::<Vec<_>>(), [post.id]);

    // Moderate: a 9005 hides the post.
    let hide = group_event(&alice, 9005, "pizza", "", &[&["e", &post.id.to_hex()]]);
    assert_eq!(send(&a, &hide).await, Ok(()));
    assert!(fetch(&c, in_group(&[9], "pizza")).await.is_empty());
    assert!(
        fetch(&c, sdk::Filter::new().id(post.id)).await.is_empty(),
        "hidden by id too"
    );

    // Leave: the relay's 9001; the member list no longer has bob.
    let leave = group_event(&bob, 9022, "pizza", "", &[]);
    assert_eq!(send(&b, &leave).await, Ok(()));
    let removed = fetch(&c, in_group(&[9001], "pizza")).await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].pubkey, relay_pubkey());
    let members = fetch(
        &c,
        sdk::Filter::new()
            .kind(sdk::Kind::Custom(39_002))
            .identifier("pizza"),
    )
    .await;
    assert_eq!(members.len(), 1, "one current 39002");
    assert!(!p_tags(&members[0]).contains(&bob.public_key().to_hex()));

    // Edit metadata: a new 39000 replaces the old one.
    let edit = group_event(&alice, 9002, "pizza", "", &[&["name", "Pizza Club"]]);
    assert_eq!(send(&a, &edit).await, Ok(()));
    let listed = fetch(&c, sdk::Filter::new().kind(sdk::Kind::Custom(39_000))).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(tag(&listed[0], "name"), Some("Pizza Club"));

    // Ungrouped events are refused by a NIP-29 relay.
    let note = sdk::EventBuilder::text_note("hi")
        .sign_with_keys(&alice)
        .expect("sign");
    let refused = send(&a, &note).await.expect_err("no group");
    assert!(
        refused.starts_with("blocked: missing group (`h`) tag"),
        "{refused}"
    );

    for c in [a, b, c] {
        c.shutdown().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_groups_are_read_only_after_auth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, dave) = (keys(4), keys(5));
    let writer = client(&relay.url, &alice, true).await;
    let create = group_event(&alice, 9007, "secret", "", &[&["private"]]);
    assert_eq!(send(&writer, &create).await, Ok(()));
    let post = group_event(&alice, 9, "secret", "members only", &[]);
    assert_eq!(send(&writer, &post).await, Ok(()));

    // Alice without AUTH: refused with auth-required.
    let reader = client(&relay.url, &alice, false).await;
    let mut notes = reader.notifications();
    let events = reader
        .fetch_events(in_group(&[9], "secret"), WAIT)
        .await
        .map_or(0, |e| e.len());
    assert_eq!(events, 0);
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(sdk::RelayPoolNotification::Message {
                message: sdk::RelayMessage::Closed { message, .. },
                ..
            }) = notes.recv().await
            {
                return message.into_owned();
            }
        }
    })
    .await
    .expect("a CLOSED arrives");
    assert!(closed.starts_with("auth-required:"), "{closed}");

    // After AUTH (the client answers the relay's challenge), the member reads.
    reader.automatic_authentication(true);
    let found = fetch(&reader, in_group(&[9], "secret")).await;
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), [post.id]);

    // An authenticated stranger is still refused.
    let stranger = client(&relay.url, &dave, true).await;
    assert!(fetch(&stranger, in_group(&[9], "secret")).await.is_empty());

    for c in [writer, reader, stranger] {
        c.shutdown().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_session_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let alice = keys(6);
    let relay = start(dir.path(), RelayOptions::default()).await;
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "stay", "", &[])).await,
        Ok(())
    );
    let mut posted = Vec::new();
    for i in 0..20 {
        let post = group_event(&alice, 9, "stay", &format!("message {i}"), &[]);
        assert_eq!(send(&a, &post).await, Ok(()));
        posted.push(post.id);
    }
    a.shutdown().await;
    relay.stop().await;

    let relay = start(dir.path(), RelayOptions::default()).await;
    let a = client(&relay.url, &alice, true).await;
    let found = fetch(&a, in_group(&[9], "stay")).await;
    let mut ids: Vec<_> = found.iter().map(|e| e.id).collect();
    ids.sort();
    posted.sort();
    assert_eq!(ids, posted);
    let listed = fetch(&a, sdk::Filter::new().kind(sdk::Kind::Custom(39_000))).await;
    assert_eq!(listed.len(), 1, "the state index is rebuilt from the log");
    // The relay still decides with the group's state after the restart.
    assert_eq!(
        send(&a, &group_event(&alice, 9, "stay", "after", &[])).await,
        Ok(())
    );
    let refused = send(&a, &group_event(&alice, 9007, "stay", "again", &[]))
        .await
        .expect_err("the group exists");
    assert!(refused.starts_with("duplicate:"), "{refused}");
    a.shutdown().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nip11_information_document() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let addr = relay.url.trim_start_matches("ws://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nAccept: application/nostr+json\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("in time")
        .expect("read");
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    let doc: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert!(response.starts_with("HTTP/1.1 200"));
    assert!(response.contains("application/nostr+json"));
    assert_eq!(
        doc["supported_nips"],
        serde_json::json!([1, 11, 29, 42, 43, 70, 77, 86, 98])
    );
    assert_eq!(doc["pubkey"], relay_pubkey().to_hex());
    assert!(doc["limitation"]["max_subscriptions"].is_u64());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_session_transcript() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, bob, carol) = (keys(7), keys(8), keys(9));
    let names = [
        (relay_pubkey().to_hex(), "relay"),
        (alice.public_key().to_hex(), "alice"),
        (bob.public_key().to_hex(), "bob"),
        (carol.public_key().to_hex(), "carol"),
    ];
    let event = |e: &sdk::Event| sdk::ClientMessage::event(e.clone()).as_json();
    let mut raw = Raw::connect(&relay.url).await;
    raw.recv().await; // AUTH challenge

    // `restricted` (NIP-29: only members write): bob's early post is refused.
    let create = group_event(
        &alice,
        9007,
        "pizza",
        "",
        &[&["name", "Pizza"], &["restricted"]],
    );
    raw.send(event(&create)).await;
    raw.recv().await;
    raw.send(r#"["REQ","groups",{"kinds":[39000]}]"#.to_owned())
        .await;
    raw.recv_n(2).await;
    raw.send(event(&group_event(&bob, 9, "pizza", "early", &[])))
        .await;
    raw.recv().await;
    // The live 39000 (member_count) reaches "groups" before the join's OK.
    raw.send(event(&group_event(&bob, 9021, "pizza", "", &[])))
        .await;
    raw.recv_n(2).await;
    let post = group_event(&bob, 9, "pizza", "hello", &[]);
    raw.send(event(&post)).await;
    raw.recv().await;
    raw.send(r##"["REQ","chat",{"kinds":[9],"#h":["pizza"]}]"##.to_owned())
        .await;
    raw.recv_n(2).await;
    let kick = group_event(
        &carol,
        9001,
        "pizza",
        "",
        &[&["p", &bob.public_key().to_hex()]],
    );
    raw.send(event(&kick)).await;
    raw.recv().await;
    raw.send(event(&group_event(
        &alice,
        9005,
        "pizza",
        "",
        &[&["e", &post.id.to_hex()]],
    )))
    .await;
    raw.recv().await;
    raw.send(r#"["CLOSE","chat"]"#.to_owned()).await;
    raw.send(r##"["REQ","again",{"kinds":[9],"#h":["pizza"]}]"##.to_owned())
        .await;
    raw.recv().await;
    raw.send(event(&group_event(&bob, 9022, "pizza", "", &[])))
        .await;
    raw.recv_n(2).await;
    raw.send(r#"["HELLO"]"#.to_owned()).await;
    raw.recv().await;

    let transcript = raw.normalized(&names);
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("relay_session_transcript", transcript);
    });
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = RelayOptions {
        limits: ConnectionLimits {
            max_queue_bytes: 8 * 1024,
            ..ConnectionLimits::default()
        },
        ..RelayOptions::default()
    };
    let relay = start(dir.path(), options).await;
    let alice = keys(10);
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "big", "", &[])).await,
        Ok(())
    );
    let mut slow = Raw::connect(&relay.url).await;
    slow.recv().await; // AUTH
    slow.send(r##"["REQ","all",{"kinds":[9],"#h":["big"],"limit":0}]"##.to_owned())
        .await;
    slow.recv().await; // EOSE
    // 30 MB of posts: more than the socket buffers hold, so the outbox fills.
    let payload = "x".repeat(100_000);
    let posts = 300;
    for i in 0..posts {
        let post = group_event(&alice, 9, "big", &format!("{i} {payload}"), &[]);
        assert_eq!(send(&a, &post).await, Ok(()));
    }
    let received = slow.count_until_closed().await;
    assert!(
        received < posts,
        "received {received} of {posts} before the relay hung up"
    );
    // The relay goes on serving everyone else.
    let found = fetch(&a, in_group(&[9], "big").limit(3)).await;
    assert_eq!(found.len(), 3);
    a.shutdown().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_groups_are_listed_to_members_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, erin) = (keys(11), keys(12));
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "open", "", &[])).await,
        Ok(())
    );
    assert_eq!(
        send(
            &a,
            &group_event(&alice, 9007, "cellar", "", &[&["hidden"], &["private"]])
        )
        .await,
        Ok(())
    );
    let listed = |events: Vec<sdk::Event>| {
        let mut groups: Vec<String> = events
            .iter()
            .filter_map(|e| tag(e, "d").map(str::to_owned))
            .collect();
        groups.sort();
        groups
    };
    let all = sdk::Filter::new().kind(sdk::Kind::Custom(39_000));
    let stranger = client(&relay.url, &erin, true).await;
    assert_eq!(listed(fetch(&stranger, all.clone()).await), ["open"]);
    // Alice authenticates (her client answers the relay's challenge, at the latest
    // when a read of the private group asks for it) and, as a member, sees it listed.
    assert!(fetch(&a, in_group(&[9], "cellar")).await.is_empty());
    assert_eq!(listed(fetch(&a, all).await), ["cellar", "open"]);
    for c in [a, stranger] {
        c.shutdown().await;
    }
    relay.stop().await;
}
