//! Corruption: bytes flipped in checkpoints and in log records, through the store's
//! raw test-support writes and directly in a copy of `data.mdb`.
//!
//! - A corrupted checkpoint is detected (`StoreError::Corrupted(Corruption::Checkpoint)`)
//!   and ignored: the group is folded from the log and every answer still equals a full
//!   replay. So are checkpoints that pass the checksum but not the projection's decoder,
//!   that come from another projection version, or that claim a watermark beyond the
//!   group's head.
//! - A corrupted log record is reported as `Corruption::Record { seq, .. }` with its
//!   sequence number, by `get` and by every read of its group that needs it — never a
//!   panic, never a state folded from bad bytes — while other groups keep answering.
//!
//! `HIGHWATER_CORRUPT_BYTES` bounds the flips per target kind (default 256); with a
//! large value every byte of every chosen value is flipped. Each test prints how many
//! flips it tried and how many were detected.

mod reliability_support;

use std::collections::BTreeMap;
use std::path::Path;

use highwater_engine::{EngineError, Handle, Projection};
use highwater_projections::Groups;
use highwater_store::{Checkpoint, CheckpointWrite, Corruption, StoreError, StoreOptions};
use highwater_workload::WorkloadSpec;
use nostr::prelude::PublicKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reliability_support::{env_u64, fingerprint, folds, observer_options, open_engine, populate};

const SPEC: WorkloadSpec = WorkloadSpec {
    groups: 10,
    events: 600,
    seed: 66,
    relay_secret: None,
};

/// A database with the workload, checkpoints of every group, and a tail after them.
/// Returns the relay key and the expected fingerprint (full replay) of every group.
fn build(dir: &Path) -> (PublicKey, BTreeMap<String, String>) {
    let relay = SPEC.relay_keys().unwrap().public_key();
    let (engine, groups) = open_engine(dir, relay, StoreOptions::default(), observer_options());
    let head = populate(&engine, &SPEC);
    assert_eq!(head, relay);
    engine.rebuild(None, None).unwrap();
    // Every record indexed: the flips below hit records reached through the indexes.
    // (A record of the unmerged index tail is read at open, and a damaged one fails the
    // open: `store/tests/log.rs`.)
    engine.store().merge_index_tail().unwrap();
    let expected = engine
        .store()
        .groups()
        .iter()
        .map(|g| {
            (
                g.name.to_string(),
                fingerprint(&groups, &g.name, true).unwrap(),
            )
        })
        .collect();
    (relay, expected)
}

/// Byte positions to flip in a value of `len` bytes: all of them when the budget allows,
/// else `budget` positions spread over the value.
fn positions(len: usize, budget: usize) -> Vec<usize> {
    if budget >= len {
        (0..len).collect()
    } else {
        (0..budget).map(|i| i * len / budget).collect()
    }
}

fn is_record_corruption(error: &EngineError, seq: u64) -> bool {
    if let EngineError::Store(StoreError::Corrupted(Corruption::Record { seq: s, .. })) = error {
        *s == seq
    } else {
        false
    }
}

#[test]
fn flipped_checkpoint_bytes_are_detected_and_the_group_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, expected) = build(dir.path());
    let (engine, groups) = open_engine(
        dir.path(),
        relay,
        StoreOptions::default(),
        observer_options(),
    );
    let store = engine.store().clone();
    let budget = env_u64("HIGHWATER_CORRUPT_BYTES", 256) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut targets = Vec::new();
    for projection in engine.projections() {
        for group in store.groups() {
            if let Some(bytes) = store.raw_checkpoint(&projection, group.no).unwrap() {
                targets.push((projection.clone(), group.no, group.name.to_string(), bytes));
            }
        }
    }
    assert_eq!(
        targets.len(),
        4 * store.group_count(),
        "a checkpoint of every (projection, group)"
    );
    let total: usize = targets.iter().map(|t| t.3.len()).sum();
    let (mut tried, mut detected) = (0, 0);
    for (projection, no, name, original) in &targets {
        let share = (budget * original.len()).div_ceil(total).max(1);
        for position in positions(original.len(), share) {
            let mut bad = original.clone();
            bad[position] ^= rng.random_range(1..=255u8);
            store.put_raw_checkpoint(projection, *no, bad).unwrap();
            tried += 1;
            match store.read_checkpoint(projection, *no) {
                Err(StoreError::Corrupted(Corruption::Checkpoint { .. })) => detected += 1,
                other => {
                    panic!("{projection}/{name}: flip at byte {position} not detected: {other:?}")
                }
            }
            // The group is rebuilt from the log: the same answers as a full replay.
            engine.evict_all();
            assert_eq!(
                &fingerprint(&groups, name, false).unwrap(),
                &expected[name.as_str()]
            );
            store
                .put_raw_checkpoint(projection, *no, original.clone())
                .unwrap();
        }
    }
    eprintln!("checkpoint corruption: {tried} single-byte flips tried, {detected} detected");
    assert_eq!(tried, detected);
    assert!(tried >= budget.min(total));
}

