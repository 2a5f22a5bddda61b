//! The relay's management state (NIP-86): banned and allowed pubkeys, banned events,
//! and the relay's name, description and icon as changed by its operators.
//!
//! Every management action is an event in the log: kind [`MANAGEMENT_KIND`] (9086),
//! signed by the relay key, its `method` tag naming the NIP-86 method and its `param`
//! tags the method's parameters in order (a `by` tag names the admin who asked). The
//! state is a relay-wide engine projection of those events, so it persists, survives a
//! restart, is the same in every process reading the log, and is never a copy kept
//! beside the log. Events of this kind from any other key change nothing: a client
//! cannot ban anyone by posting one.

use std::collections::BTreeMap;

use highwater_engine::{
    ApplyError, CodecError, Kinds, RelayWideProjection, decode_rkyv, encode_rkyv,
};
use highwater_store::EventRef;
use nostr::prelude::PublicKey;

/// The kind of the relay's management events. A regular kind (stored in full, each
/// action a record), outside NIP-29's 9000–9030 and 39000–39009, named after NIP-86.
/// A relay never serves these events and refuses them from clients.
pub const MANAGEMENT_KIND: u16 = 9086;

/// What the management events of the log say, as of the projection's watermark.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct ManagementState {
    /// Banned pubkey → reason.
    banned_pubkeys: BTreeMap<[u8; 32], String>,
    /// Allowed pubkey → reason.
    allowed_pubkeys: BTreeMap<[u8; 32], String>,
    /// Banned event id → reason.
    banned_events: BTreeMap<[u8; 32], String>,
    name: Option<String>,
    description: Option<String>,
    icon: Option<String>,
}

/// A pubkey or event id on a list, with the reason given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The 32 bytes (pubkey or event id).
    pub key: [u8; 32],
    /// The reason given, empty when none was.
    pub reason: String,
}

fn listed(map: &BTreeMap<[u8; 32], String>) -> Vec<Listed> {
    map.iter()
        .map(|(key, reason)| Listed {
            key: *key,
            reason: reason.clone(),
        })
        .collect()
}

impl ManagementState {
    /// Whether `pubkey` is banned.
    pub fn is_banned(&self, pubkey: &[u8; 32]) -> bool {
        self.banned_pubkeys.contains_key(pubkey)
    }

    /// Whether the allow list is in force (not empty) and `pubkey` is not on it.
    pub fn is_outside_allow_list(&self, pubkey: &[u8; 32]) -> bool {
        !self.allowed_pubkeys.is_empty() && !self.allowed_pubkeys.contains_key(pubkey)
    }

    /// Whether the event with this id is banned.
    pub fn is_banned_event(&self, id: &[u8; 32]) -> bool {
        self.banned_events.contains_key(id)
    }

    /// Whether any event is banned (readers skip the check otherwise).
    pub fn has_banned_events(&self) -> bool {
        !self.banned_events.is_empty()
    }

    /// Banned pubkeys, in byte order.
    pub fn banned_pubkeys(&self) -> Vec<Listed> {
        listed(&self.banned_pubkeys)
    }

    /// Allowed pubkeys, in byte order.
    pub fn allowed_pubkeys(&self) -> Vec<Listed> {
        listed(&self.allowed_pubkeys)
    }

    /// Banned events, in byte order.
    pub fn banned_events(&self) -> Vec<Listed> {
        listed(&self.banned_events)
    }

    /// The relay name set by `changerelayname`, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The relay description set by `changerelaydescription`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The relay icon set by `changerelayicon`, if any.
    pub fn icon(&self) -> Option<&str> {
        self.icon.as_deref()
    }

    fn take(&mut self, event: EventRef<'_>) {
        let Some(method) = event.first_tag_value("method") else {
            return;
        };
        let params: Vec<&str> = event
            .tags()
            .filter(|t| t.name() == Some("param"))
            .filter_map(|t| t.get(1))
            .collect();
        let first = params.first().copied();
        let reason = params.get(1).copied().unwrap_or_default().to_owned();
        let key = first.and_then(crate::parse::parse_hex32);
        match (method, key) {
            ("banpubkey", Some(k)) => {
                self.allowed_pubkeys.remove(&k);
                self.banned_pubkeys.insert(k, reason);
            }
            ("unbanpubkey", Some(k)) => {
                self.banned_pubkeys.remove(&k);
            }
            ("allowpubkey", Some(k)) => {
                self.banned_pubkeys.remove(&k);
                self.allowed_pubkeys.insert(k, reason);
            }
            ("unallowpubkey", Some(k)) => {
                self.allowed_pubkeys.remove(&k);
            }
            ("banevent", Some(k)) => {
                self.banned_events.insert(k, reason);
            }
            ("unbanevent", Some(k)) => {
                self.banned_events.remove(&k);
            }
            ("changerelayname", _) => self.name = first.map(str::to_owned),
            ("changerelaydescription", _) => self.description = first.map(str::to_owned),
            ("changerelayicon", _) => self.icon = first.map(str::to_owned),
            _ => {}
        }
    }
}

/// The relay-wide projection `management`: the NIP-86 state, folded from the relay
/// key's kind-9086 events.
#[derive(Debug, Clone, Copy)]
pub struct Management {
    relay: PublicKey,
}

impl Management {
    /// The projection of the management events signed by `relay`.
    pub fn new(relay: PublicKey) -> Self {
        Self { relay }
    }
}

impl RelayWideProjection for Management {
    type State = ManagementState;

    fn name(&self) -> &'static str {
        "management"
    }

    fn version(&self) -> u64 {
        1
    }

    fn kinds(&self) -> Kinds {
        Kinds::Only(vec![MANAGEMENT_KIND])
    }

    /// The record of NIP-86 management is the relay's own.
    fn relay_signed(&self) -> Vec<u16> {
        vec![MANAGEMENT_KIND]
    }

    fn init(&self) -> ManagementState {
        ManagementState::default()
    }

    fn apply(
        &self,
        state: &mut ManagementState,
        _seq: u64,
        event: &EventRef<'_>,
    ) -> Result<(), ApplyError> {
        if event.pubkey() == &self.relay.to_bytes() {
            state.take(*event);
        }
        Ok(())
    }

    fn encode(&self, state: &ManagementState) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(state)
    }

    fn decode(&self, bytes: &[u8]) -> Result<ManagementState, CodecError> {
        decode_rkyv(bytes)
    }
}
