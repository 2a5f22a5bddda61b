//! Shared by the engine's edge tests (accelerators, catch-up in place, checkpoint
//! trust): a projection whose fold depends on its version
//! and which counts the events it applied, so a test can tell a state that was
//! decoded from a checkpoint from one folded from the log.

#![allow(dead_code, unreachable_pub, reason = "shared by several test binaries")]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Handle, Kinds, Projection, Store,
};
use highwater_store::{Checkpoint, CheckpointWrite, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// A state whose next fold fails (see [`Tally::apply`]).
pub const UNLUCKY: u64 = 777_777;

/// Sums `step` per folded event (kind 9 only; other kinds advance the watermark).
/// Version `v` folds with step `v`, so a checkpoint of another version holds a sum
/// this version would never produce.
#[derive(Debug)]
pub struct Tally {
    pub version: u64,
    /// Events applied by this instance (not decoded from a checkpoint).
    pub applied: AtomicU64,
}

impl Tally {
    pub fn new(version: u64) -> Self {
        Self {
            version,
            applied: AtomicU64::new(0),
        }
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }
}

impl Projection for Tally {
    type State = u64;

    fn name(&self) -> &'static str {
        "tally"
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![9])
    }

    fn init(&self) -> u64 {
        0
    }

    fn apply(&self, state: &mut u64, event: &EventRef<'_>) -> Result<(), ApplyError> {
        if event.content() == "boom" {
            return Err(ApplyError("refusing boom".into()));
        }
        // A state no log folds to (only a planted checkpoint holds it) fails the next
        // event: served and replayed folds then fail differently.
        if *state == UNLUCKY {
            return Err(ApplyError("unlucky state".into()));
        }
        self.applied.fetch_add(1, Ordering::Relaxed);
        *state += self.version;
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

/// A kind-9 message of `group`; `n` makes it unique.
pub fn chat(keys: &Keys, group: &str, n: usize) -> Event {
    message(keys, group, 9, &format!("message {n}"))
}

/// An event of `kind` in `group` with `content`.
pub fn message(keys: &Keys, group: &str, kind: u16, content: &str) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(vec![Tag::parse(["h", group]).unwrap()])
        .finalize(keys)
        .unwrap()
}

/// An engine over `dir` with one [`Tally`] of `version`.
pub fn open(dir: &Path, version: u64, options: EngineOptions) -> (Engine, Handle<Tally>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, options);
    let tally = builder.add(Tally::new(version)).unwrap();
    (builder.build().unwrap(), tally)
}

/// Options with no periodic checkpoint and none at close, unless a test asks.
pub fn quiet() -> EngineOptions {
    EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    }
}

/// Appends `n` kind-9 events to `group`, numbered from `from`.
pub fn append_n(engine: &Engine, keys: &Keys, group: &str, from: usize, n: usize) {
    for i in from..from + n {
        engine.append(&chat(keys, group, i)).unwrap();
    }
}

/// Stores a checkpoint of `tally` for `group` with the given header and state.
pub fn put_checkpoint(
    engine: &Engine,
    group: &str,
    version: u64,
    watermark: u64,
    events: u64,
    state: u64,
) {
    let no = engine.store().group_no(group).unwrap();
    engine
        .store()
        .write_checkpoints(
            vec![CheckpointWrite {
                projection: "tally".into(),
                group: no,
                checkpoint: Checkpoint {
                    version,
                    watermark,
                    events,
                    state: state.to_be_bytes().to_vec(),
                },
            }],
            None,
        )
        .unwrap();
}

/// The (version, watermark, events) of each stored checkpoint of `tally`, by group no.
pub fn headers(store: &Store) -> Vec<(u32, (u64, u64, u64))> {
    store
        .checkpoint_headers("tally")
        .unwrap()
        .into_iter()
        .map(|(no, h)| (no, h.unwrap()))
        .collect()
}
