//! NIP-29 as it reads today, one rule at a time (see SEMANTICS.md): relay snapshot ties
//! and same-second pairs, the two write flags, the seed relay's JSON names, the newer
//! metadata fields, leave requests, and the rendered 39001/39002. Every case also checks
//! the served answers against the full replay.

mod nip29_support;

use highwater_projections::GroupMetadata;
use nip29_support::{Harness, ev, hex, key, pk, relay};
use nostr::prelude::Timestamp;

/// The served view of `group` equals the oracle's (full replay) view.
fn assert_oracle(h: &Harness, group: &str) {
    let served = h.groups.view(&h.engine, group).expect("served view");
    let replayed = h.oracle().view(&h.engine, group).expect("oracle view");
    assert_eq!(served, replayed, "group {group}");
}

#[test]
fn same_second_snapshots_lowest_id_wins_in_any_log_order() {
    let (alice, bob) = (key(1), key(2));
    let r = relay();
    let a = ev(39_002, "g").p(&alice, &[]).at(100).sign(&r);
    let b = ev(39_002, "g").p(&bob, &[]).at(100).sign(&r);
    let m1 = ev(39_000, "g").tag(&["name", "one"]).at(100).sign(&r);
    let m2 = ev(39_000, "g").tag(&["name", "two"]).at(100).sign(&r);
    let d1 = ev(39_003, "g").tag(&["role", "one"]).at(100).sign(&r);
    let d2 = ev(39_003, "g").tag(&["role", "two"]).at(100).sign(&r);
    let members_winner = if a.id < b.id { pk(&alice) } else { pk(&bob) };
    let name_winner = if m1.id < m2.id { "one" } else { "two" };
    let role_winner = if d1.id < d2.id { "one" } else { "two" };
    for order in [
        [
            a.clone(),
            b.clone(),
            m1.clone(),
            m2.clone(),
            d1.clone(),
            d2.clone(),
        ],
        [
            b.clone(),
            a.clone(),
            m2.clone(),
            m1.clone(),
            d2.clone(),
            d1.clone(),
        ],
    ] {
        let h = Harness::new();
        h.append(&order);
        assert_eq!(h.groups.members("g").unwrap(), [members_winner]);
        assert_eq!(
            h.groups.metadata("g").unwrap().name.as_deref(),
            Some(name_winner)
        );
        assert_eq!(h.groups.role_definitions("g").unwrap()[0].name, role_winner);
        assert_oracle(&h, "g");
    }
}

#[test]
fn a_39001_and_39002_of_the_same_second_combine() {
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let r = relay();
    let admins = ev(39_001, "g").p(&alice, &["admin"]).at(100).sign(&r);
    let members = ev(39_002, "g").p(&bob, &[]).p(&carol, &[]).at(100).sign(&r);
    for order in [
        [admins.clone(), members.clone()],
        [members.clone(), admins.clone()],
    ] {
        let h = Harness::new();
        h.append(&order);
        let mut expected = vec![pk(&alice), pk(&bob), pk(&carol)];
        expected.sort_unstable();
        assert_eq!(h.groups.members("g").unwrap(), expected);
        assert!(h.groups.has_role("g", &pk(&alice), "admin").unwrap());
        assert_oracle(&h, "g");
    }
}

