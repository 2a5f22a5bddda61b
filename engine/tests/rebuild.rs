//! Full rebuilds on several threads give exactly what a rebuild on one thread gives:
//! the same checkpoints byte for byte (state, watermark, event count), the same served
//! states and failures, the same reports, for every projection of a random log of many
//! groups (events of kinds nobody folds, events of no group, and folds that fail
//! included). Each is also checked against a full replay of the group.

use std::sync::OnceLock;

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Kinds, Projection, RebuildOptions,
    RebuildWalk, decode_rkyv, encode_rkyv,
};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use proptest::prelude::*;

/// Order-sensitive digest of kinds 1 and 9000; refuses an event whose content is
/// "boom", so its group fails.
struct Digest;

impl Projection for Digest {
    type State = (u64, u64);
    fn name(&self) -> &'static str {
        "digest"
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![1, 9000])
    }
    fn init(&self) -> (u64, u64) {
        (0, 0)
    }
    fn apply(&self, state: &mut (u64, u64), event: &EventRef<'_>) -> Result<(), ApplyError> {
        if event.content() == "boom" {
            return Err(ApplyError("refusing boom".into()));
        }
        let word = u64::from_le_bytes(event.id()[..8].try_into().unwrap());
        state.0 += 1;
        state.1 = state.1.wrapping_mul(0x100_0000_01b3).wrapping_add(word);
        Ok(())
    }
    fn encode(&self, state: &(u64, u64)) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }
    fn decode(&self, bytes: &[u8]) -> Result<(u64, u64), CodecError> {
        decode_rkyv(bytes)
    }
}

/// Every event's kind and `created_at`, in fold order.
struct Trail;

impl Projection for Trail {
    type State = Vec<(u16, u64)>;
    fn name(&self) -> &'static str {
        "trail"
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> Kinds {
        Kinds::All
    }
    fn init(&self) -> Vec<(u16, u64)> {
        Vec::new()
    }
    fn apply(&self, state: &mut Vec<(u16, u64)>, event: &EventRef<'_>) -> Result<(), ApplyError> {
        state.push((event.kind(), event.created_at()));
        Ok(())
    }
    fn encode(&self, state: &Vec<(u16, u64)>) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<(u16, u64)>, CodecError> {
        decode_rkyv(bytes)
    }
}

/// Folds only kind 9 (chat), which the others skip, and counts it.
struct Chat;

impl Projection for Chat {
    type State = u64;
    fn name(&self) -> &'static str {
        "chat"
    }
    fn version(&self) -> u64 {
        3
    }
    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![9])
    }
    fn init(&self) -> u64 {
        0
    }
    fn apply(&self, state: &mut u64, _: &EventRef<'_>) -> Result<(), ApplyError> {
        *state += 1;
        Ok(())
    }
    fn encode(&self, state: &u64) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }
    fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
        decode_rkyv(bytes)
    }
}

const GROUPS: u64 = 24;
const POOL: usize = 600;

/// Signed events, made once. Groups 0 and 1 are heavy; kind 7 is folded by `trail`
/// only; a few events belong to no group; a few say "boom".
fn pool() -> &'static [Event] {
    static POOL_EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    POOL_EVENTS.get_or_init(|| {
        let keys = Keys::generate();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        (0..POOL)
            .map(|i| {
                let r = next();
                let group = if r % 3 == 0 {
                    r / 3 % 2
                } else {
                    r / 3 % GROUPS
                };
                let kind = [1, 9, 9000, 7][(r >> 20) as usize % 4];
                let content = if (r >> 30) % 97 == 0 {
                    "boom".to_owned()
                } else {
                    format!("event {i}")
                };
                let mut builder = EventBuilder::new(Kind::Custom(kind), content)
                    .custom_created_at(Timestamp::from_secs(1_700_000_000 + (r >> 40) % 1_000));
                if kind != 1 || (r >> 50) % 8 != 0 {
                    builder = builder.tag(Tag::parse(["h", &format!("g{group}")]).unwrap());
                }
                builder.finalize(&keys).unwrap()
            })
            .collect()
    })
}

/// A stored checkpoint: version, watermark, events, encoded state.
type Stored = (u64, u64, u64, Vec<u8>);

/// Everything a rebuild leaves behind, per projection and group: the checkpoint
/// (version, watermark, events, encoded state), whether the group serves an error,
/// and the reports without their timings.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    checkpoints: Vec<(String, String, Option<Stored>)>,
    served: Vec<(String, String, Result<String, String>)>,
    reports: Vec<(String, u64, usize, usize)>,
}

