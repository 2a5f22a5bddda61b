//! The access policy's rules outside the flag matrix: relay state events, `h` tags,
//! creation, `supported_kinds`, subgroups, and the configuration it reports.

use highwater_projections::{Policy, Rejection};
use nostr::prelude::Keys;

use crate::support::{Relay, event, group_event, key};

fn hex(k: &Keys) -> String {
    k.public_key().to_hex()
}

#[test]
fn state_events_come_from_the_relay_only() {
    let relay = Relay::new();
    let policy = relay.policy(Policy::default());
    let alice = Keys::generate();
    // NIP-29: group metadata events "MUST be created by the relay master key only".
    for kind in 39_000..=39_009 {
        let tags: &[&[&str]] = &[&["d", "g"]];
        assert_eq!(
            policy.check_write(&event(&relay.keys, kind, tags, "")),
            Ok(())
        );
        assert_eq!(
            policy.check_write(&event(&alice, kind, tags, "")),
            Err(Rejection::RelayOnly),
            "{kind}"
        );
    }
}

#[test]
fn group_kinds_need_exactly_one_group_id_and_others_need_none() {
    let relay = Relay::new();
    let policy = relay.policy(Policy::default());
    let alice = Keys::generate();
    relay.append(&group_event(&alice, 9007, "g", &[]));
    for kind in [9000, 9007, 9021, 9022] {
        assert_eq!(
            policy.check_write(&event(&alice, kind, &[], "")),
            Err(Rejection::MissingGroup),
            "{kind}"
        );
        assert_eq!(
            policy.check_write(&event(&alice, kind, &[&["h", ""]], "")),
            Err(Rejection::MissingGroup),
            "{kind} with an empty id"
        );
    }
    // Not a group kind and no group: not a group event.
    for kind in [1, 9, 8_999, 9_023] {
        assert_eq!(
            policy.check_write(&event(&alice, kind, &[], "")),
            Ok(()),
            "{kind}"
        );
    }
    let two: &[&[&str]] = &[&["h", "g"], &["h", "other"]];
    assert_eq!(
        policy.check_write(&event(&alice, 9, two, "")),
        Err(Rejection::ManyGroups)
    );
    assert_eq!(
        policy.check_write(&group_event(&alice, 9, "g", &[])),
        Ok(())
    );
}

#[test]
fn creation_is_refused_for_an_existing_group_and_for_an_unauthorised_write_restricted_flag() {
    let relay = Relay::new();
    let admin = Keys::generate();
    let policy = relay.policy(Policy {
        relay_admins: [key(&admin)].into(),
        ..Policy::default()
    });
    let alice = Keys::generate();
    relay.append(&group_event(&alice, 9007, "g", &[]));
    assert_eq!(
        policy.check_write(&group_event(&Keys::generate(), 9007, "g", &[])),
        Err(Rejection::AlreadyExists)
    );
    assert_eq!(
        policy.check_write(&group_event(&alice, 9007, "new", &[])),
        Ok(())
    );
    let wr: &[&[&str]] = &[&["write-restricted"]];
    let private_wr: &[&[&str]] = &[&["write-restricted"], &["private"]];
    assert_eq!(
        policy.check_write(&group_event(&alice, 9007, "new", wr)),
        Err(Rejection::RestrictedFlag)
    );
    assert_eq!(
        policy.check_write(&group_event(&admin, 9007, "new", wr)),
        Ok(())
    );
    assert_eq!(
        policy.check_write(&group_event(&relay.keys, 9007, "new", private_wr)),
        Ok(())
    );
    // A relay admin's powers in a private group need `admins_manage_private`.
    assert_eq!(
        policy.check_write(&group_event(&admin, 9007, "new", private_wr)),
        Err(Rejection::RestrictedFlag)
    );
    let managing = relay.policy(Policy {
        relay_admins: [key(&admin)].into(),
        admins_manage_private: true,
        ..Policy::default()
    });
    assert_eq!(
        managing.check_write(&group_event(&admin, 9007, "new", private_wr)),
        Ok(())
    );
}

#[test]
fn a_post_of_an_unsupported_kind_is_refused_whoever_sends_it() {
    let relay = Relay::new();
    let policy = relay.policy(Policy::default());
    let alice = Keys::generate();
    relay.append(&group_event(
        &alice,
        9007,
        "g",
        &[&["supported_kinds", "9", "11"]],
    ));
    relay.append(&group_event(&alice, 9007, "none", &[&["supported_kinds"]]));
    for author in [&alice, &relay.keys, &Keys::generate()] {
        assert_eq!(
            policy.check_write(&group_event(author, 9, "g", &[])),
            Ok(())
        );
        assert_eq!(
            policy.check_write(&group_event(author, 11, "g", &[])),
            Ok(())
        );
        assert_eq!(
            policy.check_write(&group_event(author, 1, "g", &[])),
            Err(Rejection::UnsupportedKind(1))
        );
        assert_eq!(
            policy.check_write(&group_event(author, 9, "none", &[])),
            Err(Rejection::UnsupportedKind(9))
        );
    }
    // Moderation is not a post.
    assert_eq!(
        policy.check_write(&group_event(&alice, 9009, "none", &[])),
        Ok(())
    );
}

