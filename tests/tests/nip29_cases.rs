//! The NIP-29 fold semantics, one case at a time, through the engine with real signed
//! events. Every case also checks that the served answers equal the full replay.

mod nip29_support;

use highwater_engine::{EngineOptions, LoadState};
use highwater_projections::{GroupMetadata, Life, RoleDefinition, Source};
use highwater_store::StoreOptions;
use nip29_support::{Harness, ev, foreign, hex, key, pk, relay};
use nostr::prelude::Keys;

fn people() -> (Keys, Keys, Keys, Keys, Keys) {
    (key(1), key(2), key(3), key(4), key(5))
}

/// The served view of `group` equals the oracle's (full replay) view.
fn assert_oracle(h: &Harness, group: &str) {
    let served = h.groups.view(&h.engine, group).expect("served view");
    let replayed = h.oracle().view(&h.engine, group).expect("oracle view");
    assert_eq!(served, replayed, "group {group}");
}

#[test]
fn roles_are_replaced_not_merged() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g").p(&bob, &["admin", "writer"]).sign(&alice),
        ev(9000, "g")
            .p(&bob, &["moderator", "moderator", ""])
            .sign(&alice),
    ]);
    assert_eq!(h.groups.roles("g", &pk(&bob)).unwrap(), ["moderator"]);
    assert!(!h.groups.has_role("g", &pk(&bob), "admin").unwrap());
    assert!(h.groups.is_member("g", &pk(&bob)).unwrap());
    assert_oracle(&h, "g");
}

#[test]
fn a_bare_p_clears_roles_but_keeps_the_member() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g").p(&bob, &["admin"]).sign(&alice),
        ev(9000, "g").p(&bob, &[]).sign(&alice),
    ]);
    assert!(h.groups.roles("g", &pk(&bob)).unwrap().is_empty());
    assert!(h.groups.is_member("g", &pk(&bob)).unwrap());
    assert_oracle(&h, "g");
}

#[test]
fn one_event_puts_and_removes_several_members() {
    let h = Harness::new();
    let (alice, bob, carol, dave, _) = people();
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g")
            .p(&bob, &[])
            .p(&carol, &["writer"])
            .p(&dave, &["admin"])
            .sign(&alice),
    ]);
    let mut expected = vec![pk(&alice), pk(&bob), pk(&carol), pk(&dave)];
    expected.sort_unstable();
    assert_eq!(h.groups.members("g").unwrap(), expected);
    assert_eq!(h.groups.member_count("g").unwrap(), 4);

    h.append(&[ev(9001, "g").p(&bob, &[]).p(&carol, &[]).sign(&alice)]);
    let mut expected = vec![pk(&alice), pk(&dave)];
    expected.sort_unstable();
    assert_eq!(h.groups.members("g").unwrap(), expected);
    assert!(
        h.groups.roles("g", &pk(&carol)).unwrap().is_empty(),
        "9001 clears roles"
    );
    assert_eq!(h.groups.roles("g", &pk(&dave)).unwrap(), ["admin"]);
    assert_oracle(&h, "g");
}

#[test]
fn removing_a_non_member_changes_nothing() {
    let h = Harness::new();
    let (alice, bob, _, _, erin) = people();
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g").p(&bob, &["writer"]).sign(&alice),
    ]);
    let before = h.groups.view(&h.engine, "g").unwrap();
    h.append(&[ev(9001, "g").p(&erin, &[]).sign(&alice)]);
    let after = h.groups.view(&h.engine, "g").unwrap();
    assert_eq!(before.members, after.members);
    assert_eq!(after.state, Life::Active);
    assert_eq!(
        h.engine.group_status("membership", "g").unwrap().state,
        LoadState::Loaded
    );
    assert_oracle(&h, "g");
}

