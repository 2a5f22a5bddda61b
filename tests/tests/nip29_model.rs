//! The NIP-29 projections against an independent reference model: random logs are
//! appended to a fresh store and engine, and every query of `Groups` — for every group
//! and every key of the pool — and the rendered state events must equal what the model
//! (`tests/tests/nip29_model/model.rs`, one plain function over the log, no code shared
//! with the folds) says — served, and by full replay (the oracle). On a mismatch the
//! log is printed.
//!
//! Cases per run: 200 by default, `HIGHWATER_MODEL_CASES` for more.

#[path = "nip29_model/mod.rs"]
mod support;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{AppendOutcome, Store, StoreOptions};
use proptest::prelude::*;
use support::compare;
use support::logs::{self, Op};
use support::model::{self, Event};

fn cases() -> u32 {
    std::env::var("HIGHWATER_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// A fresh store and engine with the NIP-29 projections.
fn open(dir: &std::path::Path) -> (Engine, Groups) {
    // The events are signed by the generator; what is under test is the folds.
    let options = StoreOptions {
        trusted: true,
        ..StoreOptions::default()
    };
    let store = Store::open(dir, options).expect("open store");
    let options = EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    };
    let mut builder = Engine::builder(store, options);
    let relay = logs::relay().public_key();
    let groups = Groups::register(&mut builder, Nip29Config::new(relay)).expect("register");
    (builder.build().expect("build engine"), groups)
}

fn run(ops: &[Op], split: usize) -> Result<(), TestCaseError> {
    let events = logs::events(ops);
    let relay = logs::relay().public_key().to_bytes();
    // Memory-backed when the machine has one: commits then cost no disk flush.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let (mut engine, mut groups) = open(dir.path());
    let split = split.min(events.len());
    let mismatch = |difference: String, end: usize, log: &[Event]| {
        TestCaseError::fail(format!(
            "{difference}\nafter {end} of {} events:\n{}",
            events.len(),
            compare::dump(log)
        ))
    };
    // Compare after a prefix and after the whole log (and the oracle's answers then). In between, groups either stay
    // loaded and fold the rest incrementally or (odd splits) are checkpointed and
    // evicted, so the rest folds onto checkpoints from cold.
    for (start, end) in [(0, split), (split, events.len())] {
        for outcome in engine.append_batch(&events[start..end]).expect("append") {
            let appended = matches!(outcome, Ok(AppendOutcome::Appended(_)));
            prop_assert!(appended, "append refused: {:?}", outcome);
        }
        let log: Vec<Event> = events[..end].iter().map(compare::from_nostr).collect();
        let expected = model::model(&log, &relay);
        let oracle = end == events.len();
        compare::all(&engine, &groups, &expected, &log, oracle)
            .map_err(|d| mismatch(d, end, &log))?;
        if split % 2 == 1 {
            engine.checkpoint().expect("checkpoint");
            engine.evict_all();
        }
    }
    // Every third case: a restart, answering from the store alone (and the checkpoints
    // of odd splits).
    if split.is_multiple_of(3) {
        drop(groups);
        drop(engine);
        (engine, groups) = open(dir.path());
        let log: Vec<Event> = events.iter().map(compare::from_nostr).collect();
        let expected = model::model(&log, &relay);
        compare::all(&engine, &groups, &expected, &log, false)
            .map_err(|d| mismatch(format!("after a reopen: {d}"), events.len(), &log))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_projections_agree_with_the_reference_model(
        ops in prop::collection::vec(logs::arb_op(), 1..90),
        split in 0usize..100,
    ) {
        run(&ops, split)?;
    }
}

/// Scripted logs for the corners random logs reach rarely, through the same comparison.
mod scripted {
    use super::support::logs::{Action, MetaSpec, Op};

    fn meta(parents: &[u8], children: &[u8]) -> MetaSpec {
        MetaSpec {
            flags: 0,
            dialect: 0,
            name: Some(1),
            banner: false,
            kinds: None,
            parents: parents.to_vec(),
            children: children.to_vec(),
            extra: Vec::new(),
        }
    }

    fn op(group: u8, dt: i8, action: Action) -> Op {
        Op {
            group,
            author: 0,
            dt,
            action,
        }
    }

    fn check(ops: &[Op]) {
        for split in [0, ops.len() / 2, ops.len() / 2 + 1] {
            if let Err(e) = super::run(ops, split) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn a_child_re_attaches_to_a_re_created_parent() {
        check(&[
            op(0, 1, Action::Create(meta(&[], &[]))),
            op(1, 1, Action::Create(meta(&[0], &[]))),
            op(2, 1, Action::Create(meta(&[0], &[]))),
            op(0, 1, Action::Delete),
            op(0, 1, Action::Create(meta(&[], &[]))),
            op(2, 1, Action::Edit(meta(&[0], &[]))),
            op(1, 1, Action::Edit(meta(&[0], &[]))),
        ]);
    }

    #[test]
    fn a_name_edit_after_re_attaching_to_a_re_created_parent_keeps_the_order() {
        check(&[
            op(0, 1, Action::Create(meta(&[], &[]))),
            op(2, 1, Action::Create(meta(&[0], &[]))),
            op(0, 1, Action::Delete),
            op(0, 1, Action::Create(meta(&[], &[]))),
            op(2, 1, Action::Edit(meta(&[0], &[]))),
            op(1, 1, Action::Create(meta(&[0], &[]))),
            op(2, 1, Action::Edit(meta(&[0], &[]))),
        ]);
    }

    #[test]
    fn a_parent_reorders_its_children_and_later_ones_are_appended() {
        check(&[
            op(0, 1, Action::Create(meta(&[], &[]))),
            op(1, 1, Action::Create(meta(&[0], &[]))),
            op(2, 1, Action::Create(meta(&[0], &[]))),
            op(3, 1, Action::Create(meta(&[0], &[]))),
            op(0, 1, Action::Edit(meta(&[], &[3, 1]))),
            op(4, 1, Action::Create(meta(&[0], &[]))),
            op(1, 1, Action::Edit(meta(&[], &[]))),
            op(1, 1, Action::Edit(meta(&[0], &[]))),
            op(0, 1, Action::Edit(meta(&[], &[]))),
        ]);
    }

    #[test]
    fn a_relay_39000_orders_children_logged_after_it() {
        let snapshot = |children: &[u8]| op(0, 1, Action::SnapMeta(true, meta(&[], children)));
        check(&[
            snapshot(&[3, 1]),
            op(1, 1, Action::Create(meta(&[0], &[]))),
            op(2, 1, Action::Create(meta(&[0], &[]))),
            op(3, 1, Action::Create(meta(&[0], &[]))),
            // History on the parent keeps the order until its own `child` tags change it.
            op(0, 1, Action::Put(vec![(1, vec![])], false)),
            op(4, 1, Action::Create(meta(&[0], &[]))),
            op(1, 1, Action::Edit(meta(&[], &[]))),
            op(1, 1, Action::Edit(meta(&[0], &[]))),
        ]);
    }

    #[test]
    fn a_child_of_a_parent_that_does_not_exist_yet_attaches_when_it_does() {
        check(&[
            op(1, 1, Action::Create(meta(&[0], &[]))),
            op(2, 1, Action::Create(meta(&[2], &[]))),
            op(3, 1, Action::Create(meta(&[4, 0], &[]))),
            op(4, 1, Action::Create(meta(&[3], &[]))),
            op(0, 1, Action::Create(meta(&[1], &[1]))),
        ]);
    }

    #[test]
    fn same_second_snapshot_pairs_and_ties_in_both_log_orders() {
        let roster = |n: u8| vec![(n, vec![0]), (n + 1, vec![])];
        check(&[
            op(0, 1, Action::SnapPair(true, roster(0), roster(2))),
            op(1, 1, Action::SnapPair(false, roster(0), roster(2))),
            op(2, 1, Action::SnapTie(1, roster(0), roster(3))),
            op(2, 0, Action::SnapTie(2, roster(1), roster(4))),
            op(3, 1, Action::SnapTie(0, roster(1), roster(4))),
            op(3, -1, Action::SnapMeta(true, meta(&[2], &[]))),
            op(4, 1, Action::SnapTie(3, roster(1), roster(4))),
            op(1, 0, Action::Put(roster(4), true)),
            op(1, 0, Action::SnapRoster(true, true, roster(5))),
        ]);
    }
}
