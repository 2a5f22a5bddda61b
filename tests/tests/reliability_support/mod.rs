//! Shared helpers of the reliability tests (`reliability_*.rs`): signed NIP-29 events,
//! an engine over a directory, environment knobs, and the full consistency check run
//! after every crash, fault or load run.
//!
//! The check ([`verify_database`]) is the oracle of the whole suite: the log is dense
//! from 1, the group table agrees with the log, every checkpoint claims a watermark not
//! beyond its group's head and decodes to exactly the full replay of its group up to that
//! watermark, and for every group and projection the engine's served state (checkpoint
//! plus tail) equals a full replay (`Engine::verify_group`).

#![allow(
    dead_code,
    reason = "each reliability test file uses a part of the helpers"
)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use highwater_engine::{Engine, EngineOptions, Handle, Kinds, Projection};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{
    Event, EventBuilder, FinalizeEvent, Keys, Kind, PublicKey, SecretKey, Tag, Timestamp,
};

/// Reads a numeric knob from the environment (`default` when unset or unparsable).
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Deterministic keys: the secret key is `[n; 32]` (n ≥ 1).
pub(crate) fn key(n: u8) -> Keys {
    assert!(n > 0);
    Keys::new(SecretKey::from_slice(&[n; 32]).expect("valid secret key"))
}

/// A signed event of `kind` with `tags` and `content`, at `created_at`.
pub(crate) fn signed(
    keys: &Keys,
    kind: u16,
    tags: &[Vec<String>],
    content: &str,
    created_at: u64,
) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(
            tags.iter()
                .map(|t| Tag::parse(t.clone()).expect("non-empty tag")),
        )
        .custom_created_at(Timestamp::from_secs(created_at))
        .finalize(keys)
        .expect("signing")
}

/// A tag from string slices.
pub(crate) fn tag(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_owned()).collect()
}

/// Engine options for an observer: it never writes checkpoints itself.
pub(crate) fn observer_options() -> EngineOptions {
    EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    }
}

/// Opens the store in `dir` and an engine with the four NIP-29 projections over it.
pub(crate) fn open_engine(
    dir: &Path,
    relay: PublicKey,
    store_options: StoreOptions,
    options: EngineOptions,
) -> (Engine, Groups) {
    let store = Store::open(dir, store_options).expect("open the store");
    let mut builder = Engine::builder(store, options);
    let groups = Groups::register(&mut builder, Nip29Config::new(relay)).expect("register");
    (builder.build().expect("build the engine"), groups)
}

/// Whether a projection folds `kind`.
pub(crate) fn folds(kinds: &Kinds, kind: u16) -> bool {
    match kinds {
        Kinds::All => true,
        Kinds::Only(list) => list.contains(&kind),
    }
}

/// What [`verify_database`] looked at.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Verified {
    /// The log head (= number of events).
    pub(crate) head: u64,
    /// Groups in the log.
    pub(crate) groups: usize,
    /// Checkpoints found and checked against a replay up to their watermark.
    pub(crate) checkpoints: usize,
    /// (group, projection) pairs whose served state was compared with a full replay.
    pub(crate) pairs: usize,
}

/// The full consistency check of a database opened as `engine` (see the module docs).
/// `ids` receives every event id in the log with its sequence number, when given.
pub(crate) fn verify_database(
    engine: &Engine,
    groups: &Groups,
    mut ids: Option<&mut std::collections::HashMap<[u8; 32], u64>>,
) -> Verified {
    let store = engine.store();
    let head = store.head();
    // Dense 1..=head, and per-group counts and heads from the log itself.
    let mut expected = 1;
    let mut by_group: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    store
        .scan(1, |seq, event| {
            assert_eq!(seq, expected, "the log has a gap before {seq}");
            expected += 1;
            if let Some(ids) = ids.as_deref_mut() {
                ids.insert(*event.id(), seq);
            }
            if let Some(group) = event.group_id() {
                let entry = by_group.entry(group.to_owned()).or_default();
                entry.0 = seq;
                entry.1 += 1;
            }
            ControlFlow::Continue(())
        })
        .expect("scan the log");
    assert_eq!(
        expected - 1,
        head,
        "the log is not dense from 1 to its head"
    );
    let table: BTreeMap<String, (u64, u64)> = store
        .groups()
        .into_iter()
        .map(|g| (g.name.to_string(), (g.head, g.count)))
        .collect();
    assert_eq!(table, by_group, "the group table disagrees with the log");

    let mut verified = Verified {
        head,
        groups: table.len(),
        ..Verified::default()
    };
    verified.checkpoints += check_checkpoints(store, groups.membership_projection());
    verified.checkpoints += check_checkpoints(store, groups.roles_projection());
    verified.checkpoints += check_checkpoints(store, groups.metadata_projection());
    verified.checkpoints += check_checkpoints(store, groups.creator_projection());
    for group in table.keys() {
        for projection in engine.projections() {
            let diff = engine
                .verify_group(&projection, group)
                .expect("verify a group");
            assert!(
                diff.is_none(),
                "{projection}/{group}: served state differs from a full replay:\n{}",
                diff.unwrap_or_default()
            );
            verified.pairs += 1;
        }
    }
    verified
}