#[test]
fn delete_then_recreate_starts_a_fresh_life_and_survives_a_reopen() {
    for checkpoint_on_close in [true, false] {
        let options = EngineOptions {
            checkpoint_every: 2,
            checkpoint_on_close,
        };
        let h = Harness::with(options, StoreOptions::default());
        let (alice, bob, carol, ..) = people();
        h.append(&[
            ev(9007, "g")
                .tag(&["name", "First"])
                .tag(&["closed"])
                .sign(&alice),
            ev(9000, "g").p(&bob, &["admin"]).sign(&alice),
            ev(9009, "g").tag(&["code", "old"]).sign(&alice),
            ev(39_003, "g").tag(&["role", "admin"]).sign(&relay()),
        ]);
        assert!(h.groups.has_invite("g", "old").unwrap());
        h.append(&[ev(9008, "g").sign(&bob)]);
        assert_eq!(h.groups.group_state("g").unwrap(), Life::Deleted);
        assert!(!h.groups.group_exists("g").unwrap());
        assert_eq!(h.groups.creator("g").unwrap(), None);
        assert!(h.groups.members("g").unwrap().is_empty());
        assert_eq!(h.groups.metadata("g").unwrap(), GroupMetadata::default());
        assert!(h.groups.invite_codes("g").unwrap().is_empty());
        assert!(h.groups.role_definitions("g").unwrap().is_empty());

        // While deleted, nothing but a 9007 counts — snapshots included.
        h.append(&[
            ev(9000, "g").p(&carol, &[]).sign(&bob),
            ev(9002, "g").tag(&["name", "Ghost"]).sign(&bob),
            ev(9009, "g").tag(&["code", "ghost"]).sign(&bob),
            ev(39_002, "g").p(&carol, &[]).sign(&relay()),
        ]);
        assert_eq!(h.groups.group_state("g").unwrap(), Life::Deleted);
        assert!(h.groups.members("g").unwrap().is_empty());

        h.append(&[ev(9007, "g").tag(&["name", "Second"]).sign(&carol)]);
        let check = |h: &Harness| {
            let view = h.groups.view(&h.engine, "g").unwrap();
            assert_eq!(view.state, Life::Active);
            assert_eq!(view.source, Source::History);
            assert_eq!(view.creator, Some(hex(&carol)));
            assert_eq!(view.members.len(), 1);
            assert_eq!(view.members[0].pubkey, hex(&carol));
            assert_eq!(view.metadata.name.as_deref(), Some("Second"));
            assert!(!view.metadata.closed, "nothing carried over");
            assert!(view.invite_codes.is_empty());
            assert!(!h.groups.is_member("g", &pk(&bob)).unwrap());
            assert!(!h.groups.has_role("g", &pk(&bob), "admin").unwrap());
            assert_oracle(h, "g");
        };
        check(&h);
        let h = h.reopen();
        check(&h);
        h.engine.evict_all();
        check(&h);
    }
}

#[test]
fn a_second_create_is_ignored() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    h.append(&[
        ev(9007, "g").tag(&["name", "A"]).sign(&alice),
        ev(9007, "g")
            .tag(&["name", "B"])
            .tag(&["private"])
            .sign(&bob),
    ]);
    assert_eq!(h.groups.creator("g").unwrap(), Some(pk(&alice)));
    assert!(h.groups.is_creator("g", &pk(&alice)).unwrap());
    assert!(!h.groups.is_creator("g", &pk(&bob)).unwrap());
    assert!(!h.groups.is_member("g", &pk(&bob)).unwrap());
    assert_eq!(h.groups.metadata("g").unwrap().name.as_deref(), Some("A"));
    assert!(!h.groups.is_private("g").unwrap());
    assert_oracle(&h, "g");
}

#[test]
fn moderation_without_a_create_makes_the_group_exist_without_creator() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    h.append(&[ev(9000, "g").p(&bob, &["admin"]).sign(&alice)]);
    assert!(h.groups.group_exists("g").unwrap());
    assert_eq!(h.groups.creator("g").unwrap(), None);
    assert_eq!(h.groups.members("g").unwrap(), [pk(&bob)]);
    // A 9007 while active is ignored.
    h.append(&[ev(9007, "g").sign(&alice)]);
    assert_eq!(h.groups.creator("g").unwrap(), None);
    assert!(!h.groups.group_exists("unknown").unwrap());
    assert_eq!(h.groups.group_state("unknown").unwrap(), Life::Unknown);
    assert_oracle(&h, "g");
}

