//! Deterministic NIP-29 workload generator behind `highwater generate`.
//!
//! [`generate`] produces a stream of real, signed Nostr events that look like the log of a
//! busy NIP-29 relay: groups created (kind 9007) and sometimes deleted (9008) and created
//! again, members put (9000, with and without roles) and removed (9001), join (9021) and
//! leave (9022) requests answered by relay-signed 9000/9001, metadata edits (9002) in every
//! flag dialect (tags, legacy negating tags, a JSON object in the content), invites (9009),
//! event deletions (9005), chat messages (kind 9, about half of the log), relay snapshot
//! events 39000–39003 signed by the relay key, groups whose history starts with snapshots
//! only ("seeded" groups), and a few forged snapshots signed by other keys.
//!
//! Group activity is Zipf-distributed: with the default 1,000 groups and 1M events the
//! largest groups get tens of thousands of members and most groups stay small.
//!
//! # Determinism
//!
//! The same [`WorkloadSpec`] always gives byte-identical output (`event.as_json()` per
//! line), whatever the number of threads:
//! - every key (users, the relay unless given, the forger) is derived from the seed;
//! - the plan of every event (author, `created_at`, kind, tags, content) comes from one
//!   seeded `ChaCha` stream consumed sequentially;
//! - Schnorr signatures use auxiliary randomness derived from the seed and the event's
//!   position in the log instead of the OS RNG that `sign_with_keys` would use.
//!
//! `created_at` comes from a synthetic clock starting at [`EPOCH`] that mostly advances by
//! a few seconds, often stays on the same second, and now and then goes backwards: the log
//! order, not `created_at`, is canonical.
//!
//! # Streaming
//!
//! Events are produced in chunks of [`CHUNK`]: a chunk is planned sequentially, signed in
//! parallel with rayon (order preserved), and handed to the sink in log order while the
//! next chunk is being signed. Memory is bounded by a few chunks plus per-group state and
//! the derived user keys (at most [`MAX_USERS`]), independent of the event count.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{self, Write};

use nostr::prelude::{Event, EventId, Keys, Kind, PublicKey, SecretKey, Tag, Tags, Timestamp};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use rayon::prelude::*;
use secp256k1::{Secp256k1, SignOnly};

/// `created_at` of the first event (2023-11-14T22:13:20Z).
pub const EPOCH: u64 = 1_700_000_000;

/// Number of events planned, signed and emitted together.
pub const CHUNK: usize = 4096;

/// Upper bound on the number of distinct user keys (about `events / 8`, at least 64).
pub const MAX_USERS: usize = 262_144;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// Number of distinct groups (group ids) the events are spread over (0 counts as 1).
    /// Groups with a small Zipf weight may receive no event at all in short workloads.
    pub groups: usize,
    /// Exact number of events to produce.
    pub events: usize,
    /// Seed of every random choice and every derived key.
    pub seed: u64,
    /// Secret key of the relay that signs 39000–39003 and answers join/leave requests;
    /// `None` derives it from the seed.
    pub relay_secret: Option<[u8; 32]>,
}

impl Default for WorkloadSpec {
    /// 1,000 groups, 1,000,000 events, seed 0, relay key derived from the seed.
    fn default() -> Self {
        Self {
            groups: 1_000,
            events: 1_000_000,
            seed: 0,
            relay_secret: None,
        }
    }
}

impl WorkloadSpec {
    /// The relay keys of this workload: `relay_secret` if given, else derived from the seed.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if `relay_secret` is not a valid secp256k1
    /// secret key.
    pub fn relay_keys(&self) -> io::Result<Keys> {
        relay_keys(&Secp256k1::signing_only(), self)
    }
}

/// What a run of [`generate`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSummary {
    /// The relay key that signed the genuine snapshot events (39000–39003).
    pub relay_pubkey: PublicKey,
    /// Number of events emitted (always `spec.events`).
    pub events: usize,
    /// Number of events per kind.
    pub kinds: BTreeMap<u16, usize>,
    /// Number of distinct group ids that received at least one event.
    pub groups: usize,
    /// Groups whose history starts with relay snapshot events only (no 9007).
    pub seeded_groups: usize,
    /// 9007 events that re-created a group after its 9008.
    pub recreated_groups: usize,
    /// Snapshot events (39000–39002) signed by a key other than the relay's.
    pub forged_snapshots: usize,
    /// Number of distinct user keys derived for the workload.
    pub users: usize,
}

/// Generates the workload described by `spec`, handing every event to `sink` in log order.
///
/// `progress` is called after each chunk with the number of events emitted so far. The
/// first error returned by `sink` stops generation and is returned.
pub fn generate(
    spec: &WorkloadSpec,
    progress: &dyn Fn(usize),
    sink: &mut dyn FnMut(&Event) -> io::Result<()>,
) -> io::Result<WorkloadSummary> {
    let ctx = Secp256k1::signing_only();
    let signers = Signers::new(&ctx, spec)?;
    let mut planner = Planner::new(spec, signers.users.len());
    let seed = spec.seed;

    let mut remaining = spec.events;
    let mut next_index = 0_u64;
    let mut emitted = 0_usize;
    let mut plans = planner.plan_chunk(&signers, take_chunk(&mut remaining));
    let mut previous: Vec<(Event, u32)> = Vec::new();

    while !plans.is_empty() || !previous.is_empty() {
        let base = next_index;
        next_index += plans.len() as u64;
        let current = std::mem::take(&mut plans);
        let mut signed = Vec::new();
        let mut next_plans = Vec::new();
        let mut result = Ok(());
        rayon::in_place_scope(|scope| {
            let (signed, signers, ctx) = (&mut signed, &signers, &ctx);
            scope.spawn(move |_| *signed = sign_chunk(ctx, signers, seed, base, current));
            // Emission of the previous chunk and planning of the next one overlap with the
            // signing of this one. Planning only ever sees ids of emitted events, so the
            // output does not depend on timing.
            result = emit(&mut planner, &previous, sink);
            if result.is_ok() {
                next_plans = planner.plan_chunk(signers, take_chunk(&mut remaining));
            }
        });
        result?;
        if !previous.is_empty() {
            emitted += previous.len();
            progress(emitted);
        }
        previous = signed;
        plans = next_plans;
    }

    Ok(planner.summary(signers.relay.public_key(), emitted))
}

