//! The store handle itself: what it says about itself, commit observers added and
//! removed by id, lookups of groups it does not know, and a close that waits for the
//! writer to finish what was submitted, and a read-only open by a user who cannot write
//! the lock file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{chat, in_child, is_root, run_child, run_child_as_nobody};
use highwater_store::{CommitObserver, Committed, Store, StoreOptions};
use nostr::prelude::{Event, Keys};

/// Counts the events it was shown, and the calls.
#[derive(Default)]
struct Count(AtomicUsize, AtomicUsize);

impl CommitObserver for Count {
    fn on_commit(&self, batch: &[Committed<'_>]) {
        self.0.fetch_add(batch.len(), Ordering::Relaxed);
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

impl Count {
    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

#[test]
fn the_handle_reports_its_path_options_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        map_size: 1 << 21,
        max_map_size: 1 << 31,
        trusted: true,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).unwrap();
    let path = dir.path().canonicalize().unwrap();
    assert_eq!(store.path(), path);
    assert_eq!(
        (store.options().map_size, store.options().max_map_size),
        (1 << 21, 1 << 31)
    );
    assert!(store.options().trusted);
    assert!(!store.options().read_only);
    assert!(!store.is_read_only());
    assert!(!store.is_lockless());
    assert_eq!(store.map_size(), 1 << 21);
    store.append(&chat(&Keys::generate(), "g", "one")).unwrap();
    assert_eq!(
        format!("{store:?}"),
        format!("Store {{ path: {path:?}, head: 1 }}")
    );
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    assert!(store.is_read_only());
    assert!(store.options().read_only);
    assert!(!store.is_lockless(), "root can write lock.mdb");
}

#[test]
fn unknown_groups_have_no_number_and_no_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    for (i, group) in ["a", "b", "a"].into_iter().enumerate() {
        store.append(&chat(&keys, group, &i.to_string())).unwrap();
    }
    assert_eq!(store.group_no("b"), Some(1));
    assert_eq!(store.group_no("c"), None);
    assert_eq!(store.group_head(0), 3);
    assert_eq!(store.group_head(1), 2);
    assert_eq!(store.group_head(2), 0);
    assert_eq!(store.group_by_no(2), None);
    assert_eq!(
        store.group_by_no(0).map(|g| (g.head, g.count)),
        Some((3, 2))
    );
    assert_eq!(store.group_no_head("a").unwrap(), Some((0, 3)));
    assert_eq!(store.group_no_head("c").unwrap(), None);
    assert_eq!(store.group("c"), None);
    assert_eq!(store.group_count(), 2);
    assert_eq!(store.head(), 3);
}

#[test]
fn observers_are_told_of_commits_until_removed_by_their_own_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
    let id_a = store.add_observer(a.clone());
    let id_b = store.add_observer(b.clone());
    assert_ne!(id_a, id_b);
    store.append(&chat(&keys, "g", "1")).unwrap();
    store
        .append_batch(&[chat(&keys, "g", "2"), chat(&keys, "h", "3")])
        .unwrap();
    assert_eq!((a.get(), b.get()), (3, 3));
    store.remove_observer(id_a);
    store.append(&chat(&keys, "g", "4")).unwrap();
    assert_eq!((a.get(), b.get()), (3, 4));
    store.remove_observer(id_b);
    store.append(&chat(&keys, "g", "5")).unwrap();
    assert_eq!((a.get(), b.get()), (3, 4));
}

/// Child step `head=N`: a read-only open sees exactly N events.
fn child_step(step: &str, dir: &Path) {
    let expected: u64 = step.strip_prefix("head=").unwrap().parse().unwrap();
    let store = Store::open(dir, StoreOptions::read_only()).unwrap();
    assert_eq!(store.head(), expected);
}

#[test]
fn closing_waits_for_the_writer_to_commit_what_was_submitted() {
    const TEST: &str = "handle::closing_waits_for_the_writer_to_commit_what_was_submitted";
    in_child(child_step);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    let events: Vec<Event> = (0..3_000)
        .map(|i| chat(&keys, &format!("g{}", i % 50), &format!("event {i}")))
        .collect();
    let ready = store
        .prepare_all(&events)
        .into_iter()
        .map(|p| match p.unwrap() {
            highwater_store::Prepared::Ready(e) => e,
            highwater_store::Prepared::Duplicate(seq) => panic!("duplicate of {seq}"),
        })
        .collect();
    let ticket = store.submit(ready).unwrap();
    // The last handle goes before the batch was waited for: closing drains the writer.
    drop(store);
    run_child(TEST, "head=3000", dir.path());
    assert_eq!(ticket.wait().unwrap().len(), 3_000);
}

/// Child step `lockless head=N`: a read-only open that cannot write `lock.mdb` falls
/// back to reading without it, says so, and sees exactly N events.
fn lockless_step(step: &str, dir: &Path) {
    let expected: u64 = step
        .strip_prefix("lockless head=")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::open(dir, StoreOptions::read_only()).unwrap();
    assert!(store.is_lockless(), "lock.mdb is not writable here");
    // Without LMDB's lock file its transaction id is not read either.
    assert!(!store.reads_txn_from_lock_file());
    assert_eq!(store.head(), expected);
    assert_eq!(store.group_count(), 2);
}

#[test]
fn a_read_only_open_without_a_writable_lock_file_reads_lockless() {
    const TEST: &str = "handle::a_read_only_open_without_a_writable_lock_file_reads_lockless";
    in_child(lockless_step);
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(!store.is_lockless());
        for i in 0..5 {
            store
                .append(&chat(&keys, ["a", "b"][i % 2], &format!("{i}")))
                .unwrap();
        }
    }
    // A user who can write the lock file reads with it.
    let store = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    assert!(!store.is_lockless());
    assert!(store.reads_txn_from_lock_file());
    drop(store);
    // Everything readable, nothing writable by others: root's database seen by nobody.
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(dir.path(), 0o755);
    mode(&dir.path().join("data.mdb"), 0o644);
    mode(&dir.path().join("lock.mdb"), 0o444);
    if is_root() {
        run_child_as_nobody(TEST, "lockless head=5", dir.path());
    } else {
        lockless_step("lockless head=5", dir.path());
    }
}

#[test]
fn observers_are_not_called_for_a_commit_that_added_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    let event = chat(&keys, "g", "once");
    // Prepared while new, then appended another way before it is submitted: the
    // writer finds it already present, and its commit adds nothing.
    let highwater_store::Prepared::Ready(prepared) = store.prepare(&event).unwrap() else {
        panic!("a new event")
    };
    store.append(&event).unwrap();
    let count = Arc::new(Count::default());
    store.add_observer(count.clone());
    let outcomes = store.submit(vec![prepared]).unwrap().wait().unwrap();
    assert_eq!(outcomes, vec![highwater_store::AppendOutcome::Duplicate(1)]);
    assert_eq!(count.1.load(Ordering::Relaxed), 0, "called for nothing");
    store.append(&chat(&keys, "g", "next")).unwrap();
    assert_eq!((count.get(), count.1.load(Ordering::Relaxed)), (1, 1));
}

#[test]
fn handles_of_one_path_are_the_same_store() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Store::open(a.path(), StoreOptions::default()).unwrap();
    let again = Store::open(a.path(), StoreOptions::default()).unwrap();
    let other = Store::open(b.path(), StoreOptions::default()).unwrap();
    assert!(first.same_store(&again) && again.same_store(&first));
    assert!(first.same_store(&first.clone()));
    assert!(!first.same_store(&other) && !other.same_store(&again));
}