#[test]
fn snapshots_seed_a_group_and_history_folds_on_top() {
    let h = Harness::new();
    let (alice, bob, carol, dave, erin) = people();
    let r = relay();
    h.append(&[
        ev(39_000, "g")
            .tag(&["name", "Imported"])
            .tag(&["closed"])
            .at(100)
            .sign(&r),
        ev(39_002, "g")
            .p(&alice, &["admin"])
            .p(&bob, &[])
            .at(100)
            .sign(&r),
    ]);
    let view = h.groups.view(&h.engine, "g").unwrap();
    assert_eq!(
        (view.state, view.source, view.creator.clone()),
        (Life::Active, Source::Snapshots, None)
    );
    assert_eq!(view.member_count, 2);
    assert!(h.groups.is_closed("g").unwrap());
    assert_eq!(h.groups.roles("g", &pk(&alice)).unwrap(), ["admin"]);

    // A newer 39002 replaces; an older one is ignored.
    let newer = ev(39_002, "g").p(&carol, &["writer"]).at(150).sign(&r);
    h.append(&[
        newer.clone(),
        ev(39_002, "g").p(&erin, &[]).at(120).sign(&r),
        ev(39_000, "g").tag(&["name", "Old"]).at(90).sign(&r),
    ]);
    assert_eq!(h.groups.members("g").unwrap(), [pk(&carol)]);
    assert_eq!(h.groups.roles("g", &pk(&carol)).unwrap(), ["writer"]);
    assert!(h.groups.roles("g", &pk(&alice)).unwrap().is_empty());
    assert_eq!(
        h.groups.metadata("g").unwrap().name.as_deref(),
        Some("Imported")
    );
    // Equally old: the lowest id wins (NIP-01), whatever the log order.
    let tie = ev(39_002, "g")
        .p(&carol, &["writer"])
        .p(&bob, &[])
        .at(150)
        .sign(&r);
    let tie_wins = tie.id < newer.id;
    h.append(&[tie]);
    assert_eq!(
        h.groups.member_count("g").unwrap(),
        if tie_wins { 2 } else { 1 },
        "equal created_at: lowest id"
    );

    // The tail folds on top; later snapshots no longer count.
    h.append(&[ev(9000, "g").p(&dave, &[]).at(10).sign(&alice)]);
    assert_eq!(h.groups.lifecycle("g").unwrap().source, Source::History);
    h.append(&[
        ev(39_002, "g").p(&erin, &[]).at(10_000).sign(&r),
        ev(39_000, "g").tag(&["name", "New"]).at(10_000).sign(&r),
    ]);
    let mut expected = vec![pk(&carol), pk(&dave)];
    if tie_wins {
        expected.push(pk(&bob));
    }
    expected.sort_unstable();
    assert_eq!(h.groups.members("g").unwrap(), expected);
    assert_eq!(h.groups.roles("g", &pk(&carol)).unwrap(), ["writer"]);
    assert_eq!(
        h.groups.metadata("g").unwrap().name.as_deref(),
        Some("Imported")
    );
    assert!(h.groups.is_closed("g").unwrap());
    assert_eq!(h.groups.creator("g").unwrap(), None);
    assert_oracle(&h, "g");
}

#[test]
fn an_older_39001_after_a_newer_39002_adds_no_admins() {
    let h = Harness::new();
    let (alice, bob, carol, ..) = people();
    let r = relay();
    h.append(&[
        ev(39_002, "g").p(&bob, &["writer"]).at(200).sign(&r),
        ev(39_001, "g")
            .p(&alice, &["admin"])
            .p(&bob, &["admin"])
            .at(100)
            .sign(&r),
    ]);
    assert_eq!(h.groups.members("g").unwrap(), [pk(&bob)]);
    assert_eq!(
        h.groups.roles("g", &pk(&bob)).unwrap(),
        ["writer"],
        "the newer 39002 decides"
    );
    assert!(!h.groups.has_role("g", &pk(&alice), "admin").unwrap());

    // Equally old: they combine (relays publish both in one second).
    h.append(&[ev(39_001, "g").p(&alice, &["admin"]).at(200).sign(&r)]);
    let mut both = vec![pk(&alice), pk(&bob)];
    both.sort_unstable();
    assert_eq!(h.groups.members("g").unwrap(), both);
    assert_eq!(h.groups.roles("g", &pk(&alice)).unwrap(), ["admin"]);

    // Strictly newer: its admins join, with its roles.
    h.append(&[ev(39_001, "g")
        .p(&carol, &["admin", "writer"])
        .p(&bob, &["admin"])
        .at(300)
        .sign(&r)]);
    let mut expected = vec![pk(&bob), pk(&carol)];
    expected.sort_unstable();
    assert_eq!(h.groups.members("g").unwrap(), expected);
    assert_eq!(h.groups.roles("g", &pk(&bob)).unwrap(), ["admin"]);
    assert_eq!(
        h.groups.roles("g", &pk(&carol)).unwrap(),
        ["admin", "writer"]
    );

    // A newer 39002 takes over again.
    h.append(&[ev(39_002, "g").p(&alice, &[]).at(400).sign(&r)]);
    assert_eq!(h.groups.members("g").unwrap(), [pk(&alice)]);
    assert!(h.groups.roles("g", &pk(&carol)).unwrap().is_empty());
    assert_oracle(&h, "g");
}