/// Generates the workload as JSON lines (`event.as_json()` and `\n` per event) into `out`.
///
/// `out` is written in many small pieces: pass a buffered writer. It is flushed at the end.
pub fn write_jsonl<W: Write>(
    spec: &WorkloadSpec,
    progress: &dyn Fn(usize),
    mut out: W,
) -> io::Result<WorkloadSummary> {
    let summary = generate(spec, progress, &mut |event| {
        out.write_all(event.as_json().as_bytes())?;
        out.write_all(b"\n")
    })?;
    out.flush()?;
    Ok(summary)
}

// ---------------------------------------------------------------------------------------
// Kinds and vocabulary

const CHAT: u16 = 9;
const PUT_USER: u16 = 9000;
const REMOVE_USER: u16 = 9001;
const EDIT_METADATA: u16 = 9002;
const DELETE_EVENT: u16 = 9005;
const CREATE_GROUP: u16 = 9007;
const DELETE_GROUP: u16 = 9008;
const CREATE_INVITE: u16 = 9009;
const JOIN: u16 = 9021;
const LEAVE: u16 = 9022;
const SNAPSHOT_METADATA: u16 = 39_000;
const SNAPSHOT_ADMINS: u16 = 39_001;
const SNAPSHOT_MEMBERS: u16 = 39_002;
const SNAPSHOT_ROLES: u16 = 39_003;

/// Key-derivation domains.
const DOMAIN_USER: u64 = 1;
const DOMAIN_RELAY: u64 = 2;
const DOMAIN_FORGER: u64 = 3;
const DOMAIN_AUX: u64 = 4;
const DOMAIN_PLAN: u64 = 5;

/// The most active groups (by Zipf rank) are never seeded from snapshots nor deleted, so
/// that large workloads keep a few very large groups.
const PROTECTED_RANKS: u32 = 5;

/// Largest member list a relay refresh of 39002 lists (bigger groups refresh 39000).
const MAX_SNAPSHOT_MEMBERS: usize = 64;

const FLAGS: [&str; 4] = ["private", "closed", "hidden", "restricted"];
const LEGACY_FLAGS: [&str; 4] = ["public", "open", "visible", "unrestricted"];
const JSON_FLAGS: [&str; 4] = ["private", "closed", "hidden", "write-restricted"];

const ROLES: [(&str, &str); 3] = [
    (
        "admin",
        "Can edit metadata, add and remove users, delete events",
    ),
    ("moderator", "Can remove users and delete events"),
    ("writer", "May post in write-restricted groups"),
];

const WORDS: [&str; 48] = [
    "the",
    "group",
    "relay",
    "meeting",
    "tomorrow",
    "works",
    "nice",
    "idea",
    "let's",
    "ship",
    "it",
    "code",
    "review",
    "coffee",
    "bitcoin",
    "nostr",
    "lightning",
    "keys",
    "event",
    "kind",
    "moderation",
    "please",
    "thanks",
    "agreed",
    "hello",
    "everyone",
    "new",
    "release",
    "tested",
    "bug",
    "fixed",
    "deploy",
    "weekend",
    "music",
    "photo",
    "link",
    "shared",
    "question",
    "answer",
    "today",
    "client",
    "zap",
    "note",
    "garden",
    "rust",
    "build",
    "later",
    "maybe",
];

const UNICODE_WORDS: [&str; 18] = [
    "café",
    "naïve",
    "Grüße",
    "日本語",
    "こんにちは",
    "привет",
    "مرحبا",
    "नमस्ते",
    "🎉",
    "👍",
    "🚀",
    "⚡",
    "😀",
    "你好",
    "señor",
    "øre",
    "Ελληνικά",
    "한국어",
];

const ADJECTIVES: [&str; 16] = [
    "Quiet",
    "Lightning",
    "Open",
    "Rusty",
    "Sunny",
    "Midnight",
    "Little",
    "Grand",
    "Nomad",
    "Cozy",
    "Wild",
    "Early",
    "Secret",
    "Public",
    "Happy",
    "Northern",
];

const NOUNS: [&str; 16] = [
    "Garden", "Devs", "Club", "Lounge", "Circle", "Builders", "Readers", "Runners", "Plebs",
    "Studio", "Kitchen", "Workshop", "Chess", "Hikers", "Traders", "Choir",
];

const ALPHANUMERIC: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

// ---------------------------------------------------------------------------------------
// Keys and signing

/// Who signs a planned event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    User(u32),
    Relay,
    Forger,
}

/// Every key of the workload, derived once.
struct Signers {
    users: Vec<Keys>,
    relay: Keys,
    forger: Keys,
}

impl Signers {
    fn new(ctx: &Secp256k1<SignOnly>, spec: &WorkloadSpec) -> io::Result<Self> {
        let count = (spec.events / 8).clamp(64, MAX_USERS) as u64;
        let users = (0..count)
            .into_par_iter()
            .map(|index| derive_keys(ctx, spec.seed, DOMAIN_USER, index))
            .collect();
        Ok(Self {
            users,
            relay: relay_keys(ctx, spec)?,
            forger: derive_keys(ctx, spec.seed, DOMAIN_FORGER, 0),
        })
    }

    fn keys(&self, signer: Signer) -> &Keys {
        match signer {
            Signer::User(user) => &self.users[user as usize],
            Signer::Relay => &self.relay,
            Signer::Forger => &self.forger,
        }
    }

    fn hex(&self, signer: Signer) -> String {
        self.keys(signer).public_key().to_hex()
    }

    fn user_hex(&self, user: u32) -> String {
        self.hex(Signer::User(user))
    }
}

fn relay_keys(ctx: &Secp256k1<SignOnly>, spec: &WorkloadSpec) -> io::Result<Keys> {
    match spec.relay_secret {
        Some(secret) => SecretKey::from_slice(&secret)
            .map(|secret| Keys::new_with_ctx(ctx, secret))
            .map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid relay secret key: {error}"),
                )
            }),
        None => Ok(derive_keys(ctx, spec.seed, DOMAIN_RELAY, 0)),
    }
}

/// A `ChaCha20` stream keyed by (seed, domain, index).
fn derived_stream(seed: u64, domain: u64, index: u64) -> ChaCha20Rng {
    let mut key = [0_u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&domain.to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    key[24..].copy_from_slice(b"hwgen-v1");
    ChaCha20Rng::from_seed(key)
}

fn derive_keys(ctx: &Secp256k1<SignOnly>, seed: u64, domain: u64, index: u64) -> Keys {
    let mut stream = derived_stream(seed, domain, index);
    loop {
        let mut bytes = [0_u8; 32];
        stream.fill_bytes(&mut bytes);
        // All but a negligible fraction of 32-byte strings are valid secret keys.
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return Keys::new_with_ctx(ctx, secret);
        }
    }
}

