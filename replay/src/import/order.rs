//! Deciding events in file order against the state of everything accepted before them,
//! while keeping batches large.
//!
//! Validation (parsing, id hashes, signatures, the duplicate index) runs on all cores
//! per batch. Then each event is decided in file order with
//! [`AccessPolicy::check_write`] against the committed state, and queued for the
//! writer. An accepted event that changes a group's state (a kind one of the NIP-29
//! projections folds) leaves that group *pending* until its batch is committed. Before
//! an event of a pending group is decided, what is queued is committed first (a
//! *flush*), so the decision sees every event before it — exactly what one-at-a-time
//! `check_write` + append would answer. Events of other groups, and the relay's state
//! events (decided by their author alone), never wait.
//!
//! A pending 9000/9001 in a group whose state comes from its history only changes the
//! membership and roles of the keys in its `p` tags, and `check_write` reads only the
//! author's membership and roles (besides the group's life, flags, creator and invite
//! codes, which these kinds do not change): only those keys' events force a flush. Any
//! other state change makes the whole group wait.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use highwater_engine::Kinds;
use highwater_projections::{AccessPolicy, GroupMetadata, Life, Source};
use highwater_store::{AppendOutcome, PreparedEvent, Store, Ticket};
use nostr::prelude::{Event, PublicKey};

use super::parse::Refusal;
use super::resume::{PROGRESS_SETTING, Position, Progress};

const PUT_USER: u16 = 9000;
const REMOVE_USER: u16 = 9001;
const EDIT_METADATA: u16 = 9002;
const CREATE_GROUP: u16 = 9007;
const DELETE_GROUP: u16 = 9008;
const CREATE_INVITE: u16 = 9009;
const METADATA: u16 = 39_000;
const ADMINS: u16 = 39_001;
const MEMBERS: u16 = 39_002;
const ROLES: u16 = 39_003;

/// What an accepted event changes, as far as `check_write` can tell.
enum Change {
    /// Nothing it reads.
    None,
    /// The invite codes.
    Codes,
    /// The membership and roles of these keys.
    Keys(Vec<[u8; 32]>),
    /// Anything.
    All,
}

/// Whether a 9002 leaves every part of the metadata but the name, about and picture
/// as it is (a 9002 replaces the whole metadata): then no decision can change. Compared
/// through the serialised form, so a field added later counts as a rule.
fn same_rules(policy: &AccessPolicy, group: &str, event: &Event) -> bool {
    let Ok(current) = policy.groups().metadata(group) else {
        return false;
    };
    let rules = |m: &GroupMetadata| {
        serde_json::to_value(m).ok().map(|mut v| {
            if let Some(map) = v.as_object_mut() {
                for cosmetic in ["name", "about", "picture"] {
                    map.remove(cosmetic);
                }
            }
            v
        })
    };
    let wanted = rules(&GroupMetadata::from_event(event));
    wanted.is_some() && wanted == rules(&current)
}

/// What is pending in one group: everything, or the state of a few keys.
#[derive(Debug, Default)]
struct Pending {
    all: bool,
    keys: HashSet<[u8; 32]>,
    /// New invite codes: only join requests read them.
    codes: bool,
    /// The batch that carries its latest change: once it is committed, nothing is
    /// pending any more.
    batch: u64,
}

/// The kinds some NIP-29 projection folds: the ones that change a group's state.
#[derive(Debug, Clone)]
pub(crate) struct Folded(Option<HashSet<u16>>);

impl Folded {
    pub(crate) fn of(policy: &AccessPolicy) -> Self {
        let groups = policy.groups();
        let lists = [
            groups.membership_projection().projection_kinds(),
            groups.roles_projection().projection_kinds(),
            groups.metadata_projection().projection_kinds(),
            groups.creator_projection().projection_kinds(),
        ];
        let mut set = HashSet::new();
        for kinds in lists {
            match kinds {
                Kinds::All => return Self(None),
                Kinds::Only(list) => set.extend(list),
            }
        }
        Self(Some(set))
    }

