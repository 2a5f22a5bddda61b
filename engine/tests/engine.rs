//! Differential tests of the engine: every read equals a full replay from sequence 1,
//! whatever mix of appends, reads, checkpoints, deletions, reopens and rebuilds came
//! before. The reference model is a `BTreeMap` folded in append order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineError, EngineOptions, EventRef, Handle, Kinds, LoadState,
    Projection, decode_rkyv, encode_rkyv,
};
use highwater_store::{AppendOutcome, Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use proptest::prelude::*;

/// Order-sensitive digest of the folded events of kinds 1, 9 and 9000 (kind 7 is
/// stored and indexed but not folded, so watermarks must move past it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
struct Digest {
    count: u64,
    hash: u64,
}

impl Digest {
    fn fold(&mut self, id: &[u8; 32]) {
        self.count += 1;
        let word = u64::from_le_bytes(id[..8].try_into().unwrap());
        self.hash = self.hash.wrapping_mul(0x100_0000_01b3).wrapping_add(word);
    }
}

struct DigestProjection {
    version: u64,
}

impl Projection for DigestProjection {
    type State = Digest;
    fn name(&self) -> &'static str {
        "digest"
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![1, 9, 9000])
    }
    fn init(&self) -> Digest {
        Digest::default()
    }
    fn apply(&self, state: &mut Digest, event: &EventRef<'_>) -> Result<(), ApplyError> {
        if event.content() == "boom" {
            return Err(ApplyError("refusing to fold boom".into()));
        }
        assert!(
            event.content() != "panic",
            "the projection panicked on purpose"
        );
        state.fold(event.id());
        Ok(())
    }
    fn encode(&self, state: &Digest) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Digest, CodecError> {
        decode_rkyv(bytes)
    }
}

fn folded(kind: u16) -> bool {
    [1, 9, 9000].contains(&kind)
}

const GROUPS: usize = 200;

/// A pool of signed events, made once: signing dominates the cost of these tests.
/// Group 0 and 1 are heavy (about a third of the pool), the rest share the remainder.
fn pool() -> &'static [(usize, Event)] {
    static POOL: OnceLock<Vec<(usize, Event)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let keys: Vec<Keys> = (0..4).map(|_| Keys::generate()).collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        (0..4_000)
            .map(|i| {
                let r = next();
                let group = if r % 3 == 0 {
                    (r / 3 % 2) as usize
                } else {
                    (r / 3 % GROUPS as u64) as usize
                };
                let kind = [1, 9, 9000, 7][(r >> 20) as usize % 4];
                let event = EventBuilder::new(Kind::Custom(kind), format!("event {i}"))
                    .tag(Tag::parse(["h", &format!("g{group}")]).unwrap())
                    .custom_created_at(Timestamp::from_secs(1_700_000_000 + (r >> 40) % 100))
                    .finalize(&keys[i % keys.len()])
                    .unwrap();
                (group, event)
            })
            .collect()
    })
}

struct Harness {
    engine: Engine,
    digest: Handle<DigestProjection>,
}