#[test]
fn restricted_and_write_restricted_are_kept_apart() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "nip29").tag(&["restricted"]).sign(&alice),
        ev(9007, "seed")
            .content(r#"{"write-restricted":true}"#)
            .sign(&alice),
        ev(9007, "seed-tag").tag(&["write-restricted"]).sign(&alice),
        ev(9007, "both")
            .tag(&["restricted"])
            .tag(&["write-restricted"])
            .sign(&alice),
    ]);
    let flags = |g: &str| {
        (
            h.groups.is_restricted(g).unwrap(),
            h.groups.is_write_restricted(g).unwrap(),
        )
    };
    assert_eq!(flags("nip29"), (true, false));
    assert_eq!(flags("seed"), (false, true));
    assert_eq!(flags("seed-tag"), (false, true));
    assert_eq!(flags("both"), (true, true));
    let tags = |g: &str| -> Vec<String> {
        h.groups.render(g, Timestamp::from_secs(1)).unwrap()[0]
            .tags
            .iter()
            .map(|t| t.kind().to_string())
            .collect()
    };
    assert!(tags("nip29").contains(&"restricted".to_owned()));
    assert!(!tags("nip29").contains(&"write-restricted".to_owned()));
    assert!(tags("seed").contains(&"write-restricted".to_owned()));
    assert!(!tags("seed").contains(&"restricted".to_owned()));
    for g in ["nip29", "seed", "seed-tag", "both"] {
        assert_oracle(&h, g);
    }
}

#[test]
fn seed_relay_json_content_gives_name_about_picture() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "g")
            .content(
                r#"{"name":"Seeded","about":"from JSON","picture":"https://p","private":true}"#,
            )
            .sign(&alice),
        ev(9007, "tags-win")
            .content(r#"{"name":"JSON name","about":"JSON about"}"#)
            .tag(&["name", "Tag name"])
            .sign(&alice),
    ]);
    let m = h.groups.metadata("g").unwrap();
    assert_eq!(
        (m.name.as_deref(), m.about.as_deref(), m.picture.as_deref()),
        (Some("Seeded"), Some("from JSON"), Some("https://p"))
    );
    assert!(m.private);
    let m = h.groups.metadata("tags-win").unwrap();
    assert_eq!(
        (m.name.as_deref(), m.about.as_deref()),
        (Some("Tag name"), Some("JSON about"))
    );
    // 9002 is the same dialect, and replaces.
    h.append(&[ev(9002, "g").content(r#"{"name":"Edited"}"#).sign(&alice)]);
    assert_eq!(
        h.groups.metadata("g").unwrap(),
        GroupMetadata {
            name: Some("Edited".into()),
            ..GroupMetadata::default()
        }
    );
    assert_oracle(&h, "g");
    assert_oracle(&h, "tags-win");
}

#[test]
fn metadata_fields_banner_kinds_livekit_and_unknown_tags() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "av")
            .tag(&["banner", "https://b"])
            .tag(&["livekit"])
            .tag(&["supported_kinds"])
            .tag(&["x-custom", "1", "2"])
            .tag(&["t", "talk"])
            .sign(&alice),
        ev(9007, "text")
            .tag(&["supported_kinds", "9", "11", "not-a-kind"])
            .sign(&alice),
        ev(9007, "all").sign(&alice),
    ]);
    let av = h.groups.metadata("av").unwrap();
    assert_eq!(av.banner.as_deref(), Some("https://b"));
    assert!(av.livekit);
    assert_eq!(av.supported_kinds, Some(vec![]));
    assert_eq!(
        av.extra_tags,
        [
            vec!["x-custom".to_owned(), "1".to_owned(), "2".to_owned()],
            vec!["t".to_owned(), "talk".to_owned()]
        ]
    );
    assert_eq!(
        h.groups.metadata("text").unwrap().supported_kinds,
        Some(vec![9, 11])
    );
    assert_eq!(h.groups.metadata("all").unwrap().supported_kinds, None);
    let rendered: Vec<Vec<String>> = h.groups.render("av", Timestamp::from_secs(1)).unwrap()[0]
        .tags
        .iter()
        .map(|t| t.as_slice().to_vec())
        .collect();
    for expected in [
        vec!["banner".to_owned(), "https://b".to_owned()],
        vec!["livekit".to_owned()],
        vec!["supported_kinds".to_owned()],
        vec!["x-custom".to_owned(), "1".to_owned(), "2".to_owned()],
    ] {
        assert!(rendered.contains(&expected), "{expected:?} in {rendered:?}");
    }
    // A 9002 without them unsets them (full replacement).
    h.append(&[ev(9002, "av").tag(&["name", "AV"]).sign(&alice)]);
    let av = h.groups.metadata("av").unwrap();
    assert_eq!(
        (
            av.banner,
            av.livekit,
            av.supported_kinds,
            av.extra_tags.len()
        ),
        (None, false, None, 0)
    );
    for g in ["av", "text", "all"] {
        assert_oracle(&h, g);
    }
}

