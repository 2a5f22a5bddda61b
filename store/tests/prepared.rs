//! An event prepared (validated and looked up) in one snapshot and committed later:
//! every copy stored in between — by this process, by another one, merged into the
//! index since, or an event looked up in another store altogether — is found by the
//! writer, so no event is ever stored twice.

use std::path::Path;

use highwater_store::{AppendOutcome, PreparedEvent, Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};

/// Set in the child: the directory to append [`events`] to.
const CHILD_DIR: &str = "HIGHWATER_PREPARED_CHILD_DIR";

/// The same events in every process: a fixed key and fixed times.
fn events(n: u64, offset: u64) -> Vec<Event> {
    let keys = Keys::parse(&"1".repeat(64)).unwrap();
    (0..n)
        .map(|i| {
            EventBuilder::new(Kind::from(9u16), format!("message {i}"))
                .tag(Tag::parse(["h", &format!("g{}", i % 3)]).unwrap())
                .custom_created_at(Timestamp::from(1_700_000_000 + offset + i))
                .finalize(&keys)
                .unwrap()
        })
        .collect()
}

/// The events ready to submit, each looked up in the store's snapshot of now.
fn prepared(store: &Store, events: &[Event]) -> Vec<PreparedEvent> {
    let (ready, _) = store.prepare_split(events);
    assert_eq!(ready.len(), events.len(), "none was stored yet");
    ready
}

/// A store holding 20 other events, and 50 new events prepared in it (looked up and
/// not found).
fn with_prepared(dir: &Path) -> (Store, Vec<Event>, Vec<PreparedEvent>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    append_all(&store, &events(20, 1_000));
    let batch = events(50, 0);
    let ready = prepared(&store, &batch);
    (store, batch, ready)
}

fn submit(store: &Store, ready: Vec<PreparedEvent>) -> Vec<AppendOutcome> {
    store.submit(ready).unwrap().wait().unwrap()
}

/// Appends `events` and returns their sequence numbers.
fn append_all(store: &Store, events: &[Event]) -> Vec<u64> {
    store
        .append_batch(events)
        .unwrap()
        .into_iter()
        .map(|r| match r.unwrap() {
            AppendOutcome::Appended(seq) => seq,
            AppendOutcome::Duplicate(seq) => panic!("expected a new event, got a copy at {seq}"),
        })
        .collect()
}

fn duplicates_of(seqs: &[u64]) -> Vec<AppendOutcome> {
    seqs.iter().map(|&s| AppendOutcome::Duplicate(s)).collect()
}

/// Every event of the log, once each.
fn assert_stored_once(store: &Store, expected: usize) {
    let mut ids = Vec::new();
    store
        .scan(1, |_, e| {
            ids.push(*e.id());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an event was stored twice");
    assert_eq!(ids.len(), expected);
}

#[test]
fn a_copy_this_process_stored_after_the_lookup_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, batch, ready) = with_prepared(dir.path());
    let seqs = append_all(&store, &batch);
    assert_eq!(submit(&store, ready), duplicates_of(&seqs));
    assert_stored_once(&store, 70);
}

#[test]
fn a_copy_merged_into_the_index_after_the_lookup_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, batch, ready) = with_prepared(dir.path());
    let seqs = append_all(&store, &batch);
    // The copies leave the tail for the index: the tail alone no longer holds them.
    assert_eq!(store.merge_index_tail().unwrap(), 70);
    assert_eq!(submit(&store, ready), duplicates_of(&seqs));
    assert_stored_once(&store, 70);
}

#[test]
fn a_copy_in_the_index_of_the_store_that_commits_is_found_whoever_looked() {
    // Looked up in one store (head 100), submitted to another whose index already
    // holds the events below that head.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let looked = Store::open(a.path(), StoreOptions::default()).unwrap();
    append_all(&looked, &events(100, 1_000));
    let commits = Store::open(b.path(), StoreOptions::default()).unwrap();
    let batch = events(5, 0);
    let seqs = append_all(&commits, &batch);
    assert_eq!(commits.merge_index_tail().unwrap(), 5);
    let ready = prepared(&looked, &batch);
    assert_eq!(submit(&commits, ready), duplicates_of(&seqs));
    assert_stored_once(&commits, 5);
}

#[test]
fn a_copy_another_process_stored_after_the_lookup_is_found() {
    const TEST: &str = "a_copy_another_process_stored_after_the_lookup_is_found";
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
        append_all(&store, &events(50, 0));
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, _, ready) = with_prepared(dir.path());
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the appending process failed: {status}");
    let seqs: Vec<u64> = (21..=70).collect();
    assert_eq!(submit(&store, ready), duplicates_of(&seqs));
    assert_stored_once(&store, 70);
}

#[test]
fn events_looked_up_and_not_stored_since_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, ready) = with_prepared(dir.path());
    // Other events in between, and a merge.
    append_all(&store, &events(30, 2_000));
    store.merge_index_tail().unwrap();
    let outcomes = submit(&store, ready);
    let expected: Vec<AppendOutcome> = (51..=100).map(AppendOutcome::Appended).collect();
    assert_eq!(outcomes, expected);
    assert_stored_once(&store, 100);
}
