//! Retention at the engine: which kinds may expire is what the registered projections
//! fold — a kind a projection folds never expires, and naming one is refused.

mod engine_support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use engine_support::{append_n, message, open, quiet};
use highwater_engine::{EngineError, RetentionPolicy};
use nostr::prelude::Keys;

#[test]
fn a_kind_is_folded_exactly_when_a_registered_projection_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _tally) = open(dir.path(), 1, quiet());
    // Tally folds kind 9 only.
    assert!(engine.folds_kind(9));
    assert!(!engine.folds_kind(1));
    assert!(!engine.folds_kind(7));
}

#[test]
fn naming_a_folded_kind_for_expiry_is_refused_with_the_projection_that_folds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _tally) = open(dir.path(), 1, quiet());
    let policy = RetentionPolicy {
        default: Some(Duration::from_secs(1)),
        kinds: Some(BTreeSet::from([1, 9])),
        ..RetentionPolicy::default()
    };
    match engine.expiry_rule(&policy, SystemTime::now()) {
        Err(EngineError::Retention(message)) => {
            assert_eq!(message, "kind 9 cannot expire: projection tally folds it");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let allowed = RetentionPolicy {
        kinds: Some(BTreeSet::from([1])),
        ..policy
    };
    assert!(engine.expiry_rule(&allowed, SystemTime::now()).is_ok());
}

#[test]
fn compaction_removes_expired_unfolded_kinds_and_keeps_every_folded_one() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    // Kind 9 (folded) and kind 1 (not), all in one group, then a last event that is
    // the group's head (never removed).
    append_n(&engine, &keys, "g", 0, 3);
    for n in 0..4 {
        engine
            .append(&message(&keys, "g", 1, &format!("note {n}")))
            .unwrap();
    }
    append_n(&engine, &keys, "g", 3, 1);
    let before = engine.store().event_count().unwrap();
    // Every record is older than "now plus a day" less one second.
    let policy = RetentionPolicy {
        default: Some(Duration::from_secs(1)),
        ..RetentionPolicy::default()
    };
    let later = SystemTime::now() + Duration::from_hours(24);
    let report = engine.compact(&policy, later).unwrap();
    assert_eq!(
        report.removed, 4,
        "the four kind-1 notes expire: {report:?}"
    );
    assert_eq!(engine.store().event_count().unwrap(), before - 4);
    // The folded kind is all there: the tally still reads four kind-9 events.
    assert_eq!(tally.read("g", |s| *s).unwrap(), 4);
}
