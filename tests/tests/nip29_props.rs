//! Differential tests of the NIP-29 projections: random logs (ties and steps back in
//! `created_at`, relay and foreign snapshots, deletes and re-creations, malformed `p`
//! tags) must give the same answers incrementally (reads between appends), by full
//! replay (the oracle), and from checkpoint plus tail after evictions and reopens — for
//! all four projections and every query.

mod nip29_support;

use highwater_engine::EngineOptions;
use highwater_store::StoreOptions;
use nip29_support::logs::{self, Op, Rng};
use nip29_support::queries::{self, ALL, Probes};
use nip29_support::{Harness, key, relay, state_difference};
use nostr::prelude::Keys;
use proptest::prelude::*;

/// Served states and views equal the oracle's for every group.
fn views_match(h: &Harness, names: &[String]) -> Result<(), TestCaseError> {
    let oracle = h.oracle();
    for name in names {
        if let Some(difference) = state_difference(&h.groups, name) {
            return Err(TestCaseError::fail(difference));
        }
        let served = h.groups.view(&h.engine, name).expect("served view");
        let expected = oracle.view(&h.engine, name).expect("oracle view");
        prop_assert_eq!(served, expected, "group {}", name);
    }
    Ok(())
}

/// Every query about every group equals the oracle's answer.
fn queries_match(h: &Harness, names: &[String], people: &[Keys]) -> Result<(), TestCaseError> {
    let policy = queries::test_policy(&key(7));
    let oracle = h.oracle();
    for name in names {
        let probes = Probes::new(name, people);
        for query in ALL {
            let served = queries::ask(&h.groups, &policy, query, name, &probes);
            let expected = queries::ask(&oracle, &policy, query, name, &probes);
            prop_assert_eq!(served, expected, "{:?} on {}", query, name);
        }
    }
    Ok(())
}

/// Appends `ops` over `group_count` groups in `batches`, checking states and views after
/// each; then every query, with probes by `probers` pool keys, the relay admin and the
/// relay.
fn run(ops: &[Op], group_count: u8, batches: usize, probers: usize) -> Result<(), TestCaseError> {
    let keys = logs::pool();
    let names: Vec<String> = (0..group_count).map(|i| format!("g{i}")).collect();
    // The last four groups never get history: they live on (relay or foreign) snapshots.
    let mut rng = Rng::new(ops.len() as u64);
    let ops: Vec<Op> = ops
        .iter()
        .map(|op| {
            let group = op.group % group_count;
            let op = Op {
                group,
                ..op.clone()
            };
            if group + 4 >= group_count {
                logs::without_history(&op, &mut rng, group + 1 == group_count)
            } else {
                op
            }
        })
        .collect();
    let events = logs::events(&ops, &names, &keys);
    let options = EngineOptions {
        checkpoint_every: 5,
        checkpoint_on_close: true,
    };
    let mut h = Harness::with(options, StoreOptions::default());
    let size = events.len().div_ceil(batches).max(1);
    for (i, batch) in events.chunks(size).enumerate() {
        h.append(batch);
        match i % 3 {
            // Incremental: groups stay loaded and commits fold into them.
            0 => {}
            // Checkpoint plus tail.
            1 => {
                h.engine.checkpoint().expect("checkpoint");
                h.engine.evict_all();
            }
            // A restart.
            _ => h = h.reopen(),
        }
        views_match(&h, &names)?;
    }
    let mut people: Vec<Keys> = keys.iter().step_by(2).take(probers).cloned().collect();
    people.extend([key(7), relay()]);
    h.engine.evict_all();
    queries_match(&h, &names, &people)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_logs_give_the_same_answers_through_every_path(
        group_count in 16u8..24,
        ops in prop::collection::vec(logs::arb_op(24), 100..300),
        batches in 2usize..7,
    ) {
        run(&ops, group_count, batches, 4)?;
    }
}

/// Two groups with three thousand events each, and two hundred small ones.
#[test]
fn a_large_deterministic_log_gives_the_same_answers_through_every_path() {
    let mut rng = Rng::new(0x29);
    let mut ops = Vec::new();
    for i in 0..6_000u32 {
        let mut op = logs::random_op(&mut rng, 2);
        op.group = (i % 2) as u8;
        ops.push(op);
    }
    for _ in 0..2_000 {
        let mut op = logs::random_op(&mut rng, 200);
        op.group = 2 + (rng.below(200) as u8);
        ops.push(op);
    }
    // Interleave big and small groups, deterministically.
    let mut shuffled = Vec::with_capacity(ops.len());
    let (big, small) = ops.split_at(6_000);
    let mut small = small.iter();
    for (i, op) in big.iter().enumerate() {
        shuffled.push(op.clone());
        if i % 6 == 0 {
            shuffled.extend(small.by_ref().take(2).cloned());
        }
    }
    shuffled.extend(small.cloned());
    run(&shuffled, 202, 5, 1).unwrap();
}
