//! Fuzz harnesses of highwater, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`)
//! and by the bounded runs in CI (`tests/tests/reliability_hostile.rs`, which includes
//! this file with `#[path]`), so both exercise exactly the same code.
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

use std::ops::ControlFlow;
use std::path::Path;

use arbitrary::{Result as ArbitraryResult, Unstructured};
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{
    AppendOutcome, Corruption, InvalidEvent, Prepared, Store, StoreError, StoreOptions, group_of,
};
use nostr::prelude::{
    Event, EventId, FinalizeEvent, Keys, Kind, PublicKey, SecretKey, Signature, Tag, Tags,
    Timestamp,
};

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

/// A really signed event.
fn signed_event(keys: &Keys, kind: u16, tags: Vec<Vec<String>>, content: &str) -> Event {
    let tags = tags.into_iter().filter_map(|t| Tag::parse(t).ok());
    nostr::prelude::EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(1_700_000_000))
        .finalize(keys)
        .expect("signing")
}

/// An event with a correct id and an arbitrary (unchecked) signature.
fn hashed_event(
    pubkey: [u8; 32],
    created_at: u64,
    kind: u16,
    tags: Vec<Tag>,
    content: String,
    sig: [u8; 64],
) -> Event {
    let pubkey = PublicKey::from_byte_array(pubkey);
    let created_at = Timestamp::from_secs(created_at);
    let kind = Kind::from(kind);
    let tags = Tags::from_list(tags);
    let id = EventId::compute(&pubkey, &created_at, &kind, &tags, &content);
    Event::new(
        id,
        pubkey,
        created_at,
        kind,
        tags,
        content,
        Signature::from_byte_array(sig),
    )
}

/// `Store::prepare`, checking that its answer agrees with the event. Returns the
/// prepared event when it is ready to append.
fn prepare_checked(store: &Store, event: &Event) -> Option<highwater_store::PreparedEvent> {
    let limits = store.options().limits;
    match store.prepare(event) {
        Ok(Prepared::Ready(prepared)) => {
            assert!(
                event.verify_id(),
                "accepted an event whose id does not hash"
            );
            assert!(
                store.options().trusted || event.verify_signature(),
                "accepted a bad signature"
            );
            let (max_bytes, max_tags) = limits.for_kind(event.kind.as_u16());
            assert!(event.tags.len() <= max_tags);
            let group = group_of(event, &limits).expect("accepted a bad group tag");
            assert_eq!(prepared.group(), group.as_deref());
            assert!(prepared.encoded_len() <= max_bytes);
            Some(prepared)
        }
        Ok(Prepared::Duplicate(seq)) => {
            let stored = store
                .get(seq)
                .expect("read a duplicate")
                .expect("duplicate exists");
            assert_eq!(stored.id, event.id);
            None
        }
        Err(StoreError::Invalid(rejection)) => {
            match rejection {
                InvalidEvent::BadId => assert!(!event.verify_id()),
                InvalidEvent::BadSignature => assert!(!event.verify_signature()),
                InvalidEvent::TooManyTags { count, limit } => assert!(count > limit),
                InvalidEvent::TooLarge { size, limit } => assert!(size > limit),
                InvalidEvent::MissingGroup { .. }
                | InvalidEvent::BadGroupId { .. }
                | InvalidEvent::ManyGroupTags { .. } => {
                    assert!(group_of(event, &limits).is_err());
                }
                other => panic!("unknown rejection {other}"),
            }
            None
        }
        Err(other) => panic!("validation failed with a non-rejection: {other}"),
    }
}

