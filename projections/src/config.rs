//! Configuration shared by the four projections, and the NIP-29 kind numbers.

use nostr::prelude::PublicKey;

/// NIP-29 kind numbers the projections and the policy know.
pub(crate) mod kind {
    pub(crate) const PUT_USER: u16 = 9000;
    pub(crate) const REMOVE_USER: u16 = 9001;
    pub(crate) const EDIT_METADATA: u16 = 9002;
    pub(crate) const CREATE_GROUP: u16 = 9007;
    pub(crate) const DELETE_GROUP: u16 = 9008;
    pub(crate) const CREATE_INVITE: u16 = 9009;
    pub(crate) const PIN_LIST: u16 = 9010;
    pub(crate) const JOIN_REQUEST: u16 = 9021;
    pub(crate) const LEAVE_REQUEST: u16 = 9022;
    pub(crate) const METADATA: u16 = 39_000;
    pub(crate) const ADMINS: u16 = 39_001;
    pub(crate) const MEMBERS: u16 = 39_002;
    pub(crate) const ROLES: u16 = 39_003;
    pub(crate) const PINS: u16 = 39_005;
    /// The last of the relay's own kinds (39000–39009): only the relay key signs them.
    pub(crate) const RELAY_LAST: u16 = 39_009;

    /// The kinds that drive a group's life and source. Every projection folds all of
    /// them, so `life` and `source` are the same in every projection's state.
    pub(crate) const LIFE: [u16; 8] = [
        PUT_USER,
        REMOVE_USER,
        EDIT_METADATA,
        CREATE_GROUP,
        DELETE_GROUP,
        METADATA,
        ADMINS,
        MEMBERS,
    ];

    /// `LIFE` plus `extra`, for a projection's `Kinds`.
    pub(crate) fn life_and(extra: &[u16]) -> Vec<u16> {
        let mut kinds = LIFE.to_vec();
        kinds.extend_from_slice(extra);
        kinds
    }
}

/// What the NIP-29 projections need to know of the relay they fold for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nip29Config {
    /// The relay's public key. Only snapshot events (39000–39003) signed by it count;
    /// it is also the author of rendered state events.
    pub relay_pubkey: PublicKey,
}

impl Nip29Config {
    /// A configuration for the relay whose public key is `relay_pubkey`.
    pub fn new(relay_pubkey: PublicKey) -> Self {
        Self { relay_pubkey }
    }

    /// The relay key's raw bytes, as the folds compare them.
    pub(crate) fn relay_bytes(&self) -> &[u8; 32] {
        self.relay_pubkey.as_bytes()
    }

    /// A projection version that changes with the relay key: a checkpoint folded for
    /// another relay key is never reused.
    pub(crate) fn version(&self, base: u32) -> u64 {
        (u64::from(base) << 32) | u64::from(crc32fast::hash(self.relay_pubkey.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use nostr::prelude::PublicKey;

    use super::Nip29Config;

    #[test]
    fn the_version_changes_with_the_relay_key_and_the_base() {
        let a = Nip29Config::new(PublicKey::from_byte_array([1; 32]));
        let b = Nip29Config::new(PublicKey::from_byte_array([2; 32]));
        assert_ne!(a.version(1), b.version(1));
        assert_ne!(a.version(1), a.version(2));
        assert_eq!(a.version(1) >> 32, 1);
    }
}
