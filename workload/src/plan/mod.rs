//! The sequential planner: one seeded `ChaCha` stream decides the author, `created_at`,
//! kind, tags and content of every event, in log order, from a plausible per-group state.
//!
//! The `Planner` is split by concern, each file with its own `impl Planner` block:
//! - this file: the planner's state, the clock, group and user picks, and the queue of
//!   relay answers owed to joins and leaves;
//! - [`group`]: the generator's view of one group (life, members, roles);
//! - [`lifecycle`]: what happens next to a group, its creation (9007) and deletion (9008);
//! - [`moderation`]: members put and removed, joins and leaves, invites, event deletions;
//! - [`metadata`]: names, descriptions and flags in every dialect (9007, 9002, 39000);
//! - [`snapshots`]: relay snapshot events 39000–39003, seeded groups and forgeries;
//! - [`chat`]: kind 9 messages and the text they are made of.

mod chat;
mod group;
mod lifecycle;
mod metadata;
mod moderation;
mod snapshots;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;

use nostr::prelude::{Event, PublicKey, Tag};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::keys::{Planned, Signer, Signers, derived_stream};
use super::vocab::{ALPHANUMERIC, CHAT, DOMAIN_PLAN};
use super::{EPOCH, WorkloadSpec, WorkloadSummary};
use group::Group;

/// The most active groups (by Zipf rank) are never seeded from snapshots nor deleted, so
/// that large workloads keep a few very large groups.
const PROTECTED_RANKS: u32 = 5;

/// Largest member list a relay refresh of 39002 lists (bigger groups refresh 39000).
const MAX_SNAPSHOT_MEMBERS: usize = 64;

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

/// Sequential planner: owns the planning RNG, the clock and the per-group state.
pub(super) struct Planner {
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
    pub(super) fn new(spec: &WorkloadSpec, users: usize) -> Self {
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

    pub(super) fn summary(&self, relay_pubkey: PublicKey, events: usize) -> WorkloadSummary {
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

    pub(super) fn plan_chunk(&mut self, signers: &Signers, n: usize) -> Vec<Planned> {
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

    fn h(&self, group: u32) -> Tag {
        Tag::custom("h", [self.groups[group as usize].id.as_str()])
    }

    fn d(&self, group: u32) -> Tag {
        Tag::custom("d", [self.groups[group as usize].id.as_str()])
    }
}

/// Hands a signed chunk to the sink and records the ids later events may refer to.
pub(super) fn emit(
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

fn random_string(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())]))
        .collect()
}