/// Appends prepared events in one commit and checks each reads back identical.
fn append_checked(store: &Store, events: &[(Event, highwater_store::PreparedEvent)]) {
    if events.is_empty() {
        return;
    }
    let outcomes = store
        .submit(events.iter().map(|(_, p)| p.clone()).collect())
        .expect("submit")
        .wait()
        .expect("commit");
    for ((event, _), outcome) in events.iter().zip(outcomes) {
        let seq = outcome.seq();
        let stored = store.get(seq).expect("read back").expect("stored");
        if matches!(outcome, AppendOutcome::Appended(_)) {
            assert_eq!(
                &stored, event,
                "an event changed on its way through the log"
            );
        } else {
            assert_eq!(stored.id, event.id);
        }
    }
}

/// Every query, the view, the rendering and the policy over `group`, and the served
/// state of every projection against a full replay.
fn fold_checks(h: &Harness, group: &str, events: &[Event]) {
    if h.runs.is_multiple_of(8) {
        // Reload from checkpoint plus tail now and then, not only live folds.
        h.engine.checkpoint().expect("checkpoint");
        h.engine.evict_all();
    }
    for projection in h.engine.projections() {
        let diff = h.engine.verify_group(&projection, group).expect("verify");
        assert!(
            diff.is_none(),
            "{projection}/{group}: served != replay: {diff:?}"
        );
    }
    let groups = &h.groups;
    let view = groups.view(&h.engine, group).expect("view");
    assert_eq!(view.member_count, view.members.len());
    let members = groups.members(group).expect("members");
    assert_eq!(
        groups.member_count(group).expect("member count"),
        members.len()
    );
    for pubkey in members.iter().take(4) {
        assert!(groups.is_member(group, pubkey).expect("is_member"));
        let _ = groups.roles(group, pubkey).expect("roles");
        let _ = groups.has_role(group, pubkey, "admin").expect("has_role");
    }
    let rendered = groups
        .render(group, Timestamp::from_secs(1_800_000_000))
        .expect("render");
    if let Some(metadata) = rendered.first() {
        let member_count = metadata.tags.iter().any(|t| t.kind() == "member_count");
        assert_eq!(
            member_count, !view.metadata.private,
            "member_count only for non-private groups"
        );
    }
    let _ = groups.role_definitions(group).expect("role definitions");
    let _ = groups.invite_codes(group).expect("invite codes");
    for pubkey in [None, Some(h.keys[0].public_key())] {
        let _ = h.policy.can_read(pubkey.as_ref(), group).expect("can_read");
        let _ = h
            .policy
            .has_access(pubkey.as_ref(), group)
            .expect("has_access");
    }
    for event in events {
        if let Err(rejection) = h.policy.check_write(event) {
            let text = rejection.to_string();
            assert!(text.starts_with(rejection.prefix()), "{text}");
        }
    }
}

/// One JSONL import line.
pub fn import_line(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = Event::from_json(text) else {
        return;
    };
    if let Some(prepared) = prepare_checked(&h.untrusted, &event) {
        append_checked(&h.untrusted, &[(event.clone(), prepared)]);
    }
    // The same shape with a correct id, into the folds.
    let rehashed = hashed_event(
        event.pubkey.to_bytes(),
        event.created_at.as_secs(),
        event.kind.as_u16(),
        event.tags.clone().to_vec(),
        event.content.clone(),
        event.sig.to_bytes(),
    );
    let store = h.engine.store().clone();
    if let Some(prepared) = prepare_checked(&store, &rehashed) {
        let group = prepared.group().map(str::to_owned);
        append_checked(&store, &[(rehashed.clone(), prepared)]);
        if let Some(group) = group {
            fold_checks(h, &group, &[rehashed]);
        }
    }
}

/// One structured hostile event through validation, trusted and not.
pub fn validate_event(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let mut u = Unstructured::new(data);
    let Ok(event) = hostile_event(&mut u, &h.keys, "v") else {
        return;
    };
    // Sometimes a real signature, so the untrusted path accepts too.
    let event = if u.ratio(1, 4).unwrap_or(false) {
        let keys = &h.keys[usize::from(u.arbitrary::<u8>().unwrap_or(0)) % h.keys.len()];
        let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        signed_event(keys, event.kind.as_u16(), tags, &event.content)
    } else {
        event
    };
    let _ = prepare_checked(&h.untrusted, &event);
    let _ = prepare_checked(h.engine.store(), &event);
}

