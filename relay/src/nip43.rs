//! Relay membership (NIP-43) and what a relay stores outside groups.
//!
//! Membership is the relay-wide `relay_members` projection (the relay key's 8000, 8001
//! and 13534 events, in log order); this module decides the requests that change it.
//! A join request (28934) is honoured when it carries a valid invite (`claim`) or the
//! relay admits anyone ([`RelayMembership::public_join`](crate::RelayMembership::public_join)); the relay then writes its
//! 8000 and its new 13534 list in one transaction. A leave request (28936) writes an
//! 8001 and the new list. The requests themselves are ephemeral and never stored.
//!
//! Invite codes (28935, generated for a `REQ` by a key that may invite) need no state:
//! a code is the inviter's key and a keyed hash of it under the relay's secret, so it
//! stays valid exactly as long as its inviter may invite.
//!
//! Outside groups the relay keeps [`SPACE_KINDS`] (the lists and profile a community
//! client stores on its space) and nothing else. Refusals say which case applies:
//! `restricted: … join this relay first` (membership would allow it) or `blocked: …`
//! (never here).

use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Kind, PublicKey, Tag, Timestamp};
use sha2::{Digest, Sha256};

use highwater_projections::{
    ADD_MEMBER_KIND, INVITE_KIND, JOIN_REQUEST_KIND, LEAVE_REQUEST_KIND, MEMBER_EVENT_KINDS,
    MEMBER_LIST_KIND, REMOVE_MEMBER_KIND,
};

use crate::error::RelayError;
use crate::shared::Shared;

/// Kinds a relay stores outside groups for its members: profile (0), follows (3),
/// mutes (10000), relay list (10002), simple groups list (10009, where Flotilla keeps
/// the rooms a user joined), and NIP-43's own list kinds of a member (10010).
pub const SPACE_KINDS: [u16; 6] = [0, 3, 10_000, 10_002, 10_009, 10_010];

/// How far (seconds) a join or leave request's `created_at` may be from the relay's
/// clock (NIP-43: "now, plus or minus a few minutes").
const REQUEST_WINDOW: u64 = 600;

/// Whether `kind` is one of NIP-43's requests, decided by [`decide`].
pub(crate) fn is_request(kind: u16) -> bool {
    kind == JOIN_REQUEST_KIND || kind == LEAVE_REQUEST_KIND
}

/// Whether `pubkey` is the relay key or a relay admin.
fn is_admin(shared: &Shared, pubkey: &PublicKey) -> bool {
    pubkey == &shared.keys.public_key() || shared.policy.policy().relay_admins.contains(pubkey)
}

/// Whether `pubkey` is a member of the relay; `Err` with a refusal when the state
/// cannot be read.
pub(crate) fn is_member(shared: &Shared, pubkey: &PublicKey) -> Result<bool, String> {
    let key = pubkey.to_bytes();
    shared
        .policy
        .groups()
        .relay_members_projection()
        .read(|m| m.is_member(&key))
        .map_err(|error| {
            tracing::error!(%error, "the relay membership cannot be read");
            "error: the relay cannot read its member list; try again later".to_owned()
        })
}

/// Whether `pubkey` may ask for invite codes.
fn may_invite(shared: &Shared, pubkey: &PublicKey) -> bool {
    is_admin(shared, pubkey) || shared.options.membership.inviters.contains(pubkey)
}

/// The refusal, if any, of an event that names no group (the `EVENT` was not
/// refused for another reason). With `allow_ungrouped`, everything is accepted.
pub(crate) fn ungrouped_refusal(shared: &Shared, event: &Event) -> Option<String> {
    let kind = event.kind.as_u16();
    if shared.options.allow_ungrouped || is_request(kind) {
        return None;
    }
    if !SPACE_KINDS.contains(&kind) {
        // Flotilla ignores exactly this wording ("missing group (`h`) tag") when it
        // publishes to a strict NIP-29 relay.
        return Some(format!(
            "blocked: missing group (`h`) tag; this relay stores kind {kind} only inside a group"
        ));
    }
    members_only_refusal(shared, &event.pubkey, &format!("store kind {kind} here"))
}

/// The refusal of `what` by a non-member when the relay is members-only.
pub(crate) fn members_only_refusal(
    shared: &Shared,
    pubkey: &PublicKey,
    what: &str,
) -> Option<String> {
    if !shared.options.membership.members_only || is_admin(shared, pubkey) {
        return None;
    }
    match is_member(shared, pubkey) {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "restricted: not a member of this relay yet; join it (NIP-43 kind {JOIN_REQUEST_KIND}) to {what}"
        )),
        Err(refusal) => Some(refusal),
    }
}

/// The refusal of the relay's own NIP-43 kinds from anyone else.
pub(crate) fn relay_kind_refusal(shared: &Shared, event: &Event) -> Option<String> {
    let kind = event.kind.as_u16();
    let relay_only = MEMBER_EVENT_KINDS.contains(&kind) || kind == INVITE_KIND;
    (relay_only && event.pubkey != shared.keys.public_key())
        .then(|| format!("restricted: kind {kind} is signed by the relay itself (NIP-43)"))
}

