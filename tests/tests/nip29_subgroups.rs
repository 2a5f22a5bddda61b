//! Subgroups and pins (NIP-29 "Subgroups", 9010/39005), one rule at a time (see
//! SEMANTICS.md). Every case also checks the served answers against the full replay,
//! and that a reopened engine (checkpoints, a fresh parent-link index) agrees.

mod nip29_support;

use nip29_support::{Harness, ev, key};
use nostr::prelude::Timestamp;

fn children(h: &Harness, group: &str) -> Vec<String> {
    let served = h.groups.children(group).unwrap();
    assert_eq!(served, h.oracle().children(group).unwrap(), "{group}");
    served
}

fn parent(h: &Harness, group: &str) -> Option<String> {
    let served = h.groups.parent(group).unwrap();
    assert_eq!(served, h.oracle().parent(group).unwrap(), "{group}");
    assert_eq!(served, h.groups.metadata(group).unwrap().parent, "{group}");
    served
}

#[test]
fn subgroups_attach_reparent_detach() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "tech").tag(&["name", "Tech"]).sign(&alice),
        ev(9007, "social").sign(&alice),
        ev(9007, "nostr")
            .tag(&["name", "Nostr"])
            .tag(&["parent", "tech"])
            .sign(&alice),
    ]);
    assert_eq!(parent(&h, "nostr").as_deref(), Some("tech"));
    assert_eq!(children(&h, "tech"), ["nostr"]);
    assert_eq!(parent(&h, "tech"), None);

    // Re-parent: the old parent loses it, the new one gains it.
    h.append(&[ev(9002, "nostr")
        .tag(&["name", "Nostr"])
        .tag(&["parent", "social"])
        .sign(&alice)]);
    assert_eq!(parent(&h, "nostr").as_deref(), Some("social"));
    assert!(children(&h, "tech").is_empty());
    assert_eq!(children(&h, "social"), ["nostr"]);

    // A 9002 without `parent` makes it a root.
    h.append(&[ev(9002, "nostr").tag(&["name", "Nostr"]).sign(&alice)]);
    assert_eq!(parent(&h, "nostr"), None);
    assert!(children(&h, "social").is_empty());

    // Self-reference never counts; a parent that does not exist counts once it does.
    h.append(&[
        ev(9002, "self").tag(&["parent", "self"]).sign(&alice),
        ev(9002, "orphan").tag(&["parent", "later"]).sign(&alice),
    ]);
    assert_eq!(parent(&h, "self"), None);
    assert!(children(&h, "self").is_empty());
    assert_eq!(parent(&h, "orphan"), None);
    h.append(&[ev(9007, "later").sign(&alice)]);
    assert_eq!(parent(&h, "orphan").as_deref(), Some("later"));
    assert_eq!(children(&h, "later"), ["orphan"]);

    // Rendered: `parent` on the child, ordered `child` on the parent.
    let tags = |g: &str| -> Vec<Vec<String>> {
        h.groups.render(g, Timestamp::from_secs(1)).unwrap()[0]
            .tags
            .iter()
            .map(|t| t.as_slice().to_vec())
            .collect()
    };
    assert!(tags("orphan").contains(&vec!["parent".to_owned(), "later".to_owned()]));
    assert!(tags("later").contains(&vec!["child".to_owned(), "orphan".to_owned()]));

    let h = h.reopen();
    assert_eq!(parent(&h, "orphan").as_deref(), Some("later"));
    assert_eq!(children(&h, "later"), ["orphan"]);
}

