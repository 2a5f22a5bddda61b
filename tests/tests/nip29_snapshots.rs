//! Snapshot tests of whole groups (`GroupView` as JSON) and of the rendered
//! 39000–39005 for a scripted, deterministic relay history; plus rendering checks that
//! need no snapshot (private groups, signing, round trip through snapshot seeding).

mod nip29_support;

use highwater_projections::{Life, Member};
use nip29_support::{Harness, assert_json_snapshot, ev, foreign, key, relay};
use nostr::prelude::{Keys, PublicKey, Timestamp};

const GROUPS: [&str; 8] = [
    "pizza", "slices", "crusts", "secret", "imported", "gone", "reborn", "never",
];

/// A small relay history exercising every kind, with fixed keys and times.
fn scripted() -> Harness {
    let h = Harness::new();
    let (alice, bob, carol, dave, erin) = (key(1), key(2), key(3), key(4), key(5));
    let r = relay();
    h.append(&[
        ev(9007, "pizza")
            .tag(&["name", "Pizza"])
            .tag(&["about", "slices"])
            .tag(&["t", "food"])
            .sign(&alice),
        ev(9000, "pizza")
            .p(&bob, &["admin"])
            .p(&carol, &["writer", "admin", "writer"])
            .p(&dave, &[])
            .sign(&alice),
        ev(9002, "pizza")
            .tag(&["name", "Pizza Club"])
            .tag(&["picture", "https://example.com/p.png"])
            .tag(&["t", "food"])
            .tag(&["t", "food"])
            .tag(&["open"])
            .sign(&bob),
        ev(9009, "pizza").tag(&["code", "margherita"]).sign(&bob),
        ev(39_003, "pizza")
            .tag(&["role", "writer", "may post"])
            .tag(&["role", "admin", "moderates"])
            .sign(&r),
        ev(9007, "slices")
            .tag(&["name", "Slices"])
            .tag(&["parent", "pizza"])
            .tag(&["livekit"])
            .tag(&["supported_kinds"])
            .sign(&bob),
        ev(9007, "crusts")
            .content(r#"{"name":"Crusts","about":"seed relay dialect","restricted":true}"#)
            .tag(&["banner", "https://example.com/b.png"])
            .tag(&["supported_kinds", "9", "11"])
            .tag(&["parent", "pizza"])
            .sign(&alice),
        ev(9010, "pizza")
            .tag(&["e", &"ab".repeat(32)])
            .tag(&["a", "30023:aa:post"])
            .sign(&bob),
        ev(9001, "pizza").p(&dave, &[]).sign(&bob),
        ev(9000, "pizza").p(&erin, &[]).sign(&bob),
        ev(9021, "pizza").sign(&dave),
        ev(9, "pizza").content("hello").sign(&erin),
        ev(9007, "secret")
            .tag(&["name", "Secret"])
            .tag(&["private"])
            .tag(&["hidden"])
            .tag(&["closed"])
            .sign(&carol),
        ev(9000, "secret").p(&alice, &["admin"]).sign(&carol),
        ev(39_000, "imported")
            .tag(&["name", "Imported"])
            .tag(&["member_count", "2"])
            .content(r#"{"write-restricted":true}"#)
            .at(1_000)
            .sign(&r),
        ev(39_001, "imported")
            .p(&bob, &["admin"])
            .at(1_000)
            .sign(&r),
        ev(39_002, "imported")
            .p(&bob, &["admin"])
            .p(&carol, &["writer"])
            .at(1_000)
            .sign(&r),
        ev(39_002, "imported")
            .p(&erin, &[])
            .at(2_000)
            .sign(&foreign()),
        ev(39_001, "imported").p(&dave, &["admin"]).at(900).sign(&r),
        ev(9007, "gone").sign(&dave),
        ev(9000, "gone").p(&erin, &[]).sign(&dave),
        ev(9008, "gone").sign(&dave),
        ev(9007, "reborn").tag(&["name", "Old"]).sign(&alice),
        ev(9008, "reborn").sign(&alice),
        ev(9007, "reborn")
            .tag(&["name", "New"])
            .content(r#"{"closed":true}"#)
            .sign(&erin),
    ]);
    h
}

#[test]
fn group_views_of_a_scripted_history() {
    let h = scripted();
    let views: Vec<_> = GROUPS
        .iter()
        .map(|g| h.groups.view(&h.engine, g).unwrap())
        .collect();
    for (view, group) in views.iter().zip(GROUPS) {
        assert_eq!(view, &h.oracle().view(&h.engine, group).unwrap());
    }
    assert_json_snapshot("nip29_group_views", &serde_json::to_value(&views).unwrap());
}

#[test]
fn rendered_state_events_of_a_scripted_history() {
    let h = scripted();
    let rendered: Vec<_> = GROUPS
        .iter()
        .map(|g| {
            (
                g,
                h.groups
                    .render(g, Timestamp::from_secs(1_800_000_000))
                    .unwrap(),
            )
        })
        .collect();
    assert_json_snapshot(
        "nip29_rendered_state_events",
        &serde_json::to_value(&rendered).unwrap(),
    );
}

#[test]
fn private_groups_render_no_member_count() {
    let h = scripted();
    let at = Timestamp::from_secs(1);
    let metadata_tags = |g: &str| -> Vec<String> {
        h.groups.render(g, at).unwrap()[0]
            .tags
            .iter()
            .map(|t| t.kind().to_owned())
            .collect()
    };
    assert!(!metadata_tags("secret").contains(&"member_count".to_owned()));
    assert!(metadata_tags("pizza").contains(&"member_count".to_owned()));
    assert!(h.groups.render("gone", at).unwrap().is_empty());
    assert!(h.groups.render("never", at).unwrap().is_empty());
}

#[test]
fn signed_state_events_seed_an_equal_group() {
    let h = scripted();
    let r = relay();
    assert!(
        h.groups
            .render_signed("pizza", &Keys::generate(), Timestamp::from_secs(1))
            .is_err()
    );
    let other = Harness::new();
    for group in GROUPS {
        let signed = h
            .groups
            .render_signed(group, &r, Timestamp::from_secs(5_000))
            .unwrap();
        for event in &signed {
            assert!(event.verify().is_ok());
            assert_eq!(event.pubkey, r.public_key());
        }
        if signed.is_empty() {
            assert_ne!(h.groups.group_state(group).unwrap(), Life::Active);
            continue;
        }
        other.append(&signed);
        // The creator comes back listed in the 39001 with the creator role.
        let mut expected: std::collections::BTreeMap<PublicKey, Vec<String>> = h
            .groups
            .members_with_roles(group)
            .unwrap()
            .into_iter()
            .map(|m| (m.pubkey, m.roles))
            .collect();
        if let Some(creator) = h.groups.creator(group).unwrap() {
            let roles = expected.entry(creator).or_default();
            if !roles.iter().any(|r| r == "admin") {
                roles.push("admin".into());
                roles.sort();
            }
        }
        assert_eq!(
            other.groups.members_with_roles(group).unwrap(),
            expected
                .into_iter()
                .map(|(pubkey, roles)| Member { pubkey, roles })
                .collect::<Vec<_>>(),
            "{group}"
        );

        assert_eq!(
            other.groups.metadata(group).unwrap(),
            h.groups.metadata(group).unwrap(),
            "{group}"
        );
        assert_eq!(
            other.groups.role_definitions(group).unwrap(),
            h.groups.role_definitions(group).unwrap(),
            "{group}"
        );
        assert_eq!(other.groups.creator(group).unwrap(), None);
    }
    // Once every group is seeded, the subgroup links are the same too.
    for group in GROUPS {
        assert_eq!(
            other.groups.children(group).unwrap(),
            h.groups.children(group).unwrap(),
            "{group}"
        );
        assert_eq!(
            other.groups.parent(group).unwrap(),
            h.groups.parent(group).unwrap(),
            "{group}"
        );
    }
}
