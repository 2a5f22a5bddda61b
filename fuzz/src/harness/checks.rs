//! What the harnesses check of every input that gets far enough: validation agrees
//! with the event, an appended event reads back identical, and a folded group answers
//! every query and equals a full replay.

use highwater_store::{
    AppendOutcome, InvalidEvent, Prepared, PreparedEvent, Store, StoreError, group_of,
};
use nostr::prelude::{
    Event, EventId, FinalizeEvent, Keys, Kind, PublicKey, Signature, Tag, Tags, Timestamp,
};

use super::Harness;

/// A really signed event.
pub(super) fn signed_event(keys: &Keys, kind: u16, tags: Vec<Vec<String>>, content: &str) -> Event {
    let tags = tags.into_iter().filter_map(|t| Tag::parse(t).ok());
    nostr::prelude::EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(1_700_000_000))
        .finalize(keys)
        .expect("signing")
}

/// An event with a correct id and an arbitrary (unchecked) signature.
pub(super) fn hashed_event(
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
pub(super) fn prepare_checked(store: &Store, event: &Event) -> Option<PreparedEvent> {
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
pub(super) fn append_checked(store: &Store, events: &[(Event, PreparedEvent)]) {
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
pub(super) fn fold_checks(h: &Harness, group: &str, events: &[Event]) {
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