/// An event planned but not signed yet.
struct Planned {
    signer: Signer,
    created_at: u64,
    kind: u16,
    tags: Vec<Tag>,
    content: String,
    group: u32,
}

/// Signs a chunk in parallel; `base` is the log position of its first event.
fn sign_chunk(
    ctx: &Secp256k1<SignOnly>,
    signers: &Signers,
    seed: u64,
    base: u64,
    plans: Vec<Planned>,
) -> Vec<(Event, u32)> {
    plans
        .into_par_iter()
        .enumerate()
        .map(|(offset, plan)| {
            let keys = signers.keys(plan.signer);
            let pubkey = keys.public_key();
            let created_at = Timestamp::from_secs(plan.created_at);
            let kind = Kind::from_u16(plan.kind);
            let tags = Tags::from_list(plan.tags);
            let id = EventId::compute(&pubkey, &created_at, &kind, &tags, &plan.content);
            let mut aux = [0_u8; 32];
            derived_stream(seed, DOMAIN_AUX, base + offset as u64).fill_bytes(&mut aux);
            let sig = keys.sign_schnorr_with_aux_rand(ctx, id.as_bytes(), &aux);
            let event = Event::new(id, pubkey, created_at, kind, tags, plan.content, sig);
            (event, plan.group)
        })
        .collect()
}

/// Hands a signed chunk to the sink and records the ids later events may refer to.
fn emit(
    planner: &mut Planner,
    chunk: &[(Event, u32)],
    sink: &mut dyn FnMut(&Event) -> io::Result<()>,
) -> io::Result<()> {
    for (event, group) in chunk {
        sink(event)?;
        if event.kind.as_u16() == CHAT {
            planner.groups[*group as usize].last_chat = Some(event.id);
        }
    }
    Ok(())
}

fn take_chunk(remaining: &mut usize) -> usize {
    let n = (*remaining).min(CHUNK);
    *remaining -= n;
    n
}

// ---------------------------------------------------------------------------------------
// Planning

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// No event yet.
    Unborn,
    /// Seeded from snapshots; the value is the next snapshot stage (0..4).
    Seeding(u8),
    Live,
    Deleted,
}

/// The generator's own view of a group, used only to make the workload plausible.
struct Group {
    id: String,
    life: Life,
    /// Incremented by every deletion, so stale relay answers are dropped.
    generation: u32,
    /// Seeded group that has seen nothing but snapshot events so far.
    snapshot_only: bool,
    creator: Option<u32>,
    members: Vec<u32>,
    member_index: HashMap<u32, u32>,
    admins: Vec<u32>,
    moderators: Vec<u32>,
    /// Events left in this life before its 9008.
    doom: Option<u32>,
    last_chat: Option<EventId>,
    last_invite: Option<String>,
}

impl Group {
    fn new(id: String) -> Self {
        Self {
            id,
            life: Life::Unborn,
            generation: 0,
            snapshot_only: false,
            creator: None,
            members: Vec::new(),
            member_index: HashMap::new(),
            admins: Vec::new(),
            moderators: Vec::new(),
            doom: None,
            last_chat: None,
            last_invite: None,
        }
    }

    fn is_member(&self, user: u32) -> bool {
        self.member_index.contains_key(&user)
    }

    fn add(&mut self, user: u32) {
        if !self.is_member(user) {
            self.member_index.insert(user, self.members.len() as u32);
            self.members.push(user);
        }
    }

    fn remove(&mut self, user: u32) {
        if let Some(position) = self.member_index.remove(&user) {
            self.members.swap_remove(position as usize);
            if let Some(&moved) = self.members.get(position as usize) {
                self.member_index.insert(moved, position);
            }
        }
        self.set_roles(user, &[]);
    }

    fn set_roles(&mut self, user: u32, roles: &[&str]) {
        update_role_list(&mut self.admins, user, roles.contains(&"admin"));
        update_role_list(&mut self.moderators, user, roles.contains(&"moderator"));
    }

    fn clear(&mut self) {
        self.members.clear();
        self.member_index.clear();
        self.admins.clear();
        self.moderators.clear();
        self.creator = None;
        self.last_chat = None;
        self.last_invite = None;
        self.snapshot_only = false;
    }
}

fn update_role_list(list: &mut Vec<u32>, user: u32, has: bool) {
    let position = list.iter().position(|&u| u == user);
    match (has, position) {
        (true, None) if list.len() < 32 => list.push(user),
        (false, Some(position)) => {
            list.swap_remove(position);
        }
        _ => {}
    }
}

/// A relay answer (9000 or 9001) owed to a join or leave request.
struct Answer {
    group: u32,
    generation: u32,
    user: u32,
    put: bool,
}

/// An event's author, kind, tags and content, before it gets its time and group.
struct Draft {
    signer: Signer,
    kind: u16,
    tags: Vec<Tag>,
    content: String,
}

impl Draft {
    fn new(signer: Signer, kind: u16, tags: Vec<Tag>) -> Self {
        Self {
            signer,
            kind,
            tags,
            content: String::new(),
        }
    }

    fn with_content(mut self, content: String) -> Self {
        self.content = content;
        self
    }
}

/// Which way a metadata event spells its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `["private"]`, `["closed"]`, … for the flags that are set.
    Tags,
    /// One of `private`/`public`, `closed`/`open`, … per flag (some omitted).
    Legacy,
    /// `{"private":true,"write-restricted":false,…}` in the content.
    Json,
    /// Tags and the same flags as JSON in the content.
    Mixed,
    /// Relay style for 39000: `private`/`public` and `closed`/`open` always, `hidden` and
    /// `restricted` when set.
    Relay,
}

/// Sequential planner: owns the planning RNG, the clock and the per-group state.
struct Planner {
    rng: ChaCha8Rng,
    clock: u64,
    users: u32,
    /// Cumulative Zipf weights; group `i` has weight `1 / (i + 1)`.
    cumulative: Vec<f64>,
    groups: Vec<Group>,
    answers: VecDeque<Answer>,
    kinds: BTreeMap<u16, usize>,
    touched: usize,
    seeded: usize,
    recreated: usize,
    forged: usize,
}