fn open(dir: &Path, checkpoint_every: u64, version: u64) -> Harness {
    let store = Store::open(
        dir,
        StoreOptions {
            trusted: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut builder = Engine::builder(
        store,
        EngineOptions {
            checkpoint_every,
            checkpoint_on_close: true,
        },
    );
    let digest = builder.add(DigestProjection { version }).unwrap();
    Harness {
        engine: builder.build().unwrap(),
        digest,
    }
}

/// The reference: fold the appended events per group, in append order.
#[derive(Default)]
struct Model {
    groups: BTreeMap<usize, Digest>,
    seen: std::collections::HashSet<[u8; 32]>,
}

impl Model {
    fn append(&mut self, group: usize, event: &Event) -> bool {
        if !self.seen.insert(event.id.to_bytes()) {
            return false;
        }
        let digest = self.groups.entry(group).or_default();
        if folded(event.kind.as_u16()) {
            digest.fold(event.id.as_bytes());
        }
        true
    }

    fn get(&self, group: usize) -> Digest {
        self.groups.get(&group).copied().unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    AppendBatch(usize, usize),
    Read(usize),
    Checkpoint,
    DeleteCheckpoints,
    Reopen,
    Evict,
    Rebuild,
    RebuildGroup(usize),
    WarmUpPart(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4_000usize).prop_map(Op::Append),
        3 => (0..4_000usize, 1..300usize).prop_map(|(a, n)| Op::AppendBatch(a, n)),
        6 => (0..GROUPS).prop_map(Op::Read),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::DeleteCheckpoints),
        1 => Just(Op::Reopen),
        1 => Just(Op::Evict),
        1 => Just(Op::Rebuild),
        1 => (0..GROUPS).prop_map(Op::RebuildGroup),
        1 => (0..GROUPS).prop_map(Op::WarmUpPart),
    ]
}

fn group_name(g: usize) -> String {
    format!("g{g}")
}

fn check_all(h: &Harness, model: &Model) {
    for g in 0..GROUPS {
        let name = group_name(g);
        let served = h.digest.read(&name, |d| *d).unwrap();
        assert_eq!(
            served,
            model.get(g),
            "group {name}: served state differs from the model"
        );
        assert_eq!(
            h.digest.replay(&name).unwrap(),
            served,
            "group {name}: replay differs"
        );
        let status = h.engine.group_status("digest", &name).unwrap();
        assert!(
            status.fully_loaded(),
            "group {name} answered but is not fully loaded: {status:?}"
        );
    }
}

fn run(ops: Vec<Op>, checkpoint_every: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut h = open(dir.path(), checkpoint_every, 1);
    let mut model = Model::default();
    let pool = pool();
    for op in ops {
        match op {
            Op::Append(i) => {
                let (g, event) = &pool[i];
                let outcome = h.engine.append(event).unwrap();
                let appended = matches!(outcome, AppendOutcome::Appended(_));
                assert_eq!(model.append(*g, event), appended);
                // Read-your-writes: the next read of the group includes the event.
                assert_eq!(
                    h.digest.read(&group_name(*g), |d| *d).unwrap(),
                    model.get(*g)
                );
            }
            Op::AppendBatch(start, n) => {
                let slice = &pool[start..(start + n).min(pool.len())];
                let events: Vec<Event> = slice.iter().map(|(_, e)| e.clone()).collect();
                let outcomes = h.engine.append_batch(&events).unwrap();
                for ((g, event), outcome) in slice.iter().zip(outcomes) {
                    let appended = matches!(outcome.unwrap(), AppendOutcome::Appended(_));
                    assert_eq!(model.append(*g, event), appended);
                }
            }
            Op::Read(g) => {
                assert_eq!(
                    h.digest.read(&group_name(g), |d| *d).unwrap(),
                    model.get(g),
                    "read of g{g}"
                );
            }
            Op::Checkpoint => {
                h.engine.checkpoint().unwrap();
            }
            Op::DeleteCheckpoints => {
                h.engine.store().delete_checkpoints(None).unwrap();
            }
            Op::Reopen => {
                drop(h);
                h = open(dir.path(), checkpoint_every, 1);
            }
            Op::Evict => h.engine.evict_all(),
            Op::Rebuild => {
                h.engine.rebuild(Some("digest"), None).unwrap();
            }
            Op::RebuildGroup(g) => {
                h.engine.rebuild(None, Some(&group_name(g))).unwrap();
            }
            Op::WarmUpPart(n) => {
                h.engine.warm_up(2, Some(n)).wait();
            }
        }
    }
    check_all(&h, &model);
    // And once more from nothing but the log.
    h.engine.store().delete_checkpoints(None).unwrap();
    h.engine.evict_all();
    check_all(&h, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, .. ProptestConfig::default() })]

    #[test]
    fn every_path_equals_full_replay(ops in proptest::collection::vec(op(), 1..60), every in prop_oneof![Just(0u64), Just(3), Just(50)]) {
        run(ops, every);
    }
}

#[test]
fn large_log_with_heavy_groups_equals_replay() {
    let mut ops: Vec<Op> = (0..4_000)
        .step_by(250)
        .map(|i| Op::AppendBatch(i, 250))
        .collect();
    ops.insert(5, Op::Checkpoint);
    ops.insert(9, Op::Reopen);
    ops.insert(12, Op::WarmUpPart(50));
    ops.insert(14, Op::Evict);
    run(ops, 100);
}

#[test]
fn partial_warm_up_and_stale_checkpoints_answer_like_replay() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool();
    let mut model = Model::default();
    {
        let h = open(dir.path(), 0, 1);
        let first: Vec<Event> = pool[..2_000].iter().map(|(_, e)| e.clone()).collect();
        h.engine.append_batch(&first).unwrap();
        for (g, e) in &pool[..2_000] {
            model.append(*g, e);
        }
        // Only some groups get checkpoints, then the log moves past them.
        for g in (0..GROUPS).step_by(3) {
            h.engine.load_group(&group_name(g)).unwrap();
        }
        h.engine.checkpoint().unwrap();
        let rest: Vec<Event> = pool[2_000..].iter().map(|(_, e)| e.clone()).collect();
        h.engine.store().append_batch(&rest).unwrap();
        for (g, e) in &pool[2_000..] {
            model.append(*g, e);
        }
        h.engine.evict_all();
        drop(h);
    }
    let h = open(dir.path(), 0, 1);
    // A warm-up stopped part-way leaves some groups loaded, some not.
    let warm = h.engine.warm_up(1, None);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let loaded = warm.stop();
    assert!(loaded <= GROUPS);
    let statuses = h.engine.status().unwrap();
    assert_eq!(statuses[0].groups, GROUPS);
    assert!(
        statuses[0].with_checkpoint > 0,
        "some groups have checkpoints"
    );
    check_all(&h, &model);
}