#[test]
fn snapshots_signed_by_another_key_change_nothing() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    let f = foreign();
    h.append(&[
        ev(39_000, "g")
            .tag(&["name", "Fake"])
            .tag(&["private"])
            .sign(&f),
        ev(39_001, "g").p(&bob, &["admin"]).sign(&f),
        ev(39_002, "g").p(&bob, &[]).sign(&f),
        ev(39_003, "g").tag(&["role", "admin"]).sign(&f),
    ]);
    assert_eq!(h.groups.group_state("g").unwrap(), Life::Unknown);
    assert!(h.groups.members("g").unwrap().is_empty());
    assert!(h.groups.role_definitions("g").unwrap().is_empty());

    h.append(&[ev(39_002, "s").p(&alice, &[]).at(100).sign(&relay())]);
    h.append(&[
        ev(39_002, "s").p(&bob, &[]).at(200).sign(&f),
        ev(39_000, "s").tag(&["private"]).sign(&f),
    ]);
    assert_eq!(h.groups.members("s").unwrap(), [pk(&alice)]);
    assert!(!h.groups.is_private("s").unwrap());
    assert_oracle(&h, "g");
    assert_oracle(&h, "s");
}

#[test]
fn role_definitions_come_from_the_newest_relay_39003() {
    let h = Harness::new();
    let (alice, ..) = people();
    let r = relay();
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(39_003, "g")
            .tag(&["role", "writer", "can post"])
            .tag(&["role", "admin"])
            .at(500)
            .sign(&r),
    ]);
    assert_eq!(
        h.groups.role_definitions("g").unwrap(),
        [
            RoleDefinition {
                name: "admin".into(),
                description: None
            },
            RoleDefinition {
                name: "writer".into(),
                description: Some("can post".into())
            },
        ]
    );
    // NIP-01: an older one is ignored whatever its log position; a newer one replaces.
    h.append(&[ev(39_003, "g").tag(&["role", "old"]).at(1).sign(&r)]);
    assert_eq!(h.groups.role_definitions("g").unwrap().len(), 2);
    h.append(&[ev(39_003, "g")
        .tag(&["role", "moderator"])
        .tag(&["role", ""])
        .tag(&["role"])
        .at(501)
        .sign(&r)]);
    assert_eq!(
        h.groups.role_definitions("g").unwrap(),
        [RoleDefinition {
            name: "moderator".into(),
            description: None
        }]
    );
    assert_oracle(&h, "g");
}

#[test]
fn flags_are_read_in_all_three_dialects() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "tags")
            .tag(&["private"])
            .tag(&["closed"])
            .tag(&["hidden"])
            .tag(&["restricted"])
            .tag(&["write-restricted"])
            .sign(&alice),
        ev(9007, "legacy")
            .tag(&["public"])
            .tag(&["open"])
            .tag(&["visible"])
            .tag(&["unrestricted"])
            .sign(&alice),
        ev(9007, "json")
            .content(r#"{"private":true,"closed":true,"hidden":true,"write-restricted":true}"#)
            .sign(&alice),
        ev(9007, "json-short")
            .content(r#"{"restricted":true,"private":false}"#)
            .sign(&alice),
        // JSON first, then tags in order, later wins.
        ev(9007, "mixed")
            .content(r#"{"private":true,"closed":true}"#)
            .tag(&["open"])
            .tag(&["hidden"])
            .tag(&["visible"])
            .tag(&["hidden"])
            .sign(&alice),
        ev(9007, "bad-json")
            .content(r#"{"private":"yes", "closed": 1"#)
            .sign(&alice),
    ]);
    let flags = |g: &str| {
        let m = h.groups.metadata(g).unwrap();
        (
            m.private,
            m.closed,
            m.hidden,
            m.restricted,
            m.write_restricted,
        )
    };
    assert_eq!(flags("tags"), (true, true, true, true, true));
    assert_eq!(flags("legacy"), (false, false, false, false, false));
    assert_eq!(flags("json"), (true, true, true, false, true));
    assert_eq!(flags("json-short"), (false, false, false, true, false));
    assert_eq!(flags("mixed"), (true, false, true, false, false));
    assert_eq!(flags("bad-json"), (false, false, false, false, false));
    assert!(h.groups.is_restricted("tags").unwrap());
    assert!(!h.groups.is_restricted("json").unwrap());
    assert!(h.groups.is_write_restricted("json").unwrap());
    assert!(h.groups.is_private("tags").unwrap());
    assert!(h.groups.is_closed("tags").unwrap());
    assert!(h.groups.is_hidden("tags").unwrap());
    assert!(h.groups.is_write_restricted("tags").unwrap());
    for g in ["tags", "legacy", "json", "json-short", "mixed", "bad-json"] {
        assert_oracle(&h, g);
    }
}

#[test]
fn edit_metadata_replaces_everything_but_invite_codes() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9009, "g")
            .tag(&["code", "k1"])
            .tag(&["code", ""])
            .sign(&alice),
        ev(9002, "g")
            .tag(&["name", "A"])
            .tag(&["closed"])
            .tag(&["about", "x"])
            .tag(&["t", "pizza"])
            .sign(&alice),
    ]);
    let m = h.groups.metadata("g").unwrap();
    assert_eq!(
        (m.name.as_deref(), m.about.as_deref(), m.closed),
        (Some("A"), Some("x"), true)
    );
    assert_eq!(m.extra_tags, [vec!["t".to_owned(), "pizza".to_owned()]]);
    h.append(&[ev(9002, "g").tag(&["name", "B"]).sign(&alice)]);
    let m = h.groups.metadata("g").unwrap();
    assert_eq!(
        m,
        GroupMetadata {
            name: Some("B".into()),
            ..GroupMetadata::default()
        }
    );
    assert!(!h.groups.is_closed("g").unwrap());
    assert_eq!(h.groups.invite_codes("g").unwrap(), ["k1"]);
    assert!(h.groups.has_invite("g", "k1").unwrap());
    assert!(!h.groups.has_invite("g", "").unwrap());
    assert_oracle(&h, "g");
}

