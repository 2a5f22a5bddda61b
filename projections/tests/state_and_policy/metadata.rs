//! The `metadata` projection's state, read directly: the run of events naming the
//! declared parent, the `child` order, the last deletion, invite codes and pins only
//! while the group exists, moderation that is not an edit, relay snapshots by
//! `created_at`, and the projection's identity and codec.

use crate::support::{Relay, event_at, group_event, key};
use highwater_engine::{Kinds, Projection};
use highwater_projections::{Life, Lifecycle, Metadata, MetadataState, Nip29Config, Source};
use nostr::prelude::Keys;

fn state(relay: &Relay, group: &str) -> MetadataState {
    relay
        .groups
        .metadata_projection()
        .read(group, MetadataState::clone)
        .unwrap()
}

fn id(event: &nostr::prelude::Event) -> [u8; 32] {
    event.id.to_bytes()
}

#[test]
fn the_run_naming_the_parent_restarts_when_the_parent_changes() {
    let relay = Relay::new();
    let alice = Keys::generate();
    let create = group_event(&alice, 9007, "g", &[&["parent", "p"], &["name", "G"]]);
    relay.append(&create);
    assert_eq!(state(&relay, "g").naming(), [id(&create)]);
    assert_eq!(state(&relay, "g").metadata().name.as_deref(), Some("G"));
    let same = group_event(&alice, 9002, "g", &[&["parent", "p"]]);
    relay.append(&same);
    assert_eq!(state(&relay, "g").naming(), [id(&create), id(&same)]);
    let other = group_event(&alice, 9002, "g", &[&["parent", "q"]]);
    relay.append(&other);
    assert_eq!(state(&relay, "g").naming(), [id(&other)]);
    assert_eq!(state(&relay, "g").metadata().parent.as_deref(), Some("q"));
    relay.append(&group_event(&alice, 9002, "g", &[]));
    assert_eq!(state(&relay, "g").naming(), Vec::<[u8; 32]>::new());
    assert_eq!(state(&relay, "g").metadata().parent, None);
}

#[test]
fn the_child_order_is_kept_until_an_event_gives_another() {
    let relay = Relay::new();
    let alice = Keys::generate();
    relay.append(&group_event(&alice, 9007, "g", &[]));
    assert_eq!(state(&relay, "g").child_order(), (&[][..], None));
    let order = group_event(&alice, 9002, "g", &[&["child", "b"], &["child", "a"]]);
    relay.append(&order);
    let expected = ["b".to_owned(), "a".to_owned()];
    assert_eq!(
        state(&relay, "g").child_order(),
        (&expected[..], Some(&id(&order)))
    );
    // An edit without `child` tags keeps the order it gave.
    relay.append(&group_event(&alice, 9002, "g", &[&["name", "renamed"]]));
    let s = state(&relay, "g");
    assert_eq!(s.child_order(), (&expected[..], Some(&id(&order))));
    assert_eq!(s.metadata().name.as_deref(), Some("renamed"));
}

