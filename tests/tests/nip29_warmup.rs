//! Partial warm-up: after checkpoints of some groups, more appends, and an eviction or
//! a restart, some groups load from a current checkpoint, some from a checkpoint behind
//! the head, some from nothing. Every query, asked first on a cold engine, must answer
//! what a full replay answers — the test a "member rejected after restart" bug fails.

mod nip29_support;

use highwater_store::StoreOptions;
use nip29_support::logs::{self, Rng};
use nip29_support::queries::{self, ALL, Probes};
use nip29_support::{Harness, manual_checkpoints, relay};
use nostr::prelude::Event;

const GROUPS: u8 = 60;

fn append_in_batches(h: &Harness, events: &[Event]) {
    for batch in events.chunks(250) {
        h.append(batch);
    }
}

/// Per projection: (groups without checkpoint, with one at the head, with one behind).
fn checkpoint_mix(h: &Harness, names: &[String]) -> Vec<(usize, usize, usize)> {
    let store = h.engine.store();
    h.engine
        .projections()
        .iter()
        .map(|projection| {
            let mut mix = (0, 0, 0);
            for name in names {
                let info = store.group(name).expect("group in the log");
                match store
                    .read_checkpoint(projection, info.no)
                    .expect("read checkpoint")
                {
                    None => mix.0 += 1,
                    Some(c) if c.watermark == info.head => mix.1 += 1,
                    Some(_) => mix.2 += 1,
                }
            }
            mix
        })
        .collect()
}

fn every_query_matches_the_oracle(h: &Harness, names: &[String], probes: &[Probes]) {
    let policy = queries::test_policy(&nip29_support::key(7));
    let oracle = h.oracle();
    for query in ALL {
        h.engine.evict_all();
        for (name, probes) in names.iter().zip(probes) {
            let served = queries::ask(&h.groups, &policy, query, name, probes);
            let expected = queries::ask(&oracle, &policy, query, name, probes);
            assert_eq!(served, expected, "{query:?} on {name}");
        }
    }
    h.engine.evict_all();
    for name in names {
        assert_eq!(nip29_support::state_difference(&h.groups, name), None);
        assert_eq!(
            h.groups.view(&h.engine, name).unwrap(),
            oracle.view(&h.engine, name).unwrap()
        );
    }
}

#[test]
fn every_query_answers_from_fully_loaded_groups_after_partial_warm_up() {
    let h = Harness::with(manual_checkpoints(), StoreOptions::default());
    let keys = logs::pool();
    let names: Vec<String> = (0..GROUPS).map(|i| format!("w{i}")).collect();
    let mut rng = Rng::new(29);
    // Groups 50.. only ever see snapshots (58.. only foreign ones): seeded and unknown.
    let ops = |rng: &mut Rng, n: usize, groups: u8| -> Vec<logs::Op> {
        (0..n)
            .map(|_| {
                let op = logs::random_op(rng, groups);
                if op.group >= 50 {
                    logs::without_history(&op, rng, op.group >= 58)
                } else {
                    op
                }
            })
            .collect()
    };
    // Ops are numbered per phase; distinct phases must not produce identical events.
    let phase_a = logs::events(&ops(&mut rng, 1_500, GROUPS), &names, &keys);
    let phase_b: Vec<Event> = logs::events(&ops(&mut rng, 700, GROUPS), &names, &keys);
    let phase_c: Vec<Event> = logs::events(&ops(&mut rng, 400, GROUPS / 2), &names, &keys);

    append_in_batches(&h, &phase_a);
    for (i, name) in names.iter().enumerate() {
        if i % 3 != 0 {
            h.engine.load_group(name).unwrap();
        }
    }
    assert!(h.engine.checkpoint().unwrap() > 0);
    append_in_batches(&h, &phase_b);
    for (i, name) in names.iter().enumerate() {
        if i % 3 == 1 {
            h.engine.load_group(name).unwrap();
        }
    }
    h.engine.checkpoint().unwrap();
    append_in_batches(&h, &phase_c);

    for (none, current, behind) in checkpoint_mix(&h, &names) {
        assert!(
            none > 0 && current > 0 && behind > 0,
            "mix {none}/{current}/{behind}"
        );
    }
    let mut people = keys.clone();
    people.push(relay());
    let probes: Vec<Probes> = names
        .iter()
        .map(|name| Probes::new(name, &people))
        .collect();

    let mut lives = std::collections::BTreeMap::new();
    for name in &names {
        let lifecycle = h.groups.lifecycle(name).unwrap();
        *lives
            .entry(format!("{:?}/{:?}", lifecycle.life, lifecycle.source))
            .or_insert(0) += 1;
    }
    for life in [
        "Active/History",
        "Active/Snapshots",
        "Deleted/None",
        "Unknown/None",
    ] {
        assert!(lives.contains_key(life), "{life} missing from {lives:?}");
    }
    every_query_matches_the_oracle(&h, &names, &probes);
    let h = h.reopen();
    every_query_matches_the_oracle(&h, &names, &probes);
}
