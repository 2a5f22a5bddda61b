//! Relay-wide projections: checkpoint plus tail equals a full fold, a cold open folds
//! only the tail, checkpoints of another version or that fail validation are ignored,
//! this process's commits fold live, and a read inside a read closure still answers.

use std::path::Path;

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Kinds, LoadState, RelayWideHandle,
    RelayWideProjection, Store, decode_rkyv, encode_rkyv,
};
use highwater_store::StoreOptions;
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};
use proptest::prelude::*;

/// One folded event, as the fold saw it.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Seen {
    seq: u64,
    kind: u16,
    group: Option<String>,
    content: String,
    /// The version of the fold that took it: a checkpoint of another version, if it
    /// were trusted, would show up as a difference from the replay.
    version: u64,
}

/// Every event of kinds 5 and 7 in the log, in log order (any group, or none).
struct Journal {
    version: u64,
}

impl RelayWideProjection for Journal {
    type State = Vec<Seen>;

    fn name(&self) -> &'static str {
        "journal"
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![5, 7])
    }

    fn init(&self) -> Vec<Seen> {
        Vec::new()
    }

    fn apply(
        &self,
        state: &mut Vec<Seen>,
        seq: u64,
        event: &EventRef<'_>,
    ) -> Result<(), ApplyError> {
        if event.content() == "boom" {
            return Err(ApplyError("refusing boom".into()));
        }
        state.push(Seen {
            seq,
            kind: event.kind(),
            group: event.group_id().map(str::to_owned),
            content: event.content().to_owned(),
            version: self.version,
        });
        Ok(())
    }

    fn encode(&self, state: &Vec<Seen>) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<Seen>, CodecError> {
        decode_rkyv(bytes)
    }
}

fn quiet() -> EngineOptions {
    EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    }
}

fn open_with(
    dir: &Path,
    version: u64,
    store: StoreOptions,
    options: EngineOptions,
) -> (Engine, RelayWideHandle<Journal>) {
    let store = Store::open(dir, store).unwrap();
    let mut builder = Engine::builder(store, options);
    let journal = builder.add_relay_wide(Journal { version }).unwrap();
    (builder.build().unwrap(), journal)
}

fn open(dir: &Path, version: u64) -> (Engine, RelayWideHandle<Journal>) {
    open_with(dir, version, StoreOptions::default(), quiet())
}

/// An event of `kind`, in `group` when given.
fn event(keys: &Keys, kind: u16, group: Option<&str>, content: &str) -> Event {
    let mut builder = EventBuilder::new(Kind::from(kind), content);
    if let Some(g) = group {
        builder = builder.tag(Tag::parse(["h", g]).unwrap());
    }
    builder.finalize(keys).unwrap()
}

/// Appends `n` events cycling through kinds 5, 7, 9 and 1 and three groups (kind 1
/// in none), numbered from `from`.
fn append_mix(engine: &Engine, keys: &Keys, from: usize, n: usize) {
    for i in from..from + n {
        let kind = [5, 7, 9, 1][i % 4];
        let group = (kind != 1).then(|| ["a", "b", "c"][i % 3]);
        engine
            .append(&event(keys, kind, group, &format!("event {i}")))
            .unwrap();
    }
}

#[test]
fn a_cold_open_reads_the_checkpoint_and_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, journal) = open(dir.path(), 1);
        append_mix(&engine, &keys, 0, 40);
        assert_eq!(journal.read(Vec::len).unwrap(), 20);
        assert_eq!(engine.checkpoint().unwrap(), 1);
        append_mix(&engine, &keys, 40, 12);
    }
    // Read-only: nothing is loaded at open, the first read loads checkpoint + tail.
    let (engine, journal) = open_with(dir.path(), 1, StoreOptions::read_only(), quiet());
    assert_eq!(journal.counters().loads, 0);
    let served = journal.read(Clone::clone).unwrap();
    assert_eq!(served, journal.replay().unwrap());
    assert_eq!(served.len(), 26);
    let counters = journal.counters();
    assert_eq!((counters.loads, counters.checkpoint_loads), (1, 1));
    assert_eq!(
        counters.records_scanned, 12,
        "only the records after the checkpoint"
    );
    let status = engine.relay_wide_status().unwrap();
    assert_eq!(status[0].checkpoint, Some(40));
    assert_eq!((status[0].watermark, status[0].head), (52, 52));
    assert_eq!(engine.verify_relay_wide("journal").unwrap(), None);
}

