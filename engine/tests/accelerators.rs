//! The accelerators are observable: live folds at commit, eviction, the periodic
//! checkpoint worker, and the change tracking behind `Engine::checkpoint`. Each is
//! checked through `Handle::fold_counters` or the checkpoint table, never by timing.

mod engine_support;

use engine_support::{Tally, append_n, chat, headers, open, quiet};
use highwater_engine::{Engine, EngineError, EngineOptions, LoadState, Store};
use highwater_store::StoreOptions;
use nostr::prelude::Keys;

#[test]
fn commits_to_a_loaded_group_are_folded_live() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 2);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 2);
    let debug = format!("{tally:?}");
    assert!(
        debug.contains("Handle") && debug.contains("tally"),
        "{debug}"
    );
    let before = tally.fold_counters();
    assert_eq!(
        (before.loads, before.live_folds, before.tail_folds),
        (1, 0, 0)
    );
    append_n(&engine, &keys, "g", 2, 3);
    // Events of a kind the projection does not fold still advance the slot live.
    engine
        .append(&engine_support::message(&keys, "g", 7, "reaction"))
        .unwrap();
    // A group never read is not in memory: nothing is folded for it.
    append_n(&engine, &keys, "cold", 0, 2);
    let after = tally.fold_counters();
    assert_eq!(after.live_folds, 4);
    assert_eq!(
        tally.projection().applied(),
        5,
        "folded at commit, before any read"
    );
    let status = engine.group_status("tally", "g").unwrap();
    assert!(status.fully_loaded(), "{status:?}");
    assert_eq!(status.lag, 0);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 5);
    let c = tally.fold_counters();
    assert_eq!((c.loads, c.tail_folds, c.busy_skips), (1, 0, 0));
    let cold = engine.group_status("tally", "cold").unwrap();
    assert_eq!(
        (cold.state, cold.lag, cold.watermark),
        (LoadState::NotLoaded, 2, 0)
    );
}

#[test]
fn a_live_fold_that_fails_fails_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 2);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 2);
    engine
        .append(&engine_support::message(&keys, "g", 9, "boom"))
        .unwrap();
    let status = engine.group_status("tally", "g").unwrap();
    let failed = matches!(status.state, LoadState::Failed { .. });
    assert!(failed, "{status:?}");
    match tally.read("g", |n| *n) {
        Err(EngineError::Failed { seq, .. }) => assert_eq!(seq, engine.store().head()),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.status().unwrap()[0].failed, 1);
}

#[test]
fn loading_a_current_group_again_folds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    engine.load_group("g").unwrap();
    engine.load_group("g").unwrap();
    engine.load_group("absent").unwrap();
    let c = tally.fold_counters();
    assert_eq!((c.loads, c.tail_folds), (1, 0));
    assert_eq!(tally.projection().applied(), 3);
    assert_eq!(engine.status().unwrap()[0].loaded, 1);
}

#[test]
fn eviction_drops_states_and_the_next_read_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 3);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 3);
    engine.evict_all();
    let status = engine.status().unwrap();
    assert_eq!((status[0].name.as_str(), status[0].version), ("tally", 1));
    assert_eq!(engine.status().unwrap()[0].loaded, 0);
    assert_eq!(engine.status().unwrap()[0].lag, 3);
    assert_eq!(tally.read("g", |n| *n).unwrap(), 3);
    assert_eq!(tally.fold_counters().loads, 2);
    assert_eq!(tally.projection().applied(), 6);
}

#[test]
fn the_checkpoint_worker_writes_due_groups_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let every = 3;
    let total = 20;
    let no;
    {
        let (engine, tally) = open(
            dir.path(),
            1,
            EngineOptions {
                checkpoint_every: every,
                checkpoint_on_close: false,
            },
        );
        // "again" is checkpointed now (synchronously, at 2 events), then folds one
        // more: 1 event since, not due.
        append_n(&engine, &keys, "again", 0, 2);
        assert_eq!(tally.read("again", |n| *n).unwrap(), 2);
        assert_eq!(engine.checkpoint().unwrap(), 1);
        append_n(&engine, &keys, "again", 2, 1);
        for group in ["g", "few", "exact"] {
            engine.append(&chat(&keys, group, 0)).unwrap();
            assert_eq!(tally.read(group, |n| *n).unwrap(), 1);
        }
        append_n(&engine, &keys, "g", 1, total - 1);
        // 2 events since loading: not due. "exact" reaches 3: due.
        append_n(&engine, &keys, "few", 1, 1);
        append_n(&engine, &keys, "exact", 1, 2);
        no = engine.store().group_no("g").unwrap();
        // Dropping the engine joins the worker once it has written what was due.
    }
    let (engine, _tally) = open(dir.path(), 1, quiet());
    let store = engine.store();
    let found = headers(store);
    let exact = store.group("exact").unwrap();
    let again = store.group("again").unwrap();
    assert_eq!(
        found.len(),
        3,
        "only the groups past the threshold: {found:?}"
    );
    assert!(found.contains(&(exact.no, (1, exact.head, 3))), "{found:?}");
    assert!(
        found.contains(&(again.no, (1, again.head - 1, 2))),
        "{found:?}"
    );
    let (_, (version, watermark, events)) = *found.iter().find(|f| f.0 == no).unwrap();
    assert_eq!(version, 1);
    // The last due checkpoint covers at least the event that made it due.
    assert!(events > total as u64 - every, "{events}");
    assert!(watermark <= engine.store().head());
    let raw = engine
        .store()
        .read_checkpoint("tally", no)
        .unwrap()
        .unwrap();
    assert_eq!(
        raw.state,
        events.to_be_bytes().to_vec(),
        "state matches its count"
    );
}

