//! Integration tests of the event log: round trips of real signed events, duplicates,
//! every rejection, group commit under concurrency, per-group tail scans, reopening,
//! corruption detection, checkpoints and a full or growing map.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use highwater_store::{
    AppendOutcome, Checkpoint, CheckpointWrite, Corruption, InvalidEvent, Limits, Prepared, Store,
    StoreError, StoreOptions,
};
use nostr::prelude::{Event, EventBuilder, EventId, FinalizeEvent, Keys, Kind, Tag, Timestamp};

fn tag(values: &[&str]) -> Tag {
    Tag::parse(values.iter().copied()).unwrap()
}

fn sign(keys: &Keys, kind: u16, content: &str, tags: Vec<Tag>) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .finalize(keys)
        .unwrap()
}

/// A kind-9 chat message in `group`.
fn chat(keys: &Keys, group: &str, content: &str) -> Event {
    sign(keys, 9, content, vec![tag(&["h", group])])
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

fn open_with(dir: &Path, options: StoreOptions) -> Store {
    Store::open(dir, options).unwrap()
}

fn appended(outcome: AppendOutcome) -> u64 {
    match outcome {
        AppendOutcome::Appended(seq) => seq,
        AppendOutcome::Duplicate(seq) => panic!("expected a new event, got a duplicate of {seq}"),
    }
}

fn rejection(result: Result<AppendOutcome, StoreError>) -> InvalidEvent {
    match result {
        Err(StoreError::Invalid(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Every event of the log through `scan`, converted to owned events.
fn scan_all(store: &Store) -> Vec<(u64, Event)> {
    let mut out = Vec::new();
    let mut error = None;
    store
        .scan(1, |seq, event| match event.to_event(seq) {
            Ok(e) => {
                out.push((seq, e));
                ControlFlow::Continue(())
            }
            Err(e) => {
                error = Some(e);
                ControlFlow::Break(())
            }
        })
        .unwrap();
    assert!(error.is_none(), "{error:?}");
    out
}

fn assert_readable(store: &Store, seq: u64, original: &Event) {
    assert_eq!(store.get(seq).unwrap().as_ref(), Some(original));
    assert_eq!(
        store.get_by_id(&original.id).unwrap(),
        Some((seq, original.clone()))
    );
}

#[test]
fn real_events_round_trip_through_every_read_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys = Keys::generate();

    let many_tags: Vec<Tag> = std::iter::once(tag(&["h", "big"]))
        .chain((0..1_499).map(|i| {
            let pubkey = Keys::generate().public_key().to_hex();
            match i % 3 {
                0 => tag(&["p", &pubkey, "member", "moderator"]),
                1 => tag(&["t", &format!("topic-{i}")]),
                _ => tag(&["x", "", &"ü".repeat(i % 7), "trailing"]),
            }
        }))
        .collect();
    assert_eq!(many_tags.len(), 1_500);
    let large_content: String = b"abcdefghijklmnopqrstuvwxyz"
        .iter()
        .cycle()
        .take(60 * 1024)
        .map(|&b| char::from(b))
        .collect();
    let unicode = "héllo 👋 — 日本語のテキスト, עברית, combining e\u{301}, \u{0} nul, \
                   \u{feff} bom, emoji 🧑‍🤝‍🧑 and a \"quote\" \\ backslash\n\ttab";
    let originals = vec![
        sign(&keys, 9000, "", many_tags.clone()),
        sign(&keys, 9, &large_content, vec![tag(&["h", "big"])]),
        sign(&keys, 9, unicode, vec![tag(&["h", "ユニコード 👋"])]),
        sign(&keys, 1, unicode, vec![]),
        sign(
            &keys,
            39_000,
            "",
            vec![tag(&["d", "big"]), tag(&["name", "Big ✨"])],
        ),
        EventBuilder::new(Kind::from(9), "")
            .tag(tag(&["h", "big"]))
            .custom_created_at(Timestamp::from_secs(0))
            .finalize(&keys)
            .unwrap(),
    ];
    let mut seqs = Vec::new();
    for event in &originals {
        seqs.push(appended(store.append(event).unwrap()));
    }
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    assert_eq!(store.head(), 6);

    for (seq, original) in seqs.iter().zip(&originals) {
        assert_readable(&store, *seq, original);
        let got = store.get(*seq).unwrap().unwrap();
        assert_eq!(got.as_json(), original.as_json());
        assert!(got.verify().is_ok(), "a stored event still verifies");
    }
    let iterated: Vec<(u64, Event)> = store.iter_from(1).map(Result::unwrap).collect();
    let expected: Vec<(u64, Event)> = seqs.iter().copied().zip(originals.clone()).collect();
    assert_eq!(iterated, expected);
    assert_eq!(scan_all(&store), expected);
    assert_eq!(
        store.iter_from(4).map(Result::unwrap).collect::<Vec<_>>(),
        expected[3..]
    );
    assert!(store.get(7).unwrap().is_none());
    assert!(
        store
            .get_by_id(&EventId::from_byte_array([7; 32]))
            .unwrap()
            .is_none()
    );

    // The zero-copy view agrees with the original field by field.
    store
        .with_event(1, |view| {
            assert_eq!(view.id(), &originals[0].id.to_bytes());
            assert_eq!(view.pubkey(), &keys.public_key().to_bytes());
            assert_eq!(view.sig(), &originals[0].sig.to_bytes());
            assert_eq!(view.kind(), 9000);
            assert_eq!(view.created_at(), originals[0].created_at.as_secs());
            assert_eq!(view.tags().len(), 1_500);
            assert_eq!(view.first_tag_value("h"), Some("big"));
            for (stored, original) in view.tags().zip(many_tags.iter()) {
                assert!(
                    stored
                        .iter()
                        .eq(original.as_slice().iter().map(String::as_str))
                );
            }
        })
        .unwrap()
        .unwrap();
    store
        .with_event(3, |view| assert_eq!(view.content(), unicode))
        .unwrap()
        .unwrap();

    // Group index: `h` for chat and moderation, `d` for 39000, nothing for kind 1.
    assert_eq!(store.group("big").map(|g| (g.head, g.count)), Some((6, 4)));
    assert_eq!(
        store.group("ユニコード 👋").map(|g| (g.head, g.count)),
        Some((3, 1))
    );
    assert_eq!(store.group_count(), 2);
}

#[test]
fn duplicates_are_reported_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys = Keys::generate();
    let first = chat(&keys, "g", "one");
    let second = chat(&keys, "g", "two");
    let third = chat(&keys, "g", "three");

    assert_eq!(store.append(&first).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&first).unwrap(), AppendOutcome::Duplicate(1));
    assert_eq!(store.head(), 1);
    assert_eq!(store.group("g").map(|g| g.count), Some(1));
    assert!(matches!(
        store.prepare(&first).unwrap(),
        Prepared::Duplicate(1)
    ));

    // Inside one batch: a repeat of an event earlier in the batch, and of a stored one.
    let outcomes: Vec<AppendOutcome> = store
        .append_batch(&[second.clone(), third.clone(), second.clone(), first.clone()])
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        outcomes,
        [
            AppendOutcome::Appended(2),
            AppendOutcome::Appended(3),
            AppendOutcome::Duplicate(2),
            AppendOutcome::Duplicate(1),
        ]
    );
    assert_eq!(store.head(), 3);
    assert_eq!(store.group("g").map(|g| (g.head, g.count)), Some((3, 3)));

    // Two submissions of the same prepared event race past `prepare`; the writer's own
    // id check keeps exactly one.
    let fourth = chat(&keys, "g", "four");
    let Prepared::Ready(prepared) = store.prepare(&fourth).unwrap() else {
        panic!("a new event prepares as ready");
    };
    let a = store.submit(vec![prepared.clone()]).unwrap();
    let b = store.submit(vec![prepared]).unwrap();
    assert_eq!(a.wait().unwrap(), [AppendOutcome::Appended(4)]);
    assert_eq!(b.wait().unwrap(), [AppendOutcome::Duplicate(4)]);
    assert_eq!(store.head(), 4);
    assert_eq!(scan_all(&store).len(), 4);
}

#[test]
fn validate_checks_the_event_alone_and_leaves_stored_copies_to_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys = Keys::generate();
    let first = chat(&keys, "g", "one");
    let second = chat(&keys, "g", "two");
    assert_eq!(store.append(&first).unwrap(), AppendOutcome::Appended(1));
    // A stored event validates like a new one: `validate` reads nothing of the log.
    assert!(store.validate(&first).is_ok());
    assert_eq!(store.seq_of(&first.id).unwrap(), Some(1));
    assert!(store.validate(&second).is_ok());
    assert_eq!(store.seq_of(&second.id).unwrap(), None);
    // A stored event's id with another's signature is refused by `validate`, where
    // `prepare` answers it from the duplicate index before the signature.
    let mut resigned = first.clone();
    resigned.sig = second.sig;
    assert!(matches!(
        store.validate(&resigned),
        Err(StoreError::Invalid(InvalidEvent::BadSignature))
    ));
    assert!(matches!(
        store.prepare(&resigned).unwrap(),
        Prepared::Duplicate(1)
    ));
    // Its own defects first: a changed content no longer hashes to the id.
    assert!(matches!(
        store.validate(&forged(&second, "changed", &second)),
        Err(StoreError::Invalid(InvalidEvent::BadId))
    ));
    assert_eq!(store.head(), 1, "validation wrote nothing");
}

