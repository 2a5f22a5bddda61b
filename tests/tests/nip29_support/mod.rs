//! Shared helpers of the NIP-29 tests: fixed keys, an event builder, an engine harness
//! that can be reopened, random NIP-29 logs, the list of every query, and the one
//! insta helper that writes to `snapshots/`.

#![allow(dead_code, reason = "each test file uses a part of the helpers")]
#![allow(
    unreachable_pub,
    reason = "a helper module of test binaries; `pub` is read as crate-wide"
)]

use std::cell::Cell;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{AppendOutcome, Store, StoreOptions};
use nostr::prelude::{
    Event, EventBuilder, FinalizeEvent, Keys, Kind, PublicKey, SecretKey, Tag, Timestamp,
};

/// Deterministic keys: the secret key is `[n; 32]` (n ≥ 1).
pub fn key(n: u8) -> Keys {
    assert!(n > 0);
    Keys::new(SecretKey::from_slice(&[n; 32]).expect("valid secret key"))
}

/// The relay key of every test.
pub fn relay() -> Keys {
    key(0xee)
}

/// A key that is not the relay's.
pub fn foreign() -> Keys {
    key(0xdd)
}

/// The public key of `keys`.
pub fn pk(keys: &Keys) -> PublicKey {
    keys.public_key()
}

/// Lowercase hex pubkey.
pub fn hex(keys: &Keys) -> String {
    keys.public_key().to_hex()
}

thread_local! {
    static CLOCK: Cell<u64> = const { Cell::new(0) };
}

/// The base of every default `created_at`.
pub const T0: u64 = 1_700_000_000;

/// Restarts the default `created_at` sequence (each test gets the same times).
pub fn reset_clock() {
    CLOCK.with(|c| c.set(0));
}

fn tick() -> u64 {
    CLOCK.with(|c| {
        let next = c.get() + 1;
        c.set(next);
        T0 + next
    })
}

/// An event under construction.
#[derive(Debug, Clone)]
pub struct Ev {
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
    at: Option<u64>,
}

/// An event of `kind` for `group` (an `h` tag, or `d` for 39000–39003).
pub fn ev(kind: u16, group: &str) -> Ev {
    let name = if (39_000..=39_003).contains(&kind) {
        "d"
    } else {
        "h"
    };
    Ev {
        kind,
        tags: vec![vec![name.into(), group.into()]],
        content: String::new(),
        at: None,
    }
}

impl Ev {
    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, values: &[&str]) -> Self {
        self.tags
            .push(values.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Adds `["p", hex(keys), roles...]`.
    #[must_use]
    pub fn p(self, keys: &Keys, roles: &[&str]) -> Self {
        let hex = hex(keys);
        let mut values = vec!["p", hex.as_str()];
        values.extend_from_slice(roles);
        self.tag(&values)
    }

    /// Sets the content.
    #[must_use]
    pub fn content(mut self, content: &str) -> Self {
        content.clone_into(&mut self.content);
        self
    }

    /// Sets `created_at` (default: the next tick of the test's clock).
    #[must_use]
    pub fn at(mut self, secs: u64) -> Self {
        self.at = Some(secs);
        self
    }

    /// Signs it.
    pub fn sign(self, keys: &Keys) -> Event {
        let tags = self
            .tags
            .into_iter()
            .map(|t| Tag::parse(t).expect("non-empty tag"));
        EventBuilder::new(Kind::from(self.kind), self.content)
            .tags(tags)
            .custom_created_at(Timestamp::from_secs(self.at.unwrap_or_else(tick)))
            .finalize(keys)
            .expect("signing")
    }
}

/// An engine over a temporary store, with the NIP-29 projections registered.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub options: EngineOptions,
    pub store_options: StoreOptions,
    pub engine: Engine,
    pub groups: Groups,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Options without automatic checkpoints, so tests decide which groups have one.
pub fn manual_checkpoints() -> EngineOptions {
    EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    }
}

fn start(
    dir: &std::path::Path,
    options: &EngineOptions,
    store_options: &StoreOptions,
) -> (Engine, Groups) {
    let store = Store::open(dir, store_options.clone()).expect("open store");
    let mut builder = Engine::builder(store, options.clone());
    let groups = Groups::register(&mut builder, Nip29Config::new(pk(&relay()))).expect("register");
    (builder.build().expect("build engine"), groups)
}

impl Harness {
    /// Default engine options.
    pub fn new() -> Self {
        Self::with(EngineOptions::default(), StoreOptions::default())
    }

    /// Given options.
    pub fn with(options: EngineOptions, store_options: StoreOptions) -> Self {
        reset_clock();
        let dir = tempfile::tempdir().expect("tempdir");
        let (engine, groups) = start(dir.path(), &options, &store_options);
        Self {
            dir,
            options,
            store_options,
            engine,
            groups,
        }
    }

    /// Closes the engine and the store, and opens both again (as after a restart).
    #[must_use]
    pub fn reopen(self) -> Self {
        let Harness {
            dir,
            options,
            store_options,
            engine,
            groups,
        } = self;
        drop(groups);
        drop(engine);
        let (engine, groups) = start(dir.path(), &options, &store_options);
        Self {
            dir,
            options,
            store_options,
            engine,
            groups,
        }
    }

    /// Appends events in one commit; each must be new.
    pub fn append(&self, events: &[Event]) {
        for outcome in self.engine.append_batch(events).expect("append") {
            let matched = matches!(outcome, Ok(AppendOutcome::Appended(_)));
            assert!(matched, "{outcome:?}");
        }
    }

    /// The same queries answered by full replay.
    pub fn oracle(&self) -> Groups {
        self.groups.oracle()
    }

    /// An access policy over the served queries.
    pub fn policy(&self, policy: &Policy) -> AccessPolicy {
        AccessPolicy::new(self.groups.clone(), policy.clone())
    }
}

/// Each projection's served state of `group` (fully loaded) differs from its full
/// replay: the description of the first difference.
pub fn state_difference(groups: &Groups, group: &str) -> Option<String> {
    fn compare<P: highwater_engine::Projection>(
        handle: &highwater_engine::Handle<P>,
        group: &str,
    ) -> Option<String> {
        let served = handle.read(group, Clone::clone).expect("served state");
        let replayed = handle.replay(group).expect("replayed state");
        (served != replayed).then(|| {
            format!(
                "{} of {group}:\nserved {served:?}\nreplay {replayed:?}",
                handle.name()
            )
        })
    }
    compare(groups.membership_projection(), group)
        .or_else(|| compare(groups.roles_projection(), group))
        .or_else(|| compare(groups.metadata_projection(), group))
        .or_else(|| compare(groups.creator_projection(), group))
}

/// The one insta helper: snapshots `value` as JSON under `snapshots/<name>.snap`
/// (callers convert with `serde_json::to_value`).
pub fn assert_json_snapshot(name: &str, value: &serde_json::Value) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_json_snapshot!(name, value);
    });
}

pub mod logs;
pub mod queries;
