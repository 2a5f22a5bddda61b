//! A relay beside another process that writes the same database (an import, say): the
//! group the other process created, then renamed, is listed by `{"kinds":[39000]}` with
//! its current name without restarting the relay — the relay renders state events from
//! the log as it is, and a relay-signed 39000 left in the log by an earlier run (stale
//! by now) is not what it serves. The other process is this test binary re-executed,
//! coordinated by its exit.

mod support;

use std::process::Command;

use highwater_relay::RelayOptions;
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
use nostr_sdk::prelude as sdk;

use support::{client, fetch, relay_keys, start, tag};

const CHILD_ENV: &str = "HIGHWATER_RELAY_OTHER_WRITER";
const TEST: &str = "a_group_created_by_another_process_is_listed_without_a_restart";

fn signed(keys: &Keys, kind: u16, tags: &[&[&str]]) -> nostr::prelude::Event {
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags.iter().map(|t| Tag::parse(t.iter().copied()).unwrap()))
        .finalize(keys)
        .unwrap()
}

/// The other process: appends a group's creation, a 39000 signed by the relay key (as
/// an earlier relay would have stored), then a rename.
fn write_elsewhere(dir: &str) {
    let store = Store::open(dir, StoreOptions::default()).expect("open from the other process");
    let alice =
        Keys::parse("0000000000000000000000000000000000000000000000000000000000000a11").unwrap();
    store
        .append(&signed(
            &alice,
            9007,
            &[&["h", "elsewhere"], &["name", "Elsewhere"]],
        ))
        .expect("append the 9007");
    store
        .append(&signed(
            &relay_keys(),
            39_000,
            &[&["d", "elsewhere"], &["name", "Elsewhere"]],
        ))
        .expect("append the 39000");
    store
        .append(&signed(
            &alice,
            9002,
            &[&["h", "elsewhere"], &["name", "Elsewhere, renamed"]],
        ))
        .expect("append the 9002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_by_another_process_is_listed_without_a_restart() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        write_elsewhere(&dir.to_string_lossy());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let reader = client(&relay.url, &sdk::Keys::generate(), true).await;
    let before = fetch(&reader, sdk::Filter::new().kind(sdk::Kind::Custom(39_000))).await;
    assert!(before.is_empty(), "{before:?}");

    let status = Command::new(std::env::current_exe().expect("the test binary"))
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .status()
        .expect("run the other process");
    assert!(status.success(), "the other process failed: {status}");

    let listed = fetch(&reader, sdk::Filter::new().kind(sdk::Kind::Custom(39_000))).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(tag(&listed[0], "d"), Some("elsewhere"));
    assert_eq!(tag(&listed[0], "name"), Some("Elsewhere, renamed"));
    assert_eq!(listed[0].pubkey, support::relay_pubkey());
    assert!(listed[0].verify().is_ok(), "signed by the relay key");
    relay.stop().await;
}

const LIVE_TEST: &str = "a_live_subscription_receives_another_process_s_commits_in_log_order";
const LIVE_CHILD_ENV: &str = "HIGHWATER_RELAY_OTHER_POSTER";

/// The other process: three posts to a group, then a rename.
fn post_elsewhere(dir: &str) {
    let store = Store::open(dir, StoreOptions::default()).expect("open from the other process");
    let alice =
        Keys::parse("0000000000000000000000000000000000000000000000000000000000000a11").unwrap();
    for i in 0..3 {
        let post = EventBuilder::new(Kind::from(9u16), format!("from elsewhere {i}"))
            .tags([Tag::parse(["h", "live"]).unwrap()])
            .finalize(&alice)
            .unwrap();
        store.append(&post).expect("append a post");
    }
    store
        .append(&signed(
            &alice,
            9002,
            &[&["h", "live"], &["name", "Renamed"]],
        ))
        .expect("append the 9002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_subscription_receives_another_process_s_commits_in_log_order() {
    if let Some(dir) = std::env::var_os(LIVE_CHILD_ENV) {
        post_elsewhere(&dir.to_string_lossy());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let alice =
        sdk::Keys::parse("0000000000000000000000000000000000000000000000000000000000000a11")
            .expect("alice");
    let a = client(&relay.url, &alice, true).await;
    let create = support::group_event(&alice, 9007, "live", "", &[&["name", "Live"]]);
    assert_eq!(support::send(&a, &create).await, Ok(()));

    let mut raw = support::transcript::Raw::connect(&relay.url).await;
    raw.send(
        r##"["REQ","posts",{"kinds":[9],"#h":["live"]},{"kinds":[39000],"#d":["live"]}]"##
            .to_owned(),
    )
    .await;
    // The stored answer: the current 39000, then EOSE.
    let mut names = Vec::new();
    loop {
        let message = raw.recv().await;
        match message[0].as_str() {
            Some("EVENT") => names.push(message[2]["tags"].to_string()),
            Some("EOSE") => break,
            _ => {}
        }
    }
    assert_eq!(names.len(), 1);

    let status = Command::new(std::env::current_exe().expect("the test binary"))
        .args([LIVE_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(LIVE_CHILD_ENV, dir.path())
        .status()
        .expect("run the other process");
    assert!(status.success(), "the other process failed: {status}");

    // Live: the three posts in log order, then the group's 39000 rendered anew.
    let mut contents = Vec::new();
    let renamed = loop {
        let message = raw.recv().await;
        if message[0] != "EVENT" {
            continue;
        }
        let event = &message[2];
        match event["kind"].as_u64() {
            Some(9) => contents.push(event["content"].as_str().unwrap_or_default().to_owned()),
            Some(39_000) => break event.clone(),
            other => panic!("unexpected live event of kind {other:?}"),
        }
    };
    assert_eq!(
        contents,
        ["from elsewhere 0", "from elsewhere 1", "from elsewhere 2"]
    );
    let tags = renamed["tags"].as_array().expect("tags");
    assert!(
        tags.iter().any(|t| t[0] == "name" && t[1] == "Renamed"),
        "{renamed}"
    );
    a.shutdown().await;
    relay.stop().await;
}