/// A copy of `event` with one field replaced, keeping id and signature as they were.
fn forged(event: &Event, content: &str, sig_from: &Event) -> Event {
    Event::new(
        event.id,
        event.pubkey,
        event.created_at,
        event.kind,
        event.tags.clone(),
        content,
        sig_from.sig,
    )
}

/// A store with small limits: 2,000 bytes, 10 tags, 16-byte group ids.
fn limited_store(dir: &Path) -> Store {
    open_with(
        dir,
        StoreOptions {
            limits: Limits {
                max_event_bytes: 2_000,
                max_tags: 10,
                max_group_id_bytes: 16,
                ..Limits::default()
            },
            ..StoreOptions::default()
        },
    )
}

#[test]
fn every_rejection_is_typed_and_leaves_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = limited_store(dir.path());
    let keys = Keys::generate();
    let good = chat(&keys, "g", "fine");
    assert_eq!(store.append(&good).unwrap(), AppendOutcome::Appended(1));
    let other = chat(&keys, "g", "other");

    let tampered = forged(&other, "tampered after signing", &other);
    let wrong_sig = forged(&other, &other.content, &good);
    let too_many_tags = sign(
        &keys,
        9,
        "",
        std::iter::once(tag(&["h", "g"]))
            .chain((0..10).map(|i| tag(&["t", &i.to_string()])))
            .collect(),
    );
    let too_large = chat(&keys, "g", &"x".repeat(3_000));
    // Under the cheap content+tags bound but over the limit once encoded.
    let too_large_encoded = chat(&keys, "g", &"y".repeat(1_950));
    let cases: Vec<(&str, Event, InvalidEvent)> = vec![
        (
            "content changed after signing",
            tampered,
            InvalidEvent::BadId,
        ),
        (
            "signature of another event",
            wrong_sig,
            InvalidEvent::BadSignature,
        ),
        (
            "eleven tags",
            too_many_tags,
            InvalidEvent::TooManyTags {
                count: 11,
                limit: 10,
            },
        ),
        (
            "9000 without h",
            sign(
                &keys,
                9000,
                "",
                vec![tag(&["p", &keys.public_key().to_hex()])],
            ),
            InvalidEvent::MissingGroup {
                kind: 9000,
                tag: "h",
            },
        ),
        (
            "9022 without h",
            sign(&keys, 9022, "", vec![]),
            InvalidEvent::MissingGroup {
                kind: 9022,
                tag: "h",
            },
        ),
        (
            "39000 with h but without d",
            sign(&keys, 39_000, "", vec![tag(&["h", "g"])]),
            InvalidEvent::MissingGroup {
                kind: 39_000,
                tag: "d",
            },
        ),
        (
            "empty h",
            sign(&keys, 9000, "", vec![tag(&["h", ""])]),
            InvalidEvent::BadGroupId { len: 0, limit: 16 },
        ),
        (
            "h too long",
            chat(&keys, &"g".repeat(17), ""),
            InvalidEvent::BadGroupId { len: 17, limit: 16 },
        ),
        (
            "empty d",
            sign(&keys, 39_001, "", vec![tag(&["d", ""])]),
            InvalidEvent::BadGroupId { len: 0, limit: 16 },
        ),
    ];
    for (name, event, expected) in &cases {
        let got = rejection(store.append(event));
        assert_eq!(&got, expected, "{name}");
        assert!(got.to_string().starts_with("invalid: "), "{name}: {got}");
        assert_eq!(store.head(), 1, "{name}: nothing written");
        assert_eq!(store.seq_of(&event.id).unwrap(), None, "{name}");
    }
    for (name, event) in [("content", too_large), ("encoded", too_large_encoded)] {
        match rejection(store.append(&event)) {
            InvalidEvent::TooLarge { size, limit } => {
                assert_eq!(limit, 2_000, "{name}");
                assert!(size > limit, "{name}: {size}");
            }
            other => panic!("{name}: expected TooLarge, got {other:?}"),
        }
        assert_eq!(store.head(), 1);
    }
}

