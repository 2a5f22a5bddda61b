//! The shell every per-group NIP-29 projection shares, written once: [`Nip29`] holds
//! the configuration and the registration's pubkey dictionary, and implements the
//! engine's [`Projection`] for any state that knows its own fold ([`Nip29Fold`]).
//!
//! A projection supplies its name, base version, extra kinds, state and checkpoint
//! record, and what each lifecycle [`Step`] does to its state; the shell supplies the
//! version (the base with the relay key), the kinds (`kind::LIFE` plus the extra ones),
//! the lifecycle step, the dictionary wiring and the `Projection` methods.
//!
//! [`Seed`] is the seeding from relay snapshots written once: a projection whose state
//! a group's 39001 and 39002 seed while it has no history (`membership`, `roles`) keeps
//! one, feeds it each lifecycle step, and derives its state from [`Seed::lists`]
//! whenever it changed. (`metadata` is seeded by the 39000 alone and keeps only its
//! [`Stamp`].)

use std::marker::PhantomData;
use std::sync::Arc;

use highwater_engine::{ApplyError, CodecError, Kinds, Projection};
use highwater_store::EventRef;

use crate::config::{Nip29Config, kind};
use crate::dict::Dictionary;
use crate::life::{Lifecycle, Stamp, Step};

/// What a per-group NIP-29 projection supplies: implemented by its state.
///
/// Public in a private module, so that `Nip29<S>` can be a public projection while no
/// one outside the crate can implement or name this trait.
pub trait Nip29Fold: Clone + PartialEq + std::fmt::Debug + Send + Sync + Sized + 'static {
    /// The projection's name: it keys the checkpoints.
    const NAME: &'static str;
    /// Bumped whenever the fold or the state layout changes.
    const BASE_VERSION: u32;
    /// The kinds folded beyond `kind::LIFE`.
    const EXTRA_KINDS: &'static [u16] = &[];
    /// The name of the projection type, as `Debug` prints it.
    const TYPE_NAME: &'static str;
    /// Whether the state numbers pubkeys in the dictionary (`Debug` then prints it).
    const NUMBERS_KEYS: bool = true;

    /// The kinds only the relay's key may sign (none by default).
    fn relay_signed() -> Vec<u16> {
        Vec::new()
    }

    /// The state of a group before any event.
    fn init(shell: &Nip29<Self>) -> Self;

    /// The group's lifecycle, which the shell advances before [`Nip29Fold::fold`].
    fn lifecycle_mut(&mut self) -> &mut Lifecycle;

    /// What `event` does to the state, given the lifecycle `step` it made.
    fn fold(&mut self, step: Step, event: EventRef<'_>, shell: &Nip29<Self>);

    /// The checkpoint bytes of the state (rkyv).
    ///
    /// # Errors
    ///
    /// A [`CodecError`] when rkyv fails.
    fn encode(&self) -> Result<Vec<u8>, CodecError>;

    /// A state from checkpoint bytes, numbering its pubkeys in the shell's dictionary.
    ///
    /// # Errors
    ///
    /// A [`CodecError`] when the bytes are not a valid checkpoint.
    fn decode(bytes: &[u8], shell: &Nip29<Self>) -> Result<Self, CodecError>;
}

/// A per-group NIP-29 projection whose state is `S` (see [`Membership`](crate::Membership),
/// [`Roles`](crate::Roles), [`Metadata`](crate::Metadata), [`Creator`](crate::Creator)).
#[derive(Clone)]
pub struct Nip29<S> {
    pub(crate) config: Nip29Config,
    pub(crate) dict: Arc<Dictionary>,
    state: PhantomData<fn() -> S>,
}

impl<S: Nip29Fold> Nip29<S> {
    /// The projection for the relay in `config`, with a pubkey dictionary of its own.
    pub fn new(config: Nip29Config) -> Self {
        Self::with_dictionary(config, Arc::default())
    }

    /// The projection numbering pubkeys in `dict`, shared with the other projections
    /// of one registration.
    pub(crate) fn with_dictionary(config: Nip29Config, dict: Arc<Dictionary>) -> Self {
        Self {
            config,
            dict,
            state: PhantomData,
        }
    }