impl Planner {
    fn new(spec: &WorkloadSpec, users: usize) -> Self {
        let mut rng = ChaCha8Rng::from_seed(derived_stream(spec.seed, DOMAIN_PLAN, 0).random());
        let group_count = u32::try_from(spec.groups.max(1)).unwrap_or(u32::MAX);
        let mut total = 0.0;
        let cumulative = (1..=group_count)
            .map(|rank| {
                total += 1.0 / f64::from(rank);
                total
            })
            .collect();
        let mut seen = HashSet::new();
        let groups = (0..group_count)
            .map(|_| {
                loop {
                    let id = random_string(&mut rng, 8);
                    if seen.insert(id.clone()) {
                        break Group::new(id);
                    }
                }
            })
            .collect();
        Self {
            rng,
            clock: EPOCH,
            users: users as u32,
            cumulative,
            groups,
            answers: VecDeque::new(),
            kinds: BTreeMap::new(),
            touched: 0,
            seeded: 0,
            recreated: 0,
            forged: 0,
        }
    }

    fn summary(&self, relay_pubkey: PublicKey, events: usize) -> WorkloadSummary {
        WorkloadSummary {
            relay_pubkey,
            events,
            kinds: self.kinds.clone(),
            groups: self.touched,
            seeded_groups: self.seeded,
            recreated_groups: self.recreated,
            forged_snapshots: self.forged,
            users: self.users as usize,
        }
    }

    fn plan_chunk(&mut self, signers: &Signers, n: usize) -> Vec<Planned> {
        (0..n).map(|_| self.plan_one(signers)).collect()
    }

    fn plan_one(&mut self, signers: &Signers) -> Planned {
        let created_at = self.tick();
        let (group, draft) = loop {
            if !self.answers.is_empty()
                && self.rng.random_bool(0.5)
                && let Some(answer) = self.answers.pop_front()
                && let Some(draft) = self.answer(signers, &answer)
            {
                break (answer.group, draft);
            }
            let group = self.pick_group();
            if let Some(draft) = self.plan_for_group(signers, group) {
                break (group, draft);
            }
        };
        *self.kinds.entry(draft.kind).or_default() += 1;
        Planned {
            signer: draft.signer,
            created_at,
            kind: draft.kind,
            tags: draft.tags,
            content: draft.content,
            group,
        }
    }

    /// The synthetic clock: mostly a few seconds forward, often the same second, sometimes
    /// a gap, and now and then a timestamp in the past (without moving the clock back).
    fn tick(&mut self) -> u64 {
        let r: f64 = self.rng.random();
        if r < 0.22 {
            self.clock
        } else if r < 0.97 {
            self.clock += self.rng.random_range(1..=4);
            self.clock
        } else if r < 0.99 {
            self.clock += self.rng.random_range(5..=300);
            self.clock
        } else {
            self.clock.saturating_sub(self.rng.random_range(1..=120))
        }
    }

    fn pick_group(&mut self) -> u32 {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = self.rng.random::<f64>() * total;
        let index = self.cumulative.partition_point(|&c| c <= target);
        index.min(self.groups.len() - 1) as u32
    }

    fn random_user(&mut self) -> u32 {
        self.rng.random_range(0..self.users)
    }

    /// A user that is (very probably) not a member of `group`.
    fn outsider(&mut self, group: u32) -> u32 {
        let mut user = self.random_user();
        for _ in 0..4 {
            if !self.groups[group as usize].is_member(user) {
                break;
            }
            user = self.random_user();
        }
        user
    }

    /// A member other than the creator, if there is one.
    fn ordinary_member(&mut self, group: u32) -> Option<u32> {
        let g = &self.groups[group as usize];
        for _ in 0..4 {
            let &member = g.members.choose(&mut self.rng)?;
            if Some(member) != g.creator {
                return Some(member);
            }
        }
        None
    }

    /// The author of a moderation event: mostly the creator or an admin, sometimes a
    /// moderator, rarely anybody.
    fn authority(&mut self, group: u32) -> Signer {
        let r: f64 = self.rng.random();
        let g = &self.groups[group as usize];
        if r < 0.04 {
            return Signer::User(self.rng.random_range(0..self.users));
        }
        if r < 0.14
            && let Some(&moderator) = g.moderators.choose(&mut self.rng)
        {
            return Signer::User(moderator);
        }
        if let Some(creator) = g.creator
            && (g.admins.is_empty() || r < 0.6)
        {
            return Signer::User(creator);
        }
        g.admins
            .choose(&mut self.rng)
            .map_or(Signer::Relay, |&admin| Signer::User(admin))
    }

    fn h(&self, group: u32) -> Tag {
        Tag::custom("h", [self.groups[group as usize].id.as_str()])
    }

    fn d(&self, group: u32) -> Tag {
        Tag::custom("d", [self.groups[group as usize].id.as_str()])
    }

    /// The next event of `group`, or `None` to pick again.
    fn plan_for_group(&mut self, signers: &Signers, group: u32) -> Option<Draft> {
        match self.groups[group as usize].life {
            Life::Unborn => {
                self.touched += 1;
                if group >= PROTECTED_RANKS && self.rng.random_bool(0.06) {
                    self.seeded += 1;
                    self.groups[group as usize].snapshot_only = true;
                    Some(self.seed_snapshot(signers, group, 0))
                } else {
                    Some(self.create(group))
                }
            }
            Life::Seeding(stage) => Some(self.seed_snapshot(signers, group, stage)),
            Life::Deleted => {
                self.recreated += 1;
                Some(self.create(group))
            }
            Life::Live => self.live(signers, group),
        }
    }

    fn live(&mut self, signers: &Signers, group: u32) -> Option<Draft> {
        if self.groups[group as usize].snapshot_only {
            if self.rng.random_bool(0.25) {
                return Some(self.newer_seed_snapshot(signers, group));
            }
            self.groups[group as usize].snapshot_only = false;
        }
        let doom = &mut self.groups[group as usize].doom;
        match *doom {
            Some(0) => return Some(self.delete_group(group)),
            Some(left) => *doom = Some(left - 1),
            None => {}
        }
        let r: f64 = self.rng.random();
        // Chat is the default (about 55% here, about half of the log once the relay's
        // answers to joins and leaves are counted).
        let draft = if r < 0.21 {
            self.put_users(signers, group)
        } else if r < 0.245 {
            self.remove_users(signers, group)
        } else if r < 0.315 {
            self.join(group)
        } else if r < 0.34 {
            self.leave(group)?
        } else if r < 0.37 {
            let signer = self.authority(group);
            self.metadata(group, signer, EDIT_METADATA, None)
        } else if r < 0.385 {
            self.invite(group)
        } else if r < 0.395 {
            self.delete_event(group)
        } else if r < 0.445 {
            self.relay_snapshot(signers, group)
        } else if r < 0.447 {
            self.forged_snapshot(signers, group)
        } else {
            self.chat(group)
        };
        Some(draft)
    }