#[test]
fn a_parent_deletion_makes_children_roots() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "tech").sign(&alice),
        ev(9007, "nostr").tag(&["parent", "tech"]).sign(&alice),
        ev(9007, "nip29").tag(&["parent", "nostr"]).sign(&alice),
    ]);
    assert_eq!(children(&h, "tech"), ["nostr"]);
    assert_eq!(children(&h, "nostr"), ["nip29"]);
    h.append(&[ev(9008, "tech").sign(&alice)]);
    assert_eq!(parent(&h, "nostr"), None);
    assert!(children(&h, "tech").is_empty());
    assert_eq!(
        parent(&h, "nip29").as_deref(),
        Some("nostr"),
        "grandchildren stay"
    );

    // Re-creating the parent does not bring its children back...
    h.append(&[ev(9007, "tech").sign(&alice)]);
    assert_eq!(parent(&h, "nostr"), None);
    assert!(children(&h, "tech").is_empty());
    // ... until a child names it again.
    h.append(&[ev(9002, "nostr").tag(&["parent", "tech"]).sign(&alice)]);
    assert_eq!(parent(&h, "nostr").as_deref(), Some("tech"));
    assert_eq!(children(&h, "tech"), ["nostr"]);

    // A deleted child is nobody's child.
    h.append(&[ev(9008, "nip29").sign(&alice)]);
    assert!(children(&h, "nostr").is_empty());
    assert_eq!(parent(&h, "nip29"), None);

    let h = h.reopen();
    assert_eq!(children(&h, "tech"), ["nostr"]);
    assert!(children(&h, "nostr").is_empty());
}

#[test]
fn children_keep_attachment_order_until_the_parent_reorders() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "p").sign(&alice),
        ev(9007, "a").tag(&["parent", "p"]).sign(&alice),
        ev(9007, "b").tag(&["parent", "p"]).sign(&alice),
        ev(9007, "c").tag(&["parent", "p"]).sign(&alice),
    ]);
    assert_eq!(children(&h, "p"), ["a", "b", "c"]);

    // Editing a child without changing its parent does not move it.
    h.append(&[ev(9002, "a")
        .tag(&["name", "A"])
        .tag(&["parent", "p"])
        .sign(&alice)]);
    assert_eq!(children(&h, "p"), ["a", "b", "c"]);

    // The parent's own 9002 orders them; `child` tags naming non-children are ignored.
    h.append(&[ev(9002, "p")
        .tag(&["child", "c"])
        .tag(&["child", "zzz"])
        .tag(&["child", "a"])
        .tag(&["child", "b"])
        .sign(&alice)]);
    assert_eq!(children(&h, "p"), ["c", "a", "b"]);

    // Later attachments are appended; a re-attachment goes to the end.
    h.append(&[
        ev(9007, "d").tag(&["parent", "p"]).sign(&alice),
        ev(9002, "b").sign(&alice),
        ev(9002, "b").tag(&["parent", "p"]).sign(&alice),
    ]);
    assert_eq!(children(&h, "p"), ["c", "a", "d", "b"]);

    // A parent 9002 without `child` tags keeps the order.
    h.append(&[ev(9002, "p").tag(&["name", "P"]).sign(&alice)]);
    assert_eq!(children(&h, "p"), ["c", "a", "d", "b"]);

    let h = h.reopen();
    assert_eq!(children(&h, "p"), ["c", "a", "d", "b"]);
}

#[test]
fn a_relay_39000_orders_children_logged_after_it() {
    let h = Harness::new();
    let alice = key(1);
    // A dump from a relay that published the parent's state before the children's
    // history: "the position of each tag in the array is the order".
    h.append(&[
        ev(39_000, "p")
            .tag(&["name", "P"])
            .tag(&["child", "c"])
            .tag(&["child", "a"])
            .tag(&["child", "b"])
            .sign(&nip29_support::relay()),
        ev(9007, "a").tag(&["parent", "p"]).sign(&alice),
        ev(9007, "b").tag(&["parent", "p"]).sign(&alice),
        ev(9007, "d").tag(&["parent", "p"]).sign(&alice),
        ev(9007, "c").tag(&["parent", "p"]).sign(&alice),
    ]);
    assert_eq!(children(&h, "p"), ["c", "a", "b", "d"]);
    // A foreign 39000 orders nothing (S1).
    h.append(&[
        ev(39_000, "q")
            .tag(&["child", "y"])
            .tag(&["child", "x"])
            .sign(&nip29_support::foreign()),
        ev(9007, "q").sign(&alice),
        ev(9007, "x").tag(&["parent", "q"]).sign(&alice),
        ev(9007, "y").tag(&["parent", "q"]).sign(&alice),
    ]);
    assert_eq!(children(&h, "q"), ["x", "y"]);
    // The parent's own `child` tags replace the relay's list.
    h.append(&[ev(9002, "p")
        .tag(&["child", "d"])
        .tag(&["child", "c"])
        .tag(&["child", "b"])
        .tag(&["child", "a"])
        .sign(&alice)]);
    assert_eq!(children(&h, "p"), ["d", "c", "b", "a"]);
    let h = h.reopen();
    assert_eq!(children(&h, "p"), ["d", "c", "b", "a"]);
}