/// Every checkpoint of `handle`'s projection: readable, of this version, at a
/// watermark within its group's log, counting the group's events up to it, and
/// decoding to the replay of the group up to that watermark. Returns how many.
pub(crate) fn check_checkpoints<P: Projection>(store: &Store, handle: &Handle<P>) -> usize {
    let projection = handle.projection();
    let kinds = projection.kinds();
    let mut checked = 0;
    for group in store.groups() {
        let checkpoint = store
            .read_checkpoint(projection.name(), group.no)
            .unwrap_or_else(|e| {
                panic!(
                    "{}/{}: unreadable checkpoint: {e}",
                    projection.name(),
                    group.name
                )
            });
        let Some(checkpoint) = checkpoint else {
            continue;
        };
        let what = format!("checkpoint {}/{}", projection.name(), group.name);
        assert_eq!(checkpoint.version, projection.version(), "{what}: version");
        assert!(
            checkpoint.watermark <= group.head,
            "{what} claims watermark {} beyond the group's head {}",
            checkpoint.watermark,
            group.head
        );
        let decoded = projection
            .decode(&checkpoint.state)
            .unwrap_or_else(|e| panic!("{what}: does not decode: {e}"));
        // Fold the group up to the watermark, counting its events as we go.
        let mut state = projection.init();
        let mut events = 0;
        let mut at_watermark = checkpoint.watermark == 0;
        store
            .scan_group(
                group.no,
                0,
                |_| true,
                |seq, event| {
                    if seq > checkpoint.watermark {
                        return ControlFlow::Break(());
                    }
                    events += 1;
                    at_watermark |= seq == checkpoint.watermark;
                    if folds(&kinds, event.kind()) {
                        projection.apply(&mut state, &event).expect("fold");
                    }
                    ControlFlow::Continue(())
                },
            )
            .expect("scan a group");
        assert!(
            at_watermark,
            "{what}: watermark {} is not an event of the group",
            checkpoint.watermark
        );
        assert_eq!(checkpoint.events, events, "{what}: event count");
        assert_eq!(
            decoded, state,
            "{what}: state differs from the replay up to its watermark"
        );
        checked += 1;
    }
    checked
}

/// Appends the deterministic workload `spec` (real signed events) in batches; returns
/// the relay's public key.
pub(crate) fn populate(engine: &Engine, spec: &highwater_workload::WorkloadSpec) -> PublicKey {
    let mut batch = Vec::new();
    let flush = |batch: &mut Vec<Event>| {
        for outcome in engine.append_batch(batch).expect("append a batch") {
            outcome.expect("a generated event is accepted");
        }
        batch.clear();
    };
    highwater_workload::generate(spec, &|_| {}, &mut |event| {
        batch.push(event.clone());
        if batch.len() == 256 {
            flush(&mut batch);
        }
        Ok(())
    })
    .expect("generate");
    flush(&mut batch);
    spec.relay_keys().expect("relay keys").public_key()
}

/// The four projections' states of `group`, as served (or as replayed, with `oracle`),
/// in one comparable string.
pub(crate) fn fingerprint(
    groups: &Groups,
    group: &str,
    oracle: bool,
) -> Result<String, highwater_engine::EngineError> {
    fn one<P: Projection>(
        handle: &Handle<P>,
        group: &str,
        oracle: bool,
    ) -> Result<String, highwater_engine::EngineError> {
        if oracle {
            handle.replay(group).map(|s| format!("{s:?}"))
        } else {
            handle.read(group, |s| format!("{s:?}"))
        }
    }
    Ok([
        one(groups.membership_projection(), group, oracle)?,
        one(groups.roles_projection(), group, oracle)?,
        one(groups.metadata_projection(), group, oracle)?,
        one(groups.creator_projection(), group, oracle)?,
    ]
    .join("\n"))
}
