//! Retention: a compaction never changes a group's state. Random NIP-29 logs (with
//! checkpoints written before the compaction, loaded and evicted groups) are compacted
//! under random per-group durations and chunk sizes; every projection's served state,
//! every view and every query must equal both the answers before the compaction and a
//! full replay of the compacted log, `verify` must stay clean, the records removed must
//! be exactly the expired ones of kinds no projection folds, and a reopened engine
//! (checkpoints from before the compaction plus the tail) must agree too.

mod nip29_support;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use highwater_engine::{EngineError, EngineOptions, RetentionPolicy};
use highwater_store::{Limits, StoreOptions, group_of};
use nip29_support::logs::{self, Op};
use nip29_support::queries::{self, ALL, Probes};
use nip29_support::{Harness, key, relay};
use nostr::prelude::{Event, Keys};
use proptest::prelude::*;

/// Every answer about every group, as text: views, then every query.
fn answers(h: &Harness, names: &[String], people: &[Keys]) -> BTreeMap<String, String> {
    let policy = queries::test_policy(&key(7));
    let mut out = BTreeMap::new();
    for name in names {
        out.insert(
            format!("{name} view"),
            format!("{:?}", h.groups.view(&h.engine, name)),
        );
        let probes = Probes::new(name, people);
        for query in ALL {
            out.insert(
                format!("{name} {query:?}"),
                queries::ask(&h.groups, &policy, query, name, &probes),
            );
        }
    }
    out
}

/// `verify` as the CLI runs it: every projection of every group and every relay-wide
/// projection against a full replay.
fn verify_clean(h: &Harness) -> Result<(), TestCaseError> {
    for projection in h.engine.projections() {
        for group in h.engine.store().groups() {
            let difference = h
                .engine
                .verify_group(&projection, &group.name)
                .expect("verify");
            prop_assert_eq!(difference, None, "{} of {}", projection, group.name);
        }
    }
    for projection in h.engine.relay_wide_projections() {
        let difference = h.engine.verify_relay_wide(&projection).expect("verify");
        prop_assert_eq!(difference, None, "{}", projection);
    }
    Ok(())
}

fn log(h: &Harness) -> Vec<(u64, Event)> {
    h.engine
        .store()
        .iter_from(1)
        .collect::<Result<_, _>>()
        .expect("log")
}

/// The model of what a compaction removes: records of a kind `removable` accepts, in a
/// group, `created_at` before the group's bound, and neither the group's last record
/// nor the log's.
fn expected_removed(
    log: &[(u64, Event)],
    removable: impl Fn(u16) -> bool,
    bound: impl Fn(&str) -> u64,
) -> BTreeSet<u64> {
    let group = |e: &Event| group_of(e, &Limits::default()).ok().flatten();
    let mut last_of_group = BTreeMap::new();
    for (seq, e) in log {
        if let Some(g) = group(e) {
            last_of_group.insert(g, *seq);
        }
    }
    let last = log.last().map_or(0, |(seq, _)| *seq);
    log.iter()
        .filter(|(seq, e)| {
            let Some(g) = group(e) else { return false };
            removable(e.kind.as_u16())
                && e.created_at.as_secs() < bound(&g)
                && *seq != last
                && last_of_group[&g] != *seq
        })
        .map(|(seq, _)| *seq)
        .collect()
}