    /// 9007: a new life of the group, created by a new user or, on re-creation, sometimes
    /// by its previous creator.
    fn create(&mut self, group: u32) -> Draft {
        let previous = self.groups[group as usize].creator;
        let creator = match previous {
            Some(user) if self.rng.random_bool(0.5) => user,
            _ => self.random_user(),
        };
        let doom = (group >= PROTECTED_RANKS && self.rng.random_bool(0.05))
            .then(|| self.rng.random_range(2..40));
        let g = &mut self.groups[group as usize];
        g.clear();
        g.life = Life::Live;
        g.creator = Some(creator);
        g.add(creator);
        g.doom = doom;
        let r: f64 = self.rng.random();
        if r < 0.3 {
            Draft::new(Signer::User(creator), CREATE_GROUP, vec![self.h(group)])
        } else {
            let dialect = if r < 0.75 {
                Dialect::Tags
            } else {
                Dialect::Legacy
            };
            self.metadata(group, Signer::User(creator), CREATE_GROUP, Some(dialect))
        }
    }

    /// 9008 by the creator (or an admin), ending the group's current life.
    fn delete_group(&mut self, group: u32) -> Draft {
        let g = &mut self.groups[group as usize];
        let signer = match (g.creator, g.admins.first()) {
            (Some(creator), _) => Signer::User(creator),
            (None, Some(&admin)) => Signer::User(admin),
            (None, None) => Signer::Relay,
        };
        g.clear();
        g.life = Life::Deleted;
        g.generation += 1;
        g.doom = None;
        let content = if self.rng.random_bool(0.5) {
            String::new()
        } else {
            "group closed".to_owned()
        };
        Draft::new(signer, DELETE_GROUP, vec![self.h(group)]).with_content(content)
    }

    /// Kind 9 from a member.
    fn chat(&mut self, group: u32) -> Draft {
        let author = match self.groups[group as usize].members.choose(&mut self.rng) {
            Some(&member) => member,
            None => self.random_user(),
        };
        let mut tags = vec![self.h(group)];
        if let Some(last) = self.groups[group as usize].last_chat {
            let r: f64 = self.rng.random();
            if r < 0.2 {
                tags.push(Tag::custom("previous", [&last.to_hex()[..8]]));
            } else if r < 0.3 {
                tags.push(Tag::custom(
                    "e",
                    [last.to_hex(), String::new(), "reply".to_owned()],
                ));
            }
        }
        let words = self.rng.random_range(2..=22);
        let content = self.text(words);
        Draft::new(Signer::User(author), CHAT, tags).with_content(content)
    }

    /// 9000 from an authority: one or several `p`, bare or with roles.
    fn put_users(&mut self, signers: &Signers, group: u32) -> Draft {
        let signer = self.authority(group);
        let count = if self.rng.random_bool(0.06) {
            self.rng.random_range(5..=20)
        } else {
            1 + usize::from(self.rng.random_bool(0.35)) + usize::from(self.rng.random_bool(0.1))
        };
        let mut tags = vec![self.h(group)];
        let mut chosen = Vec::with_capacity(count);
        for _ in 0..count {
            let existing = if self.rng.random_bool(0.15) {
                self.groups[group as usize]
                    .members
                    .choose(&mut self.rng)
                    .copied()
            } else {
                None
            };
            let user = match existing {
                Some(member) => member,
                None => self.outsider(group),
            };
            if chosen.contains(&user) {
                continue;
            }
            chosen.push(user);
            let r: f64 = self.rng.random();
            let roles: &[&str] = if r < 0.62 {
                &[]
            } else if r < 0.80 {
                &["admin"]
            } else if r < 0.90 {
                &["moderator", "writer"]
            } else if r < 0.96 {
                &["writer"]
            } else if r < 0.98 {
                &["moderator"]
            } else {
                &["admin", "admin"]
            };
            let g = &mut self.groups[group as usize];
            g.add(user);
            g.set_roles(user, roles);
            let mut values = vec![signers.user_hex(user)];
            values.extend(roles.iter().map(|&role| role.to_owned()));
            tags.push(Tag::custom("p", values));
        }
        let content = if self.rng.random_bool(0.1) {
            "welcome".to_owned()
        } else {
            String::new()
        };
        Draft::new(signer, PUT_USER, tags).with_content(content)
    }

    /// 9001 from an authority: one or several `p`, sometimes of non-members.
    fn remove_users(&mut self, signers: &Signers, group: u32) -> Draft {
        let signer = self.authority(group);
        let r: f64 = self.rng.random();
        let count = if r < 0.7 {
            1
        } else if r < 0.9 {
            2
        } else {
            self.rng.random_range(3..=5)
        };
        let mut tags = vec![self.h(group)];
        let mut chosen = Vec::with_capacity(count);
        for _ in 0..count {
            let user = match self.ordinary_member(group) {
                Some(member) if self.rng.random_bool(0.92) => member,
                _ => self.random_user(),
            };
            if chosen.contains(&user) {
                continue;
            }
            chosen.push(user);
            self.groups[group as usize].remove(user);
            tags.push(Tag::custom("p", [signers.user_hex(user)]));
        }
        Draft::new(signer, REMOVE_USER, tags)
    }

    /// 9021 from an outsider; the relay usually answers with a 9000 a little later.
    fn join(&mut self, group: u32) -> Draft {
        let user = self.outsider(group);
        let mut tags = vec![self.h(group)];
        if let Some(code) = &self.groups[group as usize].last_invite
            && self.rng.random_bool(0.3)
        {
            tags.push(Tag::custom("code", [code.as_str()]));
        }
        if self.rng.random_bool(0.8) {
            self.answers.push_back(Answer {
                group,
                generation: self.groups[group as usize].generation,
                user,
                put: true,
            });
        }
        let content = if self.rng.random_bool(0.3) {
            "hi, may I join?".to_owned()
        } else {
            String::new()
        };
        Draft::new(Signer::User(user), JOIN, tags).with_content(content)
    }

    /// 9022 from a member; the relay usually answers with a 9001 a little later.
    fn leave(&mut self, group: u32) -> Option<Draft> {
        let user = self.ordinary_member(group)?;
        if self.rng.random_bool(0.9) {
            self.answers.push_back(Answer {
                group,
                generation: self.groups[group as usize].generation,
                user,
                put: false,
            });
        }
        Some(Draft::new(Signer::User(user), LEAVE, vec![self.h(group)]))
    }

