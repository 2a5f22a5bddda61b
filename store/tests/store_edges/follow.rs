//! What a store open in this process learns of another process's commits (a real child
//! process writes): new groups and heads, a commit that adds no event, a map the other
//! process grew, and reader slots a dead process left behind.

use std::path::Path;

use crate::support::{
    READY, chat, checkpoint_write, exit_child, fill_readers, finish_child, in_child, run_child,
    spawn_child,
};
use highwater_store::{GroupInfo, Store, StoreError, StoreOptions};
use nostr::prelude::Keys;

/// What the child does, by step name (see [`in_child`]).
fn child_step(step: &str, dir: &Path) {
    let keys = Keys::generate();
    match step {
        "new-groups" => {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            for (i, group) in ["g", "g", "g", "h", "h"].into_iter().enumerate() {
                store
                    .append(&chat(&keys, group, &format!("child {i}")))
                    .unwrap();
            }
        }
        "more" => {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            for (i, group) in ["g", "g", "k", "h"].into_iter().enumerate() {
                store
                    .append(&chat(&keys, group, &format!("more {i}")))
                    .unwrap();
            }
        }
        "no-events" => {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            store.set_setting("child", b"was here").unwrap();
            store
                .write_checkpoints(vec![checkpoint_write("p", 0, 10, b"ck")], None)
                .unwrap();
        }
        "grow" => {
            let store = Store::open(dir, small_map()).unwrap();
            let big = "x".repeat(16 * 1024);
            let batch: Vec<_> = (0..256)
                .map(|i| chat(&keys, "g", &format!("{i} {big}")))
                .collect();
            for outcome in store.append_batch(&batch).unwrap() {
                outcome.unwrap();
            }
        }
        "hold-readers" => {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            // Exits while every slot is held: the slots stay behind with a dead pid.
            fill_readers(&store, &mut |_, _| exit_child(step));
            panic!("the reader table never filled");
        }
        "hold-one-reader" => {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            // Exits inside a read transaction: its slot stays behind with a dead pid.
            store.with_event(1, |_| exit_child(step)).unwrap();
            panic!("event 1 is missing");
        }
        "hold-open" => {
            let store = Store::open(dir, StoreOptions::default()).unwrap();
            println!("{READY}");
            // Holds the environment open (and LMDB's lock file in use) until the
            // parent closes stdin.
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
            drop(store);
        }
        other => panic!("unknown child step {other}"),
    }
}

fn small_map() -> StoreOptions {
    StoreOptions {
        map_size: 1 << 20,
        max_map_size: 1 << 30,
        ..StoreOptions::default()
    }
}

fn info(name: &str, no: u32, head: u64, count: u64) -> GroupInfo {
    GroupInfo {
        name: name.into(),
        no,
        head,
        count,
    }
}

#[test]
fn another_process_s_appends_are_taken_in() {
    const TEST: &str = "follow::another_process_s_appends_are_taken_in";
    in_child(child_step);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    // What follows checks the lock-free path: the id read from LMDB's lock file.
    assert!(store.reads_txn_from_lock_file());
    assert_eq!(store.head(), 0);
    assert_eq!(store.group_no_head("g").unwrap(), None);

    // Two new groups, from an empty log.
    run_child(TEST, "new-groups", dir.path());
    assert_eq!(store.group_no_head("g").unwrap(), Some((0, 3)));
    assert_eq!(store.group("h"), Some(info("h", 1, 5, 2)));
    assert_eq!(store.head(), 5);
    assert_eq!(store.group_count(), 2);
    assert_eq!(store.groups(), [info("g", 0, 3, 3), info("h", 1, 5, 2)]);
    assert_eq!(store.get(5).unwrap().unwrap().content, "child 4");

    // This process appends after them.
    let keys = Keys::generate();
    store.append(&chat(&keys, "g", "parent")).unwrap();
    assert_eq!(store.group("g"), Some(info("g", 0, 6, 4)));

    // Known groups advance and a new one gets the next number.
    run_child(TEST, "more", dir.path());
    assert_eq!(store.group_no_head("k").unwrap(), Some((2, 9)));
    assert_eq!(store.group("g"), Some(info("g", 0, 8, 6)));
    assert_eq!(store.group("h"), Some(info("h", 1, 10, 3)));
    assert_eq!(store.group_by_no(2), Some(info("k", 2, 9, 1)));
    assert_eq!(store.group_no("k"), Some(2));
    assert_eq!(store.group_head(1), 10);
    assert_eq!(store.head(), 10);

    // A commit without events (a setting, a checkpoint) is not a shrunken log.
    run_child(TEST, "no-events", dir.path());
    store.refresh().unwrap();
    assert_eq!(store.group_no_head("h").unwrap(), Some((1, 10)));
    assert_eq!(store.head(), 10);
    assert_eq!(store.setting("child").unwrap(), Some(b"was here".to_vec()));
    assert_eq!(
        store.read_checkpoint("p", 0).unwrap().map(|c| c.state),
        Some(b"ck".to_vec())
    );
    // And this process's next append still lands after everything.
    store.append(&chat(&keys, "k", "parent again")).unwrap();
    assert_eq!(store.group_no_head("k").unwrap(), Some((2, 11)));
}