#[test]
fn checkpoints_that_pass_the_checksum_but_lie_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, expected) = build(dir.path());
    let (engine, groups) = open_engine(
        dir.path(),
        relay,
        StoreOptions::default(),
        observer_options(),
    );
    let store = engine.store().clone();
    let group = store.groups().into_iter().max_by_key(|g| g.count).unwrap();
    let name = group.name.to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut cases = 0;
    for projection in engine.projections() {
        let good = store
            .read_checkpoint(&projection, group.no)
            .unwrap()
            .unwrap();
        let mut garbage = vec![0u8; good.state.len()];
        rng.fill(&mut garbage[..]);
        let mut truncated = good.state.clone();
        truncated.truncate(good.state.len() / 2);
        let lies = [
            // Valid checksum, state bytes the projection cannot decode.
            Checkpoint {
                state: garbage,
                ..good.clone()
            },
            Checkpoint {
                state: truncated,
                ..good.clone()
            },
            Checkpoint {
                state: Vec::new(),
                ..good.clone()
            },
            // Another projection version (e.g. written before an upgrade of the fold).
            Checkpoint {
                version: good.version ^ 1,
                ..good.clone()
            },
            // A watermark beyond the group's head, with an empty state: trusting it
            // would hide the group's whole history.
            Checkpoint {
                watermark: group.head + 1_000,
                events: group.count + 10,
                state: empty_state(&groups, &projection),
                version: good.version,
            },
        ];
        for lie in lies {
            let write = CheckpointWrite {
                projection: projection.clone(),
                group: group.no,
                checkpoint: lie.clone(),
            };
            store.write_checkpoints(vec![write], None).unwrap();
            assert_eq!(
                store.read_checkpoint(&projection, group.no).unwrap(),
                Some(lie)
            );
            engine.evict_all();
            assert_eq!(
                fingerprint(&groups, &name, false).unwrap(),
                expected[&name],
                "{projection}"
            );
            cases += 1;
        }
        let restore = CheckpointWrite {
            projection: projection.clone(),
            group: group.no,
            checkpoint: good,
        };
        store.write_checkpoints(vec![restore], None).unwrap();
    }
    assert_eq!(cases, 20);
}

/// The encoded initial state of a projection, by name.
fn empty_state(groups: &Groups, projection: &str) -> Vec<u8> {
    fn encode<P: Projection>(handle: &Handle<P>) -> Vec<u8> {
        let p = handle.projection();
        p.encode(&p.init()).unwrap()
    }
    match projection {
        "membership" => encode(groups.membership_projection()),
        "roles" => encode(groups.roles_projection()),
        "metadata" => encode(groups.metadata_projection()),
        "creator" => encode(groups.creator_projection()),
        other => panic!("unknown projection {other}"),
    }
}

/// Which projections fold `kind`, by name.
fn folding(groups: &Groups, kind: u16) -> BTreeMap<&'static str, bool> {
    fn f<P: Projection>(handle: &Handle<P>, kind: u16) -> bool {
        folds(&handle.projection().kinds(), kind)
    }
    BTreeMap::from([
        ("membership", f(groups.membership_projection(), kind)),
        ("roles", f(groups.roles_projection(), kind)),
        ("metadata", f(groups.metadata_projection(), kind)),
        ("creator", f(groups.creator_projection(), kind)),
    ])
}