    fn contains(&self, kind: u16) -> bool {
        self.0.as_ref().is_none_or(|set| set.contains(&kind))
    }
}

/// The kinds a projection folds, through its engine handle.
trait ProjectionKinds {
    fn projection_kinds(&self) -> Kinds;
}

impl<P: highwater_engine::Projection> ProjectionKinds for highwater_engine::Handle<P> {
    fn projection_kinds(&self) -> Kinds {
        self.projection().kinds()
    }
}

/// What the writer acknowledged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Acked {
    pub appended: u64,
    pub duplicate: u64,
}

/// The writer's queue, the decisions' view of what is not yet committed, and the
/// policy.
pub struct Pipeline<'a> {
    store: &'a Store,
    /// The store's ordered submitter: once a batch fails, every later batch of this
    /// import is cancelled, so the log holds a prefix of the file, never a hole.
    writer: highwater_store::Pipeline,
    /// Whether each batch records the import's progress in its own transaction.
    recording: bool,
    /// The progress after the last record decided: what a batch sent now records.
    decided: Progress,
    /// The progress the newest acknowledged batch recorded (at first, where this run
    /// started): every event accepted up to it is in the log, and nothing after it.
    committed: Progress,
    policy: Option<(&'a AccessPolicy, Arc<Folded>)>,
    /// Batches submitted and not yet acknowledged.
    in_flight: VecDeque<InFlight>,
    /// Decided, not yet submitted.
    queued: Vec<PreparedEvent>,
    /// Ids queued since the duplicate index was last read, with their batch: a second
    /// copy of one is a duplicate even if validation, which read the index earlier,
    /// did not see it.
    recent: HashMap<[u8; 32], u64>,
    /// The first four bytes of the ids in `recent`, with the newest batch of any of
    /// them: whether a NIP-29 `previous` reference (eight hex digits) may name an event
    /// not yet committed.
    recent_prefixes: HashMap<[u8; 4], u64>,
    /// The last batch acknowledged (batches are acknowledged in order), shared with
    /// the thread that validates ahead.
    acked_batch: Arc<AtomicU64>,
    pending: HashMap<Box<str>, Pending>,
    /// The number the queued batch will carry.
    batch: u64,
    /// Most batches in flight besides the one being filled.
    depth: usize,
    /// What the writer acknowledged: events appended, and events it found present.
    pub acked: Acked,
    /// Commits forced by decisions (for the bench's notes).
    pub flushes: u64,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("in_flight", &self.in_flight.len())
            .field("queued", &self.queued.len())
            .field("pending", &self.pending.len())
            .field("acked", &self.acked)
            .finish_non_exhaustive()
    }
}

/// A batch sent to the writer and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    /// Its number.
    batch: u64,
    /// The progress it records: every record decided before it was sent.
    progress: Progress,
    ticket: Ticket,
}

/// The decision on one validated event.
#[derive(Debug)]
pub enum Decision {
    Queued,
    Duplicate,
    Refused(Refusal),
}

impl<'a> Pipeline<'a> {
    /// A pipeline into `store`, deciding with `policy` (none: no write policy) and keeping at most
    /// `depth` batches in flight besides the one being filled.
    pub fn new(store: &'a Store, policy: Option<&'a AccessPolicy>, depth: usize) -> Self {
        Self {
            store,
            writer: store.pipeline(),
            recording: false,
            decided: Progress::start(&[]),
            committed: Progress::start(&[]),
            policy: policy.map(|p| (p, Arc::new(Folded::of(p)))),
            in_flight: VecDeque::new(),
            queued: Vec::new(),
            recent: HashMap::new(),
            recent_prefixes: HashMap::new(),
            acked_batch: Arc::new(AtomicU64::new(0)),
            pending: HashMap::new(),
            batch: 1,
            depth,
            acked: Acked::default(),
            flushes: 0,
        }
    }

    /// Records the import's progress from `start` on: each batch carries the progress
    /// after the last record decided before it was sent, written in its own
    /// transaction ([`PROGRESS_SETTING`]).
    #[must_use]
    pub fn recording(mut self, start: Progress) -> Self {
        self.recording = true;
        self.decided = start;
        self.committed = start;
        self
    }

