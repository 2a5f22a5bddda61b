//! An attacker's suite for the relay's access rules and its own events, each test one
//! finding of an attack on an earlier version (issue 22), driven by rust-nostr's
//! `nostr-sdk` client or a raw WebSocket:
//!
//! - a 9005 in a group of one's own "undeleted" another group's deleted event;
//! - a stranger re-creating a deleted private group's id read its earlier life;
//! - a private group's member list (39002) was served to anyone;
//! - a hidden group's existence leaked (`#h` answered `auth-required` where a group
//!   that does not exist answers nothing), and one hidden by another writer kept its
//!   old 39000 visible to outsiders;
//! - every join stored the whole member list again (a 39002 per join), and the relay's
//!   9000 answering a 9021 was committed after it, separately, so a crash between the
//!   two left a join unanswered forever.

mod support;

use std::sync::Arc;

use highwater_relay::RelayOptions;
use highwater_store::{CommitObserver, Committed, Store, StoreOptions};
use nostr_sdk::prelude as sdk;
use parking_lot::Mutex;
use serde_json::Value;

use support::transcript::Raw;
use support::{client, fetch, group_event, in_group, p_tags, relay_keys, send, start, tag};

fn keys(secret_byte: u8) -> sdk::Keys {
    sdk::Keys::new(sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key"))
}

fn by_id(id: sdk::EventId) -> sdk::Filter {
    sdk::Filter::new().id(id)
}

fn state(kind: u16, group: &str) -> sdk::Filter {
    sdk::Filter::new()
        .kind(sdk::Kind::Custom(kind))
        .identifier(group)
}

/// Sends a `REQ` over a raw connection and collects its answer: the events, and the
/// `CLOSED` message if the relay refused it (`None` when it ended with `EOSE`).
async fn req(raw: &mut Raw, sub: &str, filter: &str) -> (Vec<Value>, Option<String>) {
    raw.send(format!(r#"["REQ","{sub}",{filter}]"#)).await;
    let mut events = Vec::new();
    loop {
        let message = raw.recv().await;
        let verb = message[0].as_str().unwrap_or_default().to_owned();
        if message.get(1).and_then(Value::as_str) != Some(sub) {
            continue; // AUTH challenges, notices, other subscriptions
        }
        match verb.as_str() {
            "EVENT" => events.push(message[2].clone()),
            "EOSE" => return (events, None),
            "CLOSED" => return (events, message[2].as_str().map(str::to_owned)),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_9005_deletes_only_events_of_its_own_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, mallory) = (keys(21), keys(22));
    let a = client(&relay.url, &alice, true).await;
    let m = client(&relay.url, &mallory, true).await;

    assert_eq!(
        send(&a, &group_event(&alice, 9007, "a", "", &[])).await,
        Ok(())
    );
    let deleted = group_event(&alice, 9, "a", "regretted", &[]);
    let kept = group_event(&alice, 9, "a", "kept", &[]);
    assert_eq!(send(&a, &deleted).await, Ok(()));
    assert_eq!(send(&a, &kept).await, Ok(()));
    let delete = group_event(&alice, 9005, "a", "", &[&["e", &deleted.id.to_hex()]]);
    assert_eq!(send(&a, &delete).await, Ok(()));
    assert!(fetch(&m, by_id(deleted.id)).await.is_empty());

    // Mallory's own group, and a 9005 in it naming alice's events: the deleted one
    // must stay deleted, the kept one must stay served.
    assert_eq!(
        send(&m, &group_event(&mallory, 9007, "m", "", &[])).await,
        Ok(())
    );
    let undelete = group_event(
        &mallory,
        9005,
        "m",
        "",
        &[&["e", &deleted.id.to_hex()], &["e", &kept.id.to_hex()]],
    );
    let _ = send(&m, &undelete).await;
    for round in ["live", "after a restart"] {
        assert!(
            fetch(&m, by_id(deleted.id)).await.is_empty(),
            "{round}: a 9005 of another group undeleted the event (by id)"
        );
        let chat: Vec<_> = fetch(&m, in_group(&[9], "a"))
            .await
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(chat, [kept.id], "{round}: by #h");
        if round == "live" {
            for c in [&a, &m] {
                c.shutdown().await;
            }
            relay.stop().await;
            break;
        }
    }
    let relay = start(dir.path(), RelayOptions::default()).await;
    let m = client(&relay.url, &mallory, true).await;
    assert!(
        fetch(&m, by_id(deleted.id)).await.is_empty(),
        "after a restart: a 9005 of another group undeleted the event"
    );
    let chat: Vec<_> = fetch(&m, in_group(&[9], "a"))
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(chat, [kept.id], "after a restart: by #h");
    m.shutdown().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_group_id_does_not_serve_its_earlier_life() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, mallory) = (keys(23), keys(24));
    let a = client(&relay.url, &alice, true).await;
    let m = client(&relay.url, &mallory, true).await;

    let create = group_event(&alice, 9007, "s", "", &[&["private"]]);
    assert_eq!(send(&a, &create).await, Ok(()));
    let secret = group_event(&alice, 9, "s", "for members of the first life", &[]);
    assert_eq!(send(&a, &secret).await, Ok(()));
    assert_eq!(
        send(&a, &group_event(&alice, 9008, "s", "", &[])).await,
        Ok(())
    );

    // A stranger takes the id over and is the only member of its new life.
    let retake = group_event(&mallory, 9007, "s", "", &[&["private"]]);
    assert_eq!(send(&m, &retake).await, Ok(()));
    let mine = group_event(&mallory, 9, "s", "second life", &[]);
    assert_eq!(send(&m, &mine).await, Ok(()));

    let read: Vec<_> = fetch(&m, in_group(&[9], "s"))
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(read, [mine.id], "only the current life's messages, by #h");
    assert!(fetch(&m, by_id(secret.id)).await.is_empty(), "nor by id");
    assert!(
        fetch(&m, by_id(create.id)).await.is_empty(),
        "the first life's creation is history too"
    );
    for c in [a, m] {
        c.shutdown().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_groups_member_lists_are_for_its_members() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, bob, dave) = (keys(25), keys(26), keys(27));
    let a = client(&relay.url, &alice, true).await;
    let create = group_event(&alice, 9007, "p", "", &[&["private"], &["name", "P"]]);
    assert_eq!(send(&a, &create).await, Ok(()));
    let add = group_event(&alice, 9000, "p", "", &[&["p", &bob.public_key().to_hex()]]);
    assert_eq!(send(&a, &add).await, Ok(()));
    let pin = group_event(&alice, 9010, "p", "", &[&["e", &create.id.to_hex()]]);
    let _ = send(&a, &pin).await;

    let stranger = client(&relay.url, &dave, true).await;
    let anonymous = client(&relay.url, &keys(28), false).await;
    for (who, c) in [
        ("an authenticated stranger", &stranger),
        ("anyone", &anonymous),
    ] {
        for kind in [39_001, 39_002, 39_005] {
            let served = fetch(c, state(kind, "p")).await;
            assert!(
                served.is_empty(),
                "{who} read the private group's {kind}: {served:?}"
            );
        }
        let metadata = fetch(c, state(39_000, "p")).await;
        assert_eq!(
            metadata.len(),
            1,
            "{who}: a private group's 39000 is public"
        );
        assert_eq!(tag(&metadata[0], "member_count"), None);
    }
    let b = client(&relay.url, &bob, true).await;
    let members = fetch(&b, state(39_002, "p")).await;
    assert_eq!(members.len(), 1, "a member reads the member list");
    let mut listed = p_tags(&members[0]);
    listed.sort();
    let mut expected = vec![alice.public_key().to_hex(), bob.public_key().to_hex()];
    expected.sort();
    assert_eq!(listed, expected);
    for c in [a, b, stranger, anonymous] {
        c.shutdown().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_group_is_answered_like_a_group_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let alice = keys(29);
    let a = client(&relay.url, &alice, true).await;
    let create = group_event(&alice, 9007, "h", "", &[&["hidden"], &["private"]]);
    assert_eq!(send(&a, &create).await, Ok(()));
    let post = group_event(&alice, 9, "h", "inside", &[]);
    assert_eq!(send(&a, &post).await, Ok(()));

    // An outsider without AUTH: the hidden group and a group that does not exist get
    // the same answer (nothing, ended by EOSE), not an invitation to authenticate.
    let mut raw = Raw::connect(&relay.url).await;
    let hidden = req(&mut raw, "hidden", r##"{"kinds":[9],"#h":["h"]}"##).await;
    let missing = req(&mut raw, "missing", r##"{"kinds":[9],"#h":["nowhere"]}"##).await;
    assert_eq!(
        hidden,
        (Vec::new(), None),
        "the hidden group answered differently"
    );
    assert_eq!(missing, (Vec::new(), None));
    let listing = req(&mut raw, "list", r#"{"kinds":[39000,39001,39002]}"#).await;
    assert_eq!(listing, (Vec::new(), None), "hidden groups are not listed");

    // A member who authenticates reads it.
    let found = fetch(&a, in_group(&[9], "h")).await;
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), [post.id]);
    assert_eq!(fetch(&a, state(39_000, "h")).await.len(), 1);
    a.shutdown().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_hidden_by_another_writer_disappears_for_outsiders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, dave) = (keys(30), keys(31));
    let a = client(&relay.url, &alice, true).await;
    let create = group_event(&alice, 9007, "x", "", &[&["name", "X"]]);
    assert_eq!(send(&a, &create).await, Ok(()));
    let stranger = client(&relay.url, &dave, true).await;
    assert_eq!(fetch(&stranger, state(39_000, "x")).await.len(), 1);

    // An import writes the log beside the relay: the group is now hidden.
    let store = Store::open(dir.path(), StoreOptions::default()).expect("the same database");
    let hide = group_event(&alice, 9002, "x", "", &[&["name", "X"], &["hidden"]]);
    let hide = nostr::prelude::Event::from_json(sdk::JsonUtil::as_json(&hide)).expect("same event");
    store.append(&hide).expect("append the 9002");

    assert!(
        fetch(
            &stranger,
            sdk::Filter::new().kind(sdk::Kind::Custom(39_000))
        )
        .await
        .is_empty(),
        "the old 39000 of a group hidden since is still served to outsiders"
    );
    let own = fetch(&a, state(39_000, "x")).await;
    assert_eq!(own.len(), 1);
    assert!(own[0].tags.iter().any(|t| t.kind().to_string() == "hidden"));
    for c in [a, stranger] {
        c.shutdown().await;
    }
    relay.stop().await;
}

/// One committed event: its kind, its author and its first `p`.
type Seen = (u16, [u8; 32], Option<String>);

/// Every commit of the store, event by event.
#[derive(Default)]
struct Commits(Mutex<Vec<Vec<Seen>>>);

impl CommitObserver for Commits {
    fn on_commit(&self, batch: &[Committed<'_>]) {
        self.0.lock().push(
            batch
                .iter()
                .map(|c| {
                    (
                        c.event.kind(),
                        *c.event.pubkey(),
                        c.event.first_tag_value("p").map(str::to_owned),
                    )
                })
                .collect(),
        );
    }
}

fn to_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_is_committed_with_its_answer_and_stores_no_member_list() {
    const JOINERS: u8 = 24;
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let store = Store::open(dir.path(), StoreOptions::default()).expect("the same database");
    let commits = Arc::new(Commits::default());
    store.add_observer(commits.clone());

    let alice = keys(32);
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "open", "", &[])).await,
        Ok(())
    );
    for i in 0..JOINERS {
        let user = keys(100 + i);
        let c = client(&relay.url, &user, true).await;
        assert_eq!(
            send(&c, &group_event(&user, 9021, "open", "", &[])).await,
            Ok(())
        );
        c.shutdown().await;
    }

    // The log holds the creation and two events per join: no state events at all.
    assert_eq!(store.head(), 1 + 2 * u64::from(JOINERS));
    let mut stored_state = 0;
    store
        .scan(1, |_, e| {
            if (39_000..=39_009).contains(&e.kind()) {
                stored_state += 1;
            }
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan the log");
    assert_eq!(stored_state, 0, "the relay stored state events");

    // Each 9021 shares its commit with the relay's 9000 for its author.
    let relay_key = relay_keys().public_key().to_bytes();
    let commits = commits.0.lock().clone();
    let mut joins = 0;
    for commit in &commits {
        for (i, (kind, author, _)) in commit.iter().enumerate() {
            if *kind != 9021 {
                continue;
            }
            joins += 1;
            let answer = commit.get(i + 1);
            assert!(
                answer.is_some_and(|(k, by, p)| *k == 9000
                    && *by == relay_key
                    && p.as_deref() == Some(to_hex(author).as_str())),
                "a 9021 was committed without its 9000: {commit:?}"
            );
        }
    }
    assert_eq!(joins, usize::from(JOINERS));

    // And the member list served is complete.
    let members = fetch(&a, state(39_002, "open")).await;
    assert_eq!(members.len(), 1);
    assert_eq!(p_tags(&members[0]).len(), 1 + usize::from(JOINERS));
    a.shutdown().await;
    drop(store);
    relay.stop().await;
}