#[test]
fn no_periodic_checkpoint_when_the_policy_is_off_or_not_reached() {
    for every in [0, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::generate();
        {
            let (engine, tally) = open(
                dir.path(),
                1,
                EngineOptions {
                    checkpoint_every: every,
                    checkpoint_on_close: false,
                },
            );
            engine.append(&chat(&keys, "g", 0)).unwrap();
            assert_eq!(tally.read("g", |n| *n).unwrap(), 1);
            append_n(&engine, &keys, "g", 1, 10);
        }
        let (engine, _tally) = open(dir.path(), 1, quiet());
        assert!(headers(engine.store()).is_empty(), "every = {every}");
    }
}

#[test]
fn checkpoint_writes_changed_groups_once() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "a", 0, 2);
    append_n(&engine, &keys, "b", 0, 2);
    assert_eq!(engine.checkpoint().unwrap(), 0, "nothing loaded");
    assert_eq!(tally.read("a", |n| *n).unwrap(), 2);
    assert_eq!(tally.read("b", |n| *n).unwrap(), 2);
    assert_eq!(engine.checkpoint().unwrap(), 2);
    assert_eq!(engine.checkpoint().unwrap(), 0, "unchanged since");
    append_n(&engine, &keys, "a", 2, 1);
    assert_eq!(engine.checkpoint().unwrap(), 1);
    let a = engine.store().group("a").unwrap();
    let found = headers(engine.store());
    assert!(found.contains(&(a.no, (1, a.head, 3))), "{found:?}");
    assert_eq!(engine.status().unwrap()[0].with_checkpoint, 2);
}

#[test]
fn a_read_only_engine_refuses_to_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, _tally) = open(dir.path(), 1, quiet());
        append_n(&engine, &keys, "g", 0, 2);
    }
    let store = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    let mut builder = Engine::builder(store, EngineOptions::default());
    let tally = builder.add(Tally::new(1)).unwrap();
    let engine = builder.build().unwrap();
    assert!(engine.checkpoint().is_err(), "even with nothing to write");
    assert_eq!(tally.read("g", |n| *n).unwrap(), 2);
    assert!(engine.checkpoint().is_err());
    drop((engine, tally));
    let (engine, _tally) = open(dir.path(), 1, quiet());
    assert!(
        headers(engine.store()).is_empty(),
        "no checkpoint at a read-only close"
    );
}

#[test]
fn projection_names_are_validated_at_registration() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, EngineOptions::default());
    let named = |name: &str| Named(name.to_owned());
    for bad in ["", &"x".repeat(65), "a b", "a.b", "é", "a/b"] {
        assert!(builder.add(named(bad)).is_err(), "{bad:?} accepted");
    }
    for good in [&"x".repeat(64) as &str, "a", "A_b-9", "z"] {
        assert!(builder.add(named(good)).is_ok(), "{good:?} refused");
    }
    assert!(builder.add(named("a")).is_err(), "duplicate accepted");
    let debug = format!("{builder:?}");
    assert!(
        debug.contains("EngineBuilder") && debug.contains('4'),
        "{debug}"
    );
    let engine = builder.build().unwrap();
    let debug = format!("{engine:?}");
    assert!(debug.contains("A_b-9"), "{debug}");
    assert_eq!(
        engine.projections(),
        vec!["x".repeat(64), "a".into(), "A_b-9".into(), "z".into()]
    );
    assert!(engine.group_status("nope", "g").is_err());
    assert_eq!(
        engine.group_status("a", "absent").unwrap().state,
        LoadState::Loaded
    );
}

/// A [`Tally`] under any name.
struct Named(String);

