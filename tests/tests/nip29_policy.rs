//! The access policy: reads, writes and `check_write`'s NIP-01 `OK` messages.

mod nip29_support;

use highwater_projections::{AccessPolicy, Policy, Rejection};
use nip29_support::{Harness, ev, key, pk, relay};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind};

/// Relay admin: key 7. Creator: key 1.
fn policy() -> Policy {
    Policy {
        relay_admins: [pk(&key(7))].into_iter().collect(),
        admins_manage_private: false,
        open_reads: true,
        auto_join: false,
        require_membership: true,
        private_needs_invite: false,
        ..Policy::default()
    }
}

fn message(access: &AccessPolicy, event: &Event) -> String {
    match access.check_write(event) {
        Ok(()) => "ok".into(),
        Err(rejection) => rejection.to_string(),
    }
}

#[test]
fn write_restricted_groups_accept_creator_relay_admins_and_writers() {
    let h = Harness::new();
    let (creator, writer, member, outsider, admin) = (key(1), key(2), key(3), key(4), key(7));
    h.append(&[
        ev(9007, "g").sign(&creator),
        ev(9000, "g")
            .p(&writer, &["writer"])
            .p(&member, &["moderator"])
            .sign(&creator),
        ev(9002, "g").tag(&["write-restricted"]).sign(&admin),
    ]);
    let access = h.policy(&policy());
    assert!(h.groups.is_write_restricted("g").unwrap());
    for (who, expected) in [
        (&creator, true),
        (&writer, true),
        (&admin, true),
        (&relay(), true),
        (&member, false),
        (&outsider, false),
    ] {
        assert_eq!(
            access.can_write("g", &pk(who)).unwrap(),
            expected,
            "{}",
            who.public_key()
        );
        let post = ev(9, "g").content("hi").sign(who);
        let answer = message(&access, &post);
        if expected {
            assert_eq!(answer, "ok");
        } else {
            assert_eq!(
                answer,
                "restricted: group is write-restricted; only writers may post"
            );
        }
    }
    // The creator removed from the group still writes; a removed writer does not.
    h.append(&[ev(9001, "g").p(&creator, &[]).p(&writer, &[]).sign(&admin)]);
    assert!(access.can_write("g", &pk(&creator)).unwrap());
    assert!(!access.can_write("g", &pk(&writer)).unwrap());
}

#[test]
fn hidden_groups_are_not_found_by_outsiders() {
    let h = Harness::new();
    let (creator, member, outsider, admin) = (key(1), key(2), key(4), key(7));
    h.append(&[
        ev(9007, "h")
            .tag(&["hidden"])
            .tag(&["closed"])
            .sign(&creator),
        ev(9000, "h").p(&member, &[]).sign(&creator),
        ev(9009, "h").tag(&["code", "secret"]).sign(&creator),
    ]);
    let access = h.policy(&policy());
    let not_found = "invalid: group not found";
    for event in [
        ev(9, "h").content("hi").sign(&outsider),
        // Closed: a join without a valid code is not honoured, so not answered.
        ev(9021, "h").sign(&outsider),
        ev(9021, "h").tag(&["code", "wrong"]).sign(&outsider),
        ev(9022, "h").sign(&outsider),
        ev(9000, "h").p(&outsider, &[]).sign(&outsider),
        ev(9, "nowhere").content("hi").sign(&outsider),
    ] {
        assert_eq!(message(&access, &event), not_found, "{}", event.kind);
    }
    assert!(!access.can_read(Some(&pk(&outsider)), "h").unwrap());
    assert!(!access.can_read(None, "h").unwrap());
    assert!(!access.has_access(Some(&pk(&outsider)), "h").unwrap());
    assert!(access.can_read(Some(&pk(&member)), "h").unwrap());
    assert!(access.has_access(Some(&pk(&member)), "h").unwrap());
    assert!(
        access.can_read(Some(&pk(&admin)), "h").unwrap(),
        "a hidden, non-private group is readable by relay admins"
    );
    assert_eq!(
        message(&access, &ev(9, "h").content("hi").sign(&member)),
        "ok"
    );
    // With a valid invite code, the join request is answered normally.
    assert_eq!(
        message(
            &access,
            &ev(9021, "h").tag(&["code", "secret"]).sign(&outsider)
        ),
        "ok"
    );
}