/// Bytes stored as a log record (first byte: 0 raw, else behind a correct header and
/// checks).
pub fn record_decode(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        body.to_vec()
    } else {
        highwater_store::seal_record(body)
    };
    // Far beyond the scratch log's head, so the real records stay intact.
    let seq = 1_000_000;
    h.scratch
        .put_raw_record(seq, bytes)
        .expect("write a raw record");
    let corrupted = |e: &StoreError| matches!(e, StoreError::Corrupted(Corruption::Record { seq: s, .. }) if *s == seq);
    match h.scratch.get(seq) {
        Ok(Some(event)) => {
            // A record that validates reads the same through the zero-copy view.
            let view = h
                .scratch
                .with_event(seq, |e| {
                    let tags: Vec<Vec<String>> = e
                        .tags()
                        .map(|t| t.iter().map(str::to_owned).collect())
                        .collect();
                    (
                        *e.id(),
                        e.kind(),
                        e.content().to_owned(),
                        tags,
                        e.group_id().map(str::to_owned),
                    )
                })
                .expect("a valid record reads")
                .expect("present");
            assert_eq!(view.0, event.id.to_bytes());
            assert_eq!(view.1, event.kind.as_u16());
            assert_eq!(view.2, event.content);
            let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.as_slice().to_vec()).collect();
            assert_eq!(view.3, tags);
        }
        Ok(None) => panic!("the raw record vanished"),
        Err(e) => assert!(corrupted(&e), "not a record corruption: {e}"),
    }
    let mut seen = 0;
    let scanned = h.scratch.scan(seq, |s, event| {
        assert_eq!(s, seq);
        let _ = (
            event.kind(),
            event.content(),
            event.tags().count(),
            event.group_id(),
        );
        seen += 1;
        ControlFlow::Continue(())
    });
    match scanned {
        Ok(()) => assert_eq!(seen, 1),
        Err(e) => assert!(corrupted(&e), "not a record corruption: {e}"),
    }
    for item in h.scratch.iter_from(seq) {
        if let Err(e) = item {
            assert!(corrupted(&e), "not a record corruption: {e}");
        }
    }
}

/// Bytes decoded as every projection's checkpoint state, then stored as a raw
/// checkpoint of the scratch group (first byte: 0 raw, else behind a correct checksum)
/// that the engine must load or ignore.
pub fn checkpoint_decode(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    decode_state(h.groups.membership_projection(), body);
    decode_state(h.groups.roles_projection(), body);
    decode_state(h.groups.metadata_projection(), body);
    decode_state(h.groups.creator_projection(), body);
    let bytes = if mode % 2 == 0 {
        body.to_vec()
    } else {
        seal(body)
    };
    let projections = h.scratch_engine.projections();
    let projection = &projections[usize::from(mode / 2) % projections.len()];
    let no = h
        .scratch
        .group(SCRATCH_GROUP)
        .expect("the scratch group")
        .no;
    h.scratch
        .put_raw_checkpoint(projection, no, bytes)
        .expect("write a raw checkpoint");
    match h.scratch.read_checkpoint(projection, no) {
        Ok(_) | Err(StoreError::Corrupted(Corruption::Checkpoint { .. })) => {}
        Err(e) => panic!("not a checkpoint corruption: {e}"),
    }
    h.scratch_engine.evict_all();
    // Loaded or ignored, never a panic; only a checksum-valid, decodable state with a
    // watermark within the log is trusted.
    let _ = h.scratch_groups.view(&h.scratch_engine, SCRATCH_GROUP);
}

fn decode_state<P: highwater_engine::Projection>(
    handle: &highwater_engine::Handle<P>,
    bytes: &[u8],
) {
    let projection = handle.projection();
    if let Ok(state) = projection.decode(bytes) {
        let again = projection
            .encode(&state)
            .expect("re-encode a decoded state");
        assert_eq!(projection.decode(&again).expect("decode again"), state);
        let _ = format!("{state:?}");
    }
}