#[test]
fn rejections_in_a_batch_are_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = limited_store(dir.path());
    let keys = Keys::generate();
    let good = chat(&keys, "g", "fine");
    assert_eq!(store.append(&good).unwrap(), AppendOutcome::Appended(1));
    let other = chat(&keys, "g", "other");
    let tampered = forged(&other, "tampered after signing", &other);
    let wrong_sig = forged(&other, &other.content, &good);

    // The valid events around the rejected ones commit.
    let after = chat(&keys, "g", "after");
    let results = store
        .append_batch(&[
            tampered.clone(),
            other.clone(),
            wrong_sig.clone(),
            after.clone(),
        ])
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(
        results[0],
        Err(StoreError::Invalid(InvalidEvent::BadId))
    ));
    assert_eq!(results[1].as_ref().unwrap(), &AppendOutcome::Appended(2));
    // Same id as `other`, which is not stored yet when the batch is prepared.
    assert!(matches!(
        results[2],
        Err(StoreError::Invalid(InvalidEvent::BadSignature))
    ));
    assert_eq!(results[3].as_ref().unwrap(), &AppendOutcome::Appended(3));
    assert_eq!(store.head(), 3);
    assert_readable(&store, 2, &other);
    assert_readable(&store, 3, &after);
    assert_eq!(store.group("g").map(|g| g.count), Some(3));
}

