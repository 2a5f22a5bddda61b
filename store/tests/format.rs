//! Format version 2: record headers a scan can skip by, and `upgrade` from format 1
//! (made here by `downgrade_to_v1`, the inverse of the upgrade).

use std::ops::ControlFlow;

use highwater_store::{
    AppendOutcome, Checkpoint, CheckpointWrite, Corruption, Store, StoreError, StoreOptions,
    UpgradeOutcome, content_digest, downgrade_to_v1, upgrade,
};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

fn event(keys: &Keys, kind: u16, group: Option<&str>, content: &str) -> Event {
    let mut builder = EventBuilder::new(Kind::from(kind), content);
    if let Some(group) = group {
        builder = builder.tag(Tag::parse(["h", group]).unwrap());
    }
    builder.finalize(keys).unwrap()
}

/// Chat (kind 9) and moderation (9000) in two groups, and an ungrouped note.
fn workload(keys: &Keys) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..40 {
        let group = if i % 2 == 0 { "a" } else { "b" };
        let kind = if i % 4 < 2 { 9000 } else { 9 };
        out.push(event(keys, kind, Some(group), &format!("{i}")));
    }
    out.push(event(keys, 1, None, "ungrouped"));
    out
}

fn append_all(store: &Store, events: &[Event]) {
    for outcome in store.append_batch(events).unwrap() {
        let appended = matches!(outcome, Ok(AppendOutcome::Appended(_)));
        assert!(appended, "{outcome:?}");
    }
}

