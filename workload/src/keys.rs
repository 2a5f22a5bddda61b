//! Keys and signing: every key of the workload derived from the seed, and the parallel,
//! deterministic signing of planned events (auxiliary randomness derived from the seed and
//! the event's log position instead of the OS RNG).

use std::io;

use nostr::prelude::{Event, EventId, Keys, Kind, SecretKey, Tag, Tags, Timestamp};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use secp256k1::{Secp256k1, SignOnly};

use super::vocab::{DOMAIN_AUX, DOMAIN_FORGER, DOMAIN_RELAY, DOMAIN_USER};
use super::{MAX_USERS, WorkloadSpec};

/// Who signs a planned event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signer {
    User(u32),
    Relay,
    Forger,
}

/// Every key of the workload, derived once.
pub(super) struct Signers {
    pub(super) users: Vec<Keys>,
    pub(super) relay: Keys,
    forger: Keys,
}

impl Signers {
    pub(super) fn new(ctx: &Secp256k1<SignOnly>, spec: &WorkloadSpec) -> io::Result<Self> {
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

    pub(super) fn hex(&self, signer: Signer) -> String {
        self.keys(signer).public_key().to_hex()
    }

    pub(super) fn user_hex(&self, user: u32) -> String {
        self.hex(Signer::User(user))
    }
}

pub(super) fn relay_keys(ctx: &Secp256k1<SignOnly>, spec: &WorkloadSpec) -> io::Result<Keys> {
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
pub(super) fn derived_stream(seed: u64, domain: u64, index: u64) -> ChaCha20Rng {
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
pub(super) struct Planned {
    pub(super) signer: Signer,
    pub(super) created_at: u64,
    pub(super) kind: u16,
    pub(super) tags: Vec<Tag>,
    pub(super) content: String,
    pub(super) group: u32,
}

/// Signs a chunk in parallel; `base` is the log position of its first event.
pub(super) fn sign_chunk(
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