#[test]
fn private_groups_are_read_by_members_and_respect_admins_manage_private() {
    let h = Harness::new();
    let (creator, member, outsider, admin) = (key(1), key(2), key(4), key(7));
    h.append(&[
        ev(9007, "p").tag(&["private"]).sign(&creator),
        ev(9000, "p").p(&member, &[]).sign(&creator),
        ev(9009, "p").tag(&["code", "c"]).sign(&creator),
    ]);
    let access = h.policy(&policy());
    assert!(
        access.has_access(Some(&pk(&outsider)), "p").unwrap(),
        "private but not hidden: visible"
    );
    assert!(!access.can_read(Some(&pk(&outsider)), "p").unwrap());
    assert!(!access.can_read(None, "p").unwrap());
    assert!(!access.can_read(Some(&pk(&admin)), "p").unwrap());
    assert!(access.can_read(Some(&pk(&relay())), "p").unwrap());
    assert!(access.can_read(Some(&pk(&member)), "p").unwrap());
    assert_eq!(
        message(&access, &ev(9000, "p").p(&outsider, &[]).sign(&admin)),
        "restricted: not authorised to moderate this group"
    );
    let managing = AccessPolicy::new(
        h.groups.clone(),
        Policy {
            admins_manage_private: true,
            ..policy()
        },
    );
    assert!(managing.can_read(Some(&pk(&admin)), "p").unwrap());
    assert_eq!(
        message(&managing, &ev(9000, "p").p(&outsider, &[]).sign(&admin)),
        "ok"
    );
}

#[test]
fn moderation_needs_creator_relay_admin_or_group_admin() {
    let h = Harness::new();
    let (creator, group_admin, member, outsider, admin) = (key(1), key(2), key(3), key(4), key(7));
    h.append(&[
        ev(9007, "g").sign(&creator),
        ev(9000, "g")
            .p(&group_admin, &["admin"])
            .p(&member, &["writer"])
            .sign(&creator),
    ]);
    let access = h.policy(&policy());
    let denied = "restricted: not authorised to moderate this group";
    for kind in [9000, 9001, 9002, 9005, 9008, 9009] {
        let make = |who| {
            ev(kind, "g")
                .p(&outsider, &[])
                .tag(&["code", "x"])
                .sign(who)
        };
        assert_eq!(message(&access, &make(&member)), denied, "{kind}");
        assert_eq!(message(&access, &make(&outsider)), denied, "{kind}");
        for who in [&creator, &group_admin, &admin] {
            assert_eq!(message(&access, &make(who)), "ok", "{kind}");
        }
    }
}