#[test]
fn a_writable_open_loads_at_build_and_folds_its_own_commits_live() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, _journal) = open(dir.path(), 1);
        append_mix(&engine, &keys, 0, 20);
        engine.checkpoint().unwrap();
    }
    let (engine, journal) = open(dir.path(), 1);
    let loaded = journal.counters();
    assert_eq!(
        (
            loaded.loads,
            loaded.checkpoint_loads,
            loaded.records_scanned
        ),
        (1, 1, 0)
    );
    append_mix(&engine, &keys, 20, 20);
    assert_eq!(journal.read(Vec::len).unwrap(), 20);
    let after = journal.counters();
    assert_eq!(after.live_folds, 10);
    assert_eq!(
        (after.records_scanned, after.tail_folds),
        (0, 0),
        "nothing left for the read"
    );
    assert_eq!(
        journal.read(Clone::clone).unwrap(),
        journal.replay().unwrap()
    );
}

#[test]
fn a_checkpoint_of_another_version_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, _journal) = open(dir.path(), 1);
        append_mix(&engine, &keys, 0, 30);
        assert_eq!(engine.checkpoint().unwrap(), 1);
    }
    let (_engine, journal) = open(dir.path(), 2);
    let served = journal.read(Clone::clone).unwrap();
    assert!(
        served.iter().all(|s| s.version == 2),
        "folded by version 2, not decoded"
    );
    assert_eq!(served, journal.replay().unwrap());
    let counters = journal.counters();
    assert_eq!((counters.loads, counters.checkpoint_loads), (1, 0));
    assert_eq!(counters.records_scanned, 30, "the whole log");
}

#[test]
fn a_corrupted_or_undecodable_checkpoint_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let (engine, _journal) = open(dir.path(), 1);
        append_mix(&engine, &keys, 0, 16);
        engine.checkpoint().unwrap();
        let raw = engine
            .store()
            .raw_checkpoint("journal", highwater_engine::RELAY_WIDE_GROUP)
            .unwrap()
            .expect("written");
        let mut flipped = raw.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        engine
            .store()
            .put_raw_checkpoint("journal", highwater_engine::RELAY_WIDE_GROUP, flipped)
            .unwrap();
    }
    let (_engine, journal) = open(dir.path(), 1);
    assert_eq!(
        journal.read(Clone::clone).unwrap(),
        journal.replay().unwrap()
    );
    assert_eq!(journal.counters().checkpoint_loads, 0);
}

#[test]
fn a_read_inside_a_read_closure_and_an_append_there_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let (engine, journal) = open(dir.path(), 1);
    append_mix(&engine, &keys, 0, 8);
    // The closure appends while it holds the state: the writer skips the live fold,
    // and the nested read answers from a private copy that includes the append.
    let (outer, inner) = journal
        .read(|outer| {
            engine
                .append(&event(&keys, 5, Some("a"), "inside"))
                .unwrap();
            (outer.len(), journal.read(Vec::len).unwrap())
        })
        .unwrap();
    assert_eq!((outer, inner), (4, 5));
    assert_eq!(journal.counters().busy_skips, 1);
    assert_eq!(journal.read(Vec::len).unwrap(), 5);
    assert_eq!(journal.counters().tail_folds, 1);
}

