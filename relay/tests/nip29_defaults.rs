//! The relay's defaults are NIP-29's text: anyone reads a group that is not private,
//! joins are honoured unless the group is closed, timeline references must name stored
//! events, late publication is refused by the relay (and only by the relay), and the
//! NIP-11 document says whether reading needs AUTH and whether writing has conditions.

mod support;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config, Policy};
use highwater_relay::{Relay, RelayOptions};
use highwater_store::{Store, StoreOptions};
use nostr_sdk::prelude as sdk;

use support::{client, fetch, group_event, in_group, relay_keys, send, start};

fn keys(secret_byte: u8) -> sdk::Keys {
    let secret = sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key");
    sdk::Keys::new(secret)
}

/// A group event dated `secs_ago` seconds before now.
fn dated(keys: &sdk::Keys, kind: u16, group: &str, secs_ago: u64) -> sdk::Event {
    let at = sdk::Timestamp::now().as_secs() - secs_ago;
    sdk::EventBuilder::new(sdk::Kind::Custom(kind), "from the past")
        .tags([sdk::Tag::parse(["h", group]).expect("h tag")])
        .custom_created_at(sdk::Timestamp::from_secs(at))
        .sign_with_keys(keys)
        .expect("sign")
}

/// The NIP-11 `limitation` of a relay with `options`.
fn limitation(options: RelayOptions) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = relay_keys();
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open the store");
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(keys.public_key()))
        .expect("register the projections");
    let engine = builder.build().expect("start the engine");
    let relay = Relay::new(engine, groups, keys, options).expect("a relay");
    relay.information()["limitation"].clone()
}

#[test]
fn nip11_says_whether_reading_needs_auth_and_writing_has_conditions() {
    let nip29 = limitation(RelayOptions::default());
    assert_eq!(nip29["auth_required"], false, "anyone reads public groups");
    assert_eq!(
        nip29["restricted_writes"], true,
        "only group events are accepted"
    );
    let members_only = limitation(RelayOptions {
        policy: Policy {
            open_reads: false,
            ..Policy::default()
        },
        ..RelayOptions::default()
    });
    assert_eq!(members_only["auth_required"], true);
    let anything = limitation(RelayOptions {
        allow_ungrouped: true,
        ..RelayOptions::default()
    });
    assert_eq!(anything["restricted_writes"], false);
    let members_post = limitation(RelayOptions {
        allow_ungrouped: true,
        policy: Policy {
            require_membership: true,
            ..Policy::default()
        },
        ..RelayOptions::default()
    });
    assert_eq!(members_post["restricted_writes"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_group_is_read_without_authentication_and_joined_when_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, bob) = (keys(41), keys(42));
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "town", "", &[])).await,
        Ok(())
    );
    let post = group_event(&alice, 9, "town", "hello", &[]);
    assert_eq!(send(&a, &post).await, Ok(()));
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "club", "", &[&["private"]])).await,
        Ok(())
    );
    // Bob never authenticates: he reads the public group, not the private one.
    let b = client(&relay.url, &bob, false).await;
    let read = fetch(&b, in_group(&[9], "town")).await;
    assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), [post.id]);
    // A private group that is not closed honours his join (the relay adds him).
    assert_eq!(
        send(&b, &group_event(&bob, 9021, "club", "", &[])).await,
        Ok(())
    );
    for c in [a, b] {
        c.shutdown().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_publication_and_unknown_timeline_references_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let alice = keys(43);
    let a = client(&relay.url, &alice, true).await;
    let create = group_event(&alice, 9007, "town", "", &[]);
    assert_eq!(send(&a, &create).await, Ok(()));
    let three_days = 3 * 24 * 3_600;
    let refused = send(&a, &dated(&alice, 9, "town", three_days))
        .await
        .expect_err("dated three days ago");
    assert!(
        refused.starts_with("invalid: late publication"),
        "{refused}"
    );
    // Recent enough: accepted.
    assert_eq!(send(&a, &dated(&alice, 9, "town", 60)).await, Ok(()));
    // Timeline references: a stored event's first 8 hex digits, or nothing stored.
    let known = create.id.to_hex()[..8].to_owned();
    let with_ref = group_event(&alice, 9, "town", "ref", &[&["previous", &known]]);
    assert_eq!(send(&a, &with_ref).await, Ok(()));
    let unknown = if known == "00000000" {
        "ffffffff"
    } else {
        "00000000"
    };
    let refused = send(
        &a,
        &group_event(&alice, 9, "town", "bad", &[&["previous", unknown]]),
    )
    .await
    .expect_err("an unknown reference");
    assert!(
        refused.starts_with("invalid: previous reference"),
        "{refused}"
    );
    a.shutdown().await;
    relay.stop().await;

    // A relay open to a group moved from elsewhere accepts any date.
    let relay = start(
        dir.path(),
        RelayOptions {
            late_publication_secs: None,
            ..RelayOptions::default()
        },
    )
    .await;
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &dated(&alice, 9, "town", three_days)).await,
        Ok(())
    );
    a.shutdown().await;
    relay.stop().await;
}