    /// Call once the record at `position` is decided (accepted, a duplicate, refused,
    /// or skipped): whether it was an event, and whether it was refused.
    pub fn decided(&mut self, position: Position, event: bool, refused: bool) {
        self.decided.position = position;
        self.decided.events += u64::from(event);
        self.decided.refused += u64::from(refused);
    }

    /// The progress after the last record decided.
    pub fn progress(&self) -> Progress {
        self.decided
    }

    /// The progress the newest acknowledged batch recorded: every event accepted up to
    /// it is in the log, and nothing after it.
    pub fn committed(&self) -> Progress {
        self.committed
    }

    /// Decides `event` (validated as `prepared`) after everything decided before it.
    pub fn decide(&mut self, event: &Event, prepared: PreparedEvent) -> Result<Decision> {
        if self.recent.contains_key(prepared.id()) {
            return Ok(Decision::Duplicate);
        }
        if let Some((policy, folded)) = self.policy.clone() {
            let kind = event.kind.as_u16();
            let group = prepared.group();
            // Subgroups link groups: whether a 9002 or 9007 may set a parent, list
            // children or leave one out, or a 9008 may delete, reads other groups'
            // state (the parent's admins and life, the children's parents). Such an
            // event waits for every pending change, in any group.
            let crosses_groups = matches!(kind, EDIT_METADATA | CREATE_GROUP | DELETE_GROUP)
                && !self.pending.is_empty();
            // Any event of a group with a change still in flight waits for it, state
            // events included: the narrowed rules (by key, by invite code) missed a
            // case the batch-vs-one-at-a-time property test found, so exactness wins
            // over fewer commits until that case is understood.
            let same_group = group.is_some_and(|group| self.pending.contains_key(group));
            // A `previous` reference must name a stored event: one that names an event
            // decided but not yet committed waits for it.
            let references_pending =
                (!self.queued.is_empty() || !self.in_flight.is_empty()) && self.names_recent(event);
            if crosses_groups || same_group || references_pending {
                self.flush()?;
                self.flushes += 1;
            }
            if let Err(rejection) = policy.check_write(event) {
                return Ok(Decision::Refused(Refusal::plain(rejection.to_string())));
            }
            if folded.contains(kind)
                && let Some(group) = group
            {
                self.mark_pending(policy, group, event);
            }
        }
        // Remembered with the batch it will be committed in: a flush above moved the
        // queue on, and an id recorded with the flushed batch's number would be
        // forgotten (`begin_validation`) before its own batch is in the index.
        self.recent.insert(*prepared.id(), self.batch);
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&prepared.id()[..4]);
        self.recent_prefixes.insert(prefix, self.batch);
        self.queued.push(prepared);
        Ok(Decision::Queued)
    }

    /// Whether one of `event`'s `previous` references may name an event in `recent`
    /// (compared on the four bytes every reference has; a false yes costs a commit).
    fn names_recent(&self, event: &Event) -> bool {
        event
            .tags
            .iter()
            .filter(|t| t.kind() == "previous")
            .filter_map(|t| t.content())
            .filter_map(|hex| {
                let digits = hex.get(..8)?;
                let mut prefix = [0u8; 4];
                for (i, byte) in prefix.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some(prefix)
            })
            .any(|prefix| self.recent_prefixes.contains_key(&prefix))
    }

    /// Records what an accepted event changes in its group until it is committed.
    fn mark_pending(&mut self, policy: &AccessPolicy, group: &str, event: &Event) {
        let kind = event.kind.as_u16();
        let whole = self.pending.get(group).is_some_and(|p| p.all);
        // Narrowing reads the committed state, which is current for everything but the
        // keys and codes already pending (a group with a whole-state change pending is
        // not narrowed).
        let history = || {
            !whole
                && policy
                    .groups()
                    .lifecycle(group)
                    .is_ok_and(|l| l.life == Life::Active && l.source == Source::History)
        };
        let change = match kind {
            // Role definitions: `check_write` reads who holds a role, not what it means.
            ROLES => return,
            // Relay snapshots count only while a group has no history.
            METADATA | ADMINS | MEMBERS if history() => return,
            PUT_USER | REMOVE_USER if history() => match tagged_keys(event) {
                Some(keys) => Change::Keys(keys),
                None => Change::All,
            },
            EDIT_METADATA if history() && same_rules(policy, group, event) => Change::None,
            CREATE_INVITE if history() => Change::Codes,
            _ => Change::All,
        };
        let entry = self.pending.entry(group.into()).or_default();
        entry.batch = self.batch;
        match change {
            Change::None => {}
            Change::Codes => entry.codes = true,
            Change::Keys(keys) if !entry.all => entry.keys.extend(keys),
            Change::Keys(_) | Change::All => {
                entry.all = true;
                entry.keys.clear();
            }
        }
    }

    /// The number of the last batch acknowledged: read it just before validating
    /// records, and pass it to [`Pipeline::begin_validation`] before deciding them.
    pub fn acked_batch(&self) -> Arc<AtomicU64> {
        self.acked_batch.clone()
    }

    /// Call before deciding records validated when `acked` was the last batch
    /// acknowledged: what was committed by then is in the duplicate index validation
    /// read, so only the rest is remembered.
    pub fn begin_validation(&mut self, acked: u64) {
        self.recent.retain(|_, batch| *batch > acked);
        self.recent_prefixes.retain(|_, batch| *batch > acked);
    }

    /// Sends what is queued to the writer, keeping at most `depth` batches in flight.
    pub fn submit(&mut self) -> Result<()> {
        if !self.queued.is_empty() {
            let events = std::mem::take(&mut self.queued);
            let ticket = if self.recording {
                self.writer
                    .submit_with_setting(events, PROGRESS_SETTING, self.decided.encode())?
            } else {
                self.writer.submit(events)?
            };
            self.in_flight.push_back(InFlight {
                batch: self.batch,
                progress: self.decided,
                ticket,
            });
            self.batch += 1;
        }
        while self.in_flight.len() > self.depth {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Commits everything decided so far and waits for it.
    pub fn flush(&mut self) -> Result<()> {
        self.submit()?;
        while !self.in_flight.is_empty() {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> Result<()> {
        let Some(InFlight {
            batch,
            progress,
            ticket,
        }) = self.in_flight.pop_front()
        else {
            return Ok(());
        };
        let outcomes = ticket.wait().with_context(|| {
            // Named from what was acknowledged, never from what was sent.
            let line = progress.position.line;
            let committed = self.committed.position.line;
            let head = self.store.head();
            if !self.recording {
                format!(
                    "committing batch {batch}: the batches before it are in the log, nothing after them was written (the log's head is {head})"
                )
            } else if committed == 0 {
                format!(
                    "committing the batch that ends at line {line}: no accepted event of this input is in the log yet, nothing of it was written (the log's head is {head}); re-run the same import to start it again"
                )
            } else {
                format!(
                    "committing the batch that ends at line {line}: every accepted event up to line {committed} is in the log, nothing after it was written (the log's head is {head}); re-run the same import to resume after line {committed}"
                )
            }
        })?;
        self.committed = progress;
        for o in outcomes {
            match o {
                AppendOutcome::Appended(_) => self.acked.appended += 1,
                AppendOutcome::Duplicate(_) => self.acked.duplicate += 1,
            }
        }
        self.acked_batch.store(batch, Ordering::Release);
        self.pending.retain(|_, p| p.batch > batch);
        Ok(())
    }
}

/// The keys in a 9000/9001's `p` tags, or `None` when one is not a key (then the whole
/// group waits: the fold's reading of it is not second-guessed here).
fn tagged_keys(event: &Event) -> Option<Vec<[u8; 32]>> {
    event
        .tags
        .iter()
        .filter(|t| t.kind() == "p")
        .map(|t| {
            let hex = t.content()?;
            PublicKey::from_hex(hex).ok().map(PublicKey::to_bytes)
        })
        .collect()
}
