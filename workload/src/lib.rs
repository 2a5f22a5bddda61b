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
//!
//! # Layout
//!
//! - `vocab`: event kinds, key-derivation domains and the word lists content is made of;
//! - `keys`: key derivation and deterministic parallel signing of planned events;
//! - `plan`: the sequential `Planner` that decides every event (author, time, kind, tags,
//!   content) from the per-group state it keeps;
//! - `tests`: unit tests of the whole generator.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod keys;
mod plan;
mod vocab;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::{self, Write};

use nostr::prelude::{Event, Keys, PublicKey};
use secp256k1::Secp256k1;

use keys::{Signers, relay_keys, sign_chunk};
use plan::{Planner, emit};

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

fn take_chunk(remaining: &mut usize) -> usize {
    let n = (*remaining).min(CHUNK);
    *remaining -= n;
    n
}