fn rebuild(engine: &Engine, projection: Option<&str>, options: &RebuildOptions) -> Outcome {
    let reports = engine
        .rebuild_with(projection, None, options)
        .unwrap()
        .into_iter()
        .map(|r| (r.projection, r.events, r.groups, r.failed))
        .collect();
    let store = engine.store();
    let mut checkpoints = Vec::new();
    for name in engine.projections() {
        for g in store.groups() {
            let c = store.read_checkpoint(&name, g.no).unwrap();
            checkpoints.push((
                name.clone(),
                g.name.to_string(),
                c.map(|c| (c.version, c.watermark, c.events, c.state)),
            ));
        }
    }
    let served = store
        .groups()
        .iter()
        .flat_map(|g| {
            engine.projections().into_iter().map(|name| {
                let status = engine
                    .group_status(&name, &g.name)
                    .map(|s| format!("{:?} at {}", s.state, s.watermark))
                    .map_err(|e| e.to_string());
                (name, g.name.to_string(), status)
            })
        })
        .collect();
    Outcome {
        checkpoints,
        served,
        reports,
    }
}

fn open(dir: &std::path::Path) -> (Engine, [String; 3]) {
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
            checkpoint_every: 0,
            checkpoint_on_close: false,
        },
    );
    let names = [
        builder.add(Digest).unwrap().name().to_owned(),
        builder.add(Trail).unwrap().name().to_owned(),
        builder.add(Chat).unwrap().name().to_owned(),
    ];
    (builder.build().unwrap(), names)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_thread_count_rebuilds_what_one_thread_rebuilds(
        picks in prop::collection::vec(0..POOL, 1..400),
        threads in 2..9usize,
    ) {
        let one_thread = RebuildOptions::threads(1);
        let many = RebuildOptions::threads(threads);
        let dir = tempfile::tempdir().unwrap();
        let (engine, names) = open(dir.path());
        let events: Vec<Event> = picks.iter().map(|&i| pool()[i].clone()).collect();
        for outcome in engine.append_batch(&events).unwrap() {
            outcome.unwrap();
        }
        let one = rebuild(&engine, None, &one_thread);
        prop_assert_eq!(one.reports.len(), 3);
        prop_assert_eq!(&rebuild(&engine, None, &many), &one);
        // Scanning the log instead of walking group indexes, on one thread or many.
        for options in [&one_thread, &many] {
            let by_log = options.clone().walk(RebuildWalk::Log);
            prop_assert_eq!(&rebuild(&engine, None, &by_log), &one);
        }
        // The default (every core) and a single projection agree as well.
        let default = engine.rebuild(None, None).unwrap();
        prop_assert_eq!(default.len(), 3);
        prop_assert_eq!(&rebuild(&engine, None, &many), &one);
        for name in &names {
            for walk in [RebuildWalk::GroupIndex, RebuildWalk::Log] {
                let alone = rebuild(&engine, Some(name), &many.clone().walk(walk));
                prop_assert_eq!(&alone.checkpoints, &one.checkpoints);
                prop_assert_eq!(&alone.served, &one.served);
            }
        }
        // And each group is what a full replay of it gives.
        for g in engine.store().groups() {
            for name in &names {
                prop_assert_eq!(engine.verify_group(name, &g.name).unwrap(), None);
            }
        }
    }
}

#[test]
fn a_parallel_rebuild_reports_failed_groups_and_checkpoints_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let keys = Keys::generate();
    let mut events = Vec::new();
    for g in 0..6 {
        for i in 0..5 {
            let content = if g == 2 && i == 3 {
                "boom".to_owned()
            } else {
                format!("{g}/{i}")
            };
            events.push(
                EventBuilder::new(Kind::Custom(1), content)
                    .tag(Tag::parse(["h", &format!("g{g}")]).unwrap())
                    .finalize(&keys)
                    .unwrap(),
            );
        }
    }
    for outcome in engine.append_batch(&events).unwrap() {
        outcome.unwrap();
    }
    for walk in [RebuildWalk::Log, RebuildWalk::GroupIndex] {
        let reports = engine
            .rebuild_with(Some("digest"), None, &RebuildOptions::threads(4).walk(walk))
            .unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(
            (reports[0].events, reports[0].groups, reports[0].failed),
            (30, 6, 1),
            "{walk:?}"
        );
    }
    let store = engine.store();
    assert_eq!(store.checkpointed_groups("digest").unwrap().len(), 5);
    let failed = store.group("g2").unwrap();
    assert_eq!(store.read_checkpoint("digest", failed.no).unwrap(), None);
    let error = engine.group_status("digest", "g2").unwrap();
    assert!(
        format!("{:?}", error.state).contains("refusing boom"),
        "{error:?}"
    );
    for g in ["g0", "g1", "g3", "g4", "g5"] {
        let info = store.group(g).unwrap();
        let c = store.read_checkpoint("digest", info.no).unwrap().unwrap();
        assert_eq!((c.watermark, c.events), (info.head, 5), "{g}");
    }
}

#[test]
fn zero_threads_count_as_one() {
    assert_eq!(RebuildOptions::threads(0), RebuildOptions::threads(1));
    assert!(RebuildOptions::default().threads >= 1);
}

#[test]
fn options_keep_what_they_were_given() {
    let three = RebuildOptions::threads(3);
    assert_eq!((three.threads, three.walk), (3, RebuildWalk::Log));
    let by_index = RebuildOptions::threads(3).walk(RebuildWalk::GroupIndex);
    assert_eq!(
        (by_index.threads, by_index.walk),
        (3, RebuildWalk::GroupIndex)
    );
    assert_eq!(RebuildOptions::default().walk, RebuildWalk::Log);
}

