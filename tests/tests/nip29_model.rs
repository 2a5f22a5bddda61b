//! The NIP-29 projections against an independent reference model: random logs are
//! appended to a fresh store and engine, and every query of `Groups` — for every group
//! and every key of the pool — and the rendered state events must equal what the model
//! (tests/tests/nip29_model/model.rs, one plain function over the log, no code shared
//! with the folds) says. On a mismatch the log is printed.
//!
//! Cases per run: 256 by default, `HIGHWATER_MODEL_CASES` for more.

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
        .unwrap_or(256)
}

/// A fresh store and engine with the NIP-29 projections.
fn open(dir: &std::path::Path) -> (Engine, Groups) {
    let store = Store::open(dir, StoreOptions::default()).expect("open store");
    let options = EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    };
    let mut builder = Engine::builder(store, options);
    let relay = logs::relay().public_key().to_bytes();
    let groups = Groups::register(&mut builder, Nip29Config::new(relay)).expect("register");
    (builder.build().expect("build engine"), groups)
}

fn run(ops: &[Op], split: usize) -> Result<(), TestCaseError> {
    let events = logs::events(ops);
    let relay = logs::relay().public_key().to_bytes();
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, groups) = open(dir.path());
    let split = split.min(events.len());
    // Compare after a prefix (groups then stay loaded and fold the rest incrementally)
    // and after the whole log.
    for (start, end) in [(0, split), (split, events.len())] {
        for outcome in engine.append_batch(&events[start..end]).expect("append") {
            let appended = matches!(outcome, Ok(AppendOutcome::Appended(_)));
            prop_assert!(appended, "append refused: {:?}", outcome);
        }
        let log: Vec<Event> = events[..end].iter().map(compare::from_nostr).collect();
        let expected = model::model(&log, &relay);
        if let Err(difference) = compare::all(&groups, &expected) {
            return Err(TestCaseError::fail(format!(
                "{difference}\nafter {end} of {} events:\n{}",
                events.len(),
                compare::dump(&log)
            )));
        }
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
