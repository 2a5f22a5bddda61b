//! The checkpoint table and settings at their edges: which projection names are
//! accepted, headers of good and corrupted checkpoints, how many a delete removed,
//! settings written and overwritten, and the raw hooks the corruption tests use.

use crate::support::{chat, checkpoint_write};
use highwater_store::{Corruption, Store, StoreError, StoreOptions};
use nostr::prelude::Keys;

fn open_with_groups(dir: &std::path::Path, groups: &[&str]) -> Store {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    for group in groups {
        store.append(&chat(&keys, group, "hi")).unwrap();
    }
    store
}

#[test]
fn projection_names_of_1_to_64_allowed_bytes_are_accepted_and_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_groups(dir.path(), &["g"]);
    let longest = "n".repeat(64);
    for name in [
        "a",
        "Z9",
        "with_underscore",
        "with-dash",
        "_",
        "-",
        &longest,
    ] {
        store
            .write_checkpoints(vec![checkpoint_write(name, 0, 1, name.as_bytes())], None)
            .unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
        assert_eq!(store.checkpointed_groups(name).unwrap(), [0], "{name:?}");
        let state = store.read_checkpoint(name, 0).unwrap().unwrap().state;
        assert_eq!(state, name.as_bytes());
    }
    let too_long = "n".repeat(65);
    for name in ["", "a b", "a.b", "a/b", "é", "tab\t", &too_long] {
        let refused = |r: Result<_, StoreError>| matches!(r, Err(StoreError::InvalidArgument(_)));
        let write = store.write_checkpoints(vec![checkpoint_write(name, 0, 1, b"")], None);
        assert!(refused(write.map(|()| 0)), "{name:?} written");
        assert!(
            refused(store.checkpoint_headers(name).map(|h| h.len())),
            "{name:?}"
        );
        assert!(refused(store.delete_checkpoints(Some(name))), "{name:?}");
        let replace = store.write_checkpoints(vec![], Some(name));
        assert!(refused(replace.map(|()| 0)), "{name:?} replaced");
    }
    // Nothing was written for the refused names.
    assert_eq!(store.delete_checkpoints(None).unwrap(), 7);
}

#[test]
fn headers_list_every_checkpoint_with_its_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_groups(dir.path(), &["g0", "g1", "g2"]);
    assert_eq!(store.checkpoint_headers("p").unwrap(), []);
    let mut writes = vec![
        checkpoint_write("p", 0, 1, b"zero"),
        checkpoint_write("p", 2, 3, b"two"),
        checkpoint_write("q", 1, 2, b"other projection"),
    ];
    writes[1].checkpoint.version = 5;
    writes[1].checkpoint.events = 1;
    store.write_checkpoints(writes, None).unwrap();
    assert_eq!(
        store.checkpoint_headers("p").unwrap(),
        [(0, Ok((1, 1, 1))), (2, Ok((5, 3, 1)))]
    );
    assert_eq!(store.checkpoint_headers("q").unwrap(), [(1, Ok((1, 2, 2)))]);
    assert_eq!(store.checkpointed_groups("q").unwrap(), [1]);

    // A corrupted one is listed with its corruption; the others still read.
    let mut raw = store.raw_checkpoint("p", 2).unwrap().unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    store.put_raw_checkpoint("p", 2, raw).unwrap();
    let headers = store.checkpoint_headers("p").unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0], (0, Ok((1, 1, 1))));
    assert_eq!(headers[1].0, 2);
    let corrupted = matches!(&headers[1].1, Err(Corruption::Checkpoint { projection, .. }) if projection == "p");
    assert!(corrupted, "{:?}", headers[1]);
    let read = store.read_checkpoint("p", 2);
    let corrupted = matches!(
        read,
        Err(StoreError::Corrupted(Corruption::Checkpoint { .. }))
    );
    assert!(corrupted, "{read:?}");
}

#[test]
fn deletes_count_what_they_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_groups(dir.path(), &["g0", "g1", "g2"]);
    let writes = |projection: &str, groups: &[u32]| {
        groups
            .iter()
            .map(|&g| checkpoint_write(projection, g, 1, b"s"))
            .collect::<Vec<_>>()
    };
    store
        .write_checkpoints(writes("p", &[0, 1, 2]), None)
        .unwrap();
    store.write_checkpoints(writes("q", &[0, 2]), None).unwrap();
    assert_eq!(store.delete_checkpoints(Some("r")).unwrap(), 0);
    assert_eq!(store.delete_checkpoints(Some("q")).unwrap(), 2);
    assert_eq!(store.checkpointed_groups("q").unwrap(), Vec::<u32>::new());
    assert_eq!(store.checkpointed_groups("p").unwrap(), [0, 1, 2]);
    // Replacing keeps only what is written.
    store
        .write_checkpoints(writes("p", &[1]), Some("p"))
        .unwrap();
    assert_eq!(store.checkpointed_groups("p").unwrap(), [1]);
    store
        .write_checkpoints(writes("q", &[0, 1, 2]), None)
        .unwrap();
    assert_eq!(store.delete_checkpoints(None).unwrap(), 4);
    assert_eq!(store.delete_checkpoints(None).unwrap(), 0);
}

#[test]
fn settings_are_written_overwritten_and_kept_apart_from_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_groups(dir.path(), &[]);
    assert_eq!(store.setting("a").unwrap(), None);
    store.set_setting("a", b"one").unwrap();
    store.set_setting("b", b"").unwrap();
    assert_eq!(store.setting("a").unwrap(), Some(b"one".to_vec()));
    assert_eq!(store.setting("b").unwrap(), Some(Vec::new()));
    store.set_setting("a", b"two").unwrap();
    assert_eq!(store.setting("a").unwrap(), Some(b"two".to_vec()));
    assert_eq!(store.set_setting_once("a", b"two").unwrap(), None);
    assert_eq!(
        store.set_setting_once("a", b"3").unwrap(),
        Some(b"two".to_vec())
    );
    assert_eq!(store.set_setting_once("c", b"\x01").unwrap(), None);
    assert_eq!(store.setting("c").unwrap(), Some(vec![1]));
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.setting("a").unwrap(), Some(b"two".to_vec()));
}

#[test]
fn raw_hooks_read_and_write_the_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_groups(dir.path(), &["g"]);
    assert_eq!(store.raw_record(2).unwrap(), None);
    assert_eq!(store.raw_checkpoint("p", 0).unwrap(), None);
    let record = store.raw_record(1).unwrap().unwrap();
    assert!(record.len() > 100, "{} bytes", record.len());
    store.put_raw_record(2, record.clone()).unwrap();
    assert_eq!(store.raw_record(2).unwrap(), Some(record));

    store
        .write_checkpoints(vec![checkpoint_write("p", 0, 1, b"state")], None)
        .unwrap();
    let raw = store.raw_checkpoint("p", 0).unwrap().unwrap();
    assert!(raw.len() > 5, "{} bytes", raw.len());
    store.put_raw_checkpoint("p", 1, raw.clone()).unwrap();
    assert_eq!(store.raw_checkpoint("p", 1).unwrap(), Some(raw));
    assert_eq!(store.checkpointed_groups("p").unwrap(), [0, 1]);
}