#[expect(
    clippy::too_many_lines,
    reason = "one scenario: build, answer, compact, compare three ways"
)]
fn run(
    ops: &[Op],
    group_count: u8,
    cut: u64,
    keeps: &[u8],
    chunk: usize,
) -> Result<u64, TestCaseError> {
    let keys = logs::pool();
    let names: Vec<String> = (0..group_count).map(|i| format!("g{i}")).collect();
    let ops: Vec<Op> = ops
        .iter()
        .map(|op| Op {
            group: op.group % group_count,
            ..op.clone()
        })
        .collect();
    let events = logs::events(&ops, &names, &keys);
    let options = EngineOptions {
        checkpoint_every: 5,
        checkpoint_on_close: true,
    };
    let mut h = Harness::with(options, StoreOptions::default());
    let half = events.len() / 2;
    h.append(&events[..half]);
    // Checkpoints at the middle, then a tail; some groups loaded, the rest not.
    h.engine.checkpoint().expect("checkpoint");
    h.append(&events[half..]);
    let mut people: Vec<Keys> = keys.iter().step_by(2).take(3).cloned().collect();
    people.extend([key(7), relay()]);
    let before = answers(&h, &names, &people);
    let log_before = log(&h);
    h.engine.evict_all();
    for name in names.iter().step_by(3) {
        h.engine.load_group(name).expect("load");
    }

    // `now` is the middle of the log's clock plus a day; each group keeps its records
    // for a day plus `keeps[g]` seconds (255: forever), the default a day.
    let times: Vec<u64> = log_before
        .iter()
        .map(|(_, e)| e.created_at.as_secs())
        .collect();
    let (lo, hi) = (
        times.iter().min().copied().unwrap_or(0),
        times.iter().max().copied().unwrap_or(0),
    );
    let day = Duration::from_hours(24);
    let now = UNIX_EPOCH + Duration::from_secs(lo + (hi - lo) * cut / 100) + day;
    let per_group: BTreeMap<String, Duration> = names
        .iter()
        .zip(keeps)
        .map(|(name, &k)| {
            let keep = if k == 255 {
                Duration::MAX
            } else {
                day + Duration::from_secs(u64::from(k) * 4)
            };
            (name.clone(), keep)
        })
        .collect();
    let policy = RetentionPolicy {
        default: Some(day),
        per_group: per_group.clone(),
        kinds: None,
    };
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    let bound = |g: &str| match per_group.get(g) {
        Some(&keep) if keep == Duration::MAX => 0,
        Some(keep) => now_secs - keep.as_secs(),
        None => now_secs - day.as_secs(),
    };
    let expected = expected_removed(&log_before, |k| !h.engine.folds_kind(k), bound);

    let report = h
        .engine
        .compact_with(&policy, now, chunk, |_| ControlFlow::Continue(()))
        .expect("compact");
    prop_assert_eq!(report.removed, expected.len() as u64);
    let log_after = log(&h);
    let kept: BTreeSet<u64> = log_after.iter().map(|(seq, _)| *seq).collect();
    for (seq, e) in &log_before {
        prop_assert_eq!(kept.contains(seq), !expected.contains(seq), "seq {}", seq);
        if expected.contains(seq) {
            prop_assert!(
                !h.engine.folds_kind(e.kind.as_u16()),
                "kind {} expired",
                e.kind
            );
            prop_assert_eq!(h.engine.store().get_by_id(&e.id).expect("lookup"), None);
        }
    }

    // The same answers as before, equal to a full replay, `verify` clean: with the
    // states that were loaded, after an eviction (checkpoints written before the
    // compaction plus the tail), and after a restart.
    for step in 0..3 {
        match step {
            1 => h.engine.evict_all(),
            2 => h = h.reopen(),
            _ => {}
        }
        let after = answers(&h, &names, &people);
        prop_assert_eq!(&after, &before, "after step {}", step);
        let oracle = h.groups.oracle();
        for name in &names {
            prop_assert_eq!(
                h.groups.view(&h.engine, name).expect("view"),
                oracle.view(&h.engine, name).expect("oracle view")
            );
        }
        verify_clean(&h)?;
    }
    // A second compaction at the same clock finds nothing more.
    let again = h.engine.compact(&policy, now).expect("compact again");
    prop_assert_eq!(again.removed, 0);
    Ok(report.removed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, max_shrink_iters: 100, ..ProptestConfig::default() })]

    #[test]
    fn a_compaction_changes_no_state_and_removes_exactly_the_expired_chat(
        group_count in 3u8..10,
        ops in prop::collection::vec(logs::arb_op(10), 80..250),
        cut in 0u64..=100,
        keeps in prop::collection::vec(prop_oneof![Just(255u8), 0u8..255], 10),
        chunk in prop_oneof![Just(1usize), 2usize..50, Just(4_096)],
    ) {
        run(&ops, group_count, cut, &keeps, chunk)?;
    }
}

/// A fixed log with every group's chat expired: the property above is not vacuous.
#[test]
fn a_deterministic_log_loses_its_expired_chat_and_nothing_else() {
    let mut rng = logs::Rng::new(24);
    let ops: Vec<Op> = (0..600).map(|_| logs::random_op(&mut rng, 6)).collect();
    let removed = run(&ops, 6, 100, &[0; 10], 7).expect("the same answers");
    assert!(removed > 20, "only {removed} records expired");
}

/// The kinds the NIP-29 projections fold never expire, whatever the policy says:
/// moderation (9000–9010), deletions (9005, 9008) and the relay's state kinds. Chat
/// does, and so do join and leave requests (9021, 9022): no projection folds them, the
/// relay's or an admin's 9000/9001 is what changes the state.
#[test]
fn the_removable_kinds_are_what_no_registered_projection_folds() {
    let h = Harness::new();
    for kind in [
        9000, 9001, 9002, 9005, 9007, 9008, 9009, 9010, 39000, 39001, 39002, 39003,
    ] {
        assert!(h.engine.folds_kind(kind), "kind {kind}");
        let policy = RetentionPolicy {
            default: Some(Duration::ZERO),
            per_group: BTreeMap::new(),
            kinds: Some(BTreeSet::from([kind])),
        };
        let refused = h.engine.compact(&policy, SystemTime::now());
        let Err(EngineError::Retention(_)) = refused else {
            panic!("kind {kind}: expected a retention refusal, got {refused:?}");
        };
    }
    for kind in [1, 7, 9, 10, 11, 12, 9021, 9022] {
        assert!(!h.engine.folds_kind(kind), "kind {kind}");
    }
}