#[test]
fn malformed_p_tags_are_ignored() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    let long = format!("{}00", hex(&bob));
    let upper = hex(&key(3)).to_uppercase();
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g")
            .tag(&["p"])
            .tag(&["p", ""])
            .tag(&["p", "not-hex"])
            .tag(&["p", &hex(&bob)[..63]])
            .tag(&["p", &long, "admin"])
            .tag(&["p", &"zz".repeat(32)])
            .p(&bob, &["writer"])
            .tag(&["p", &upper])
            .sign(&alice),
        ev(9001, "g").tag(&["p"]).tag(&["p", "x"]).sign(&alice),
    ]);
    let mut expected = vec![pk(&alice), pk(&bob), pk(&key(3))];
    expected.sort_unstable();
    assert_eq!(h.groups.members("g").unwrap(), expected);
    assert_eq!(h.groups.roles("g", &pk(&bob)).unwrap(), ["writer"]);
    assert_oracle(&h, "g");
    for projection in h.engine.projections() {
        assert_eq!(
            h.engine.group_status(&projection, "g").unwrap().state,
            LoadState::Loaded,
            "{projection}"
        );
    }
}

#[test]
fn log_order_wins_over_created_at() {
    let h = Harness::new();
    let (alice, bob, ..) = people();
    h.append(&[
        ev(9007, "g").at(500).sign(&alice),
        ev(9000, "g").p(&bob, &["admin"]).at(400).sign(&alice),
        ev(9001, "g").p(&bob, &[]).at(300).sign(&alice),
        ev(9000, "g").p(&bob, &["writer"]).at(300).sign(&alice),
        ev(9002, "g")
            .tag(&["name", "later in the log"])
            .at(1)
            .sign(&alice),
    ]);
    assert_eq!(h.groups.roles("g", &pk(&bob)).unwrap(), ["writer"]);
    assert_eq!(
        h.groups.metadata("g").unwrap().name.as_deref(),
        Some("later in the log")
    );
    assert_eq!(h.groups.creator("g").unwrap(), Some(pk(&alice)));
    assert_oracle(&h, "g");
}

#[test]
fn invite_codes_need_an_existing_group_and_end_with_its_life() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[ev(9009, "g").tag(&["code", "early"]).sign(&alice)]);
    assert!(!h.groups.group_exists("g").unwrap());
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9009, "g")
            .tag(&["code", "b"])
            .tag(&["code", "a"])
            .sign(&alice),
    ]);
    assert_eq!(h.groups.invite_codes("g").unwrap(), ["a", "b"]);
    h.append(&[ev(9008, "g").sign(&alice), ev(9007, "g").sign(&alice)]);
    assert!(h.groups.invite_codes("g").unwrap().is_empty());
    assert_oracle(&h, "g");
}
