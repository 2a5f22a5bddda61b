//! Read replicas over the Nostr protocol: a primary and two replicas on loopback, writes
//! through the primary (relay writes and a second process appending to the primary's
//! database), one replica stopped and restarted mid-stream, the primary restarted. At
//! the end every replica's log holds the primary's events in the primary's order, every
//! group's state renders the same, the engine's verification passes everywhere, the
//! state events a replica serves are the primary's, and a write to a replica is refused
//! naming the primary. Also: a negentropy client not written here (nostr-sdk's
//! `Client::sync`) receives exactly the events it lacks, and no private group's.

mod support;

use std::path::Path;
use std::process::Command;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_relay::{RelayOptions, ReplicaOf};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, PublicKey, Tag, Timestamp};
use nostr_sdk::prelude as sdk;
use nostr_sdk::prelude::NostrDatabase;

use support::{WAIT, client, group_event, relay_keys, send};

const CHILD_ENV: &str = "HIGHWATER_REPLICA_WRITER";
const TEST: &str = "replicas_follow_the_primary_through_restarts_and_a_second_writer";

/// Serves `dir` on `addr` (a free port when `127.0.0.1:0`): the primary when
/// `replica_of` is `None`, signing with the test relay key; else a replica of it,
/// authenticating with `keys`.
async fn serve(dir: &Path, addr: &str, keys: Keys, options: RelayOptions) -> support::Running {
    support::serve(support::relay_over(dir, keys, options), addr).await
}

fn primary_options(replicas: &[PublicKey]) -> RelayOptions {
    RelayOptions {
        replicas: replicas.to_vec(),
        late_publication_secs: None,
        ..RelayOptions::default()
    }
}

fn replica_options(url: &str) -> RelayOptions {
    RelayOptions {
        replica_of: Some(ReplicaOf {
            url: url.to_owned(),
            primary: relay_keys().public_key(),
        }),
        ..RelayOptions::default()
    }
}

fn sdk_keys(keys: &Keys) -> sdk::Keys {
    sdk::Keys::parse(&keys.secret_key().to_secret_hex()).expect("same key")
}

fn user(i: u32) -> Keys {
    Keys::parse(&format!("{:064x}", 0x2000 + i)).expect("a valid key")
}

/// The second process: appends the events in a JSON file to the database, without the
/// write policy (an import of another relay's dump).
fn write_elsewhere(spec: &str) {
    let (dir, file) = spec.split_once('\n').expect("dir and file");
    let events: Vec<nostr::prelude::Event> =
        serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("events");
    let store = Store::open(dir, StoreOptions::default()).expect("open the store");
    for result in store.append_batch(&events).expect("append") {
        result.expect("each event is appended");
    }
}