    /// The relay's 9000/9001 for a join or leave, unless the group was deleted since.
    fn answer(&mut self, signers: &Signers, answer: &Answer) -> Option<Draft> {
        let g = &mut self.groups[answer.group as usize];
        if g.generation != answer.generation || g.life != Life::Live {
            return None;
        }
        let kind = if answer.put {
            g.add(answer.user);
            g.set_roles(answer.user, &[]);
            PUT_USER
        } else {
            g.remove(answer.user);
            REMOVE_USER
        };
        let tags = vec![
            self.h(answer.group),
            Tag::custom("p", [signers.user_hex(answer.user)]),
        ];
        Some(Draft::new(Signer::Relay, kind, tags))
    }

    /// 9009 with a fresh code.
    fn invite(&mut self, group: u32) -> Draft {
        let signer = self.authority(group);
        let code = random_string(&mut self.rng, 10);
        self.groups[group as usize].last_invite = Some(code.clone());
        Draft::new(
            signer,
            CREATE_INVITE,
            vec![self.h(group), Tag::custom("code", [code])],
        )
    }

    /// 9005 of the group's last known chat message, else a chat message.
    fn delete_event(&mut self, group: u32) -> Draft {
        let Some(id) = self.groups[group as usize].last_chat.take() else {
            return self.chat(group);
        };
        let signer = self.authority(group);
        Draft::new(
            signer,
            DELETE_EVENT,
            vec![self.h(group), Tag::custom("e", [id.to_hex()])],
        )
    }

    /// 9007, 9002 or 39000 metadata (`name`, `about`, `picture`, flags) in a dialect
    /// (random for 9002 when `dialect` is `None`).
    fn metadata(
        &mut self,
        group: u32,
        signer: Signer,
        kind: u16,
        dialect: Option<Dialect>,
    ) -> Draft {
        let dialect = dialect.unwrap_or_else(|| {
            let r: f64 = self.rng.random();
            if r < 0.45 {
                Dialect::Tags
            } else if r < 0.7 {
                Dialect::Legacy
            } else if r < 0.88 {
                Dialect::Json
            } else {
                Dialect::Mixed
            }
        });
        let mut tags = vec![if kind == SNAPSHOT_METADATA {
            self.d(group)
        } else {
            self.h(group)
        }];
        if kind == SNAPSHOT_METADATA || self.rng.random_bool(0.9) {
            let name = format!(
                "{} {}",
                ADJECTIVES
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or_default(),
                NOUNS.choose(&mut self.rng).copied().unwrap_or_default()
            );
            tags.push(Tag::custom("name", [name]));
        }
        if self.rng.random_bool(0.6) {
            let words = self.rng.random_range(4..=12);
            tags.push(Tag::custom("about", [self.text(words)]));
        }
        if self.rng.random_bool(0.4) {
            let picture = format!(
                "https://images.example.com/{:016x}.png",
                self.rng.random::<u64>()
            );
            tags.push(Tag::custom("picture", [picture]));
        }
        let flags: [bool; 4] = [
            self.rng.random_bool(0.3),
            self.rng.random_bool(0.3),
            self.rng.random_bool(0.1),
            self.rng.random_bool(0.2),
        ];
        let mut content = String::new();
        for (i, &set) in flags.iter().enumerate() {
            match dialect {
                Dialect::Tags | Dialect::Mixed if set => tags.push(Tag::custom(FLAGS[i], [""; 0])),
                Dialect::Legacy if self.rng.random_bool(0.8) => {
                    let name = if set { FLAGS[i] } else { LEGACY_FLAGS[i] };
                    tags.push(Tag::custom(name, [""; 0]));
                }
                Dialect::Relay if set || i < 2 => {
                    let name = if set { FLAGS[i] } else { LEGACY_FLAGS[i] };
                    tags.push(Tag::custom(name, [""; 0]));
                }
                _ => {}
            }
        }
        if matches!(dialect, Dialect::Json | Dialect::Mixed) {
            let fields: Vec<String> = flags
                .iter()
                .zip(JSON_FLAGS)
                .filter(|_| dialect == Dialect::Mixed || self.rng.random_bool(0.8))
                .map(|(set, key)| format!("\"{key}\":{set}"))
                .collect();
            content = format!("{{{}}}", fields.join(","));
        }
        Draft::new(signer, kind, tags).with_content(content)
    }

    /// Snapshot `stage` (39000, 39001, 39002, 39003) of a group seeded from snapshots.
    fn seed_snapshot(&mut self, signers: &Signers, group: u32, stage: u8) -> Draft {
        let draft = match stage {
            0 => self.metadata(
                group,
                Signer::Relay,
                SNAPSHOT_METADATA,
                Some(Dialect::Relay),
            ),
            1 => {
                for _ in 0..self.rng.random_range(1..=3) {
                    let user = self.random_user();
                    let roles: &[&str] = if self.rng.random_bool(0.7) {
                        &["admin"]
                    } else {
                        &["moderator"]
                    };
                    let g = &mut self.groups[group as usize];
                    g.add(user);
                    g.set_roles(user, roles);
                }
                self.admins_snapshot(signers, group, Signer::Relay)
            }
            2 => {
                for _ in 0..self.rng.random_range(2..=30) {
                    let user = self.random_user();
                    self.groups[group as usize].add(user);
                }
                self.members_snapshot(signers, group, Signer::Relay)
            }
            _ => self.roles_snapshot(group),
        };
        self.groups[group as usize].life = if stage >= 3 {
            Life::Live
        } else {
            Life::Seeding(stage + 1)
        };
        draft
    }

    /// A newer 39002 (members changed) or 39000 of a group still seeded by snapshots only.
    fn newer_seed_snapshot(&mut self, signers: &Signers, group: u32) -> Draft {
        if self.rng.random_bool(0.4) {
            return self.metadata(
                group,
                Signer::Relay,
                SNAPSHOT_METADATA,
                Some(Dialect::Relay),
            );
        }
        for _ in 0..self.rng.random_range(1..=3) {
            let user = self.random_user();
            self.groups[group as usize].add(user);
        }
        if self.rng.random_bool(0.5)
            && let Some(member) = self.ordinary_member(group)
        {
            self.groups[group as usize].remove(member);
        }
        self.members_snapshot(signers, group, Signer::Relay)
    }