#[test]
fn leave_request_without_remove_changes_nothing() {
    let h = Harness::new();
    let (alice, bob) = (key(1), key(2));
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g").p(&bob, &["writer"]).sign(&alice),
        ev(9022, "g").sign(&bob),
    ]);
    assert!(h.groups.is_member("g", &pk(&bob)).unwrap());
    assert_eq!(h.groups.roles("g", &pk(&bob)).unwrap(), ["writer"]);
    h.append(&[ev(9001, "g").p(&bob, &[]).sign(&alice)]);
    assert!(!h.groups.is_member("g", &pk(&bob)).unwrap());
    assert_oracle(&h, "g");
}

#[test]
fn render_lists_role_holders_and_the_creator() {
    let h = Harness::new();
    let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4));
    h.append(&[
        ev(9007, "g").sign(&alice),
        ev(9000, "g")
            .p(&bob, &["moderator"])
            .p(&carol, &[])
            .p(&dave, &["admin", "writer"])
            .sign(&alice),
    ]);
    let tags = |groups: &highwater_projections::Groups, k: usize| -> Vec<Vec<String>> {
        groups.render("g", Timestamp::from_secs(1)).unwrap()[k]
            .tags
            .iter()
            .skip(1)
            .map(|t| t.as_slice().to_vec())
            .collect()
    };
    let p = |keys: &nostr::prelude::Keys, roles: &[&str]| -> Vec<String> {
        std::iter::once("p".to_owned())
            .chain(std::iter::once(hex(keys)))
            .chain(roles.iter().map(|r| (*r).to_owned()))
            .collect()
    };
    let mut admins = vec![
        p(&alice, &["admin"]),
        p(&bob, &["moderator"]),
        p(&dave, &["admin", "writer"]),
    ];
    admins.sort();
    assert_eq!(tags(&h.groups, 1), admins);
    let mut members: Vec<Vec<String>> = [&alice, &bob, &carol, &dave]
        .into_iter()
        .map(|k| p(k, &[]))
        .collect();
    members.sort();
    assert_eq!(tags(&h.groups, 2), members);

    // The creator role is configurable; a creator who left is still listed.
    h.append(&[ev(9001, "g").p(&alice, &[]).sign(&dave)]);
    let owners = h.groups.clone().with_creator_role("owner");
    let mut admins = vec![
        p(&alice, &["owner"]),
        p(&bob, &["moderator"]),
        p(&dave, &["admin", "writer"]),
    ];
    admins.sort();
    assert_eq!(tags(&owners, 1), admins);
    assert_oracle(&h, "g");
}

#[test]
fn a_30000_member_group_renders() {
    let h = Harness::new();
    let alice = key(1);
    let mut events = vec![ev(9007, "big").sign(&alice)];
    let mut n: u32 = 0;
    for _ in 0..30 {
        let mut put = ev(9000, "big");
        for _ in 0..1_000 {
            n += 1;
            let member = format!("{n:08x}{}", "0".repeat(56));
            put = put.tag(&["p", &member]);
        }
        events.push(put.sign(&alice));
    }
    h.append(&events);
    assert_eq!(h.groups.member_count("big").unwrap(), 30_001);
    let rendered = h.groups.render("big", Timestamp::from_secs(1)).unwrap();
    let members = &rendered[2];
    assert_eq!(members.kind.as_u16(), 39_002);
    assert_eq!(members.tags.len(), 30_002, "d + one p per member");
    assert!(members.tags.iter().skip(1).all(|t| t.as_slice().len() == 2));
    let signed = h
        .groups
        .render_signed("big", &relay(), Timestamp::from_secs(1))
        .unwrap();
    assert!(signed[2].verify().is_ok());
}
