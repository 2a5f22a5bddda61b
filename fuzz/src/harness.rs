//! Fuzz harnesses of highwater, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`)
//! and by the bounded runs in CI (`tests/tests/reliability_hostile.rs`, which includes
//! this file with `#[path]`), so both exercise exactly the same code. This file holds
//! the [`Harness`] (stores and engines); the targets are `harness/events.rs` (events
//! through validation, the log and the folds) and `harness/decode.rs` (bytes read back
//! as records and checkpoints), what they check `harness/checks.rs`, and the hostile
//! events they generate `harness/hostile.rs`.
//!
//! Each harness takes raw bytes and must never panic; where an input gets far enough, it
//! also checks what must hold of it:
//! - [`import_line`]: a JSONL line through `Event::from_json` and `Store::prepare` (the
//!   import path); rejections are typed and agree with the event; an accepted event
//!   reads back identical. The parsed event is then re-hashed (correct id) and appended
//!   trusted, so hostile JSON shapes also reach the folds.
//! - [`validate_event`]: structured hostile events (any kind, tags, sizes, pubkeys, ids
//!   right or wrong, signatures wrong or real) through validation, trusted and not.
//! - [`record_decode`]: bytes stored as a log record, raw or behind a correct checksum
//!   (to reach rkyv validation): `get`, `scan` and zero-copy views answer with the event
//!   or `Corruption::Record { seq }`.
//! - [`checkpoint_decode`]: bytes decoded as each projection's checkpoint state, and
//!   stored as a raw checkpoint that the engine then loads (or ignores).
//! - [`fold_tags`]: batches of events with hostile tag shapes (huge tags, empty `p`,
//!   non-hex pubkeys, duplicate roles, unicode, enormous role lists) appended trusted
//!   (ids hash correctly, signatures are not checked) and folded; the served state must
//!   equal a full replay, and every query, view, rendering and policy decision answers.

use std::path::Path;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Keys, SecretKey};

// Explicit paths: included with `#[path]` by the tests crate, this file's nested modules
// would otherwise be looked for beside it rather than in `harness/`.
#[path = "harness/checks.rs"]
mod checks;
#[path = "harness/decode.rs"]
mod decode;
#[path = "harness/events.rs"]
mod events;
#[path = "harness/hostile.rs"]
mod hostile;

pub use decode::{checkpoint_decode, record_decode};
pub use events::{fold_tags, import_line, validate_event};

use checks::signed_event;

/// Runs after which a long-lived harness is rebuilt, bounding disk and memory.
pub const RUNS_PER_HARNESS: u64 = 2_000;

/// The group every raw checkpoint is written for (the scratch store's first group).
const SCRATCH_GROUP: &str = "scratch";

/// Stores and an engine for the harnesses.
pub struct Harness {
    _dir: tempfile::TempDir,
    /// Validates signatures: the import path.
    untrusted: Store,
    /// Skips signatures: folds of hostile tag shapes.
    engine: Engine,
    groups: Groups,
    policy: AccessPolicy,
    /// Where raw records and checkpoints are written.
    scratch: Store,
    scratch_engine: Engine,
    scratch_groups: Groups,
    keys: Vec<Keys>,
    runs: u64,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

/// The relay of every harness.
pub fn relay() -> Keys {
    Keys::new(SecretKey::from_slice(&[0x52; 32]).expect("valid secret key"))
}

fn engine_over(store: Store) -> (Engine, Groups) {
    let options = EngineOptions {
        checkpoint_every: 3,
        checkpoint_on_close: false,
    };
    let mut builder = Engine::builder(store, options);
    let groups = Groups::register(&mut builder, Nip29Config::new(relay().public_key()))
        .expect("register the projections");
    (builder.build().expect("build the engine"), groups)
}

impl Harness {
    /// A harness in a fresh directory under `base` (the system's temp dir if `None`).
    pub fn new(base: Option<&Path>) -> Self {
        let dir = match base {
            Some(base) => tempfile::tempdir_in(base),
            None => tempfile::tempdir(),
        }
        .expect("a temporary directory");
        let open = |name: &str, trusted: bool| {
            Store::open(
                dir.path().join(name),
                StoreOptions {
                    trusted,
                    ..StoreOptions::default()
                },
            )
            .expect("open a store")
        };
        let untrusted = open("untrusted", false);
        let (engine, groups) = engine_over(open("trusted", true));
        let policy = AccessPolicy::new(groups.clone(), Policy::default());
        let scratch = open("scratch", true);
        let (scratch_engine, scratch_groups) = engine_over(scratch.clone());
        let keys: Vec<Keys> = (1..=6u8)
            .map(|n| Keys::new(SecretKey::from_slice(&[n; 32]).expect("valid secret key")))
            .collect();
        let seed = signed_event(
            &keys[0],
            9007,
            vec![vec!["h".into(), SCRATCH_GROUP.into()]],
            "",
        );
        scratch_engine
            .append(&seed)
            .expect("seed the scratch store");
        Self {
            _dir: dir,
            untrusted,
            engine,
            groups,
            policy,
            scratch,
            scratch_engine,
            scratch_groups,
            keys,
            runs: 0,
        }
    }

    /// How many inputs this harness has run.
    pub fn runs(&self) -> u64 {
        self.runs
    }
}