/// Batches of events with hostile tags, appended trusted and folded.
pub fn fold_tags(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let mut u = Unstructured::new(data);
    let Ok(group) = pick_group(&mut u) else {
        return;
    };
    let count = u.int_in_range(1..=12u8).unwrap_or(1);
    let mut events = Vec::new();
    for _ in 0..count {
        match hostile_event(&mut u, &h.keys, &group) {
            Ok(event) => events.push(event),
            Err(_) => break,
        }
    }
    let store = h.engine.store().clone();
    let mut ready = Vec::new();
    let mut touched = std::collections::BTreeSet::new();
    for event in &events {
        if let Some(prepared) = prepare_checked(&store, event) {
            if let Some(g) = prepared.group() {
                touched.insert(g.to_owned());
            }
            ready.push((event.clone(), prepared));
        }
    }
    append_checked(&store, &ready);
    for group in touched {
        fold_checks(h, &group, &events);
    }
}

/// Prefixes `body` with its CRC-32 (little-endian), as the store seals checkpoints.
fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(body).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------
// Hostile inputs

const KINDS: [u16; 16] = [
    9000, 9001, 9002, 9005, 9007, 9008, 9009, 9021, 9022, 39_000, 39_001, 39_002, 39_003, 9, 1, 0,
];

const WORDS: [&str; 24] = [
    "admin",
    "writer",
    "moderator",
    "",
    " ",
    "ADMIN",
    "admin ",
    "管理者",
    "👑",
    "\u{0}",
    "\u{202e}",
    "private",
    "public",
    "closed",
    "open",
    "hidden",
    "visible",
    "restricted",
    "unrestricted",
    "member_count",
    "p",
    "h",
    "d",
    "null",
];

fn pick_group(u: &mut Unstructured<'_>) -> ArbitraryResult<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => u.arbitrary::<String>()?,
        1 => "g".repeat(usize::from(u.arbitrary::<u8>()?) + 1),
        2 => "日本語グループ".to_owned(),
        n => format!("group-{n}"),
    })
}

/// Bytes of generated filler one event may still use: a little over the store's
/// 128 KiB event limit, so oversized events are tried while memory stays bounded.
const EVENT_BUDGET: usize = 160 * 1024;

/// `len` bytes of `c`, at most what `budget` has left.
fn filler(c: &str, len: usize, budget: &mut usize) -> String {
    let len = len.min(*budget);
    *budget -= len;
    c.repeat(len)
}

fn word(u: &mut Unstructured<'_>, budget: &mut usize) -> ArbitraryResult<String> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=5 => (*u.choose(&WORDS)?).to_owned(),
        6 => filler("x", usize::from(u.arbitrary::<u16>()?) % 70_000, budget),
        _ => u.arbitrary::<String>()?,
    })
}

fn pubkey_text(u: &mut Unstructured<'_>, keys: &[Keys]) -> ArbitraryResult<String> {
    let valid = u.choose(keys)?.public_key().to_hex();
    Ok(match u.int_in_range(0..=9u8)? {
        0..=4 => valid,
        5 => valid.to_uppercase(),
        6 => String::new(),
        7 => "g".repeat(64),
        8 => valid[..63].to_owned(),
        _ => u.arbitrary::<String>()?,
    })
}