#[test]
fn a_deletion_is_remembered_across_lives_and_clears_the_rest() {
    let relay = Relay::new();
    let alice = Keys::generate();
    relay.append(&group_event(&alice, 9007, "g", &[&["name", "G"]]));
    relay.append(&group_event(&alice, 9009, "g", &[&["code", "abc"]]));
    let s = state(&relay, "g");
    assert_eq!(s.deleted_by(), None);
    assert_eq!(
        s.lifecycle(),
        Lifecycle {
            life: Life::Active,
            source: Source::History
        }
    );
    let delete = group_event(&alice, 9008, "g", &[]);
    relay.append(&delete);
    let s = state(&relay, "g");
    assert_eq!(s.deleted_by(), Some(&id(&delete)));
    assert_eq!(
        s.lifecycle(),
        Lifecycle {
            life: Life::Deleted,
            source: Source::None
        }
    );
    assert_eq!(s.metadata().name, None);
    assert!(!s.has_invite("abc"));

    let again = group_event(&alice, 9007, "g", &[&["name", "G2"]]);
    relay.append(&again);
    let s = state(&relay, "g");
    assert_eq!(s.deleted_by(), Some(&id(&delete)));
    assert_eq!(s.lifecycle().life, Life::Active);
    assert_eq!(s.metadata().name.as_deref(), Some("G2"));
    assert_eq!(
        relay.groups.invite_codes("g").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn invite_codes_and_pins_count_only_while_the_group_exists() {
    let relay = Relay::new();
    let alice = Keys::generate();
    let id_hex = "ab".repeat(32);
    // Before the group exists: ignored.
    relay.append(&group_event(&alice, 9009, "g", &[&["code", "early"]]));
    relay.append(&group_event(&alice, 9010, "g", &[&["e", &id_hex]]));
    assert!(!relay.groups.has_invite("g", "early").unwrap());
    assert_eq!(relay.groups.pinned("g").unwrap(), Vec::<String>::new());
    // Nor do they count once moderation makes the group exist (no fresh start).
    relay.append(&group_event(&alice, 9009, "m", &[&["code", "early"]]));
    relay.append(&group_event(&alice, 9010, "m", &[&["e", &id_hex]]));
    relay.append(&group_event(&alice, 9000, "m", &[&["p", &id_hex]]));
    assert!(relay.groups.group_exists("m").unwrap());
    assert!(!relay.groups.has_invite("m", "early").unwrap());
    assert_eq!(relay.groups.pinned("m").unwrap(), Vec::<String>::new());
    relay.append(&group_event(&alice, 9007, "g", &[]));
    assert!(!relay.groups.has_invite("g", "early").unwrap());
    assert_eq!(relay.groups.pinned("g").unwrap(), Vec::<String>::new());

    relay.append(&group_event(&alice, 9009, "g", &[&["code", "abc"]]));
    relay.append(&group_event(
        &alice,
        9010,
        "g",
        &[&["e", &id_hex], &["a", "30023:x:y"]],
    ));
    assert!(relay.groups.has_invite("g", "abc").unwrap());
    assert!(!relay.groups.has_invite("g", "abd").unwrap());
    let s = state(&relay, "g");
    assert!(s.has_invite("abc"));
    assert!(!s.has_invite("early"));
    assert_eq!(s.invite_codes().collect::<Vec<_>>(), ["abc"]);
    let pins: Vec<_> = s
        .pins()
        .iter()
        .map(|p| (p.tag.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(pins, [("e", id_hex.as_str()), ("a", "30023:x:y")]);

    // After a deletion: ignored again.
    relay.append(&group_event(&alice, 9008, "g", &[]));
    relay.append(&group_event(&alice, 9009, "g", &[&["code", "late"]]));
    relay.append(&group_event(&alice, 9010, "g", &[&["e", &id_hex]]));
    let s = state(&relay, "g");
    assert_eq!(s.invite_codes().count(), 0);
    assert!(s.pins().is_empty());
}

#[test]
fn moderation_other_than_an_edit_keeps_the_metadata() {
    let relay = Relay::new();
    let alice = Keys::generate();
    let bob = Keys::generate();
    relay.append(&group_event(
        &alice,
        9007,
        "g",
        &[&["name", "G"], &["private"]],
    ));
    relay.append(&group_event(&alice, 9000, "g", &[&["p", &hex(&bob)]]));
    relay.append(&group_event(&alice, 9001, "g", &[&["p", &hex(&bob)]]));
    let m = relay.groups.metadata("g").unwrap();
    assert_eq!(m.name.as_deref(), Some("G"));
    assert!(m.private);
}

fn hex(keys: &Keys) -> String {
    keys.public_key().to_hex()
}

#[test]
fn relay_metadata_snapshots_replace_by_created_at_and_other_snapshots_do_not() {
    let relay = Relay::new();
    let r = &relay.keys;
    let name = |relay: &Relay| relay.groups.metadata("g").unwrap().name;
    relay.append(&event_at(r, 39_000, &[&["d", "g"], &["name", "A"]], 1_000));
    assert_eq!(name(&relay).as_deref(), Some("A"));
    assert_eq!(
        state(&relay, "g").lifecycle(),
        Lifecycle {
            life: Life::Active,
            source: Source::Snapshots
        }
    );
    // Older: ignored. Newer: replaces.
    relay.append(&event_at(
        r,
        39_000,
        &[&["d", "g"], &["name", "older"]],
        900,
    ));
    assert_eq!(name(&relay).as_deref(), Some("A"));
    relay.append(&event_at(r, 39_000, &[&["d", "g"], &["name", "C"]], 2_000));
    assert_eq!(name(&relay).as_deref(), Some("C"));
    // Another snapshot kind, even newer, does not touch the metadata.
    let bob = Keys::generate();
    relay.append(&event_at(
        r,
        39_002,
        &[&["d", "g"], &["p", &hex(&bob)]],
        3_000,
    ));
    assert_eq!(name(&relay).as_deref(), Some("C"));
    assert!(relay.groups.is_member("g", &key(&bob)).unwrap());
    // A metadata snapshot not signed by the relay is not one.
    let stranger = Keys::generate();
    relay.append(&event_at(
        &stranger,
        39_000,
        &[&["d", "g"], &["name", "fake"]],
        4_000,
    ));
    assert_eq!(name(&relay).as_deref(), Some("C"));
}

#[test]
fn the_projection_s_identity_and_codec() {
    let relay = Relay::new();
    let alice = Keys::generate();
    relay.append(&group_event(
        &alice,
        9007,
        "g",
        &[&["name", "G"], &["parent", "p"], &["child", "c"]],
    ));
    relay.append(&group_event(&alice, 9009, "g", &[&["code", "abc"]]));
    relay.append(&group_event(&alice, 9010, "g", &[&["e", &"cd".repeat(32)]]));
    let s = state(&relay, "g");
    let metadata = relay.groups.metadata_projection().projection();
    assert_eq!(metadata.name(), "metadata");
    assert_eq!(metadata.init(), MetadataState::default());
    let bytes = metadata.encode(&s).unwrap();
    assert_eq!(metadata.decode(&bytes).unwrap(), s);
    assert_ne!(s, MetadataState::default());
    // It folds the life kinds, invites and pins, and nothing else.
    let Kinds::Only(kinds) = metadata.kinds() else {
        panic!("metadata folds every kind")
    };
    for k in [
        9000, 9001, 9002, 9007, 9008, 9009, 9010, 39_000, 39_001, 39_002,
    ] {
        assert!(kinds.contains(&k), "{k} missing");
    }
    assert!(!kinds.contains(&9), "{kinds:?}");
    // A checkpoint folded for another relay key is never reused.
    let other = Metadata::new(Nip29Config::new(
        nostr::prelude::PublicKey::from_byte_array([7; 32]),
    ));
    assert_ne!(metadata.version(), other.version());
    assert_ne!(
        other.version(),
        Metadata::new(Nip29Config::new(
            nostr::prelude::PublicKey::from_byte_array([8; 32])
        ))
        .version()
    );
}