impl highwater_engine::Projection for Named {
    type State = u64;
    fn name(&self) -> &str {
        &self.0
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> highwater_engine::Kinds {
        highwater_engine::Kinds::All
    }
    fn init(&self) -> u64 {
        0
    }
    fn apply(
        &self,
        state: &mut u64,
        _event: &highwater_engine::EventRef<'_>,
    ) -> Result<(), highwater_engine::ApplyError> {
        *state += 1;
        Ok(())
    }
    fn encode(&self, state: &u64) -> Result<Vec<u8>, highwater_engine::CodecError> {
        Ok(state.to_be_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Result<u64, highwater_engine::CodecError> {
        Tally::new(1).decode(bytes)
    }
}

#[test]
fn warm_up_loads_the_most_recent_groups_in_every_projection() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tally) = open(dir.path(), 1, quiet());
    let keys = Keys::generate();
    append_n(&engine, &keys, "old", 0, 2);
    append_n(&engine, &keys, "new", 0, 3);
    assert_eq!(engine.warm_up(2, Some(1)).wait(), 1);
    let new = engine.group_status("tally", "new").unwrap();
    assert!(new.fully_loaded(), "{new:?}");
    let old = engine.group_status("tally", "old").unwrap();
    assert_eq!(old.state, LoadState::NotLoaded);
    assert_eq!(tally.fold_counters().loads, 1);
    assert_eq!(tally.read("new", |n| *n).unwrap(), 3);
    assert_eq!(
        tally.fold_counters().loads,
        1,
        "served from the warmed state"
    );
}

#[test]
fn reads_of_a_resolved_group_answer_folded_to_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, _) = open(dir.path(), 1, quiet());
        append_n(&engine, &keys, "g", 0, 3);
        append_n(&engine, &keys, "h", 0, 2);
    }
    // A fresh engine: nothing is loaded, so the read catches the group up to the head.
    let (engine, tally) = open(dir.path(), 1, quiet());
    let at = tally.resolve("g").unwrap();
    assert_eq!(at.head(), 3);
    assert_eq!(tally.fold_counters().loads, 0, "resolving loads nothing");
    assert_eq!(tally.read_resolved(at, |n| *n).unwrap(), 3);
    assert_eq!(tally.fold_counters().loads, 1);
    assert_eq!(tally.resolve("h").unwrap().head(), 5);
    // A group with no event: the initial state, at head 0.
    let none = tally.resolve("nothing").unwrap();
    assert_eq!(none.head(), 0);
    assert_eq!(tally.read_resolved(none, |n| *n).unwrap(), 0);
    // After later commits a resolved group still answers, at least at its head.
    append_n(&engine, &keys, "g", 3, 2);
    assert_eq!(tally.read_resolved(at, |n| *n).unwrap(), 5);
    // A group resolved by an engine over another store is refused loudly.
    let other_dir = tempfile::tempdir().unwrap();
    let (other, other_tally) = open(other_dir.path(), 1, quiet());
    append_n(&other, &keys, "g", 0, 1);
    let foreign = other_tally.resolve("g").unwrap();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tally.read_resolved(foreign, |n| *n)
    }));
    assert!(refused.is_err(), "read {refused:?}");
    // Another handle of the same store resolves the same way.
    let again = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(again.same_store(engine.store()));
    assert!(!again.same_store(other.store()));
}

/// Holds one reference to a token while it has folded an event: the token's count
/// of references tells how many folded states are alive.
struct Holder(std::sync::Arc<()>);

impl highwater_engine::Projection for Holder {
    type State = Option<std::sync::Arc<()>>;
    fn name(&self) -> &'static str {
        "holder"
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> highwater_engine::Kinds {
        highwater_engine::Kinds::All
    }
    fn init(&self) -> Self::State {
        None
    }
    fn apply(
        &self,
        state: &mut Self::State,
        _: &highwater_engine::EventRef<'_>,
    ) -> Result<(), highwater_engine::ApplyError> {
        *state = Some(self.0.clone());
        Ok(())
    }
    fn encode(&self, state: &Self::State) -> Result<Vec<u8>, highwater_engine::CodecError> {
        Ok(vec![u8::from(state.is_some())])
    }
    fn decode(&self, bytes: &[u8]) -> Result<Self::State, highwater_engine::CodecError> {
        Ok((bytes == [1]).then(|| self.0.clone()))
    }
}

#[test]
fn eviction_drops_the_states_nobody_holds_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, quiet());
    let token = std::sync::Arc::new(());
    let holder = builder.add(Holder(token.clone())).unwrap();
    let engine = builder.build().unwrap();
    let keys = Keys::generate();
    append_n(&engine, &keys, "g", 0, 2);
    append_n(&engine, &keys, "h", 0, 1);
    assert!(holder.read("g", Option::is_some).unwrap());
    assert!(holder.read("h", Option::is_some).unwrap());
    // This test's reference, the projection's, and two loaded states.
    assert_eq!(std::sync::Arc::strong_count(&token), 4);
    engine.evict_all();
    assert_eq!(
        std::sync::Arc::strong_count(&token),
        2,
        "both states dropped"
    );
    // Evicting again drops nothing more and loses nothing.
    engine.evict_all();
    assert!(holder.read("g", Option::is_some).unwrap());
    assert_eq!(std::sync::Arc::strong_count(&token), 3);
}
