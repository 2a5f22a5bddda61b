//! Opening a store: options of an already-open path, read-only opens that write
//! nothing, a missing or truncated database, settings set once, and ordered pipelines
//! that never leave a hole after a failed batch.

use std::path::Path;

use highwater_store::{AppendOutcome, Prepared, PreparedEvent, Store, StoreError, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

fn chat(keys: &Keys, group: &str, content: &str) -> Event {
    EventBuilder::new(Kind::from(9u16), content)
        .tags(vec![Tag::parse(["h", group]).unwrap()])
        .finalize(keys)
        .unwrap()
}

fn filled(dir: &Path, events: usize) -> Vec<Event> {
    let keys = Keys::generate();
    let batch: Vec<Event> = (0..events)
        .map(|i| {
            chat(
                &keys,
                &format!("g{}", i % 7),
                &format!("message {i} {}", "x".repeat(200)),
            )
        })
        .collect();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    for outcome in store.append_batch(&batch).unwrap() {
        let appended = matches!(outcome, Ok(AppendOutcome::Appended(_)));
        assert!(appended, "{outcome:?}");
    }
    batch
}

fn ready(store: &Store, events: &[Event]) -> Vec<PreparedEvent> {
    store
        .prepare_all(events)
        .into_iter()
        .map(|p| match p.unwrap() {
            Prepared::Ready(e) => e,
            Prepared::Duplicate(seq) => panic!("unexpected duplicate of {seq}"),
        })
        .collect()
}

#[test]
fn opening_an_open_path_with_other_options_names_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let trusted = StoreOptions {
        trusted: true,
        ..StoreOptions::default()
    };
    match Store::open(dir.path(), trusted) {
        Err(StoreError::OptionsDiffer { option, .. }) => assert_eq!(option, "trusted"),
        other => panic!("expected OptionsDiffer, got {other:?}"),
    }
    match Store::open(dir.path(), StoreOptions::read_only()) {
        Err(
            e @ StoreError::OptionsDiffer {
                option: "read_only",
                ..
            },
        ) => {
            assert!(e.to_string().contains("`read_only`"), "{e}");
        }
        other => panic!("expected OptionsDiffer, got {other:?}"),
    }
    // The same options share the handle.
    let again = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    store.append(&chat(&keys, "g", "one")).unwrap();
    assert_eq!(again.head(), 1);
}

#[test]
fn a_read_only_open_reads_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = filled(dir.path(), 300);
    let before = std::fs::read(dir.path().join("data.mdb")).unwrap();

    let store = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    assert!(store.is_read_only());
    assert!(!store.is_lockless(), "root can write lock.mdb");
    assert_eq!(store.head(), 300);
    assert_eq!(store.groups().len(), 7);
    assert_eq!(store.get(17).unwrap().as_ref(), Some(&events[16]));
    let keys = Keys::generate();
    assert!(matches!(
        store.append(&chat(&keys, "g0", "refused")),
        Err(StoreError::ReadOnly)
    ));
    assert!(matches!(
        store.set_setting("x", b"y"),
        Err(StoreError::ReadOnly)
    ));
    assert!(matches!(
        store.delete_checkpoints(None),
        Err(StoreError::ReadOnly)
    ));
    drop(store);
    let after = std::fs::read(dir.path().join("data.mdb")).unwrap();
    assert!(before == after, "a read-only open changed data.mdb");
}

#[test]
fn a_read_only_open_of_no_database_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here");
    match Store::open(&path, StoreOptions::read_only()) {
        Err(e @ StoreError::Missing { .. }) => {
            assert!(e.to_string().contains("no highwater database"), "{e}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(!path.exists(), "a read-only open created the directory");
}

#[test]
fn a_truncated_data_file_is_refused_at_open_instead_of_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    filled(&original, 2_000);
    let copy = dir.path().join("partial-copy");
    std::fs::create_dir(&copy).unwrap();
    let data = std::fs::read(original.join("data.mdb")).unwrap();
    // A copy cut off at half of the file, as an interrupted `cp` leaves it.
    std::fs::write(copy.join("data.mdb"), &data[..data.len() / 2]).unwrap();
    for options in [StoreOptions::read_only(), StoreOptions::default()] {
        match Store::open(&copy, options) {
            Err(e @ StoreError::Truncated { .. }) => {
                assert!(e.to_string().contains("truncated"), "{e}");
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
    // The complete database still opens.
    assert_eq!(
        Store::open(&original, StoreOptions::read_only())
            .unwrap()
            .head(),
        2_000
    );
}

#[test]
fn a_setting_is_set_once_and_a_different_value_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.set_setting_once("relay", b"aa").unwrap(), None);
    assert_eq!(store.set_setting_once("relay", b"aa").unwrap(), None);
    assert_eq!(
        store.set_setting_once("relay", b"bb").unwrap(),
        Some(b"aa".to_vec())
    );
    assert_eq!(store.setting("relay").unwrap(), Some(b"aa".to_vec()));
}

#[test]
fn a_failed_batch_cancels_the_same_pipelines_later_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            map_size: 1 << 20,
            max_map_size: 1 << 20,
            trusted: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let keys = Keys::generate();
    let small = |n: usize| -> Vec<Event> {
        (0..n)
            .map(|i| chat(&keys, "g", &format!("small {i}")))
            .collect()
    };
    store.append_batch(&small(3)).unwrap();
    let head = store.head();
    // Batch k does not fit the map; k+1 would.
    let big: Vec<Event> = (0..300)
        .map(|i| chat(&keys, "g", &format!("{i} {}", "z".repeat(8 * 1024))))
        .collect();
    let pipeline = store.pipeline();
    let k = pipeline.submit(ready(&store, &big)).unwrap();
    let later: Vec<Event> = (0..5)
        .map(|i| chat(&keys, "g", &format!("later {i}")))
        .collect();
    let k1 = pipeline.submit(ready(&store, &later)).unwrap();
    assert!(matches!(k.wait(), Err(StoreError::MapFull { .. })));
    // Whether it shared k's transaction or came after it, k+1 is not in the log.
    assert!(k1.wait().is_err());
    assert_eq!(store.head(), head);
    // Anything this pipeline submits from now on is cancelled, not appended after a hole.
    let k2 = pipeline.submit(ready(&store, &later)).unwrap();
    assert!(matches!(k2.wait(), Err(StoreError::Cancelled)));
    assert_eq!(store.head(), head);
    // Other submitters, and a new pipeline, are not affected.
    let fresh = store.pipeline();
    let outcomes = fresh.submit(ready(&store, &later)).unwrap().wait().unwrap();
    assert_eq!(outcomes.len(), 5);
    assert_eq!(store.head(), head + 5);
}