#[test]
fn a_failed_fold_serves_errors_until_rebuilt_and_rebuild_writes_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let (engine, journal) = open(dir.path(), 1);
    append_mix(&engine, &keys, 0, 8);
    engine.append(&event(&keys, 7, Some("a"), "boom")).unwrap();
    assert!(journal.read(Vec::len).is_err());
    assert!(matches!(
        engine.relay_wide_status().unwrap()[0].state,
        LoadState::Failed { seq: 9, .. }
    ));
    // A rebuild folds the same log: it fails the same way and writes nothing.
    let reports = engine.rebuild(Some("journal"), None).unwrap();
    assert_eq!(reports[0].failed, 1);
    assert_eq!(engine.relay_wide_status().unwrap()[0].checkpoint, None);
    // Served and replayed fail alike: that is agreement, not a difference.
    assert_eq!(engine.verify_relay_wide("journal").unwrap(), None);

    let other = tempfile::tempdir().unwrap();
    let (engine, journal) = open(other.path(), 1);
    append_mix(&engine, &keys, 0, 10);
    let reports = engine.rebuild(None, None).unwrap();
    let report = reports.iter().find(|r| r.projection == "journal").unwrap();
    assert_eq!((report.events, report.failed), (10, 0));
    assert_eq!(engine.relay_wide_status().unwrap()[0].checkpoint, Some(10));
    assert_eq!(journal.read(Vec::len).unwrap(), 6);
}

#[test]
fn names_are_unique_across_per_group_and_relay_wide_projections() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, quiet());
    builder.add_relay_wide(Journal { version: 1 }).unwrap();
    assert!(builder.add_relay_wide(Journal { version: 2 }).is_err());
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    /// Append an event of this kind, in this group (or none).
    Append(u16, Option<u8>),
    /// Write checkpoints now.
    Checkpoint,
    /// Close and reopen the engine (as a restart).
    Reopen,
    /// Drop the in-memory state.
    Evict,
    /// Read (and compare with a replay).
    Read,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (prop::sample::select(vec![1u16, 5, 7, 9]), prop::option::of(0u8..3))
            .prop_map(|(k, g)| Step::Append(k, if k == 1 { None } else { Some(g.unwrap_or(0)) })),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Reopen),
        1 => Just(Step::Evict),
        2 => Just(Step::Read),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever mix of live folds, checkpoints, restarts and evictions produced it, the
    /// served state equals a full replay; and a cold open over the last checkpoint
    /// reads only the records after it.
    #[test]
    fn checkpoint_plus_tail_equals_a_full_fold(steps in prop::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::generate();
        let options = EngineOptions { checkpoint_every: 3, checkpoint_on_close: true };
        let (mut engine, mut journal) = open_with(dir.path(), 1, StoreOptions::default(), options.clone());
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Append(kind, group) => {
                    let group = group.map(|g| ["a", "b", "c"][usize::from(g)]);
                    engine.append(&event(&keys, *kind, group, &format!("{i}"))).unwrap();
                }
                Step::Checkpoint => { engine.checkpoint().unwrap(); }
                Step::Reopen => {
                    drop((engine, journal));
                    (engine, journal) = open_with(dir.path(), 1, StoreOptions::default(), options.clone());
                }
                Step::Evict => engine.evict_all(),
                Step::Read => {
                    prop_assert_eq!(journal.read(Clone::clone).unwrap(), journal.replay().unwrap());
                }
            }
        }
        prop_assert_eq!(journal.read(Clone::clone).unwrap(), journal.replay().unwrap());
        engine.checkpoint().unwrap();
        let head = engine.store().head();
        let checkpointed = engine.relay_wide_status().unwrap()[0].checkpoint;
        prop_assert_eq!(checkpointed, (head > 0).then_some(head));
        drop((engine, journal));
        let (_engine, journal) = open_with(dir.path(), 1, StoreOptions::read_only(), quiet());
        prop_assert_eq!(journal.read(Clone::clone).unwrap(), journal.replay().unwrap());
        prop_assert_eq!(journal.counters().records_scanned, 0);
    }
}