#[test]
fn a_parent_must_be_one_existing_group_outside_the_child_s_subtree_administered_by_the_author() {
    let relay = Relay::new();
    let admin = Keys::generate();
    let policy = relay.policy(Policy {
        relay_admins: [key(&admin)].into(),
        ..Policy::default()
    });
    let (alice, bob, carol) = (Keys::generate(), Keys::generate(), Keys::generate());
    relay.append(&group_event(&alice, 9007, "top", &[]));
    relay.append(&group_event(
        &alice,
        9000,
        "top",
        &[&["p", &hex(&carol), "admin"], &["p", &hex(&bob)]],
    ));
    relay.append(&group_event(&bob, 9007, "b", &[]));
    relay.append(&group_event(&alice, 9007, "private", &[&["private"]]));
    let create = |author: &Keys, tags: &[&[&str]]| {
        policy.check_write(&group_event(author, 9007, "new", tags))
    };
    // Administrators of the parent attach: its creator, a member holding admin, a
    // relay admin, the relay.
    for author in [&alice, &carol, &admin, &relay.keys] {
        assert_eq!(create(author, &[&["parent", "top"]]), Ok(()));
    }
    // A plain member, or a stranger, does not.
    assert_eq!(
        create(&bob, &[&["parent", "top"]]),
        Err(Rejection::NotParentAdmin)
    );
    assert_eq!(
        create(&Keys::generate(), &[&["parent", "top"]]),
        Err(Rejection::NotParentAdmin)
    );
    // A relay admin in a private parent only with admins_manage_private.
    assert_eq!(
        create(&admin, &[&["parent", "private"]]),
        Err(Rejection::NotParentAdmin)
    );
    assert_eq!(create(&relay.keys, &[&["parent", "private"]]), Ok(()));
    assert_eq!(
        create(&alice, &[&["parent", "top"], &["parent", "b"]]),
        Err(Rejection::ManyParents)
    );
    assert_eq!(
        create(&alice, &[&["parent", "nowhere"]]),
        Err(Rejection::ParentNotFound)
    );
    relay.append(&group_event(&alice, 9008, "private", &[]));
    assert_eq!(
        create(&alice, &[&["parent", "private"]]),
        Err(Rejection::ParentNotFound)
    );

    // Cycles: the group itself, or one of its descendants.
    relay.append(&group_event(&alice, 9007, "mid", &[&["parent", "top"]]));
    relay.append(&group_event(&alice, 9007, "leaf", &[&["parent", "mid"]]));
    assert_eq!(relay.groups.children("top").unwrap(), ["mid"]);
    let edit =
        |group: &str, tags: &[&[&str]]| policy.check_write(&group_event(&alice, 9002, group, tags));
    assert_eq!(
        edit("mid", &[&["parent", "mid"]]),
        Err(Rejection::ParentCycle)
    );
    assert_eq!(
        edit("top", &[&["parent", "leaf"], &["child", "mid"]]),
        Err(Rejection::ParentCycle)
    );
    assert_eq!(edit("leaf", &[&["parent", "top"]]), Ok(()));
    // A parent's edit must list every current child.
    assert_eq!(edit("top", &[]), Err(Rejection::ChildrenOmitted));
    assert_eq!(
        edit("top", &[&["child", "other"]]),
        Err(Rejection::ChildrenOmitted)
    );
    assert_eq!(
        edit("top", &[&["child", "other"], &["child", "mid"]]),
        Ok(())
    );
    assert_eq!(edit("leaf", &[&["parent", "mid"]]), Ok(()));
    // A creation never has children to list.
    assert_eq!(create(&alice, &[]), Ok(()));
}

#[test]
fn the_policy_reports_its_configuration_and_queries() {
    let relay = Relay::new();
    let p = Policy {
        relay_admins: [key(&Keys::generate())].into(),
        open_reads: true,
        auto_join: true,
        ..Policy::default()
    };
    let policy = relay.policy(p.clone());
    assert_eq!(policy.policy(), &p);
    assert_eq!(policy.groups().config(), relay.groups.config());
    let error = highwater_projections::Error::WrongRelayKey {
        expected: "ab".into(),
    };
    let message = error.to_string();
    let refused = Rejection::from(error);
    assert_eq!(refused, Rejection::Unavailable(message));
    assert_eq!(refused.prefix(), "error");
}

/// The relay-only kinds are exactly what the registered projections declare: NIP-29's
/// 39000–39009 (metadata), NIP-43's 8000/8001/13534 (relay members) and NIP-86's 9086
/// (management) — no other kind of the whole range, so no client kind is refused as
/// the relay's by a projection that declares none.
#[test]
fn the_relay_signed_kinds_are_exactly_the_declared_ones() {
    let relay = Relay::new();
    let table = relay.groups.kinds();
    let signed: Vec<u16> = (0..=u16::MAX)
        .filter(|&k| table.is_relay_signed(k))
        .collect();
    let mut expected: Vec<u16> = (39_000..=39_009).collect();
    expected.extend([8000, 8001, 9086, 13_534]);
    expected.sort_unstable();
    assert_eq!(signed, expected);
}