fn event(keys: &Keys, kind: u16, group: &str, content: &str) -> Event {
    EventBuilder::new(Kind::Custom(kind), content)
        .tag(Tag::parse(["h", group]).unwrap())
        .finalize(keys)
        .unwrap()
}

/// A rebuild reads no record of a kind that no projection being rebuilt folds (so a
/// damaged one does not stop it; `verify` is what reads every record), and replaces
/// every checkpoint of the projections it rebuilds, also of group numbers that no
/// longer name a group.
#[test]
fn a_rebuild_reads_only_folded_kinds_and_replaces_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, EngineOptions::default());
    let digest = builder.add(Digest).unwrap();
    let engine = builder.build().unwrap();
    let keys = Keys::generate();
    for (kind, content) in [(1, "a"), (7, "skipped"), (9000, "b")] {
        engine.append(&event(&keys, kind, "g", content)).unwrap();
    }
    let store = engine.store();
    let mut raw = store.raw_record(2).unwrap().unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x55;
    store.put_raw_record(2, raw).unwrap();
    store
        .write_checkpoints(
            vec![highwater_store::CheckpointWrite {
                projection: "digest".into(),
                group: 77,
                checkpoint: highwater_store::Checkpoint {
                    version: 1,
                    watermark: 3,
                    events: 3,
                    state: vec![0; 16],
                },
            }],
            None,
        )
        .unwrap();
    for walk in [RebuildWalk::Log, RebuildWalk::GroupIndex] {
        let reports = engine
            .rebuild_with(Some("digest"), None, &RebuildOptions::threads(1).walk(walk))
            .unwrap();
        assert_eq!((reports[0].events, reports[0].failed), (3, 0), "{walk:?}");
        let headers = store.checkpoint_headers("digest").unwrap();
        assert_eq!(
            headers.iter().map(|(no, _)| *no).collect::<Vec<_>>(),
            vec![0],
            "{walk:?}"
        );
        assert_eq!(digest.read("g", |s| s.0).unwrap(), 2, "{walk:?}");
    }
    // The damaged record is there to be found by whoever reads it.
    assert!(store.get(2).is_err());
}

/// The threads seen folding, and whether one gave up waiting for another.
type Seen = std::sync::Arc<(std::sync::Mutex<(Vec<String>, bool)>, std::sync::Condvar)>;

/// Counts events, and while armed makes each folding thread wait (up to 10 s, once)
/// until two threads fold at the same time: a rebuild asked for two threads must
/// fold on two.
struct Meet {
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: Seen,
}

impl Projection for Meet {
    type State = u64;
    fn name(&self) -> &'static str {
        "meet"
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> Kinds {
        Kinds::All
    }
    fn init(&self) -> u64 {
        0
    }
    fn apply(&self, state: &mut u64, _: &EventRef<'_>) -> Result<(), ApplyError> {
        *state += 1;
        if !self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let (lock, met) = &*self.seen;
        let mut seen = lock.lock().unwrap();
        if !seen.0.contains(&name) {
            seen.0.push(name);
            met.notify_all();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.0.len() < 2 && !seen.1 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let (next, waited) = met.wait_timeout(seen, left).unwrap();
            seen = next;
            if waited.timed_out() {
                // Give up once: the test then fails on what was seen, without waiting
                // at every event.
                seen.1 = true;
            }
        }
        Ok(())
    }
    fn encode(&self, state: &u64) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }
    fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
        decode_rkyv(bytes)
    }
}

#[test]
fn a_rebuild_on_two_threads_folds_on_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, EngineOptions::default());
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen: Seen = std::sync::Arc::new((
        std::sync::Mutex::new((Vec::new(), false)),
        std::sync::Condvar::new(),
    ));
    let meet = builder
        .add(Meet {
            armed: armed.clone(),
            seen: seen.clone(),
        })
        .unwrap();
    let engine = builder.build().unwrap();
    let keys = Keys::generate();
    for i in 0..6 {
        let group = ["a", "b"][i % 2];
        engine
            .append(&event(&keys, 9, group, &format!("{i}")))
            .unwrap();
    }
    for walk in [RebuildWalk::Log, RebuildWalk::GroupIndex] {
        *seen.0.lock().unwrap() = (Vec::new(), false);
        armed.store(true, std::sync::atomic::Ordering::SeqCst);
        engine
            .rebuild_with(None, None, &RebuildOptions::threads(2).walk(walk))
            .unwrap();
        armed.store(false, std::sync::atomic::Ordering::SeqCst);
        let (threads, gave_up) = seen.0.lock().unwrap().clone();
        assert!(!gave_up, "{walk:?}: only {threads:?} folded");
        assert_eq!(threads.len(), 2, "{walk:?}: {threads:?}");
        assert!(
            threads.iter().any(|t| t == "highwater-rebuild"),
            "{threads:?}"
        );
        assert_eq!(meet.read("a", |n| *n).unwrap(), 3);
    }
}