#[test]
fn scan_kinds_reads_only_the_wanted_kinds_and_only_their_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let keys = Keys::generate();
    let events = workload(&keys);
    append_all(&store, &events);
    let (a, b) = (store.group("a").unwrap().no, store.group("b").unwrap().no);

    let mut seen = Vec::new();
    store
        .scan_kinds(
            1,
            u64::MAX,
            |kind| kind == 9000,
            |group, seq, event| {
                seen.push((group, seq, event.kind(), event.content().to_owned()));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    let expected: Vec<_> = events
        .iter()
        .zip(1u64..)
        .filter(|(e, _)| e.kind.as_u16() == 9000)
        .map(|(e, seq)| {
            let no = if e.tags.iter().any(|t| t.as_slice()[1] == "a") {
                a
            } else {
                b
            };
            (Some(no), seq, 9000, e.content.clone())
        })
        .collect();
    assert_eq!(seen, expected);

    // `to` bounds the scan; the ungrouped note has no group number.
    let mut last = Vec::new();
    store
        .scan_kinds(
            30,
            41,
            |kind| kind == 1,
            |group, seq, _| {
                last.push((group, seq));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(last, vec![(None, 41)]);
    let mut bounded = 0;
    store
        .scan_kinds(
            3,
            6,
            |_| true,
            |_, seq, _| {
                assert!((3..=6).contains(&seq));
                bounded += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(bounded, 4);

    // A chat record whose body is damaged: a scan that skips chat never reads it...
    let chat_seq = 3;
    let original = store.raw_record(chat_seq).unwrap().unwrap();
    let mut bad_body = original.clone();
    let last_byte = bad_body.len() - 1;
    bad_body[last_byte] ^= 0x10;
    store.put_raw_record(chat_seq, bad_body).unwrap();
    let mut folded = 0;
    store
        .scan_kinds(
            1,
            u64::MAX,
            |kind| kind == 9000,
            |_, _, _| {
                folded += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(folded, expected.len());
    // ...while a scan that wants it reports it.
    let error = store
        .scan_kinds(1, u64::MAX, |_| true, |_, _, _| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(corrupted_at(&error, chat_seq), "{error:?}");
    // A damaged header is reported even by a scan that would skip the record.
    let mut bad_header = original.clone();
    bad_header[1] ^= 0x01;
    store.put_raw_record(chat_seq, bad_header).unwrap();
    let error = store
        .scan_kinds(
            1,
            u64::MAX,
            |kind| kind == 9000,
            |_, _, _| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert!(corrupted_at(&error, chat_seq), "{error:?}");
    store.put_raw_record(chat_seq, original).unwrap();
    assert_eq!(store.get(chat_seq).unwrap().as_ref(), Some(&events[2]));
}

#[test]
fn a_format_1_database_is_refused_until_upgraded_and_then_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let events = workload(&keys);
    let checkpoint = Checkpoint {
        version: 3,
        watermark: 39,
        events: 20,
        state: vec![1, 2, 3],
    };
    let groups = {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        append_all(&store, &events);
        let a = store.group("a").unwrap().no;
        store
            .write_checkpoints(
                vec![CheckpointWrite {
                    projection: "membership".into(),
                    group: a,
                    checkpoint: checkpoint.clone(),
                }],
                None,
            )
            .unwrap();
        store.set_setting("relay_pubkey", b"abc").unwrap();
        // The indexes as an upgrade leaves them: every record merged.
        assert_eq!(store.merge_index_tail().unwrap(), events.len() as u64);
        store.groups()
    };
    let current = content_digest(dir.path()).unwrap();
    assert_eq!(current.0, 4);

    downgrade_to_v1(dir.path()).unwrap();
    let v1 = content_digest(dir.path()).unwrap();
    assert_eq!(v1.0, 1);
    let error = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(error.to_string().contains("highwater upgrade"), "{error}");
    let error = Store::open(dir.path(), StoreOptions::read_only()).unwrap_err();
    let needs = matches!(error, StoreError::UpgradeNeeded { found: 1, .. });
    assert!(needs, "{error:?}");
    // The refused opens wrote nothing.
    assert_eq!(content_digest(dir.path()).unwrap(), v1);

    let mut reports = Vec::new();
    let outcome = upgrade(dir.path(), &mut |done, total| reports.push((done, total))).unwrap();
    assert_eq!(
        outcome,
        UpgradeOutcome::Upgraded {
            from: 1,
            to: 4,
            events: events.len() as u64,
            checkpoints: 1,
        }
    );
    assert_eq!(reports.first(), Some(&(0, events.len() as u64)));
    assert_eq!(
        reports.last(),
        Some(&(events.len() as u64, events.len() as u64))
    );
    // Byte for byte the database the current format wrote in the first place.
    assert_eq!(content_digest(dir.path()).unwrap(), current);
    assert_eq!(
        upgrade(dir.path(), &mut |_, _| {}).unwrap(),
        UpgradeOutcome::AlreadyCurrent { version: 4 }
    );

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.groups(), groups);
    for (seq, event) in (1u64..).zip(&events) {
        assert_eq!(store.get(seq).unwrap().as_ref(), Some(event));
        assert_eq!(
            store.get_by_id(&event.id).unwrap(),
            Some((seq, event.clone()))
        );
    }
    let a = store.group("a").unwrap().no;
    assert_eq!(
        store.read_checkpoint("membership", a).unwrap(),
        Some(checkpoint)
    );
    assert_eq!(
        store.setting("relay_pubkey").unwrap(),
        Some(b"abc".to_vec())
    );
    assert_eq!(
        store.append(&events[0]).unwrap(),
        AppendOutcome::Duplicate(1)
    );
    let next = event(&keys, 9, Some("b"), "after");
    assert_eq!(
        store.append(&next).unwrap(),
        AppendOutcome::Appended(events.len() as u64 + 1)
    );
}

#[test]
fn upgrading_a_directory_without_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = upgrade(dir.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(error, StoreError::Missing { .. }), "{error:?}");
}

/// Whether `error` reports the record at `at` as corrupted.
fn corrupted_at(error: &StoreError, at: u64) -> bool {
    let StoreError::Corrupted(Corruption::Record { seq, .. }) = error else {
        return false;
    };
    *seq == at
}

#[test]
fn the_content_digest_sees_every_byte_of_a_record_header() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let open = || Store::open(dir.path(), StoreOptions::default()).unwrap();
    let raw = {
        let store = open();
        append_all(&store, &workload(&keys));
        // A group whose id is the name of the format version's key in `meta`.
        let odd = event(&keys, 9, Some("format_version"), "odd");
        append_all(&store, &[odd]);
        store.merge_index_tail().unwrap();
        store.raw_record(1).unwrap().unwrap()
    };
    let before = content_digest(dir.path()).unwrap();
    // meta 2 (the version, the index watermark), events 42, id_prefix 42, groups 3,
    // group_index 41.
    assert_eq!((before.0, before.1), (4, 130));
    // The same body framed again without its group number: both checks still hold.
    let reframed = highwater_store::seal_record(&raw[highwater_store::RECORD_HEADER_LEN..]);
    assert_ne!(reframed, raw);
    open().put_raw_record(1, reframed).unwrap();
    let after = content_digest(dir.path()).unwrap();
    assert_eq!((after.0, after.1), (before.0, before.1));
    assert_ne!(after.2, before.2);
    open().put_raw_record(1, raw).unwrap();
    assert_eq!(content_digest(dir.path()).unwrap(), before);
}