    /// A relay refresh of one of the group's state events.
    fn relay_snapshot(&mut self, signers: &Signers, group: u32) -> Draft {
        let r: f64 = self.rng.random();
        let small = self.groups[group as usize].members.len() <= MAX_SNAPSHOT_MEMBERS;
        if r < 0.25 {
            self.admins_snapshot(signers, group, Signer::Relay)
        } else if r < 0.5 && small {
            self.members_snapshot(signers, group, Signer::Relay)
        } else if r < 0.65 {
            self.roles_snapshot(group)
        } else {
            self.metadata(
                group,
                Signer::Relay,
                SNAPSHOT_METADATA,
                Some(Dialect::Relay),
            )
        }
    }

    /// A 39000/39001/39002 signed by a key other than the relay's, claiming the group.
    fn forged_snapshot(&mut self, signers: &Signers, group: u32) -> Draft {
        self.forged += 1;
        let signer = if self.rng.random_bool(0.5) {
            Signer::Forger
        } else {
            Signer::User(self.random_user())
        };
        let forger = signers.hex(signer);
        match self.rng.random_range(0..3) {
            0 => Draft::new(
                signer,
                SNAPSHOT_ADMINS,
                vec![
                    self.d(group),
                    Tag::custom("p", [forger, "admin".to_owned()]),
                ],
            ),
            1 => Draft::new(
                signer,
                SNAPSHOT_MEMBERS,
                vec![self.d(group), Tag::custom("p", [forger])],
            ),
            _ => Draft::new(
                signer,
                SNAPSHOT_METADATA,
                vec![
                    self.d(group),
                    Tag::custom("name", ["free for all"]),
                    Tag::custom("public", [""; 0]),
                    Tag::custom("open", [""; 0]),
                ],
            ),
        }
    }

    /// 39001: the creator and admins as `admin`, moderators as `moderator`.
    fn admins_snapshot(&self, signers: &Signers, group: u32, signer: Signer) -> Draft {
        let g = &self.groups[group as usize];
        let mut tags = vec![self.d(group)];
        let admins = g
            .creator
            .iter()
            .chain(&g.admins)
            .map(|&user| (user, "admin"));
        let moderators = g.moderators.iter().map(|&user| (user, "moderator"));
        let mut listed = Vec::new();
        for (user, role) in admins.chain(moderators).take(20) {
            if !listed.contains(&user) {
                listed.push(user);
                tags.push(Tag::custom("p", [signers.user_hex(user), role.to_owned()]));
            }
        }
        Draft::new(signer, SNAPSHOT_ADMINS, tags)
    }

    /// 39002 listing (at most [`MAX_SNAPSHOT_MEMBERS`]) members.
    fn members_snapshot(&self, signers: &Signers, group: u32, signer: Signer) -> Draft {
        let g = &self.groups[group as usize];
        let mut tags = vec![self.d(group)];
        tags.extend(
            g.members
                .iter()
                .take(MAX_SNAPSHOT_MEMBERS)
                .map(|&user| Tag::custom("p", [signers.user_hex(user)])),
        );
        Draft::new(signer, SNAPSHOT_MEMBERS, tags)
    }

    /// 39003 with the role definitions.
    fn roles_snapshot(&self, group: u32) -> Draft {
        let mut tags = vec![self.d(group)];
        tags.extend(
            ROLES
                .iter()
                .map(|&(name, description)| Tag::custom("role", [name, description])),
        );
        Draft::new(Signer::Relay, SNAPSHOT_ROLES, tags)
    }

    /// `words` words, in one message out of five with some non-ASCII ones.
    fn text(&mut self, words: usize) -> String {
        let unicode = self.rng.random_bool(0.2);
        let mut text = String::new();
        for i in 0..words {
            if i > 0 {
                text.push(' ');
            }
            let list: &[&str] = if unicode && self.rng.random_bool(0.25) {
                &UNICODE_WORDS
            } else {
                &WORDS
            };
            text.push_str(list.choose(&mut self.rng).copied().unwrap_or_default());
        }
        if self.rng.random_bool(0.3) {
            text.push(['.', '!', '?'][self.rng.random_range(0..3)]);
        }
        text
    }
}