/// One tag of a hostile shape (never empty: nostr refuses empty tags).
fn hostile_tag(
    u: &mut Unstructured<'_>,
    keys: &[Keys],
    group: &str,
    budget: &mut usize,
) -> ArbitraryResult<Vec<String>> {
    let mut tag: Vec<String> = Vec::new();
    match u.int_in_range(0..=11u8)? {
        0..=2 => {
            tag.push("p".into());
            if u.ratio(9, 10)? {
                tag.push(pubkey_text(u, keys)?);
                // Roles: none, a few (with duplicates), or an enormous list.
                let n = match u.int_in_range(0..=3u8)? {
                    0 => 0,
                    1 | 2 => usize::from(u.int_in_range(1..=6u8)?),
                    _ => usize::from(u.arbitrary::<u16>()?) % 3_000,
                };
                let role = word(u, budget)?;
                for i in 0..n {
                    tag.push(if i % 3 == 0 {
                        role.clone()
                    } else {
                        word(u, budget)?
                    });
                }
            }
        }
        3 => tag.extend(["h".to_owned(), group.to_owned()]),
        4 => tag.extend(["d".to_owned(), group.to_owned()]),
        5 => {
            tag.push((*u.choose(&["name", "about", "picture"])?).to_owned());
            if u.ratio(4, 5)? {
                tag.push(word(u, budget)?);
            }
        }
        6 => tag.push((*u.choose(&WORDS[11..20])?).to_owned()),
        7 => tag.extend(["code".to_owned(), word(u, budget)?]),
        8 => {
            tag.extend(["role".to_owned(), word(u, budget)?]);
            if u.ratio(1, 2)? {
                tag.push(word(u, budget)?);
            }
        }
        9 => {
            let len = usize::from(u.arbitrary::<u16>()?) * 2;
            tag.extend(["x".to_owned(), filler("y", len, budget)]);
        }
        _ => {
            let n = usize::from(u.int_in_range(1..=8u8)?);
            for _ in 0..n {
                tag.push(word(u, budget)?);
            }
        }
    }
    Ok(tag)
}

/// An event with hostile tags and content, a correct id and a meaningless signature.
fn hostile_event(u: &mut Unstructured<'_>, keys: &[Keys], group: &str) -> ArbitraryResult<Event> {
    let kind = if u.ratio(7, 8)? {
        *u.choose(&KINDS)?
    } else {
        u.arbitrary()?
    };
    let pubkey = match u.int_in_range(0..=9u8)? {
        0..=2 => relay().public_key().to_bytes(),
        3..=8 => u.choose(keys)?.public_key().to_bytes(),
        _ => u.arbitrary()?,
    };
    let created_at = if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        1_700_000_000 + u64::from(u.arbitrary::<u16>()?)
    };
    let mut budget = EVENT_BUDGET;
    let mut tags = Vec::new();
    // Usually the group tag first, as relays write it.
    if u.ratio(7, 8)? {
        let name = if (39_000..=39_003).contains(&kind) {
            "d"
        } else {
            "h"
        };
        tags.push(vec![name.to_owned(), group.to_owned()]);
    }
    let n = match u.int_in_range(0..=7u8)? {
        0 => usize::from(u.arbitrary::<u16>()?) % 2_500,
        n => usize::from(n),
    };
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        tags.push(hostile_tag(u, keys, group, &mut budget)?);
    }
    let content = match u.int_in_range(0..=5u8)? {
        0 => r#"{"private":true,"write-restricted":true,"closed":false}"#.to_owned(),
        1 => format!("{}{}", "[".repeat(200), "]".repeat(200)),
        2 => u.arbitrary()?,
        _ => String::new(),
    };
    let tags = tags
        .into_iter()
        .filter_map(|t| Tag::parse(t).ok())
        .collect();
    let mut sig = [0u8; 64];
    u.fill_buffer(&mut sig)?;
    let event = hashed_event(pubkey, created_at, kind, tags, content, sig);
    // Sometimes the id is wrong: it must be refused whatever else the event is.
    if u.ratio(1, 8)? {
        let mut id = [0u8; 32];
        u.fill_buffer(&mut id)?;
        return Ok(Event::new(
            EventId::from_byte_array(id),
            event.pubkey,
            event.created_at,
            event.kind,
            event.tags,
            event.content,
            event.sig,
        ));
    }
    Ok(event)
}
