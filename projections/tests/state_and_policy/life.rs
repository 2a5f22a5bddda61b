//! A group's life, as every projection tracks it: a deleted group ignores everything
//! but a new 9007, a 9007 on an existing group changes nothing, moderation makes a
//! group exist, relay snapshots count only from the relay and only before history, and
//! the raw snapshot copies are dropped at the first moderation.

use crate::support::{Relay, event_at, group_event, key};
use highwater_projections::{Life, Lifecycle, MembershipState, MetadataState, Source};
use nostr::prelude::Keys;

fn hex(keys: &Keys) -> String {
    keys.public_key().to_hex()
}

fn lifecycle(relay: &Relay, group: &str) -> Lifecycle {
    let life = relay.groups.lifecycle(group).unwrap();
    // Every projection tracks the same lifecycle.
    let metadata = relay
        .groups
        .metadata_projection()
        .read(group, MetadataState::lifecycle)
        .unwrap();
    let membership = relay
        .groups
        .membership_projection()
        .read(group, MembershipState::lifecycle)
        .unwrap();
    assert_eq!((metadata, membership), (life, life), "{group}");
    life
}

const fn lc(life: Life, source: Source) -> Lifecycle {
    Lifecycle { life, source }
}

#[test]
fn a_deleted_group_ignores_everything_but_a_new_creation() {
    let relay = Relay::new();
    let (alice, bob, carol) = (Keys::generate(), Keys::generate(), Keys::generate());
    relay.append(&group_event(&alice, 9007, "g", &[&["name", "G"]]));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Active, Source::History));
    relay.append(&group_event(&alice, 9008, "g", &[]));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Deleted, Source::None));
    assert!(!relay.groups.group_exists("g").unwrap());

    relay.append(&group_event(&alice, 9000, "g", &[&["p", &hex(&bob)]]));
    relay.append(&group_event(&alice, 9002, "g", &[&["name", "back?"]]));
    relay.append(&event_at(
        &relay.keys,
        39_000,
        &[&["d", "g"], &["name", "seed"]],
        10,
    ));
    relay.append(&group_event(&alice, 9009, "g", &[&["code", "c"]]));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Deleted, Source::None));
    assert!(!relay.groups.is_member("g", &key(&bob)).unwrap());
    assert_eq!(relay.groups.metadata("g").unwrap().name, None);
    assert_eq!(relay.groups.creator("g").unwrap(), None);

    relay.append(&group_event(&carol, 9007, "g", &[]));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Active, Source::History));
    assert_eq!(relay.groups.creator("g").unwrap(), Some(key(&carol)));
    assert!(relay.groups.is_member("g", &key(&carol)).unwrap());
    assert!(!relay.groups.is_member("g", &key(&bob)).unwrap());
}

#[test]
fn a_creation_of_an_existing_group_changes_nothing() {
    let relay = Relay::new();
    let (alice, bob) = (Keys::generate(), Keys::generate());
    relay.append(&group_event(&alice, 9007, "g", &[&["name", "G"]]));
    relay.append(&group_event(&bob, 9007, "g", &[&["name", "taken"]]));
    assert_eq!(relay.groups.creator("g").unwrap(), Some(key(&alice)));
    assert_eq!(
        relay.groups.metadata("g").unwrap().name.as_deref(),
        Some("G")
    );
    assert!(!relay.groups.is_member("g", &key(&bob)).unwrap());
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Active, Source::History));
}

#[test]
fn moderation_makes_an_unknown_group_exist() {
    let relay = Relay::new();
    let (alice, bob) = (Keys::generate(), Keys::generate());
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Unknown, Source::None));
    for (group, kind) in [("g", 9000), ("h", 9001), ("i", 9002)] {
        relay.append(&group_event(&alice, kind, group, &[&["p", &hex(&bob)]]));
        assert_eq!(
            lifecycle(&relay, group),
            lc(Life::Active, Source::History),
            "{kind}"
        );
        assert!(relay.groups.group_exists(group).unwrap());
        assert_eq!(relay.groups.creator(group).unwrap(), None);
    }
    assert!(relay.groups.is_member("g", &key(&bob)).unwrap());
    // Other kinds do not.
    relay.append(&group_event(&alice, 9009, "j", &[&["code", "c"]]));
    relay.append(&group_event(&alice, 9, "j", &[]));
    assert_eq!(lifecycle(&relay, "j"), lc(Life::Unknown, Source::None));
}

#[test]
fn snapshots_count_from_the_relay_and_only_before_history() {
    let relay = Relay::new();
    let (alice, bob, carol) = (Keys::generate(), Keys::generate(), Keys::generate());
    // Not from the relay: nothing.
    relay.append(&event_at(
        &alice,
        39_002,
        &[&["d", "g"], &["p", &hex(&bob)]],
        10,
    ));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Unknown, Source::None));
    assert!(!relay.groups.is_member("g", &key(&bob)).unwrap());
    // From the relay: seeds the group.
    relay.append(&event_at(
        &relay.keys,
        39_002,
        &[&["d", "g"], &["p", &hex(&bob)]],
        10,
    ));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Active, Source::Snapshots));
    assert!(relay.groups.is_member("g", &key(&bob)).unwrap());
    // The first moderation turns it into history; later snapshots no longer count.
    relay.append(&group_event(&alice, 9000, "g", &[&["p", &hex(&carol)]]));
    assert_eq!(lifecycle(&relay, "g"), lc(Life::Active, Source::History));
    relay.append(&event_at(&relay.keys, 39_002, &[&["d", "g"]], 20));
    relay.append(&event_at(
        &relay.keys,
        39_000,
        &[&["d", "g"], &["name", "late"]],
        20,
    ));
    assert!(relay.groups.is_member("g", &key(&bob)).unwrap());
    assert!(relay.groups.is_member("g", &key(&carol)).unwrap());
    assert_eq!(relay.groups.metadata("g").unwrap().name, None);
}

#[test]
fn the_first_moderation_drops_the_raw_snapshots() {
    let relay = Relay::new();
    let (alice, bob, carol) = (Keys::generate(), Keys::generate(), Keys::generate());
    // Seeded, then moderated: the same members as a group that only had moderation.
    relay.append(&event_at(
        &relay.keys,
        39_002,
        &[&["d", "seeded"], &["p", &hex(&bob)]],
        10,
    ));
    relay.append(&event_at(
        &relay.keys,
        39_001,
        &[&["d", "seeded"], &["p", &hex(&bob), "admin"]],
        10,
    ));
    relay.append(&group_event(
        &alice,
        9000,
        "seeded",
        &[&["p", &hex(&carol)]],
    ));
    relay.append(&group_event(&alice, 9000, "plain", &[&["p", &hex(&bob)]]));
    relay.append(&group_event(&alice, 9000, "plain", &[&["p", &hex(&carol)]]));
    let state = |group| {
        relay
            .groups
            .membership_projection()
            .read(group, MembershipState::clone)
            .unwrap()
    };
    assert_eq!(state("seeded"), state("plain"));
}

#[test]
fn only_an_active_group_exists() {
    assert!(!Lifecycle::default().exists());
    assert!(lc(Life::Active, Source::Snapshots).exists());
    assert!(lc(Life::Active, Source::History).exists());
    assert!(!lc(Life::Deleted, Source::None).exists());
    assert!(!lc(Life::Unknown, Source::None).exists());
}