fn random_string(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn run(spec: &WorkloadSpec) -> (Vec<Event>, WorkloadSummary) {
        let mut events = Vec::new();
        let summary = generate(spec, &|_| {}, &mut |event| {
            events.push(event.clone());
            Ok(())
        })
        .expect("generation succeeds");
        (events, summary)
    }

    fn lines(spec: &WorkloadSpec) -> Vec<u8> {
        let mut out = Vec::new();
        write_jsonl(spec, &|_| {}, &mut out).expect("generation succeeds");
        out
    }

    fn spec(groups: usize, events: usize, seed: u64) -> WorkloadSpec {
        WorkloadSpec {
            groups,
            events,
            seed,
            relay_secret: None,
        }
    }

    /// One 20k-event workload shared by the tests that inspect its content.
    fn big() -> &'static (Vec<Event>, WorkloadSummary) {
        static BIG: OnceLock<(Vec<Event>, WorkloadSummary)> = OnceLock::new();
        BIG.get_or_init(|| run(&spec(1_000, 20_000, 1)))
    }

    fn group_id(event: &Event) -> Option<&str> {
        let name = if event.kind.as_u16() >= SNAPSHOT_METADATA {
            "d"
        } else {
            "h"
        };
        let mut ids = event
            .tags
            .iter()
            .filter(|tag| tag.kind() == name)
            .filter_map(|tag| tag.content());
        let id = ids.next();
        assert!(
            ids.next().is_none(),
            "one group id per event: {}",
            event.as_json()
        );
        id
    }

    #[test]
    fn same_spec_gives_identical_output() {
        let spec = spec(40, 5_000, 7);
        let first = lines(&spec);
        assert_eq!(first, lines(&spec));
        assert_eq!(first.split(|&b| b == b'\n').count() - 1, 5_000);
        assert_ne!(first, lines(&WorkloadSpec { seed: 8, ..spec }));
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let spec = spec(30, 2 * CHUNK + 100, 3);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("thread pool");
        assert_eq!(pool.install(|| lines(&spec)), lines(&spec));
    }

    #[test]
    fn produces_exactly_the_requested_count() {
        for events in [0, 1, 17, CHUNK, CHUNK + 1] {
            let (produced, summary) = run(&spec(10, events, 2));
            assert_eq!(produced.len(), events);
            assert_eq!(summary.events, events);
            assert_eq!(summary.kinds.values().sum::<usize>(), events);
        }
        assert_eq!(big().0.len(), 20_000);
    }

    #[test]
    fn every_event_verifies_and_has_a_group_id() {
        let (events, summary) = big();
        let groups: HashSet<&str> = events
            .iter()
            .map(|event| {
                event.verify().expect("valid id and signature");
                group_id(event).expect("group id in h or d")
            })
            .collect();
        assert_eq!(groups.len(), summary.groups);
    }

    #[test]
    fn every_nip29_kind_appears() {
        let (events, summary) = big();
        let kinds: HashSet<u16> = events.iter().map(|event| event.kind.as_u16()).collect();
        for kind in [
            CHAT,
            PUT_USER,
            REMOVE_USER,
            EDIT_METADATA,
            DELETE_EVENT,
            CREATE_GROUP,
            DELETE_GROUP,
            CREATE_INVITE,
            JOIN,
            LEAVE,
            SNAPSHOT_METADATA,
            SNAPSHOT_ADMINS,
            SNAPSHOT_MEMBERS,
            SNAPSHOT_ROLES,
        ] {
            assert!(kinds.contains(&kind), "kind {kind} missing");
            assert!(summary.kinds[&kind] > 0);
        }
        let chat = summary.kinds[&CHAT];
        assert!((8_000..12_000).contains(&chat), "{chat} chat messages");
    }

    #[test]
    fn workload_has_the_interesting_shapes() {
        let (events, summary) = big();
        let relay = summary.relay_pubkey;
        let mut first: HashMap<&str, &Event> = HashMap::new();
        let mut deleted: HashSet<&str> = HashSet::new();
        let mut recreated = 0;
        let (mut forged, mut relay_moderation, mut roles, mut bare) = (0, 0, 0, 0);
        let (mut json, mut legacy, mut flags) = (0, 0, 0);
        for event in events {
            let id = group_id(event).expect("group id");
            first.entry(id).or_insert(event);
            let kind = event.kind.as_u16();
            match kind {
                DELETE_GROUP => {
                    deleted.insert(id);
                }
                CREATE_GROUP if deleted.remove(id) => recreated += 1,
                SNAPSHOT_METADATA..=SNAPSHOT_ROLES if event.pubkey != relay => forged += 1,
                PUT_USER | REMOVE_USER if event.pubkey == relay => relay_moderation += 1,
                _ => {}
            }
            for tag in event.tags.iter() {
                let tag = tag.as_slice();
                match tag[0].as_str() {
                    "p" if kind == PUT_USER && tag.len() > 2 => roles += 1,
                    "p" if kind == PUT_USER => bare += 1,
                    "public" | "open" | "visible" | "unrestricted" => legacy += 1,
                    "private" | "closed" | "hidden" | "restricted" => flags += 1,
                    _ => {}
                }
            }
            if kind == EDIT_METADATA && event.content.starts_with('{') {
                json += 1;
            }
        }
        let seeded = first
            .values()
            .filter(|event| event.kind.as_u16() == SNAPSHOT_METADATA && event.pubkey == relay)
            .count();
        assert_eq!(seeded, summary.seeded_groups);
        assert!(seeded > 0);
        assert_eq!(recreated, summary.recreated_groups);
        assert!(recreated > 0);
        assert_eq!(forged, summary.forged_snapshots);
        assert!(forged > 0);
        for count in [relay_moderation, roles, bare, json, legacy, flags] {
            assert!(count > 0);
        }
        let same_second = events
            .windows(2)
            .filter(|pair| pair[1].created_at == pair[0].created_at)
            .count();
        let backwards = events
            .windows(2)
            .filter(|pair| pair[1].created_at < pair[0].created_at)
            .count();
        assert!(same_second > 1_000, "{same_second} same-second pairs");
        assert!((10..1_000).contains(&backwards), "{backwards} steps back");
        assert!(events[0].created_at.as_secs() >= EPOCH);
    }

    #[test]
    fn moderation_is_mostly_by_creator_or_admins() {
        let (events, summary) = big();
        let mut authority: HashMap<&str, HashSet<PublicKey>> = HashMap::new();
        let (mut by_authority, mut total) = (0, 0);
        for event in events {
            let id = group_id(event).expect("group id");
            let kind = event.kind.as_u16();
            if matches!(kind, PUT_USER | REMOVE_USER | EDIT_METADATA | DELETE_GROUP)
                && event.pubkey != summary.relay_pubkey
            {
                total += 1;
                if authority
                    .get(id)
                    .is_some_and(|keys| keys.contains(&event.pubkey))
                {
                    by_authority += 1;
                }
            }
            let keys = authority.entry(id).or_default();
            match kind {
                CREATE_GROUP => {
                    keys.clear();
                    keys.insert(event.pubkey);
                }
                PUT_USER | SNAPSHOT_ADMINS
                    if kind == PUT_USER || event.pubkey == summary.relay_pubkey =>
                {
                    for tag in event.tags.iter().map(Tag::as_slice) {
                        if tag[0] == "p"
                            && tag[2..]
                                .iter()
                                .any(|role| role == "admin" || role == "moderator")
                        {
                            keys.insert(PublicKey::from_hex(&tag[1]).expect("pubkey"));
                        }
                    }
                }
                _ => {}
            }
        }
        assert!(by_authority * 10 > total * 8, "{by_authority} of {total}");
    }

    #[test]
    fn relay_secret_is_used_when_given() {
        let secret = [7_u8; 32];
        let spec = WorkloadSpec {
            relay_secret: Some(secret),
            ..spec(20, 3_000, 5)
        };
        let expected = Keys::new(SecretKey::from_slice(&secret).expect("valid")).public_key();
        assert_eq!(spec.relay_keys().expect("valid").public_key(), expected);
        let (events, summary) = run(&spec);
        assert_eq!(summary.relay_pubkey, expected);
        assert!(
            events
                .iter()
                .any(|event| event.kind.as_u16() == SNAPSHOT_ROLES && event.pubkey == expected)
        );
        let bad = WorkloadSpec {
            relay_secret: Some([0; 32]),
            ..spec
        };
        assert_eq!(
            generate(&bad, &|_| {}, &mut |_| Ok(()))
                .expect_err("zero key")
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn events_are_reasonably_sized() {
        let (events, _) = big();
        let total: usize = events.iter().map(|event| event.as_json().len()).sum();
        let mean = total / events.len();
        assert!((250..=600).contains(&mean), "mean size {mean}");
    }

    #[test]
    fn sink_errors_stop_generation() {
        let mut seen = 0;
        let result = generate(&spec(10, 3 * CHUNK, 1), &|_| {}, &mut |_| {
            seen += 1;
            if seen == 10 {
                Err(io::Error::other("disk full"))
            } else {
                Ok(())
            }
        });
        assert_eq!(result.expect_err("sink error").to_string(), "disk full");
        assert_eq!(seen, 10);
    }
}