/// The served state of one projection of `group`, by name.
fn served(groups: &Groups, projection: &str, group: &str) -> Result<String, EngineError> {
    fn read<P: Projection>(handle: &Handle<P>, group: &str) -> Result<String, EngineError> {
        handle.read(group, |s| format!("{s:?}"))
    }
    match projection {
        "membership" => read(groups.membership_projection(), group),
        "roles" => read(groups.roles_projection(), group),
        "metadata" => read(groups.metadata_projection(), group),
        "creator" => read(groups.creator_projection(), group),
        other => panic!("unknown projection {other}"),
    }
}

/// One grouped record of each of these kinds (the first in the log), if present.
fn pick_records(engine: &highwater_engine::Engine, kinds: &[u16]) -> Vec<(u64, u16, String)> {
    let mut out: Vec<(u64, u16, String)> = Vec::new();
    engine
        .store()
        .scan(1, |seq, event| {
            let new_kind = !out.iter().any(|(_, k, _)| *k == event.kind());
            if kinds.contains(&event.kind())
                && new_kind
                && let Some(group) = event.group_id()
            {
                out.push((seq, event.kind(), group.to_owned()));
            }
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    out
}

#[test]
fn a_flipped_log_record_is_reported_with_its_sequence_number_and_never_folded() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, expected) = build(dir.path());
    let (engine, groups) = open_engine(
        dir.path(),
        relay,
        StoreOptions::default(),
        observer_options(),
    );
    let store = engine.store().clone();
    // Reads must fold from the log, through the corrupted record.
    store.delete_checkpoints(None).unwrap();
    let records = pick_records(&engine, &[9000, 9001, 9002, 9007, 39_000, 39_002, 9]);
    assert!(records.len() >= 5, "{records:?}");
    let budget = env_u64("HIGHWATER_CORRUPT_BYTES", 256) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut tried, mut detected, mut engine_checks) = (0, 0, 0);
    for (seq, kind, group) in &records {
        let original = store.raw_record(*seq).unwrap().unwrap();
        let event = store.get(*seq).unwrap().unwrap();
        let folding = folding(&groups, *kind);
        for (n, position) in positions(original.len(), budget / records.len())
            .into_iter()
            .enumerate()
        {
            let mut bad = original.clone();
            bad[position] ^= rng.random_range(1..=255u8);
            store.put_raw_record(*seq, bad).unwrap();
            tried += 1;
            match store.get(*seq) {
                Err(StoreError::Corrupted(Corruption::Record { seq: s, .. })) if s == *seq => {
                    detected += 1;
                }
                other => panic!("seq {seq}: flip at byte {position} not detected: {other:?}"),
            }
            assert!(matches!(
                store.get_by_id(&event.id),
                Err(StoreError::Corrupted(Corruption::Record { seq: s, .. })) if s == *seq
            ));
            if n % 16 == 0 {
                engine_checks += 1;
                engine.evict_all();
                for other in expected.keys().filter(|g| *g != group) {
                    assert_eq!(
                        &fingerprint(&groups, other, false).unwrap(),
                        &expected[other]
                    );
                }
                let mut errors = 0;
                for (projection, folds_it) in &folding {
                    match served(&groups, projection, group) {
                        Err(e) if is_record_corruption(&e, *seq) => errors += 1,
                        Err(e) => panic!("{projection}/{group}: unexpected error {e}"),
                        // A projection that does not fold this kind never reads it.
                        Ok(_) => assert!(
                            !folds_it,
                            "{projection}/{group} served a state past corrupted seq {seq}"
                        ),
                    }
                }
                assert_eq!(errors, folding.values().filter(|f| **f).count());
                // Verification reports the corruption rather than "no difference".
                for projection in engine.projections() {
                    match engine.verify_group(&projection, group) {
                        Err(e) => assert!(is_record_corruption(&e, *seq), "{e}"),
                        Ok(diff) => {
                            assert!(!folding[projection.as_str()], "{projection}: {diff:?}");
                        }
                    }
                }
            }
            store.put_raw_record(*seq, original.clone()).unwrap();
        }
        assert_eq!(store.get(*seq).unwrap(), Some(event));
    }
    engine.evict_all();
    for (group, print) in &expected {
        assert_eq!(&fingerprint(&groups, group, false).unwrap(), print);
    }
    eprintln!(
        "record corruption: {tried} single-byte flips over {} records tried, {detected} detected, \
         {engine_checks} full engine checks",
        records.len()
    );
    assert_eq!(tried, detected);
}

