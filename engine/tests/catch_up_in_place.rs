//! A loaded group that falls behind its head catches up in place, under its own lock:
//! behind because another process committed (a real child process appends), or
//! because its live fold found the slot busy. A store error during that catch-up
//! leaves the slot as it was.

mod engine_support;

use std::process::Command;

use engine_support::{append_n, chat, headers, open, quiet};
use highwater_engine::{EngineError, Store};
use highwater_store::StoreOptions;
use nostr::prelude::Keys;

/// Set in a child's environment: the child appends to the store in this directory.
const CHILD_DIR: &str = "HIGHWATER_MUTANTS_APPEND_DIR";
const CHILD_TEST: &str = "a_loaded_group_catches_up_another_process_s_commits_in_place";

/// In the child: appends 4 events to group `g` and 2 to `h`, then exits.
fn append_if_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    for i in 0..4 {
        store.append(&chat(&keys, "g", 1_000 + i)).unwrap();
    }
    for i in 0..2 {
        store.append(&chat(&keys, "h", 1_000 + i)).unwrap();
    }
    std::process::exit(0);
}

#[test]
fn a_loaded_group_catches_up_another_process_s_commits_in_place() {
    append_if_child();
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    assert_eq!(tally.name(), "tally");
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    append_n(&engine, &keys, "h", 0, 1);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 3);
    assert_eq!(tally.read("h", |n| *n).unwrap(), 1);
    let status = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the appending child failed: {status}");
    // This process's writer saw none of those commits: both slots are loaded but behind.
    assert_eq!(tally.fold_counters().live_folds, 0);
    // Loading learns of the other process's commits and folds g's tail in place.
    engine.load_group("g").unwrap();
    let c = tally.fold_counters();
    assert_eq!(
        (c.loads, c.tail_folds),
        (2, 1),
        "caught up in place, not reloaded"
    );
    assert_eq!(tally.projection().applied(), 3 + 1 + 4);
    // A read of another group inside a read closure catches that group up too (it is
    // not the slot this thread holds).
    let (g, h) = tally
        .read("g", |g| (*g, tally.read("h", |h| *h).unwrap()))
        .unwrap();
    assert_eq!((g, h), (7, 3));
    assert_eq!(tally.fold_counters().tail_folds, 2);
    assert_eq!(
        tally.read_at("h", |h| *h).unwrap(),
        (3, engine.store().head())
    );
    assert_eq!(tally.fold_counters().tail_folds, 2, "current again");
    assert_eq!(tally.projection().applied(), 3 + 1 + 4 + 2);
    for group in ["g", "h"] {
        let status = engine.group_status("tally", group).unwrap();
        assert_eq!(status.lag, 0, "{group}: {status:?}");
        assert_eq!(engine.verify_group("tally", group).unwrap(), None);
    }
    // The caught-up counts are what the next checkpoints claim.
    assert_eq!(engine.checkpoint().unwrap(), 2);
    let g = engine.store().group("g").unwrap();
    let found = headers(engine.store());
    assert!(found.contains(&(g.no, (1, g.head, 7))), "{found:?}");
    let status = engine.status().unwrap();
    assert_eq!(
        (status[0].groups, status[0].loaded, status[0].lag),
        (2, 2, 0)
    );
}

#[test]
fn a_store_error_during_an_in_place_catch_up_leaves_the_slot_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    // The commit inside the closure finds the slot busy: the slot stays behind.
    let seen = tally
        .read("g", |n| {
            engine.append(&chat(&keys, "g", 3)).unwrap();
            *n
        })
        .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(tally.fold_counters().busy_skips, 1);
    let head = engine.store().head();
    let good = engine.store().raw_record(head).unwrap().unwrap();
    engine.store().put_raw_record(head, vec![0xff; 7]).unwrap();
    match tally.read("g", |n| *n) {
        Err(EngineError::Store(_)) => {}
        other => panic!("a corrupted record must fail the read: {other:?}"),
    }
    assert!(engine.verify_group("tally", "g").is_err(), "not agreement");
    engine.store().put_raw_record(head, good).unwrap();
    assert_eq!(tally.read("g", |n| *n).unwrap(), 4);
    assert_eq!(engine.verify_group("tally", "g").unwrap(), None);
    let results = engine
        .append_batch(&[chat(&keys, "g", 4), chat(&keys, "g", 5)])
        .unwrap();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 6);
}

/// Makes group `g` of `engine` fall behind: a commit made inside a read closure finds
/// the slot busy and skips its live fold.
fn leave_behind(
    engine: &highwater_engine::Engine,
    tally: &highwater_engine::Handle<engine_support::Tally>,
    keys: &Keys,
    n: usize,
) {
    tally
        .read("g", |_| engine.append(&chat(keys, "g", n)).unwrap())
        .unwrap();
}

#[test]
fn a_slot_left_behind_is_not_folded_live_until_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 3);
    leave_behind(&engine, &tally, &keys, 3);
    // Not busy now, but behind: folding this commit alone would skip the one before.
    append_n(&engine, &keys, "g", 4, 1);
    assert_eq!(tally.fold_counters().live_folds, 0);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
    let c = tally.fold_counters();
    assert_eq!((c.busy_skips, c.tail_folds, c.loads), (1, 1, 1));
    // Current again: the next commit is folded live.
    append_n(&engine, &keys, "g", 5, 1);
    assert_eq!(tally.fold_counters().live_folds, 1);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 6);
}

#[test]
fn a_rebuild_replaces_a_loaded_state_that_fell_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    let head = engine.store().group("g").unwrap().head;
    engine_support::put_checkpoint(&engine, "g", 1, head, 3, 900);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 900);
    leave_behind(&engine, &tally, &keys, 3);
    // The rebuilt state is newer than the loaded one: it replaces it.
    engine.rebuild(None, None).unwrap();
    assert_eq!(tally.read("g", |n| *n).unwrap(), 4);
    assert_eq!(tally.fold_counters().tail_folds, 0, "published at the head");
    leave_behind(&engine, &tally, &keys, 4);
    engine.rebuild(Some("tally"), Some("g")).unwrap();
    assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
}
