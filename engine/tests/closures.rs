//! The read closure's contract: a closure may append (to the group it reads too), read
//! its own group again, or block, without deadlocking the engine or stalling other
//! groups' appends. Each wait is bounded by a generous timeout that fails the test
//! instead of hanging it; nothing here measures time.

use std::sync::mpsc;
use std::time::Duration;

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Handle, Kinds, Projection, Store,
};
use highwater_store::StoreOptions;
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// Counts a group's events.
#[derive(Debug)]
struct Count;

impl Projection for Count {
    type State = u64;

    fn name(&self) -> &'static str {
        "count"
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

    fn apply(&self, state: &mut u64, _event: &EventRef<'_>) -> Result<(), ApplyError> {
        *state += 1;
        Ok(())
    }

    fn encode(&self, state: &u64) -> Result<Vec<u8>, CodecError> {
        Ok(state.to_be_bytes().to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(
            bytes.try_into().map_err(|_| CodecError("8 bytes".into()))?,
        ))
    }
}

fn chat(keys: &Keys, group: &str, n: usize) -> Event {
    EventBuilder::new(Kind::from(9u16), format!("message {n}"))
        .tags(vec![Tag::parse(["h", group]).unwrap()])
        .finalize(keys)
        .unwrap()
}

fn open(dir: &std::path::Path) -> (Engine, Handle<Count>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, EngineOptions::default());
    let count = builder.add(Count).unwrap();
    (builder.build().unwrap(), count)
}

/// Runs `f` on another thread and fails the test if it does not finish in time.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_mins(1))
        .unwrap_or_else(|_| panic!("{what} did not finish: deadlock"))
}

#[test]
fn a_closure_that_appends_to_its_group_and_reads_it_again_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, count) = open(dir.path());
    let keys = Keys::generate();
    engine.append(&chat(&keys, "g", 0)).unwrap();
    assert_eq!(count.read("g", |n| *n).unwrap(), 1);
    let (seen, inner) = within("append and nested read inside a read closure", move || {
        let outer = count.clone();
        outer
            .read("g", |n| {
                // The commit's live fold finds this group's slot busy and skips it.
                engine.append(&chat(&keys, "g", 1)).unwrap();
                // Read-your-writes inside the closure: a private copy is caught up.
                let inner = count.read("g", |m| *m).unwrap();
                (*n, inner)
            })
            .unwrap()
    });
    assert_eq!((seen, inner), (1, 2));
}

#[test]
fn a_closure_that_blocks_stalls_neither_the_writer_nor_other_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, count) = open(dir.path());
    let keys = Keys::generate();
    engine.append(&chat(&keys, "slow", 0)).unwrap();
    engine.append(&chat(&keys, "other", 0)).unwrap();
    assert_eq!(count.read("slow", |n| *n).unwrap(), 1);
    assert_eq!(count.read("other", |n| *n).unwrap(), 1);
    let before = count.fold_counters();

    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader = {
        let count = count.clone();
        std::thread::spawn(move || {
            count
                .read("slow", |n| {
                    entered_tx.send(()).unwrap();
                    // Blocks until the test has appended everywhere.
                    release_rx.recv().unwrap();
                    *n
                })
                .unwrap()
        })
    };
    entered_rx.recv().unwrap();
    let (engine2, count2, keys2) = (engine.clone(), count.clone(), keys.clone());
    within("appends while a closure blocks", move || {
        for i in 1..=20 {
            engine2.append(&chat(&keys2, "other", i)).unwrap();
            engine2.append(&chat(&keys2, "slow", i)).unwrap();
        }
        assert_eq!(count2.read("other", |n| *n).unwrap(), 21);
    });
    release_tx.send(()).unwrap();
    assert_eq!(reader.join().unwrap(), 1);
    // The blocked group fell behind its head (its live folds were skipped) and its
    // next read catches it up in place.
    let after = count.fold_counters();
    assert!(
        after.busy_skips > before.busy_skips,
        "{before:?} → {after:?}"
    );
    assert_eq!(count.read("slow", |n| *n).unwrap(), 21);
    assert!(count.fold_counters().tail_folds > after.tail_folds);
}