/// The invite code `inviter` hands out: its key and a keyed hash of it.
fn code_of(shared: &Shared, inviter: &PublicKey) -> String {
    let mut hash = Sha256::new();
    hash.update(b"highwater nip43 invite\0");
    hash.update(shared.keys.secret_key().to_secret_bytes());
    hash.update(inviter.to_bytes());
    let mac = hash.finalize();
    format!("{}{}", inviter.to_hex(), hex::encode(&mac[..16]))
}

/// Whether `claim` is a code of a key that may still invite.
fn valid_claim(shared: &Shared, claim: &str) -> bool {
    let Some(inviter) = claim
        .get(..64)
        .and_then(|hex| PublicKey::from_hex(hex).ok())
    else {
        return false;
    };
    may_invite(shared, &inviter) && code_of(shared, &inviter) == claim
}

/// The relay's 28935 invite for `reader`, when it may invite.
pub(crate) fn invite(shared: &Shared, reader: Option<&PublicKey>) -> Option<Event> {
    let reader = reader.filter(|r| may_invite(shared, r))?;
    let claim = Tag::parse(["claim", code_of(shared, reader).as_str()]).ok()?;
    EventBuilder::new(Kind::Custom(INVITE_KIND), "")
        .tags([Tag::parse(["-"]).ok()?, claim])
        .finalize(&shared.keys)
        .ok()
}

/// What the relay does with a NIP-43 request: answer it, and write these events (its
/// 8000 or 8001 and the new 13534) with the answer.
pub(crate) struct Decision {
    pub(crate) accepted: bool,
    pub(crate) message: String,
    pub(crate) writes: Vec<Event>,
}

impl Decision {
    fn answer(accepted: bool, message: impl Into<String>) -> Self {
        Self {
            accepted,
            message: message.into(),
            writes: Vec::new(),
        }
    }
}

/// Decides a 28934 or 28936 from the current membership.
pub(crate) fn decide(shared: &Shared, event: &Event) -> Decision {
    let now = Timestamp::now().as_secs();
    if event.created_at.as_secs().abs_diff(now) > REQUEST_WINDOW {
        return Decision::answer(
            false,
            format!(
                "invalid: a NIP-43 request must be dated now (within {REQUEST_WINDOW} seconds)"
            ),
        );
    }
    let author = event.pubkey;
    let member = match is_member(shared, &author) {
        Ok(member) => member,
        Err(refusal) => return Decision::answer(false, refusal),
    };
    let join = event.kind.as_u16() == JOIN_REQUEST_KIND;
    if join && member {
        return Decision::answer(true, "duplicate: you are already a member of this relay");
    }
    if !join && !member {
        return Decision::answer(true, "duplicate: you are not a member of this relay");
    }
    if join {
        let claim = event
            .tags
            .iter()
            .find(|t| t.kind() == "claim")
            .and_then(|t| t.content())
            .unwrap_or_default();
        let invited = !claim.is_empty() && valid_claim(shared, claim);
        if !invited && !shared.options.membership.public_join {
            return Decision::answer(
                false,
                if claim.is_empty() {
                    "restricted: this relay admits members by invitation; an invite code is required"
                } else {
                    "restricted: that is an invalid invite code"
                },
            );
        }
    }
    match membership_events(shared, &author, join, now) {
        Ok(writes) => Decision {
            accepted: true,
            message: if join {
                "info: welcome to this relay".to_owned()
            } else {
                "info: you have left this relay".to_owned()
            },
            writes,
        },
        Err(error) => {
            tracing::error!(%error, "the relay could not sign its membership events");
            Decision::answer(false, format!("error: {error}"))
        }
    }
}

/// The relay's 8000 (or 8001) for `who` and its 13534 list after the change.
fn membership_events(
    shared: &Shared,
    who: &PublicKey,
    join: bool,
    now: u64,
) -> Result<Vec<Event>, RelayError> {
    let key = who.to_bytes();
    let mut members: Vec<[u8; 32]> = shared
        .policy
        .groups()
        .relay_members_projection()
        .read(|m| m.members().copied().filter(|k| k != &key).collect())?;
    if join {
        members.push(key);
        members.sort_unstable();
    }
    let protected = Tag::parse(["-"]).map_err(RelayError::sign)?;
    let p = Tag::parse(["p", who.to_hex().as_str()]).map_err(RelayError::sign)?;
    let change = if join {
        ADD_MEMBER_KIND
    } else {
        REMOVE_MEMBER_KIND
    };
    // The list is dated after every earlier one, so it replaces them even when two
    // changes fall in the same second.
    let list_at = now.max(
        shared
            .policy
            .groups()
            .relay_members_projection()
            .read(highwater_projections::RelayMembersState::changed_at)?
            + 1,
    );
    let change = EventBuilder::new(Kind::Custom(change), "")
        .tags([protected.clone(), p])
        .custom_created_at(Timestamp::from_secs(now))
        .finalize(&shared.keys)
        .map_err(RelayError::sign)?;
    let mut tags = vec![protected];
    for m in &members {
        tags.push(Tag::parse(["member", hex::encode(m).as_str()]).map_err(RelayError::sign)?);
    }
    let list = EventBuilder::new(Kind::Custom(MEMBER_LIST_KIND), "")
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(list_at))
        .finalize(&shared.keys)
        .map_err(RelayError::sign)?;
    Ok(vec![change, list])
}