#[test]
fn only_relay_admins_change_the_write_restricted_flag() {
    let h = Harness::new();
    let (creator, admin) = (key(1), key(7));
    h.append(&[ev(9007, "g").tag(&["name", "n"]).sign(&creator)]);
    let access = h.policy(&policy());
    let refused = "restricted: only relay admins can change the write-restricted flag";
    assert_eq!(
        message(
            &access,
            &ev(9002, "g").tag(&["write-restricted"]).sign(&creator)
        ),
        refused
    );
    assert_eq!(
        message(
            &access,
            &ev(9002, "g")
                .content(r#"{"write-restricted":true}"#)
                .sign(&creator)
        ),
        refused
    );
    assert_eq!(
        message(
            &access,
            &ev(9002, "g")
                .tag(&["name", "m"])
                .tag(&["closed"])
                .sign(&creator)
        ),
        "ok"
    );
    // NIP-29's `restricted` is ordinary metadata: the creator may set it.
    assert_eq!(
        message(&access, &ev(9002, "g").tag(&["restricted"]).sign(&creator)),
        "ok"
    );
    assert_eq!(
        message(
            &access,
            &ev(9002, "g").tag(&["write-restricted"]).sign(&admin)
        ),
        "ok"
    );
    assert_eq!(
        message(
            &access,
            &ev(9007, "new").tag(&["write-restricted"]).sign(&creator)
        ),
        refused
    );
    assert_eq!(
        message(
            &access,
            &ev(9007, "new").tag(&["write-restricted"]).sign(&admin)
        ),
        "ok"
    );

    h.append(&[ev(9002, "g").tag(&["write-restricted"]).sign(&admin)]);
    assert_eq!(
        message(&access, &ev(9002, "g").tag(&["name", "x"]).sign(&creator)),
        refused,
        "clearing it too"
    );
    assert_eq!(
        message(
            &access,
            &ev(9002, "g")
                .tag(&["name", "x"])
                .tag(&["write-restricted"])
                .sign(&creator)
        ),
        "ok"
    );
}

#[test]
fn joins_leaves_creates_and_posts() {
    let h = Harness::new();
    let (creator, member, outsider) = (key(1), key(2), key(4));
    h.append(&[
        ev(9007, "open").sign(&creator),
        ev(9000, "open").p(&member, &[]).sign(&creator),
        ev(9007, "closed").tag(&["closed"]).sign(&creator),
        ev(9009, "closed").tag(&["code", "k"]).sign(&creator),
        ev(9007, "private").tag(&["private"]).sign(&creator),
    ]);
    let access = h.policy(&policy());
    assert_eq!(
        message(&access, &ev(9007, "open").sign(&outsider)),
        "duplicate: group already exists"
    );
    assert_eq!(message(&access, &ev(9007, "fresh").sign(&outsider)), "ok");
    assert_eq!(
        message(&access, &ev(9021, "open").sign(&member)),
        "duplicate: already a member"
    );
    assert_eq!(message(&access, &ev(9021, "open").sign(&outsider)), "ok");
    assert_eq!(
        message(&access, &ev(9022, "open").sign(&outsider)),
        "invalid: not a member of this group"
    );
    assert_eq!(message(&access, &ev(9022, "open").sign(&member)), "ok");
    assert_eq!(
        message(&access, &ev(9021, "closed").sign(&outsider)),
        "restricted: group is closed; a valid invite code is required"
    );
    assert_eq!(
        message(
            &access,
            &ev(9021, "closed").tag(&["code", "nope"]).sign(&outsider)
        ),
        "restricted: group is closed; a valid invite code is required"
    );
    assert_eq!(
        message(
            &access,
            &ev(9021, "closed").tag(&["code", "k"]).sign(&outsider)
        ),
        "ok"
    );
    assert_eq!(
        message(&access, &ev(9, "open").content("x").sign(&outsider)),
        "restricted: only members can post to this group"
    );
    assert_eq!(
        message(&access, &ev(9, "open").content("x").sign(&member)),
        "ok"
    );
    assert_eq!(
        message(&access, &ev(9021, "missing").sign(&outsider)),
        "invalid: group not found"
    );
    assert_eq!(
        message(&access, &ev(39_000, "open").sign(&creator)),
        "restricted: only the relay publishes group state events"
    );
    assert_eq!(message(&access, &ev(39_000, "open").sign(&relay())), "ok");
    assert_eq!(
        message(&access, &ev(9021, "private").sign(&outsider)),
        "ok",
        "private, not closed: the join is honoured"
    );
    assert_eq!(
        message(&access, &ev(1, "open").sign(&member)),
        "ok",
        "an `h` on kind 1 is a group post"
    );
    assert_eq!(
        message(&access, &ev(1, "x").sign(&member)),
        "invalid: group not found"
    );
    let no_group = EventBuilder::new(Kind::TextNote, "hi")
        .finalize(&outsider)
        .unwrap();
    assert_eq!(message(&access, &no_group), "ok", "not a group event");

    // Deleted groups are not found, and can be created again.
    h.append(&[ev(9008, "open").sign(&creator)]);
    assert_eq!(
        message(&access, &ev(9, "open").content("x").sign(&member)),
        "invalid: group not found"
    );
    assert_eq!(message(&access, &ev(9007, "open").sign(&outsider)), "ok");
    assert_eq!(Rejection::GroupNotFound.prefix(), "invalid");
}

#[test]
fn open_reads_and_auto_join() {
    let h = Harness::new();
    let (creator, member, outsider) = (key(1), key(2), key(4));
    h.append(&[
        ev(9007, "g").sign(&creator),
        ev(9000, "g").p(&member, &[]).sign(&creator),
        ev(9007, "c").tag(&["closed"]).sign(&creator),
    ]);
    let members_only = AccessPolicy::new(
        h.groups.clone(),
        Policy {
            open_reads: false,
            ..policy()
        },
    );
    assert!(!members_only.can_read(None, "g").unwrap());
    assert!(!members_only.can_read(Some(&pk(&outsider)), "g").unwrap());
    assert!(members_only.can_read(Some(&pk(&member)), "g").unwrap());
    assert!(members_only.can_read(Some(&pk(&key(7))), "g").unwrap());
    let open = h.policy(&policy());
    assert!(open.can_read(None, "g").unwrap());
    assert!(!open.can_read(None, "unknown").unwrap());

    let auto = AccessPolicy::new(
        h.groups.clone(),
        Policy {
            auto_join: true,
            ..policy()
        },
    );
    assert!(auto.can_write("g", &pk(&outsider)).unwrap());
    assert!(
        !auto.can_write("c", &pk(&outsider)).unwrap(),
        "closed groups do not auto-join"
    );
    assert!(!open.can_write("g", &pk(&outsider)).unwrap());
}

#[test]
fn open_groups_accept_anyone_unless_the_relay_requires_membership() {
    let h = Harness::new();
    let (creator, member, outsider) = (key(1), key(2), key(4));
    h.append(&[
        ev(9007, "open").sign(&creator),
        ev(9000, "open").p(&member, &[]).sign(&creator),
        ev(9007, "closed").tag(&["closed"]).sign(&creator),
    ]);
    let nip29 = h.policy(&Policy {
        require_membership: false,
        ..policy()
    });
    let post = |who: &nostr::prelude::Keys, g: &str| ev(9, g).content("hi").sign(who);
    for g in ["open", "closed"] {
        assert_eq!(message(&nip29, &post(&outsider, g)), "ok", "{g}");
        assert!(nip29.can_write(g, &pk(&outsider)).unwrap());
    }
    let members_only = h.policy(&policy());
    assert_eq!(
        message(&members_only, &post(&outsider, "open")),
        "restricted: only members can post to this group"
    );
    assert_eq!(message(&members_only, &post(&member, "open")), "ok");
    assert!(!members_only.can_write("open", &pk(&outsider)).unwrap());
    let auto_join = h.policy(&Policy {
        auto_join: true,
        ..policy()
    });
    assert_eq!(message(&auto_join, &post(&outsider, "open")), "ok");
    assert_eq!(
        message(&auto_join, &post(&outsider, "closed")),
        "restricted: only members can post to this group"
    );
}

#[test]
fn restricted_groups_accept_members_only() {
    let h = Harness::new();
    let (creator, member, outsider, admin) = (key(1), key(2), key(4), key(7));
    h.append(&[
        ev(9007, "g").tag(&["restricted"]).sign(&creator),
        ev(9000, "g").p(&member, &[]).sign(&creator),
    ]);
    for access in [
        h.policy(&policy()),
        h.policy(&Policy {
            require_membership: false,
            auto_join: true,
            ..policy()
        }),
    ] {
        for (who, expected) in [
            (&creator, "ok"),
            (&member, "ok"),
            (&admin, "ok"),
            (&outsider, "restricted: only members can post to this group"),
        ] {
            let post = ev(9, "g").content("hi").sign(who);
            assert_eq!(message(&access, &post), expected);
            assert_eq!(access.can_write("g", &pk(who)).unwrap(), expected == "ok");
        }
    }
}

#[test]
fn unsupported_kinds_are_refused() {
    let h = Harness::new();
    let (creator, admin) = (key(1), key(7));
    h.append(&[
        ev(9007, "text")
            .tag(&["supported_kinds", "9"])
            .sign(&creator),
        ev(9007, "av").tag(&["supported_kinds"]).sign(&creator),
    ]);
    let access = h.policy(&policy());
    assert_eq!(
        message(&access, &ev(9, "text").content("hi").sign(&creator)),
        "ok"
    );
    assert_eq!(
        message(&access, &ev(11, "text").content("hi").sign(&creator)),
        "restricted: this group does not accept events of kind 11"
    );
    assert_eq!(
        message(&access, &ev(9, "av").content("hi").sign(&admin)),
        "restricted: this group does not accept events of kind 9"
    );
    // Moderation is not a post: it is not limited by `supported_kinds`.
    assert_eq!(
        message(&access, &ev(9002, "av").tag(&["name", "AV"]).sign(&creator)),
        "ok"
    );
}

#[test]
fn subgroup_edits_are_checked() {
    let h = Harness::new();
    let (alice, bob, carol, admin) = (key(1), key(2), key(3), key(7));
    h.append(&[
        ev(9007, "tech").sign(&alice),
        ev(9007, "nostr").tag(&["parent", "tech"]).sign(&alice),
        ev(9007, "nip29").tag(&["parent", "nostr"]).sign(&alice),
        ev(9007, "bobs").sign(&bob),
        ev(9000, "tech").p(&carol, &["admin"]).sign(&alice),
    ]);
    let access = h.policy(&policy());
    let edit = |g: &str, tags: &[&[&str]], who: &nostr::prelude::Keys| {
        let mut e = ev(9002, g);
        for t in tags {
            e = e.tag(t);
        }
        message(&access, &e.sign(who))
    };
    assert_eq!(
        edit("nostr", &[&["parent", "tech"], &["parent", "bobs"]], &alice),
        "invalid: at most one parent tag"
    );
    assert_eq!(
        edit(
            "nostr",
            &[&["parent", "nostr"], &["child", "nip29"]],
            &alice
        ),
        "invalid: the parent would create a cycle"
    );
    assert_eq!(
        edit("tech", &[&["parent", "nip29"], &["child", "nostr"]], &alice),
        "invalid: the parent would create a cycle"
    );
    assert_eq!(
        edit("nip29", &[&["parent", "nowhere"]], &alice),
        "invalid: parent group not found"
    );
    assert_eq!(
        edit("nip29", &[&["parent", "bobs"]], &alice),
        "restricted: only an admin of the parent group can attach to it"
    );
    // Bob, admin of nothing but his own group, cannot attach it under tech; Carol,
    // admin of tech, can attach her groups; relay admins can.
    assert_eq!(
        edit("bobs", &[&["parent", "tech"]], &bob),
        "restricted: only an admin of the parent group can attach to it"
    );
    assert_eq!(edit("bobs", &[&["parent", "tech"]], &admin), "ok");
    assert_eq!(
        edit("nip29", &[&["parent", "bobs"]], &bob),
        "restricted: not authorised to moderate this group"
    );
    // A parent's edit must list every current child.
    assert_eq!(
        edit("tech", &[&["name", "Tech"]], &alice),
        "invalid: edit-metadata must list every current child as a child tag"
    );
    assert_eq!(
        edit("tech", &[&["name", "Tech"], &["child", "nostr"]], &carol),
        "ok"
    );
    // A 9007 is checked the same way.
    let create = |g: &str, parent: &str, who: &nostr::prelude::Keys| {
        message(&access, &ev(9007, g).tag(&["parent", parent]).sign(who))
    };
    assert_eq!(
        create("new", "new", &alice),
        "invalid: the parent would create a cycle"
    );
    assert_eq!(
        create("new", "nowhere", &alice),
        "invalid: parent group not found"
    );
    assert_eq!(
        create("new", "tech", &bob),
        "restricted: only an admin of the parent group can attach to it"
    );
    assert_eq!(create("new", "tech", &carol), "ok");
}

#[test]
fn the_default_policy_is_nip29s_text() {
    assert_eq!(
        Policy::default(),
        Policy {
            relay_admins: std::collections::BTreeSet::new(),
            admins_manage_private: false,
            open_reads: true,
            auto_join: false,
            require_membership: false,
            private_needs_invite: false,
            admin_create_only: false,
            private_admin_only: false,
            group_admin_roles: ["admin".to_owned()].into_iter().collect(),
            answer_joins: true,
        }
    );
    let h = Harness::new();
    let (creator, outsider) = (key(1), key(4));
    h.append(&[
        ev(9007, "public").sign(&creator),
        ev(9007, "private").tag(&["private"]).sign(&creator),
        ev(9007, "hidden").tag(&["hidden"]).sign(&creator),
    ]);
    let access = h.policy(&Policy::default());
    // "Omitting this tag indicates that anyone can read group messages."
    assert!(access.can_read(None, "public").unwrap());
    assert!(access.can_read(Some(&pk(&outsider)), "public").unwrap());
    assert!(!access.can_read(None, "private").unwrap());
    assert!(!access.can_read(None, "hidden").unwrap());
    // "Omitting this tag indicates that anyone can send messages."
    assert_eq!(
        message(&access, &ev(9, "public").content("hi").sign(&outsider)),
        "ok"
    );
    // "Omitting this tag indicates that users can expect join requests to be honored."
    for g in ["public", "private", "hidden"] {
        assert_eq!(message(&access, &ev(9021, g).sign(&outsider)), "ok", "{g}");
    }
    // Members-only reading stays available as an option.
    let members_only = h.policy(&Policy {
        open_reads: false,
        ..Policy::default()
    });
    assert!(!members_only.can_read(None, "public").unwrap());
    assert!(
        members_only
            .can_read(Some(&pk(&creator)), "public")
            .unwrap()
    );
}

#[test]
fn joins_are_honoured_unless_the_group_is_closed() {
    let h = Harness::new();
    let (creator, outsider) = (key(1), key(4));
    let groups: [(&str, &[&str]); 6] = [
        ("private", &["private"]),
        ("hidden", &["hidden"]),
        ("both", &["private", "hidden"]),
        ("closed", &["closed"]),
        ("private-closed", &["private", "closed"]),
        ("hidden-closed", &["hidden", "closed"]),
    ];
    for (g, flags) in groups {
        let mut create = ev(9007, g);
        for flag in flags {
            create = create.tag(&[flag]);
        }
        h.append(&[
            create.sign(&creator),
            ev(9009, g).tag(&["code", "k"]).sign(&creator),
        ]);
    }
    let closed = "restricted: group is closed; a valid invite code is required";
    let not_found = "invalid: group not found";
    let invite = "restricted: an invite code is required to join this group";
    let join = |g: &str| ev(9021, g).sign(&outsider);
    let join_with = |g: &str, code: &str| ev(9021, g).tag(&["code", code]).sign(&outsider);
    let nip29 = h.policy(&Policy::default());
    let zooid = h.policy(&Policy {
        private_needs_invite: true,
        ..Policy::default()
    });
    for (g, plain, zooid_plain) in [
        ("private", "ok", invite),
        ("hidden", "ok", not_found),
        ("both", "ok", not_found),
        ("closed", closed, closed),
        ("private-closed", closed, invite),
        ("hidden-closed", not_found, not_found),
    ] {
        assert_eq!(message(&nip29, &join(g)), plain, "{g}");
        assert_eq!(message(&nip29, &join_with(g, "wrong")), plain, "{g}");
        assert_eq!(message(&nip29, &join_with(g, "k")), "ok", "{g}");
        assert_eq!(message(&zooid, &join(g)), zooid_plain, "{g} (zooid)");
        assert_eq!(message(&zooid, &join_with(g, "k")), "ok", "{g} (zooid)");
    }
    // Honouring a join to a hidden group reveals nothing else of it.
    assert_eq!(
        message(&nip29, &ev(9, "hidden").content("hi").sign(&outsider)),
        not_found
    );
    assert!(!nip29.has_access(Some(&pk(&outsider)), "hidden").unwrap());
}

#[test]
fn every_relay_kind_is_signed_by_the_relay_only() {
    let h = Harness::new();
    let creator = key(1);
    h.append(&[ev(9007, "g").sign(&creator)]);
    let access = h.policy(&Policy::default());
    for kind in 39_000..=39_009 {
        let event = |who: &nostr::prelude::Keys| {
            EventBuilder::new(Kind::from(kind), "")
                .tags([nostr::prelude::Tag::parse(["d", "g"]).unwrap()])
                .finalize(who)
                .unwrap()
        };
        assert_eq!(
            message(&access, &event(&creator)),
            "restricted: only the relay publishes group state events",
            "{kind}"
        );
        assert_eq!(message(&access, &event(&relay())), "ok", "{kind}");
    }
}

/// The relay-only kinds come from the registered projections' declarations
/// (`KindTable`), not only NIP-29's range: NIP-43's member events and the NIP-86
/// record are the relay's too, refused from anyone else by every writer.
#[test]
fn the_relay_members_and_management_kinds_are_signed_by_the_relay_only() {
    let h = Harness::new();
    let creator = key(1);
    h.append(&[ev(9007, "g").sign(&creator)]);
    let access = h.policy(&Policy::default());
    let table = access.groups().kinds();
    for kind in [8000u16, 8001, 13_534, 9086] {
        assert!(table.is_relay_signed(kind), "{kind}");
        let event = |who: &nostr::prelude::Keys| {
            EventBuilder::new(Kind::from(kind), "")
                .tags([nostr::prelude::Tag::parse(["p", &creator.public_key().to_hex()]).unwrap()])
                .finalize(who)
                .unwrap()
        };
        assert_eq!(
            message(&access, &event(&creator)),
            format!("restricted: kind {kind} is signed by the relay itself"),
        );
        assert_eq!(message(&access, &event(&relay())), "ok", "{kind}");
    }
    assert!(!table.is_relay_signed(9), "a chat message is anyone's");
    assert!(table.changes_group(9000) && !table.changes_group(9));
    assert!(table.changes_relay(8000) && table.changes_relay(9086));
    assert!(
        !table.changes_relay(9005),
        "deletions decide what is served, not what is accepted"
    );
}

#[test]
fn timeline_references_must_name_stored_events() {
    let h = Harness::new();
    let (creator, outsider) = (key(1), key(4));
    let first = ev(9007, "g").sign(&creator);
    let elsewhere = ev(9007, "other").sign(&creator);
    h.append(&[first.clone(), elsewhere.clone()]);
    let access = h.policy(&Policy::default());
    let (first, elsewhere) = (first.id.to_hex(), elsewhere.id.to_hex());
    let post = |refs: &[&str]| {
        let mut tag = vec!["previous"];
        tag.extend_from_slice(refs);
        message(&access, &ev(9, "g").tag(&tag).sign(&outsider))
    };
    assert_eq!(post(&[&first[..8]]), "ok");
    assert_eq!(post(&[&first[..8], &elsewhere[..8]]), "ok");
    assert_eq!(post(&[&first]), "ok", "a longer prefix, up to the whole id");
    assert_eq!(post(&[&first[..8].to_uppercase()]), "ok");
    assert_eq!(post(&[]), "ok", "a `previous` tag without references");
    let unknown = if first.starts_with("00") {
        "ffffffff"
    } else {
        "00000000"
    };
    assert_eq!(
        post(&[&first[..8], unknown]),
        format!("invalid: previous reference \"{unknown}\" names no event stored here")
    );
    for malformed in ["", "abc", &first[..7], &first[..9], "zzzzzzzz"] {
        assert_eq!(
            post(&[malformed]),
            format!("invalid: previous reference {malformed:?} names no event stored here"),
            "{malformed:?}"
        );
    }
    // Every `previous` tag counts, moderation and joins included.
    let event = ev(9021, "g")
        .tag(&["previous", &first[..8]])
        .tag(&["previous", unknown])
        .sign(&outsider);
    assert_eq!(
        Rejection::UnknownPrevious(unknown.into()),
        access.check_write(&event).unwrap_err()
    );
}

#[test]
fn admin_create_only_lets_relay_admins_alone_create_groups() {
    let h = Harness::new();
    let (outsider, admin) = (key(4), key(7));
    let access = h.policy(&Policy {
        admin_create_only: true,
        ..policy()
    });
    assert_eq!(
        message(&access, &ev(9007, "g").sign(&outsider)),
        "restricted: only relay admins can create groups"
    );
    assert_eq!(message(&access, &ev(9007, "g").sign(&admin)), "ok");
    assert_eq!(message(&access, &ev(9007, "g").sign(&relay())), "ok");
    // The default (NIP-29): anyone creates.
    assert_eq!(
        message(&h.policy(&policy()), &ev(9007, "g").sign(&outsider)),
        "ok"
    );
}

#[test]
fn private_admin_only_lets_relay_admins_alone_create_private_groups() {
    let h = Harness::new();
    let (outsider, admin) = (key(4), key(7));
    let access = h.policy(&Policy {
        private_admin_only: true,
        ..policy()
    });
    assert_eq!(
        message(&access, &ev(9007, "p").tag(&["private"]).sign(&outsider)),
        "restricted: only relay admins can create private groups"
    );
    assert_eq!(message(&access, &ev(9007, "g").sign(&outsider)), "ok");
    // A relay admin creates one even without admins_manage_private: creating is not
    // managing.
    assert_eq!(
        message(&access, &ev(9007, "p").tag(&["private"]).sign(&admin)),
        "ok"
    );
}

#[test]
fn group_admin_roles_name_who_moderates_besides_creator_and_relay_admins() {
    let h = Harness::new();
    let (creator, boss, moderator) = (key(1), key(2), key(3));
    h.append(&[
        ev(9007, "g").sign(&creator),
        ev(9000, "g")
            .p(&boss, &["admin"])
            .p(&moderator, &["moderator"])
            .sign(&creator),
    ]);
    let put = |by: &Keys| ev(9000, "g").p(&key(5), &[]).sign(by);
    let nip29 = h.policy(&policy());
    assert_eq!(message(&nip29, &put(&boss)), "ok");
    assert_eq!(
        message(&nip29, &put(&moderator)),
        "restricted: not authorised to moderate this group"
    );
    // zooid: group roles moderate nothing; the creator and relay admins do.
    let zooid = h.policy(&Policy {
        group_admin_roles: std::collections::BTreeSet::new(),
        ..policy()
    });
    assert_eq!(
        message(&zooid, &put(&boss)),
        "restricted: not authorised to moderate this group"
    );
    assert_eq!(message(&zooid, &put(&creator)), "ok");
    assert_eq!(message(&zooid, &put(&key(7))), "ok");
    let moderators = h.policy(&Policy {
        group_admin_roles: ["moderator".to_owned()].into_iter().collect(),
        ..policy()
    });
    assert_eq!(message(&moderators, &put(&moderator)), "ok");
}