#[test]
fn corrupt_and_foreign_version_checkpoints_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool();
    let mut model = Model::default();
    let events: Vec<Event> = pool[..1_000].iter().map(|(_, e)| e.clone()).collect();
    {
        let h = open(dir.path(), 0, 1);
        h.engine.append_batch(&events).unwrap();
        for (g, e) in &pool[..1_000] {
            model.append(*g, e);
        }
        h.engine.rebuild(None, None).unwrap();
        let store = h.engine.store();
        // Flip one byte in every other checkpoint.
        for (i, no) in store
            .checkpointed_groups("digest")
            .unwrap()
            .into_iter()
            .enumerate()
        {
            if i % 2 == 0 {
                let mut bytes = store.raw_checkpoint("digest", no).unwrap().unwrap();
                let at = bytes.len() / 2;
                bytes[at] ^= 0x55;
                store.put_raw_checkpoint("digest", no, bytes).unwrap();
            }
        }
        h.engine.evict_all();
        check_all(&h, &model);
    }
    // Version 2 must ignore every version-1 checkpoint and rebuild on demand.
    let h = open(dir.path(), 0, 2);
    check_all(&h, &model);
}

#[test]
fn a_failing_fold_fails_only_its_group_and_names_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path(), 0, 1);
    let keys = Keys::generate();
    let make = |group: &str, content: &str| {
        EventBuilder::new(Kind::Custom(9), content)
            .tag(Tag::parse(["h", group]).unwrap())
            .finalize(&keys)
            .unwrap()
    };
    h.engine.append(&make("bad", "fine")).unwrap();
    h.engine.append(&make("good", "fine")).unwrap();
    assert_eq!(h.digest.read("bad", |d| d.count).unwrap(), 1);
    // Live fold (group loaded) and catch-up fold (group not loaded) both fail cleanly.
    let seq = h.engine.append(&make("bad", "boom")).unwrap().seq();
    let seq_panic = h.engine.append(&make("other", "panic")).unwrap().seq();
    h.engine.append(&make("good", "fine again")).unwrap();
    match h.digest.read("bad", |d| *d) {
        Err(EngineError::Failed { seq: at, group, .. }) => {
            assert_eq!(at, seq);
            assert_eq!(group, "bad");
        }
        other => panic!("expected a failure naming the event, got {other:?}"),
    }
    match h.digest.read("other", |d| *d) {
        Err(EngineError::Failed {
            seq: at, message, ..
        }) => {
            assert_eq!(at, seq_panic);
            assert!(message.contains("panicked"), "{message}");
        }
        other => panic!("expected a failure naming the event, got {other:?}"),
    }
    assert_eq!(h.digest.read("good", |d| d.count).unwrap(), 2);
    let status = h.engine.group_status("digest", "bad").unwrap();
    let failed_at_seq = matches!(status.state, LoadState::Failed { seq: s, .. } if s == seq);
    assert!(failed_at_seq, "{status:?}");
    assert_eq!(h.engine.status().unwrap()[0].failed, 2);
}

#[test]
fn concurrent_readers_race_an_appender_with_read_your_writes() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(open(dir.path(), 25, 1));
    let pool = pool();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (h, done) = (h.clone(), done.clone());
            std::thread::spawn(move || {
                let mut last = vec![0u64; GROUPS];
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for g in (r..GROUPS).step_by(7) {
                        let count = h.digest.read(&group_name(g), |d| d.count).unwrap();
                        assert!(count >= last[g], "group g{g} went backwards");
                        last[g] = count;
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    let mut model = Model::default();
    for (g, event) in &pool[..1_500] {
        h.engine.append(event).unwrap();
        model.append(*g, event);
        assert_eq!(
            h.digest.read(&group_name(*g), |d| *d).unwrap(),
            model.get(*g)
        );
    }
    // Read-your-writes from another thread: appended here, read there.
    let (g, event) = &pool[1_500];
    h.engine.append(event).unwrap();
    model.append(*g, event);
    let expected = model.get(*g);
    let h2 = h.clone();
    let name = group_name(*g);
    assert_eq!(
        std::thread::spawn(move || h2.digest.read(&name, |d| *d).unwrap())
            .join()
            .unwrap(),
        expected
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    check_all(&h, &model);
}

#[test]
fn subscribers_see_every_commit_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path(), 0, 1);
    let rx = h.engine.subscribe();
    let events: Vec<Event> = pool()[..100].iter().map(|(_, e)| e.clone()).collect();
    h.engine.append_batch(&events).unwrap();
    let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().unwrap()).collect();
    assert_eq!(got.len(), 100);
    for (i, (note, event)) in got.iter().zip(&events).enumerate() {
        assert_eq!(note.seq, i as u64 + 1);
        assert_eq!(&note.event, event);
    }
}
