//! Checkpoints are trusted exactly when they should be: one of this version at or
//! below the head is used as is (no event before its watermark is folded again);
//! one of another version, beyond the head, undecodable or tampered with is never
//! served. Checkpoints written at close are what the next open loads, and a rebuild
//! replaces every checkpoint and every served state.

mod engine_support;

use engine_support::{append_n, chat, headers, open, put_checkpoint, quiet};
use highwater_engine::{EngineOptions, LoadState};
use nostr::prelude::Keys;

#[test]
fn a_checkpoint_of_this_version_at_the_head_is_served_without_refolding() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 5);
    let head = engine.store().group("g").unwrap().head;
    // A state no fold of this log produces: serving it proves the checkpoint was used.
    put_checkpoint(&engine, "g", 1, head, 5, 1_000);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 1_000);
    assert_eq!(tally.projection().applied(), 0);
    let c = tally.fold_counters();
    assert_eq!((c.loads, c.tail_folds), (1, 0));
    assert_eq!(engine.checkpoint().unwrap(), 0, "loaded as checkpointed");
    // Its tail is folded on top of it.
    append_n(&engine, &keys, "g", 5, 2);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 1_002);
    assert!(
        engine.verify_group("tally", "g").unwrap().is_some(),
        "verify must see the planted state"
    );
}

#[test]
fn a_checkpoint_below_the_head_is_used_and_its_tail_folded() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    let at = engine.store().group("g").unwrap().head;
    append_n(&engine, &keys, "g", 3, 4);
    put_checkpoint(&engine, "g", 1, at, 3, 500);
    assert_eq!(tally.read_at("g", |n| *n).unwrap().1, engine.store().head());
    assert_eq!(tally.read("g", |n| *n).unwrap(), 504);
    assert_eq!(tally.projection().applied(), 4);
    let status = engine.group_status("tally", "g").unwrap();
    assert_eq!((status.lag, status.state), (0, LoadState::Loaded));
    // The checkpoint's count plus the tail's.
    assert_eq!(engine.checkpoint().unwrap(), 1);
    let g = engine.store().group("g").unwrap();
    assert_eq!(headers(engine.store()), vec![(g.no, (1, g.head, 7))]);
}

#[test]
fn a_version_bump_whose_fold_differs_ignores_the_old_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, tally) = open(dir.path(), 1, EngineOptions::default());
        append_n(&engine, &keys, "g", 0, 5);
        assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
    }
    // Version 2 adds 2 per event: trusting the version-1 checkpoint (5) would answer
    // 5 + 2 for the new event instead of 12.
    let (engine, tally) = open(dir.path(), 2, quiet());
    assert_eq!(
        headers(engine.store())[0].1.0,
        1,
        "the old checkpoint is there"
    );
    engine.append(&chat(&keys, "g", 5)).unwrap();
    assert_eq!(tally.read("g", |n| *n).unwrap(), 12);
    assert_eq!(tally.projection().applied(), 6);
    assert_eq!(engine.verify_group("tally", "g").unwrap(), None);
}

#[test]
fn a_checkpoint_beyond_the_head_is_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 4);
    let head = engine.store().group("g").unwrap().head;
    put_checkpoint(&engine, "g", 1, head + 1, 5, 1_000);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 4);
    assert_eq!(tally.projection().applied(), 4);
    // Once the log has grown past it, the same checkpoint is within the head: it is
    // then a checkpoint like any other (the test above shows those are used).
    append_n(&engine, &keys, "g", 4, 3);
    engine.evict_all();
    let tail = engine.store().group("g").unwrap().head - (head + 1);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 1_000 + tail);
}

#[test]
fn an_undecodable_checkpoint_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    let no = engine.store().group_no("g").unwrap();
    let head = engine.store().group("g").unwrap().head;
    engine
        .store()
        .write_checkpoints(
            vec![highwater_store::CheckpointWrite {
                projection: "tally".into(),
                group: no,
                checkpoint: highwater_store::Checkpoint {
                    version: 1,
                    watermark: head,
                    events: 3,
                    state: vec![1, 2, 3],
                },
            }],
            None,
        )
        .unwrap();
    assert_eq!(tally.read("g", |n| *n).unwrap(), 3);
}

#[test]
fn verify_group_reports_a_tampered_checkpoint_and_agrees_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "a", 0, 3);
    append_n(&engine, &keys, "b", 0, 3);
    assert_eq!(engine.verify_group("tally", "a").unwrap(), None);
    assert_eq!(engine.verify_group("tally", "absent").unwrap(), None);
    let head = engine.store().group("b").unwrap().head;
    put_checkpoint(&engine, "b", 1, head, 3, 7);
    let diff = engine
        .verify_group("tally", "b")
        .unwrap()
        .expect("a difference");
    assert!(diff.contains("served 7"), "{diff}");
    assert!(diff.contains("replay 3"), "{diff}");
    assert_eq!(tally.replay("b").unwrap(), 3);
    assert!(engine.verify_group("nope", "b").is_err());
}

#[test]
fn a_failed_fold_fails_verify_alike_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 2);
    engine
        .append(&engine_support::message(&keys, "g", 9, "boom"))
        .unwrap();
    assert!(tally.read("g", |n| *n).is_err());
    assert_eq!(engine.verify_group("tally", "g").unwrap(), None);
    let status = engine.group_status("tally", "g").unwrap();
    let failed = matches!(status.state, LoadState::Failed { .. });
    assert!(failed, "{status:?}");
}