/// Waits (bounded) until the relay at `url` serves the event `id`.
async fn wait_for(url: &str, id: sdk::EventId) {
    let reader = client(url, &sdk::Keys::generate(), true).await;
    let found = tokio::time::timeout(WAIT * 3, async {
        loop {
            let events = reader
                .fetch_events(sdk::Filter::new().id(id), WAIT)
                .await
                .expect("fetch");
            if !events.is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "{url} never served {id}");
    reader.disconnect().await;
}

/// The state events a member reads from `url` for `group`: (kind, tags, content,
/// author), sorted.
async fn served_state(url: &str, member: &sdk::Keys, group: &str) -> Vec<String> {
    let reader = client(url, member, true).await;
    // Authenticate first: a private group's member lists are for members.
    let _ = reader
        .fetch_events(
            sdk::Filter::new().kinds([sdk::Kind::Custom(9)]).limit(1),
            WAIT,
        )
        .await;
    let events = reader
        .fetch_events(
            sdk::Filter::new()
                .kinds((39_000..=39_003).map(sdk::Kind::Custom))
                .custom_tag(sdk::SingleLetterTag::lowercase(sdk::Alphabet::D), group),
            WAIT,
        )
        .await
        .expect("fetch");
    reader.disconnect().await;
    let mut out: Vec<String> = events
        .into_iter()
        .map(|e| {
            format!(
                "{} {} {:?} {}",
                e.kind.as_u16(),
                e.pubkey,
                e.tags
                    .iter()
                    .map(|t| t.as_slice().to_vec())
                    .collect::<Vec<_>>(),
                e.content
            )
        })
        .collect();
    out.sort();
    out
}

/// The log in order (event ids), every group's rendered state, and the engine's
/// verification of every (projection, group).
fn examine(dir: &Path) -> (Vec<String>, Vec<String>) {
    let store = Store::open(dir, StoreOptions::read_only()).expect("open the store");
    let mut ids = Vec::new();
    store
        .scan(1, |_, e| {
            ids.push(hex_id(e.id()));
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    let mut builder = Engine::builder(store.clone(), EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(relay_keys().public_key()))
        .expect("register");
    let engine = builder.build().expect("engine");
    let mut state = Vec::new();
    for info in store.groups() {
        let name = info.name.to_string();
        for event in groups
            .render(&name, Timestamp::from_secs(0))
            .expect("render")
        {
            state.push(format!("{name} {}", event.as_json()));
        }
        for projection in engine.projections() {
            let problem = engine.verify_group(&projection, &name).expect("verify");
            assert_eq!(problem, None, "{projection} of {name} in {}", dir.display());
        }
    }
    (ids, state)
}

fn hex_id(id: &[u8; 32]) -> String {
    nostr::prelude::EventId::from_byte_array(*id).to_hex()
}

/// Sends `event` to the primary, which must accept it; returns its id.
async fn write(client: &sdk::Client, event: sdk::Event) -> sdk::EventId {
    send(client, &event).await.expect("the primary accepts");
    event.id
}

fn signed(keys: &Keys, kind: u16, tags: &[&[&str]], at: u64) -> nostr::prelude::Event {
    EventBuilder::new(Kind::from(kind), format!("{kind} at {at}"))
        .tags(
            tags.iter()
                .map(|t| Tag::parse(t.iter().copied()).expect("a tag")),
        )
        .custom_created_at(Timestamp::from_secs(at))
        .finalize(keys)
        .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario, step by step: writes, a stop, an import, restarts, checks"
)]
async fn replicas_follow_the_primary_through_restarts_and_a_second_writer() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        write_elsewhere(&spec);
        return;
    }
    let (dp, d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (k1, k2) = (Keys::generate(), Keys::generate());
    let replicas = [k1.public_key(), k2.public_key()];
    let mut primary = serve(
        dp.path(),
        "127.0.0.1:0",
        relay_keys(),
        primary_options(&replicas),
    )
    .await;
    let url = primary.url.clone();
    let addr = url.trim_start_matches("ws://").to_owned();
    let r1 = serve(d1.path(), "127.0.0.1:0", k1.clone(), replica_options(&url)).await;
    let mut r2 = serve(d2.path(), "127.0.0.1:0", k2.clone(), replica_options(&url)).await;

    let alice = sdk_keys(&user(1));
    let bob = sdk_keys(&user(2));
    let carol = sdk_keys(&user(3));
    let writer = client(&url, &alice, true).await;
    write(
        &writer,
        group_event(&alice, 9007, "open", "", &[&["name", "Open"]]),
    )
    .await;
    write(
        &writer,
        group_event(
            &alice,
            9007,
            "secret",
            "",
            &[&["name", "Secret"], &["private"], &["closed"]],
        ),
    )
    .await;
    let bob_hex = bob.public_key().to_hex();
    write(
        &writer,
        group_event(&alice, 9000, "open", "", &[&["p", &bob_hex, "moderator"]]),
    )
    .await;
    write(
        &writer,
        group_event(&alice, 9000, "secret", "", &[&["p", &bob_hex]]),
    )
    .await;
    let mut posts = Vec::new();
    for i in 0..30 {
        let event = group_event(
            &alice,
            9,
            if i % 3 == 0 { "secret" } else { "open" },
            &format!("post {i}"),
            &[],
        );
        posts.push(event.id);
        write(&writer, event).await;
    }
    // A join request: the primary answers it with a 9000 of its own, which replicates.
    let carol_client = client(&url, &carol, true).await;
    send(&carol_client, &group_event(&carol, 9021, "open", "", &[]))
        .await
        .expect("join");
    let mark = write(
        &writer,
        group_event(&alice, 9005, "open", "", &[&["e", &posts[1].to_hex()]]),
    )
    .await;
    wait_for(&r1.url, mark).await;
    wait_for(&r2.url, mark).await;

    // One replica stops mid-stream; writes go on, a second process appends to the
    // primary's database (events dated before the relay's, so log order is not date
    // order), and the primary restarts.
    r2.stop().await;
    for i in 0..20 {
        write(
            &writer,
            group_event(&bob, 9, "open", &format!("while away {i}"), &[]),
        )
        .await;
    }
    let base = Timestamp::now().as_secs() - 100_000;
    let dave = user(4);
    let imported = vec![
        signed(
            &dave,
            9007,
            &[&["h", "imported"], &["name", "Imported"]],
            base,
        ),
        signed(
            &dave,
            9000,
            &[&["h", "imported"], &["p", &user(5).public_key().to_hex()]],
            base + 1,
        ),
        signed(&dave, 9, &[&["h", "imported"]], base + 2),
        signed(
            &dave,
            9001,
            &[&["h", "imported"], &["p", &user(5).public_key().to_hex()]],
            base + 1,
        ),
    ];
    let file = dp.path().join("import.json");
    std::fs::write(&file, serde_json::to_string(&imported).expect("JSON")).expect("write");
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}\n{}", dp.path().display(), file.display()),
        )
        .status()
        .expect("run the other process");
    assert!(status.success(), "the other process failed");
    writer.disconnect().await;
    carol_client.disconnect().await;
    primary.stop().await;
    primary = serve(dp.path(), &addr, relay_keys(), primary_options(&replicas)).await;
    let writer = client(&url, &alice, true).await;
    for i in 0..10 {
        let event = group_event(&alice, 9, "secret", &format!("after restart {i}"), &[]);
        send(&writer, &event).await.expect("the primary accepts");
    }
    r2 = serve(d2.path(), "127.0.0.1:0", k2.clone(), replica_options(&url)).await;
    let mut last = None;
    for i in 0..10 {
        let event = group_event(
            &alice,
            9,
            "open",
            &format!("after replica restart {i}"),
            &[],
        );
        send(&writer, &event).await.expect("the primary accepts");
        last = Some(event.id);
    }
    let mark = last.expect("written");
    wait_for(&r1.url, mark).await;
    wait_for(&r2.url, mark).await;

    // A write to a replica is refused, naming the primary.
    let to_replica = client(&r1.url, &alice, true).await;
    let refused = send(
        &to_replica,
        &group_event(&alice, 9, "open", "to a replica", &[]),
    )
    .await
    .expect_err("a replica refuses writes");
    assert!(refused.contains(&url), "{refused}");
    to_replica.disconnect().await;

    // The state events a replica serves are the primary's (once it has the primary's
    // signature of that state; waited for, bounded).
    for group in ["open", "secret", "imported"] {
        let expected = served_state(&url, &alice, group).await;
        assert!(!expected.is_empty(), "the primary serves {group}");
        for replica in [&r1.url, &r2.url] {
            let mut got = Vec::new();
            for _ in 0..100 {
                got = served_state(replica, &alice, group).await;
                if got == expected {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(got, expected, "{group} on {replica}");
        }
    }
    writer.disconnect().await;
    r1.stop().await;
    r2.stop().await;
    primary.stop().await;

    let (log, state) = examine(dp.path());
    assert!(log.len() > 70, "the primary's log: {}", log.len());
    for dir in [d1.path(), d2.path()] {
        let (replica_log, replica_state) = examine(dir);
        assert_eq!(
            replica_log, log,
            "the replica's log is the primary's, in order"
        );
        assert_eq!(replica_state, state, "every group renders the same");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negentropy_client_receives_exactly_the_events_it_lacks() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = serve(
        dir.path(),
        "127.0.0.1:0",
        relay_keys(),
        primary_options(&[]),
    )
    .await;
    let alice = sdk_keys(&user(1));
    let writer = client(&relay.url, &alice, true).await;
    let mut written = Vec::new();
    send(&writer, &group_event(&alice, 9007, "open", "", &[]))
        .await
        .expect("create");
    send(
        &writer,
        &group_event(&alice, 9007, "secret", "", &[&["private"]]),
    )
    .await
    .expect("create");
    for i in 0..40 {
        let event = group_event(&alice, 9, "open", &format!("post {i}"), &[]);
        send(&writer, &event).await.expect("post");
        written.push(event);
        let hidden = group_event(&alice, 9, "secret", &format!("private {i}"), &[]);
        send(&writer, &hidden).await.expect("post");
    }
    writer.disconnect().await;

    // The client holds every third post already.
    let database = sdk::MemoryDatabase::with_opts(sdk::MemoryDatabaseOptions {
        events: true,
        max_events: None,
    });
    for event in written.iter().step_by(3) {
        database.save_event(event).await.expect("save");
    }
    let syncing = sdk::Client::builder()
        .signer(sdk::Keys::generate())
        .database(database)
        .build();
    syncing.add_relay(&relay.url).await.expect("add");
    syncing.connect().await;
    syncing.wait_for_connection(WAIT).await;
    let lacking: std::collections::HashSet<sdk::EventId> = written
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, e)| e.id)
        .collect();
    let output = syncing
        .sync(
            sdk::Filter::new().kinds([sdk::Kind::Custom(9)]),
            &sdk::SyncOptions::default(),
        )
        .await
        .expect("sync");
    assert_eq!(
        output.val.received, lacking,
        "exactly the missing posts, none of the private group's"
    );
    assert!(output.val.local.is_empty());
    syncing.disconnect().await;
    relay.stop().await;
}

/// The head of the log in `dir` (sharing the handle of a relay serving it).
fn head_of(dir: &Path) -> u64 {
    Store::open(dir, StoreOptions::default())
        .expect("open the store")
        .head()
}

/// Waits (bounded) until the log in `dir` holds more than `seq` events; returns its head.
async fn wait_past(dir: &Path, seq: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    loop {
        let head = head_of(dir);
        if head > seq {
            return head;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} stayed at {head}",
            dir.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_interrupted_while_catching_up_converges_in_the_primarys_order() {
    let (dp, dr) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    // A primary's log of many commits' worth (the replica commits up to 16,384 events
    // at once while catching up), written by another writer: log order is not date
    // order.
    let authors: Vec<Keys> = (10..20).map(user).collect();
    let base = Timestamp::now().as_secs() - 1_000_000;
    let mut events = Vec::new();
    for (g, author) in authors.iter().enumerate() {
        let group = format!("g{g}");
        events.push(signed(
            author,
            9007,
            &[&["h", &group], &["name", &group]],
            base,
        ));
    }
    for i in 0..40_000_u64 {
        let author = &authors[(i % 10) as usize];
        let group = format!("g{}", i % 10);
        // Dates go back and forth: every 7th event is dated before the others.
        let at = if i % 7 == 0 { base + 1 } else { base + 10 + i };
        events.push(
            EventBuilder::new(Kind::from(9), format!("post {i}"))
                .tag(Tag::parse(["h", group.as_str()]).expect("a tag"))
                .custom_created_at(Timestamp::from_secs(at))
                .finalize(author)
                .expect("sign"),
        );
    }
    {
        let store = Store::open(dp.path(), StoreOptions::default()).expect("open");
        for result in store.append_batch(&events).expect("append") {
            result.expect("each event is appended");
        }
    }
    let total = events.len() as u64;

    let k = Keys::generate();
    let mut primary = serve(
        dp.path(),
        "127.0.0.1:0",
        relay_keys(),
        primary_options(&[k.public_key()]),
    )
    .await;
    let url = primary.url.clone();
    let addr = url.trim_start_matches("ws://").to_owned();
    let replica = serve(dr.path(), "127.0.0.1:0", k.clone(), replica_options(&url)).await;

    // The primary restarts while the replica reads its log: the replica reconnects and
    // reads on after its last event.
    let first = wait_past(dr.path(), 0).await;
    primary.stop().await;
    primary = serve(
        dp.path(),
        &addr,
        relay_keys(),
        primary_options(&[k.public_key()]),
    )
    .await;
    // The replica stops (what it received and handed to its pipeline is committed
    // first) and restarts, a little further on.
    let second = wait_past(dr.path(), head_of(dr.path())).await;
    replica.stop().await;
    let stopped_at = head_of(dr.path());
    let replica = serve(dr.path(), "127.0.0.1:0", k.clone(), replica_options(&url)).await;
    // Live writes after it caught up arrive in order too.
    let alice = sdk_keys(&user(1));
    let writer = client(&url, &alice, true).await;
    write(
        &writer,
        group_event(&alice, 9007, "live", "", &[&["name", "Live"]]),
    )
    .await;
    let mut last = None;
    for i in 0..20 {
        last = Some(
            write(
                &writer,
                group_event(&alice, 9, "live", &format!("live {i}"), &[]),
            )
            .await,
        );
    }
    wait_for(&replica.url, last.expect("written")).await;
    eprintln!(
        "replica heads: {first} when the primary restarted, {second} and {stopped_at} when it \
         stopped, of {total} events before the live writes"
    );
    writer.disconnect().await;
    replica.stop().await;
    primary.stop().await;

    let (log, state) = examine(dp.path());
    assert_eq!(log.len() as u64, total + 21, "the primary's log");
    let (replica_log, replica_state) = examine(dr.path());
    assert_eq!(
        replica_log.len(),
        log.len(),
        "the replica holds as many events as the primary"
    );
    assert!(
        replica_log == log,
        "the replica's log is the primary's, in order, without duplicates or holes"
    );
    assert_eq!(replica_state, state, "every group renders the same");
}