    /// The relay key's raw bytes, as the folds compare them.
    pub(crate) fn relay_bytes(&self) -> &[u8; 32] {
        self.config.relay_bytes()
    }
}

impl<S: Nip29Fold> std::fmt::Debug for Nip29<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct(S::TYPE_NAME);
        d.field("config", &self.config);
        if S::NUMBERS_KEYS {
            d.field("dict", &self.dict);
        }
        d.finish()
    }
}

impl<S: Nip29Fold> Projection for Nip29<S> {
    type State = S;

    fn name(&self) -> &'static str {
        S::NAME
    }

    fn version(&self) -> u64 {
        self.config.version(S::BASE_VERSION)
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(kind::life_and(S::EXTRA_KINDS))
    }

    fn relay_signed(&self) -> Vec<u16> {
        S::relay_signed()
    }

    fn init(&self) -> S {
        S::init(self)
    }

    fn apply(&self, state: &mut S, event: &EventRef<'_>) -> Result<(), ApplyError> {
        let step = state.lifecycle_mut().step(*event, self.relay_bytes());
        state.fold(step, *event, self);
        Ok(())
    }

    fn encode(&self, state: &S) -> Result<Vec<u8>, CodecError> {
        state.encode()
    }

    fn decode(&self, bytes: &[u8]) -> Result<S, CodecError> {
        S::decode(bytes, self)
    }
}

/// One kind's newest relay snapshot (39001 or 39002): when it was made and what the
/// projection keeps of it (`T`: member ids, or members with their roles).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Snapshot<T> {
    pub(crate) stamp: Stamp,
    pub(crate) list: T,
}

/// The relay snapshots a group's state is seeded from while it has no history
/// (`Source::Snapshots`), kept raw so every new one recomputes: the newest 39002
/// (members) and the newest 39001 (admins), each chosen the NIP-01 way (newest
/// `created_at`, then the lowest id, whatever the log order).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Seed<T> {
    pub(crate) members: Option<Snapshot<T>>,
    pub(crate) admins: Option<Snapshot<T>>,
}

impl<T> Default for Seed<T> {
    fn default() -> Self {
        Self {
            members: None,
            admins: None,
        }
    }
}

impl<T> Seed<T> {
    /// What a lifecycle `step` does to the seed: a new life, a deletion or the first
    /// moderation of a seeded group drops it (history counts from then on); a snapshot
    /// replaces its kind's if it is not older, `read` making what the projection keeps
    /// of it. Whether the seed changed, so the state must be derived again from
    /// [`Seed::lists`].
    pub(crate) fn step(
        &mut self,
        step: Step,
        event: EventRef<'_>,
        read: impl FnOnce(EventRef<'_>) -> T,
    ) -> bool {
        match step {
            Step::Create | Step::Delete | Step::Moderate { was_seeded: true } => {
                *self = Self::default();
                false
            }
            Step::Snapshot => {
                let slot = match event.kind() {
                    kind::MEMBERS => &mut self.members,
                    kind::ADMINS => &mut self.admins,
                    _ => return false,
                };
                let stamp = Stamp::of(event);
                if !stamp.replaces(slot.as_ref().map(|s| s.stamp)) {
                    return false;
                }
                *slot = Some(Snapshot {
                    stamp,
                    list: read(event),
                });
                true
            }
            Step::Ignore | Step::Moderate { was_seeded: false } | Step::Other { .. } => false,
        }
    }

    /// What the state is seeded from: the 39002's list, and the 39001's when it is as
    /// new as the 39002 or newer (relays publish both in one second) or there is no
    /// 39002 yet.
    pub(crate) fn lists(&self) -> (Option<&T>, Option<&T>) {
        let admins_newer = match (&self.admins, &self.members) {
            (Some(a), Some(m)) => a.stamp.created_at >= m.stamp.created_at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        (
            self.members.as_ref().map(|m| &m.list),
            self.admins
                .as_ref()
                .filter(|_| admins_newer)
                .map(|a| &a.list),
        )
    }
}
