//! Relay membership (NIP-43) and what a space stores outside groups: join requests with
//! and without an invite, the relay's 8000 and 13534, invites for keys that may invite,
//! leave requests, members-only creation, the ungrouped kinds kept for members
//! (10009), refusals that tell "join first" from "never", NIP-70 protected events,
//! and one version per replaceable or addressable event in an answer.

mod support;

use highwater_relay::{RelayMembership, RelayOptions};
use nostr_sdk::prelude as sdk;

use support::transcript::Raw;
use support::{client, fetch, group_event, relay_pubkey, send, start};

fn keys(secret_byte: u8) -> sdk::Keys {
    let secret = sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key");
    sdk::Keys::new(secret)
}

fn event(keys: &sdk::Keys, kind: u16, tags: &[&[&str]]) -> sdk::Event {
    sdk::EventBuilder::new(sdk::Kind::Custom(kind), "")
        .tags(
            tags.iter()
                .map(|t| sdk::Tag::parse(t.iter().copied()).expect("tag")),
        )
        .sign_with_keys(keys)
        .expect("sign")
}

fn join(keys: &sdk::Keys, claim: &str) -> sdk::Event {
    event(keys, 28_934, &[&["-"], &["claim", claim]])
}

fn kinds(kinds: &[u16]) -> sdk::Filter {
    sdk::Filter::new().kinds(kinds.iter().map(|&k| sdk::Kind::Custom(k)))
}

