//! Shared by the `state_and_policy` tests: an engine with the four NIP-29
//! projections over a fresh store, and NIP-29 events built from tag lists.
//!
//! Public keys reach the queries through [`key`] only, so a change of the queries' key
//! type touches this module and not the tests.

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, PublicKey, Tag, Timestamp};

/// The key type the queries take.
pub(crate) type Key = PublicKey;

/// The query key of `keys`.
pub(crate) fn key(keys: &Keys) -> Key {
    keys.public_key()
}

/// A relay: its keys, an engine over a temporary store, and the queries.
pub(crate) struct Relay {
    pub(crate) keys: Keys,
    pub(crate) engine: Engine,
    pub(crate) groups: Groups,
    _dir: tempfile::TempDir,
}

impl Relay {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::generate();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut builder = Engine::builder(store, EngineOptions::default());
        let groups = Groups::register(&mut builder, Nip29Config::new(key(&keys))).unwrap();
        let engine = builder.build().unwrap();
        Self {
            keys,
            engine,
            groups,
            _dir: dir,
        }
    }

    /// Appends `event` (it must be new).
    pub(crate) fn append(&self, event: &Event) {
        let outcome = self.engine.append(event).unwrap();
        let appended = matches!(outcome, highwater_store::AppendOutcome::Appended(_));
        assert!(appended, "{outcome:?}");
    }

    /// An access policy over this relay's queries.
    pub(crate) fn policy(&self, policy: Policy) -> AccessPolicy {
        AccessPolicy::new(self.groups.clone(), policy)
    }
}

/// An event of `kind` by `keys` with these tags and content, at the current time.
pub(crate) fn event(keys: &Keys, kind: u16, tags: &[&[&str]], content: &str) -> Event {
    builder(kind, tags, content).finalize(keys).unwrap()
}

/// The same, at `created_at`.
pub(crate) fn event_at(keys: &Keys, kind: u16, tags: &[&[&str]], created_at: u64) -> Event {
    builder(kind, tags, "")
        .custom_created_at(Timestamp::from(created_at))
        .finalize(keys)
        .unwrap()
}

fn builder(kind: u16, tags: &[&[&str]], content: &str) -> EventBuilder {
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags.iter().map(|t| Tag::parse(t.iter().copied()).unwrap()))
}

/// A moderation or group event (`h` tag) of `kind` for `group`, with extra tags.
pub(crate) fn group_event(keys: &Keys, kind: u16, group: &str, extra: &[&[&str]]) -> Event {
    let h = ["h", group];
    let mut tags: Vec<&[&str]> = vec![&h];
    tags.extend_from_slice(extra);
    // Unique content: the same tags twice in one second would be one event.
    event(keys, kind, &tags, &unique())
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("n{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