#[test]
fn pins_follow_the_latest_9010() {
    let h = Harness::new();
    let alice = key(1);
    let e1 = "aa".repeat(32);
    let e2 = "bb".repeat(32);
    h.append(&[
        ev(9010, "g").tag(&["e", &e1]).sign(&alice),
        ev(9007, "g").sign(&alice),
        ev(9010, "g")
            .tag(&["e", &e2])
            .tag(&["a", "30023:pk:post"])
            .tag(&["e", ""])
            .tag(&["p", "ignored"])
            .tag(&["e", &e1])
            .sign(&alice),
    ]);
    let pinned = h.groups.pinned("g").unwrap();
    assert_eq!(pinned, [e2.clone(), "30023:pk:post".to_owned(), e1.clone()]);
    assert_eq!(pinned, h.oracle().pinned("g").unwrap());
    let rendered = &h.groups.render("g", Timestamp::from_secs(1)).unwrap()[4];
    assert_eq!(rendered.kind.as_u16(), 39_005);
    let tags: Vec<Vec<String>> = rendered
        .tags
        .iter()
        .skip(1)
        .map(|t| t.as_slice().to_vec())
        .collect();
    assert_eq!(
        tags,
        [
            vec!["e".to_owned(), e2.clone()],
            vec!["a".to_owned(), "30023:pk:post".to_owned()],
            vec!["e".to_owned(), e1.clone()],
        ]
    );

    // Metadata edits keep them; a new 9010 replaces; an empty one clears.
    h.append(&[ev(9002, "g").tag(&["name", "G"]).sign(&alice)]);
    assert_eq!(h.groups.pinned("g").unwrap().len(), 3);
    h.append(&[ev(9010, "g").tag(&["e", &e1]).sign(&alice)]);
    assert_eq!(h.groups.pinned("g").unwrap(), std::slice::from_ref(&e1));
    h.append(&[ev(9010, "g").sign(&alice)]);
    assert!(h.groups.pinned("g").unwrap().is_empty());

    // A new life starts without pins.
    h.append(&[
        ev(9010, "g").tag(&["e", &e1]).sign(&alice),
        ev(9008, "g").sign(&alice),
        ev(9007, "g").sign(&alice),
    ]);
    assert!(h.groups.pinned("g").unwrap().is_empty());
    assert_eq!(
        h.groups.view(&h.engine, "g").unwrap(),
        h.oracle().view(&h.engine, "g").unwrap()
    );
}

#[test]
fn a_re_attachment_after_the_parent_was_re_created_keeps_its_place() {
    let h = Harness::new();
    let alice = key(1);
    h.append(&[
        ev(9007, "p").sign(&alice),
        ev(9007, "a").tag(&["parent", "p"]).sign(&alice),
        ev(9008, "p").sign(&alice),
        ev(9007, "p").sign(&alice),
        // `a` names the re-created parent again: attached here, before `b`.
        ev(9002, "a").tag(&["parent", "p"]).sign(&alice),
        ev(9007, "b").tag(&["parent", "p"]).sign(&alice),
    ]);
    assert_eq!(children(&h, "p"), ["a", "b"]);
    // Later edits of `a` naming the same parent do not move it.
    h.append(&[
        ev(9002, "a")
            .tag(&["name", "A"])
            .tag(&["parent", "p"])
            .sign(&alice),
        ev(9002, "a")
            .tag(&["name", "A2"])
            .tag(&["parent", "p"])
            .sign(&alice),
    ]);
    assert_eq!(children(&h, "p"), ["a", "b"]);
    let h = h.reopen();
    assert_eq!(children(&h, "p"), ["a", "b"]);
}