#[test]
fn a_read_adopts_the_map_size_another_process_grew() {
    const TEST: &str = "follow::a_read_adopts_the_map_size_another_process_grew";
    in_child(child_step);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_map()).unwrap();
    let keys = Keys::generate();
    store.append(&chat(&keys, "g", "first")).unwrap();
    let before = store.map_size();
    assert_eq!(before, 1 << 20);

    run_child(TEST, "grow", dir.path());
    assert_eq!(store.group_no_head("g").unwrap(), Some((0, 257)));
    assert!(store.map_size() > before, "{}", store.map_size());
    assert!(store.get(257).unwrap().unwrap().content.starts_with("255 "));
    // The writer of this process works in the grown map too.
    store.append(&chat(&keys, "g", "after")).unwrap();
    assert_eq!(store.head(), 258);
}

#[test]
fn reader_slots_of_a_dead_process_are_cleared() {
    const TEST: &str = "follow::reader_slots_of_a_dead_process_are_cleared";
    in_child(child_step);
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let first = chat(&keys, "g", "first");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.append(&first).unwrap();
    }

    // A dead process's slots fill the table while another process has the database
    // open (so LMDB does not reset its lock file): opening clears them.
    let holder = spawn_child(TEST, "hold-open", dir.path());
    run_child(TEST, "hold-readers", dir.path());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.get(1).unwrap(), Some(first.clone()));
    finish_child(holder, "hold-open");

    // Filled again while this store is open: the read that finds the table full
    // clears them and retries.
    run_child(TEST, "hold-readers", dir.path());
    assert_eq!(store.get(1).unwrap(), Some(first.clone()));

    // Slots held by a live process (this one) are not stale: the read fails with
    // ReadersFull after one clearing attempt instead of retrying forever.
    let mut outcome = None;
    fill_readers(&store, &mut |held, error| outcome = Some((held, error)));
    let (held, error) = outcome.expect("the reader table filled");
    assert!(held > 1_000, "{held} slots held");
    let readers_full = matches!(error, StoreError::ReadersFull { .. });
    assert!(readers_full, "{error:?}");
    // Every slot was released.
    assert_eq!(store.get(1).unwrap(), Some(first));
}

/// A store on a memory-backed directory where the machine has one: many commits, no
/// disk flushes.
fn shm_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

#[test]
fn the_writer_clears_dead_processes_reader_slots_every_1024_commits() {
    const TEST: &str = "follow::the_writer_clears_dead_processes_reader_slots_every_1024_commits";
    in_child(child_step);
    let dir = shm_dir();
    let keys = Keys::generate();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut commits = 0;
    let mut append = |n: usize| {
        for _ in 0..n {
            commits += 1;
            store
                .append(&chat(&keys, "g", &format!("{commits}")))
                .unwrap();
        }
    };
    append(1);
    // A dead process's slot, two commits in: not cleared yet.
    run_child(TEST, "hold-one-reader", dir.path());
    append(1);
    // A write job queued behind the commit's round: whatever the writer does after
    // acknowledging the commit is done when it returns.
    store.set_setting("after", b"").unwrap();
    assert_eq!(store.clear_stale_readers().unwrap(), 1);
    // Again, up to the 1,024th commit of this writer: cleared by it.
    run_child(TEST, "hold-one-reader", dir.path());
    append(1_022);
    assert_eq!(store.head(), 1_024);
    // The writer clears after acknowledging the commit: wait for that round as above.
    store.set_setting("after", b"").unwrap();
    assert_eq!(store.clear_stale_readers().unwrap(), 0);
}

#[test]
fn a_write_job_of_this_process_needs_no_look_at_the_log_afterwards() {
    let dir = shm_dir();
    let keys = Keys::generate();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store.append(&chat(&keys, "g", "1")).unwrap();
    store
        .write_checkpoints(vec![checkpoint_write("p", 0, 1, b"s")], None)
        .unwrap();
    store.set_setting("k", b"v").unwrap();
    // Both commits were this process's own and added no event: a refresh finds
    // nothing to take in and opens no read transaction.
    let before = highwater_store::read_transactions_on_this_thread();
    store.refresh().unwrap();
    assert_eq!(store.group_no_head("g").unwrap(), Some((0, 1)));
    assert_eq!(highwater_store::read_transactions_on_this_thread(), before);
}

#[test]
fn own_commits_are_published_without_a_tail_and_others_with_one() {
    const TEST: &str = "follow::own_commits_are_published_without_a_tail_and_others_with_one";
    in_child(child_step);
    let dir = shm_dir();
    let keys = Keys::generate();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for i in 0..3 {
        store.append(&chat(&keys, "g", &format!("{i}"))).unwrap();
    }
    store
        .append_batch(&[chat(&keys, "g", "a"), chat(&keys, "h", "b")])
        .unwrap();
    assert_eq!(
        store.tails_taken(),
        0,
        "this process's commits need no tail"
    );
    // Another process's four events, then one of ours on top of them: publishing ours
    // takes theirs in first.
    run_child(TEST, "more", dir.path());
    store.append(&chat(&keys, "g", "after")).unwrap();
    assert_eq!(store.tails_taken(), 1);
    assert_eq!(store.head(), 10);
    assert_eq!(
        store.group_no_head("k").unwrap().map(|(_, head)| head),
        Some(8)
    );
    assert_eq!(
        store.group_no_head("g").unwrap().map(|(_, head)| head),
        Some(10)
    );
    assert_eq!(store.tails_taken(), 1);
}