/// Every offset at which `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn bytes_flipped_in_a_copy_of_data_mdb_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (relay, expected) = build(dir.path());
    // Remember what to look for, then close everything so the file is quiescent.
    let (records, checkpoints) = {
        let (engine, groups) = open_engine(
            dir.path(),
            relay,
            StoreOptions::default(),
            observer_options(),
        );
        let store = engine.store().clone();
        let records: Vec<(u64, u16, String, Vec<u8>)> =
            pick_records(&engine, &[9000, 9007, 39_002, 9])
                .into_iter()
                .map(|(seq, kind, group)| {
                    (seq, kind, group, store.raw_record(seq).unwrap().unwrap())
                })
                .collect();
        let big = store.groups().into_iter().max_by_key(|g| g.count).unwrap();
        let checkpoints: Vec<(String, u32, String, Vec<u8>)> = engine
            .projections()
            .into_iter()
            .map(|p| {
                let bytes = store.raw_checkpoint(&p, big.no).unwrap().unwrap();
                (p, big.no, big.name.to_string(), bytes)
            })
            .collect();
        drop(groups);
        drop(engine);
        (records, checkpoints)
    };
    let file = std::fs::read(dir.path().join("data.mdb")).unwrap();
    let budget = (env_u64("HIGHWATER_CORRUPT_BYTES", 256) / 8).max(4) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut tried, mut detected) = (0, 0);
    let flip_copy = |value: &[u8], position: usize, rng: &mut ChaCha8Rng| {
        let found = occurrences(&file, value);
        assert!(!found.is_empty(), "value not found in data.mdb");
        let mut copy = file.clone();
        let mask = rng.random_range(1..=255u8);
        for offset in found {
            copy[offset + position] ^= mask;
        }
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("data.mdb"), copy).unwrap();
        target
    };
    for (seq, kind, group, value) in &records {
        for position in positions(value.len(), budget / records.len()) {
            let copy = flip_copy(value, position, &mut rng);
            let (engine, groups) = open_engine(
                copy.path(),
                relay,
                StoreOptions::default(),
                observer_options(),
            );
            engine.store().delete_checkpoints(None).unwrap();
            tried += 1;
            if matches!(engine.store().get(*seq), Err(StoreError::Corrupted(Corruption::Record { seq: s, .. })) if s == *seq)
            {
                detected += 1;
            }
            let folded = folding(&groups, *kind).values().any(|f| *f);
            match fingerprint(&groups, group, false) {
                Err(e) => assert!(folded && is_record_corruption(&e, *seq), "{e}"),
                // No projection folds this kind, so none reads the record.
                Ok(print) => assert!(!folded && print == expected[group]),
            }
            let other = expected.keys().find(|g| *g != group).unwrap();
            assert_eq!(
                &fingerprint(&groups, other, false).unwrap(),
                &expected[other]
            );
        }
    }
    for (projection, no, group, value) in &checkpoints {
        for position in positions(value.len(), budget / checkpoints.len()) {
            let copy = flip_copy(value, position, &mut rng);
            let (engine, groups) = open_engine(
                copy.path(),
                relay,
                StoreOptions::default(),
                observer_options(),
            );
            tried += 1;
            if matches!(
                engine.store().read_checkpoint(projection, *no),
                Err(StoreError::Corrupted(Corruption::Checkpoint { .. }))
            ) {
                detected += 1;
            }
            assert_eq!(
                &fingerprint(&groups, group, false).unwrap(),
                &expected[group]
            );
        }
    }
    eprintln!(
        "data.mdb corruption: {tried} single-byte flips in file copies tried, {detected} detected"
    );
    assert_eq!(tried, detected);
}