#[test]
fn verify_group_reports_folds_that_fail_differently() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 2);
    let at = engine.store().group("g").unwrap().head;
    append_n(&engine, &keys, "g", 2, 1);
    engine
        .append(&engine_support::message(&keys, "g", 9, "boom"))
        .unwrap();
    // Served: the planted state fails at the event after `at`; the replay fails at boom.
    put_checkpoint(&engine, "g", 1, at, 2, engine_support::UNLUCKY);
    assert!(tally.read("g", |n| *n).is_err());
    let diff = engine
        .verify_group("tally", "g")
        .unwrap()
        .expect("a difference");
    assert!(diff.contains("unlucky"), "{diff}");
    assert!(diff.contains("boom"), "{diff}");
}

#[test]
fn checkpoints_written_at_close_are_loaded_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let head;
    {
        let (engine, tally) = open(
            dir.path(),
            1,
            EngineOptions {
                checkpoint_every: 0,
                checkpoint_on_close: true,
            },
        );
        append_n(&engine, &keys, "g", 0, 5);
        append_n(&engine, &keys, "untouched", 0, 2);
        assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
        head = engine.store().group("g").unwrap().head;
        assert!(headers(engine.store()).is_empty());
    }
    let (engine, tally) = open(dir.path(), 1, quiet());
    let no = engine.store().group_no("g").unwrap();
    // Only the loaded group was checkpointed, at its head, with its event count.
    assert_eq!(headers(engine.store()), vec![(no, (1, head, 5))]);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
    assert_eq!(
        tally.projection().applied(),
        0,
        "the state came from the checkpoint"
    );
    let status = engine.status().unwrap();
    assert_eq!(status[0].with_checkpoint, 1);
}

#[test]
fn no_checkpoint_is_written_at_close_when_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, tally) = open(dir.path(), 1, quiet());
        append_n(&engine, &keys, "g", 0, 5);
        assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
    }
    let (engine, _tally) = open(dir.path(), 1, quiet());
    assert!(headers(engine.store()).is_empty());
}

#[test]
fn a_rebuild_replaces_every_corrupted_checkpoint_and_every_served_state() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    let groups = ["a", "b", "c"];
    for (i, g) in groups.iter().enumerate() {
        append_n(&engine, &keys, g, 0, i + 2);
    }
    engine
        .append(&engine_support::message(&keys, "a", 7, "not folded"))
        .unwrap();
    for g in groups {
        let head = engine.store().group(g).unwrap().head;
        put_checkpoint(&engine, g, 1, head, 1, 9_999);
        // Loaded from the planted state: the rebuild must replace it in memory too.
        assert_eq!(tally.read(g, |n| *n).unwrap(), 9_999);
    }
    let reports = engine.rebuild(None, None).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].projection, "tally");
    assert_eq!(reports[0].groups, 3);
    assert_eq!(reports[0].failed, 0);
    assert_eq!(reports[0].events, engine.store().head());
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(
            tally.read(g, |n| *n).unwrap(),
            i as u64 + 2,
            "{g} in memory"
        );
    }
    engine.evict_all();
    for (i, g) in groups.iter().enumerate() {
        assert_eq!(
            tally.read(g, |n| *n).unwrap(),
            i as u64 + 2,
            "{g} from its checkpoint"
        );
    }
    assert_eq!(
        tally.projection().applied(),
        2 + 3 + 4,
        "rebuilt states were checkpointed"
    );
    for g in groups {
        assert_eq!(engine.verify_group("tally", g).unwrap(), None);
    }
    for (no, (version, watermark, events)) in headers(engine.store()) {
        let g = engine.store().group_by_no(no).unwrap();
        assert_eq!((version, watermark, events), (1, g.head, g.count));
    }
}

#[test]
fn rebuilding_one_group_replaces_its_checkpoint_and_state_only() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "a", 0, 2);
    append_n(&engine, &keys, "b", 0, 3);
    for g in ["a", "b"] {
        let head = engine.store().group(g).unwrap().head;
        put_checkpoint(&engine, g, 1, head, 1, 100);
        assert_eq!(tally.read(g, |n| *n).unwrap(), 100);
    }
    let reports = engine.rebuild(Some("tally"), Some("b")).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].groups, reports[0].events, reports[0].failed),
        (1, 3, 0)
    );
    assert_eq!(tally.read("b", |n| *n).unwrap(), 3);
    assert_eq!(tally.read("a", |n| *n).unwrap(), 100);
    engine.evict_all();
    assert_eq!(tally.read("b", |n| *n).unwrap(), 3);
    assert_eq!(tally.read("a", |n| *n).unwrap(), 100);
    assert!(
        engine
            .rebuild(Some("tally"), Some("absent"))
            .unwrap()
            .is_empty()
    );
    assert!(engine.rebuild(Some("nope"), None).is_err());
}

#[test]
fn a_rebuild_of_a_failing_group_reports_it_and_writes_no_checkpoint_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "ok", 0, 2);
    append_n(&engine, &keys, "bad", 0, 1);
    engine
        .append(&engine_support::message(&keys, "bad", 9, "boom"))
        .unwrap();
    let reports = engine.rebuild(None, None).unwrap();
    assert_eq!((reports[0].groups, reports[0].failed), (2, 1));
    let ok = engine.store().group_no("ok").unwrap();
    assert_eq!(
        headers(engine.store())
            .iter()
            .map(|h| h.0)
            .collect::<Vec<_>>(),
        vec![ok]
    );
    assert!(tally.read("bad", |n| *n).is_err());
    let one = engine.rebuild(None, Some("bad")).unwrap();
    assert_eq!((one[0].groups, one[0].failed), (1, 1));
    assert!(tally.read("bad", |n| *n).is_err());
}