/// The `member` tags of the newest 13534.
async fn member_list(c: &sdk::Client) -> Vec<String> {
    let lists = fetch(c, kinds(&[13_534])).await;
    assert_eq!(lists.len(), 1, "one member list: {lists:?}");
    assert_eq!(lists[0].pubkey, relay_pubkey());
    lists[0]
        .tags
        .iter()
        .filter(|t| t.kind().to_string() == "member")
        .filter_map(|t| t.content().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_join_lists_the_member_and_stores_the_group_list() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let (alice, bob) = (keys(51), keys(52));
    let a = client(&relay.url, &alice, true).await;
    // Flotilla's join: an empty claim on a relay that admits anyone.
    assert_eq!(send(&a, &join(&alice, "")).await, Ok(()));
    assert_eq!(member_list(&a).await, [alice.public_key().to_hex()]);
    let added = fetch(&a, kinds(&[8000])).await;
    assert_eq!(added.len(), 1);
    assert_eq!(support::p_tags(&added[0]), [alice.public_key().to_hex()]);
    // The request itself is ephemeral: never stored.
    assert!(fetch(&a, kinds(&[28_934])).await.is_empty());
    // Joining again: accepted, and nothing changes.
    assert_eq!(send(&a, &join(&alice, "")).await, Ok(()));
    assert_eq!(fetch(&a, kinds(&[8000])).await.len(), 1);
    let b = client(&relay.url, &bob, true).await;
    assert_eq!(send(&b, &join(&bob, "")).await, Ok(()));
    let mut both = [alice.public_key().to_hex(), bob.public_key().to_hex()];
    both.sort();
    assert_eq!(member_list(&b).await, both, "one version of the 13534");
    // The group list (10009) is stored; a newer one replaces it in every answer.
    let first = event(&alice, 10_009, &[&["group", "town", "ws://x"]]);
    assert_eq!(send(&a, &first).await, Ok(()));
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let second = event(&alice, 10_009, &[&["group", "club", "ws://x"]]);
    assert_eq!(send(&a, &second).await, Ok(()));
    let mut raw = Raw::connect(&relay.url).await;
    raw.send(r#"["REQ","l",{"kinds":[10009]}]"#.to_owned())
        .await;
    let mut answer = raw.recv().await;
    while answer[0] == "AUTH" {
        answer = raw.recv().await;
    }
    assert_eq!(answer[0], "EVENT");
    assert_eq!(answer[2]["id"], second.id.to_hex());
    assert_eq!(raw.recv().await[0], "EOSE", "only the newest version");
    // A kind the space never stores outside a group: `blocked:`, in the words Flotilla
    // recognises.
    let note = event(&alice, 1, &[]);
    let refused = send(&a, &note).await.expect_err("a note outside a group");
    assert!(
        refused.starts_with("blocked: missing group (`h`) tag"),
        "{refused}"
    );
    // Leaving: an 8001 and a list without her.
    assert_eq!(send(&a, &event(&alice, 28_936, &[&["-"]])).await, Ok(()));
    assert_eq!(member_list(&a).await, [bob.public_key().to_hex()]);
    for c in [a, b] {
        c.shutdown().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_only_relay_admits_with_a_code_and_members_create_groups() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (admin, inviter, carol, dave) = (keys(61), keys(62), keys(63), keys(64));
    let mut options = RelayOptions {
        membership: RelayMembership {
            public_join: false,
            members_only: true,
            inviters: vec![to_nostr(&inviter)],
        },
        ..RelayOptions::default()
    };
    options.policy.relay_admins.insert(to_nostr(&admin));
    let relay = start(dir.path(), options).await;
    let c = client(&relay.url, &carol, true).await;
    // Not a member yet: `restricted:` and a pointer to joining, not `blocked:`.
    let list = event(&carol, 10_009, &[]);
    let refused = send(&c, &list).await.expect_err("not a member");
    assert!(
        refused.starts_with("restricted: not a member of this relay yet"),
        "{refused}"
    );
    let refused = send(&c, &group_event(&carol, 9007, "mine", "", &[]))
        .await
        .expect_err("creating a group needs membership");
    assert!(refused.starts_with("restricted: not a member"), "{refused}");
    // No code, a wrong code: refused, with "invite code" (Flotilla's wording check).
    let refused = send(&c, &join(&carol, "")).await.expect_err("no code");
    assert!(refused.contains("invite code"), "{refused}");
    let refused = send(&c, &join(&carol, "nonsense"))
        .await
        .expect_err("bad code");
    assert_eq!(refused, "restricted: that is an invalid invite code");
    // Carol cannot mint invites; the inviter gets one (ephemeral, relay-signed).
    assert!(fetch(&c, kinds(&[28_935])).await.is_empty());
    let i = client(&relay.url, &inviter, true).await;
    let minted = fetch(&i, kinds(&[28_935])).await;
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].pubkey, relay_pubkey());
    let claim = support::tag(&minted[0], "claim")
        .expect("a claim")
        .to_owned();
    // Someone else's copy of a relay kind is refused.
    let forged = event(
        &carol,
        8000,
        &[&["-"], &["p", &carol.public_key().to_hex()]],
    );
    assert!(send(&c, &forged).await.is_err());
    assert_eq!(send(&c, &join(&carol, &claim)).await, Ok(()));
    assert_eq!(member_list(&c).await, [carol.public_key().to_hex()]);
    // A member stores her group list and creates a group.
    assert_eq!(send(&c, &list).await, Ok(()));
    assert_eq!(
        send(&c, &group_event(&carol, 9007, "mine", "", &[])).await,
        Ok(())
    );
    // An admin needs no membership.
    let a = client(&relay.url, &admin, true).await;
    assert_eq!(
        send(&a, &group_event(&admin, 9007, "hall", "", &[])).await,
        Ok(())
    );
    // A protected event from a connection not authenticated as its author.
    let d = client(&relay.url, &dave, false).await;
    let refused = send(&d, &join(&dave, &claim))
        .await
        .expect_err("not authenticated");
    assert!(refused.starts_with("auth-required:"), "{refused}");
    for c in [c, i, a, d] {
        c.shutdown().await;
    }
    relay.stop().await;
}

fn to_nostr(keys: &sdk::Keys) -> nostr::prelude::PublicKey {
    nostr::prelude::PublicKey::from_slice(&keys.public_key().to_bytes()).expect("a key")
}