#[test]
fn trusted_mode_skips_signatures_but_not_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(
        dir.path(),
        StoreOptions {
            trusted: true,
            ..StoreOptions::default()
        },
    );
    let keys = Keys::generate();
    let a = chat(&keys, "g", "a");
    let b = chat(&keys, "g", "b");
    let wrong_sig = forged(&a, &a.content, &b);
    assert!(!wrong_sig.verify_signature());
    assert_eq!(
        store.append(&wrong_sig).unwrap(),
        AppendOutcome::Appended(1)
    );
    assert_readable(&store, 1, &wrong_sig);

    let tampered = forged(&b, "changed", &b);
    assert_eq!(rejection(store.append(&tampered)), InvalidEvent::BadId);
    assert_eq!(store.head(), 1);
}

#[test]
fn concurrent_appends_get_dense_unique_sequence_numbers() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Vec<Event>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let keys = Keys::generate();
                    (0..PER_THREAD)
                        .map(|i| chat(&keys, &format!("g{}", t % 4), &format!("{t}/{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let store = open(dir.path());
    let acked: Vec<Vec<(u64, Event)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .iter()
            .map(|mine| {
                let store = store.clone();
                scope.spawn(move || {
                    mine.iter()
                        .map(|e| (appended(store.append(e).unwrap()), e.clone()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = (THREADS * PER_THREAD) as u64;
    let seqs: BTreeSet<u64> = acked.iter().flatten().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs.len() as u64, total, "every acknowledged seq is unique");
    assert_eq!(seqs, (1..=total).collect(), "seqs are dense");
    for mine in &acked {
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "one thread's appends keep their order"
        );
    }
    assert_eq!(store.head(), total);
    let group_total: u64 = store.groups().iter().map(|g| g.count).sum();
    assert_eq!(group_total, total);
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.head(), total);
    for (seq, event) in acked.iter().flatten() {
        assert_readable(&store, *seq, event);
    }
}

#[test]
fn group_tail_scans_return_exactly_the_groups_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys = Keys::generate();
    let p = keys.public_key().to_hex();
    // (event, group) in log order.
    let plan: Vec<(Event, Option<&str>)> = vec![
        (sign(&keys, 9007, "", vec![tag(&["h", "a"])]), Some("a")),
        (
            sign(&keys, 9000, "", vec![tag(&["h", "a"]), tag(&["p", &p])]),
            Some("a"),
        ),
        (chat(&keys, "b", "hi b"), Some("b")),
        (sign(&keys, 1, "no group", vec![]), None),
        (chat(&keys, "a", "hi a"), Some("a")),
        (
            sign(&keys, 1, "kind 1 in a group", vec![tag(&["h", "a"])]),
            Some("a"),
        ),
        (
            sign(&keys, 39_000, "", vec![tag(&["d", "b"]), tag(&["h", "a"])]),
            Some("b"),
        ),
        (
            sign(&keys, 9001, "", vec![tag(&["h", "a"]), tag(&["p", &p])]),
            Some("a"),
        ),
        (chat(&keys, "a", "last, a chat"), Some("a")),
    ];
    for (event, _) in &plan {
        appended(store.append(event).unwrap());
    }
    let a = store.group("a").unwrap();
    let b = store.group("b").unwrap();
    assert_eq!((a.no, a.head, a.count), (0, 9, 6));
    assert_eq!((b.no, b.head, b.count), (1, 7, 2));
    assert_eq!(store.group_head(a.no), 9);
    assert_eq!(store.group_by_no(1), Some(b.clone()));
    assert_eq!(store.groups(), vec![a.clone(), b.clone()]);
    assert!(store.group("no group").is_none());
    assert_eq!(store.group_head(99), 0);

    let scan = |no: u32, after: u64, want: &dyn Fn(u16) -> bool| {
        let mut seen = Vec::new();
        let last = store
            .scan_group(no, after, want, |seq, event| {
                seen.push((seq, event.kind()));
                ControlFlow::Continue(())
            })
            .unwrap();
        (seen, (last.last, last.events))
    };
    let all = |_: u16| true;
    let moderation = |kind: u16| (9_000..=9_022).contains(&kind);
    for after in 0..=10 {
        let expected: Vec<(u64, u16)> = plan
            .iter()
            .zip(1..)
            .filter(|((_, g), seq)| *g == Some("a") && *seq > after)
            .map(|((e, _), seq)| (seq, e.kind.as_u16()))
            .collect();
        let passed = (if after < 9 { 9 } else { after }, expected.len() as u64);
        let (seen, last) = scan(a.no, after, &all);
        assert_eq!(seen, expected, "after {after}");
        assert_eq!(last, passed);

        // Skipped kinds are not visited, but the returned watermark still covers them.
        let (seen, last) = scan(a.no, after, &moderation);
        let filtered: Vec<(u64, u16)> = expected
            .iter()
            .copied()
            .filter(|(_, k)| moderation(*k))
            .collect();
        assert_eq!(seen, filtered, "after {after}, moderation only");
        assert_eq!(last, passed);
    }
    assert_eq!(scan(b.no, 0, &all).0, vec![(3, 9), (7, 39_000)]);
    assert_eq!(scan(b.no, 3, &|k| k != 39_000), (vec![], (7, 1)));
    assert_eq!(
        scan(7, 0, &all),
        (vec![], (0, 0)),
        "an unknown group is empty"
    );

    // Stopping early: the event the callback stopped on is not counted as passed.
    let mut visited = 0;
    let stopped = store
        .scan_group(a.no, 0, all, |_, _| {
            visited += 1;
            if visited == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!((visited, stopped.last, stopped.events), (2, 1, 1));

    // Ungrouped events are in the log but in no group.
    let indexed: u64 = store.groups().iter().map(|g| g.count).sum();
    assert_eq!(indexed, 8);
    assert_eq!(store.head(), 9);
}

#[test]
fn long_scans_cross_chunk_boundaries() {
    // More events than one read transaction of `scan`/`scan_group` covers (4,096), and
    // than one chunk of `iter_from` (1,024).
    const N: usize = 4_500;
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(
        dir.path(),
        StoreOptions {
            trusted: true,
            ..StoreOptions::default()
        },
    );
    let events: Vec<Event> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|half| {
                scope.spawn(move || {
                    let keys = Keys::generate();
                    (0..N / 2)
                        .map(|i| {
                            let kind = if i % 3 == 0 { 9000 } else { 9 };
                            sign(
                                &keys,
                                kind,
                                &format!("{half}/{i}"),
                                vec![tag(&["h", "long"])],
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for outcome in store.append_batch(&events).unwrap() {
        appended(outcome.unwrap());
    }
    let n = N as u64;
    assert_eq!(store.head(), n);

    let seqs: Vec<u64> = scan_all(&store).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let iterated: Vec<Event> = store.iter_from(1).map(|r| r.unwrap().1).collect();
    assert_eq!(iterated, events);
    assert_eq!(store.iter_from(1_024).count(), N - 1_023);

    let no = store.group("long").unwrap().no;
    for after in [0, 1, 4_095, 4_096, 4_097, n - 1, n] {
        let mut seen = Vec::new();
        let last = store
            .scan_group(
                no,
                after,
                |kind| kind == 9000,
                |seq, event| {
                    assert_eq!(event.kind(), 9000);
                    seen.push(seq);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        let expected: Vec<u64> = (after + 1..=n)
            .filter(|seq| events[(*seq - 1) as usize].kind.as_u16() == 9000)
            .collect();
        assert_eq!(seen, expected, "after {after}");
        assert_eq!((last.last, last.events), (n, n - after), "after {after}");
    }
}

#[test]
fn reopening_keeps_everything_and_a_second_open_shares_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let events: Vec<Event> = (0..20)
        .map(|i| chat(&keys, ["x", "y", "z"][i % 3], &format!("m{i}")))
        .collect();
    let (groups, expected) = {
        let store = open(dir.path());
        for e in &events {
            appended(store.append(e).unwrap());
        }
        store.set_setting("relay-key", b"abc").unwrap();
        (store.groups(), scan_all(&store))
    };
    let store = open(dir.path());
    assert_eq!(store.head(), 20);
    assert_eq!(store.groups(), groups);
    assert_eq!(scan_all(&store), expected);
    assert_eq!(
        store.setting("relay-key").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(store.setting("missing").unwrap(), None);

    // The same directory, spelled differently, in the same process: one shared store.
    let again = Store::open(dir.path().join("."), StoreOptions::default()).unwrap();
    assert_eq!(again.path(), store.path());
    let extra = chat(&keys, "x", "through the second handle");
    assert_eq!(again.append(&extra).unwrap(), AppendOutcome::Appended(21));
    assert_eq!(store.head(), 21);
    assert_readable(&store, 21, &extra);
    assert_eq!(store.append(&extra).unwrap(), AppendOutcome::Duplicate(21));
    drop(store);
    let more = chat(&keys, "y", "after the first handle is gone");
    assert_eq!(again.append(&more).unwrap(), AppendOutcome::Appended(22));
    drop(again);

    let store = open(dir.path());
    assert_eq!(store.head(), 22);
    assert_readable(&store, 22, &more);
    assert_eq!(store.group("x").map(|g| (g.head, g.count)), Some((21, 8)));
}

#[test]
fn a_corrupted_record_is_reported_with_its_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys = Keys::generate();
    let events: Vec<Event> = (0..3).map(|i| chat(&keys, "g", &format!("m{i}"))).collect();
    for e in &events {
        appended(store.append(e).unwrap());
    }
    let original = store.raw_record(2).unwrap().unwrap();
    let is_record_2 = |e: &StoreError| {
        let record_2 = matches!(e, StoreError::Corrupted(Corruption::Record { seq: 2, .. }));
        record_2 && e.to_string().contains("sequence 2")
    };
    let positions = [0, 3, 4, original.len() / 2, original.len() - 1];
    let mut damaged: Vec<Vec<u8>> = positions
        .iter()
        .map(|&i| {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            bytes
        })
        .collect();
    damaged.push(original[..2].to_vec());
    damaged.push(Vec::new());
    for bytes in damaged {
        store.put_raw_record(2, bytes).unwrap();
        let e = store.get(2).unwrap_err();
        assert!(is_record_2(&e), "{e}");
        let e = store.get_by_id(&events[1].id).unwrap_err();
        assert!(is_record_2(&e), "{e}");
        assert!(is_record_2(&store.with_event(2, |_| ()).unwrap_err()));

        let mut seen = Vec::new();
        let e = store
            .scan(1, |seq, _| {
                seen.push(seq);
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(is_record_2(&e), "{e}");
        assert_eq!(seen, [1], "the scan stops at the damaged record");

        // The iterator yields the events before the damage, then the error, then stops.
        let mut iter = store.iter_from(1);
        assert_eq!(iter.next().unwrap().unwrap(), (1, events[0].clone()));
        assert!(
            iter.next()
                .is_some_and(|r| r.is_err_and(|e| is_record_2(&e)))
        );
        assert!(iter.next().is_none());

        let no = store.group("g").unwrap().no;
        let e = store
            .scan_group(no, 0, |_| true, |_, _| ControlFlow::Continue(()))
            .unwrap_err();
        assert!(is_record_2(&e), "{e}");
        // A scan that does not read the damaged record is unaffected.
        assert_eq!(
            store
                .scan_group(no, 0, |kind| kind != 9, |_, _| ControlFlow::Continue(()))
                .unwrap()
                .last,
            3
        );

        // Its neighbours are fine.
        assert_readable(&store, 1, &events[0]);
        assert_readable(&store, 3, &events[2]);
    }
    store.put_raw_record(2, original).unwrap();
    assert_readable(&store, 2, &events[1]);
}

fn checkpoint(version: u64, watermark: u64, state: &[u8]) -> Checkpoint {
    Checkpoint {
        version,
        watermark,
        events: watermark,
        state: state.to_vec(),
    }
}

fn write(projection: &str, group: u32, checkpoint: Checkpoint) -> CheckpointWrite {
    CheckpointWrite {
        projection: projection.into(),
        group,
        checkpoint,
    }
}

#[test]
fn checkpoints_round_trip_replace_delete_and_detect_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys = Keys::generate();
    for group in ["g0", "g1", "g2"] {
        appended(store.append(&chat(&keys, group, "hi")).unwrap());
    }
    assert_eq!(store.read_checkpoint("members", 0).unwrap(), None);

    let m0 = checkpoint(1, 1, b"state of g0");
    let m1 = checkpoint(1, 2, &[0, 255, 7]);
    let r0 = checkpoint(3, 1, b"");
    store
        .write_checkpoints(
            vec![
                write("members", 0, m0.clone()),
                write("members", 1, m1.clone()),
                write("roles", 0, r0.clone()),
            ],
            None,
        )
        .unwrap();
    assert_eq!(
        store.read_checkpoint("members", 0).unwrap(),
        Some(m0.clone())
    );
    assert_eq!(
        store.read_checkpoint("members", 1).unwrap(),
        Some(m1.clone())
    );
    assert_eq!(store.read_checkpoint("roles", 0).unwrap(), Some(r0.clone()));
    assert_eq!(store.read_checkpoint("roles", 1).unwrap(), None);
    assert_eq!(store.checkpointed_groups("members").unwrap(), [0, 1]);
    // A projection whose name is a prefix of another's sees only its own.
    assert_eq!(
        store.checkpointed_groups("member").unwrap(),
        Vec::<u32>::new()
    );

    // Overwrite one.
    let m1b = checkpoint(2, 3, b"newer");
    store
        .write_checkpoints(vec![write("members", 1, m1b.clone())], None)
        .unwrap();
    assert_eq!(store.read_checkpoint("members", 1).unwrap(), Some(m1b));

    // Replace all of one projection; the other projection is untouched.
    let m2 = checkpoint(2, 3, b"g2");
    store
        .write_checkpoints(vec![write("members", 2, m2.clone())], Some("members"))
        .unwrap();
    assert_eq!(store.checkpointed_groups("members").unwrap(), [2]);
    assert_eq!(store.read_checkpoint("members", 0).unwrap(), None);
    assert_eq!(
        store.read_checkpoint("members", 2).unwrap(),
        Some(m2.clone())
    );
    assert_eq!(store.read_checkpoint("roles", 0).unwrap(), Some(r0));

    // A flipped byte is detected and names the projection and the group.
    let raw = store.raw_checkpoint("members", 2).unwrap().unwrap();
    for i in [0, raw.len() / 2, raw.len() - 1] {
        let mut bad = raw.clone();
        bad[i] ^= 0x10;
        store.put_raw_checkpoint("members", 2, bad).unwrap();
        match store.read_checkpoint("members", 2) {
            Err(StoreError::Corrupted(Corruption::Checkpoint {
                projection, group, ..
            })) => assert_eq!((projection.as_str(), group.as_str()), ("members", "g2")),
            other => panic!("byte {i}: expected a corrupted checkpoint, got {other:?}"),
        }
    }
    store.put_raw_checkpoint("members", 2, raw).unwrap();
    assert_eq!(store.read_checkpoint("members", 2).unwrap(), Some(m2));

    // Bad projection names are refused before anything is written.
    for name in ["", "has space", "nul\0", &"x".repeat(65)] {
        assert!(matches!(
            store.write_checkpoints(vec![write(name, 0, checkpoint(1, 1, b""))], None),
            Err(StoreError::InvalidArgument(_))
        ));
        assert!(matches!(
            store.checkpointed_groups(name),
            Err(StoreError::InvalidArgument(_))
        ));
    }

    assert_eq!(store.delete_checkpoints(Some("roles")).unwrap(), 1);
    assert_eq!(store.read_checkpoint("roles", 0).unwrap(), None);
    assert_eq!(store.delete_checkpoints(None).unwrap(), 1);
    assert_eq!(
        store.checkpointed_groups("members").unwrap(),
        Vec::<u32>::new()
    );
    drop(store);
    assert_eq!(
        open(dir.path()).checkpointed_groups("members").unwrap(),
        Vec::<u32>::new()
    );
}

#[test]
fn a_full_map_fails_the_batch_cleanly_and_reads_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(
        dir.path(),
        StoreOptions {
            map_size: 1 << 20,
            max_map_size: 1 << 20,
            trusted: true,
            ..StoreOptions::default()
        },
    );
    let keys = Keys::generate();
    let content = "z".repeat(8 * 1024);
    let mut acked: Vec<(u64, Event)> = Vec::new();
    let mut batch_no = 0;
    let (error, failed) = loop {
        batch_no += 1;
        assert!(batch_no < 100, "a 1 MiB map cannot hold 4 MiB");
        let batch: Vec<Event> = (0..5)
            .map(|i| chat(&keys, "g", &format!("{batch_no}/{i} {content}")))
            .collect();
        match store.append_batch(&batch) {
            Ok(outcomes) => {
                for (outcome, event) in outcomes.into_iter().zip(batch) {
                    acked.push((appended(outcome.unwrap()), event));
                }
            }
            Err(error) => break (error, batch),
        }
    };
    let matched = matches!(
        error,
        StoreError::MapFull {
            map_size: 1_048_576,
            max_map_size: 1_048_576
        }
    );
    assert!(matched, "{error}");
    assert!(error.is_resource_error());
    assert!(!acked.is_empty());
    let head = acked.last().unwrap().0;
    assert_eq!(
        store.head(),
        head,
        "nothing of the failed batch was written"
    );
    for event in &failed {
        assert_eq!(store.seq_of(&event.id).unwrap(), None);
    }
    for (seq, event) in &acked {
        assert_readable(&store, *seq, event);
    }
    assert_eq!(scan_all(&store).len() as u64, head);
    assert_eq!(
        store.group("g").map(|g| (g.head, g.count)),
        Some((head, head))
    );
    drop(store);
    let store = open_with(
        dir.path(),
        StoreOptions {
            map_size: 1 << 20,
            max_map_size: 1 << 30,
            ..StoreOptions::default()
        },
    );
    assert_eq!(store.head(), head);
    assert_eq!(
        appended(store.append(&failed[0]).unwrap()),
        head + 1,
        "a larger limit lets the batch in"
    );
}

#[test]
fn the_map_grows_while_readers_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(
        dir.path(),
        StoreOptions {
            map_size: 1 << 20,
            max_map_size: 1 << 30,
            trusted: true,
            ..StoreOptions::default()
        },
    );
    let initial = store.map_size();
    assert_eq!(initial, 1 << 20);
    let keys = Keys::generate();
    let content = "w".repeat(10 * 1024);
    let events: Vec<Event> = (0..500)
        .map(|i| chat(&keys, "g", &format!("{i} {content}")))
        .collect();
    let first = events[0].clone();
    appended(store.append(&first).unwrap());

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) {
                assert_eq!(store.get(1).unwrap().as_ref(), Some(&first));
                let head = store.head();
                let mut count = 0;
                store
                    .scan(1, |_, _| {
                        count += 1;
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                assert!(count >= head);
                reads += 1;
            }
            reads
        })
    };
    for chunk in events[1..].chunks(50) {
        for outcome in store.append_batch(chunk).unwrap() {
            appended(outcome.unwrap());
        }
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(store.head(), 500);
    assert!(
        store.map_size() >= 4 << 20,
        "5 MB of events grew the map: {} bytes",
        store.map_size()
    );
    for (seq, event) in (1..).zip(&events) {
        assert_readable(&store, seq, event);
    }
    drop(store);
    let store = open_with(
        dir.path(),
        StoreOptions {
            map_size: 1 << 20,
            ..StoreOptions::default()
        },
    );
    assert_eq!(store.head(), 500);
    assert!(store.map_size() > initial);
    assert_readable(&store, 500, &events[499]);
}

#[test]
fn errors_are_send_sync_and_display_their_cause() {
    fn check<T: Send + Sync + 'static + std::error::Error>() {}
    check::<StoreError>();
    check::<InvalidEvent>();
    check::<Corruption>();
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new(StoreError::from(InvalidEvent::BadSignature));
    assert_eq!(boxed.to_string(), "invalid: bad signature");
}

/// A record of the unmerged index tail is read when the store opens (its id is what
/// duplicate detection needs): a damaged one fails the open, naming it, instead of
/// leaving lookups that cannot be exact. Once the tail is merged, the same damage is
/// found only by a read of that record.
#[test]
fn a_damaged_record_of_the_index_tail_fails_the_open_and_a_merged_one_its_read() {
    let keys = Keys::generate();
    let events: Vec<Event> = (0..3).map(|i| chat(&keys, "g", &format!("{i}"))).collect();
    for merged in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let raw = {
            let store = open(dir.path());
            for event in &events {
                appended(store.append(event).unwrap());
            }
            if merged {
                assert_eq!(store.merge_index_tail().unwrap(), 3);
            }
            let raw = store.raw_record(2).unwrap().unwrap();
            let mut damaged = raw.clone();
            let last = damaged.len() - 1;
            damaged[last] ^= 0x40;
            store.put_raw_record(2, damaged).unwrap();
            raw
        };
        let opened = Store::open(dir.path(), StoreOptions::default());
        if merged {
            let store = opened.unwrap();
            let error = store.get(2).unwrap_err();
            let at_2 = matches!(
                error,
                StoreError::Corrupted(Corruption::Record { seq: 2, .. })
            );
            assert!(at_2, "{error:?}");
            assert_eq!(store.seq_of(&events[2].id).unwrap(), Some(3));
            store.put_raw_record(2, raw).unwrap();
            assert_eq!(store.get(2).unwrap().as_ref(), Some(&events[1]));
        } else {
            let error = opened.unwrap_err();
            let at_2 = matches!(
                error,
                StoreError::Corrupted(Corruption::Record { seq: 2, .. })
            );
            assert!(at_2, "{error:?}");
        }
    }
}
