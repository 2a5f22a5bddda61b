//! Unit tests of the generator: determinism, counts, validity of every event, and the
//! shapes of the workload (kinds, seeded and re-created groups, forgeries, clock).

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::OnceLock;

use nostr::prelude::{Event, Keys, PublicKey, SecretKey, Tag};

use super::vocab::{
    CHAT, CREATE_GROUP, CREATE_INVITE, DELETE_EVENT, DELETE_GROUP, EDIT_METADATA, JOIN, LEAVE,
    PUT_USER, REMOVE_USER, SNAPSHOT_ADMINS, SNAPSHOT_MEMBERS, SNAPSHOT_METADATA, SNAPSHOT_ROLES,
};
use super::{CHUNK, EPOCH, WorkloadSpec, WorkloadSummary, generate, write_jsonl};

fn run(spec: &WorkloadSpec) -> (Vec<Event>, WorkloadSummary) {
    let mut events = Vec::new();
    let summary = generate(spec, &|_| {}, &mut |event| {
        events.push(event.clone());
        Ok(())
    })
    .expect("generation succeeds");
    (events, summary)
}

fn lines(spec: &WorkloadSpec) -> Vec<u8> {
    let mut out = Vec::new();
    write_jsonl(spec, &|_| {}, &mut out).expect("generation succeeds");
    out
}

fn spec(groups: usize, events: usize, seed: u64) -> WorkloadSpec {
    WorkloadSpec {
        groups,
        events,
        seed,
        relay_secret: None,
    }
}

/// One 20k-event workload shared by the tests that inspect its content.
fn big() -> &'static (Vec<Event>, WorkloadSummary) {
    static BIG: OnceLock<(Vec<Event>, WorkloadSummary)> = OnceLock::new();
    BIG.get_or_init(|| run(&spec(1_000, 20_000, 1)))
}

fn group_id(event: &Event) -> Option<&str> {
    let name = if event.kind.as_u16() >= SNAPSHOT_METADATA {
        "d"
    } else {
        "h"
    };
    let mut ids = event
        .tags
        .iter()
        .filter(|tag| tag.kind() == name)
        .filter_map(|tag| tag.content());
    let id = ids.next();
    assert!(
        ids.next().is_none(),
        "one group id per event: {}",
        event.as_json()
    );
    id
}

#[test]
fn same_spec_gives_identical_output() {
    let spec = spec(40, 5_000, 7);
    let first = lines(&spec);
    assert_eq!(first, lines(&spec));
    assert_eq!(first.split(|&b| b == b'\n').count() - 1, 5_000);
    assert_ne!(first, lines(&WorkloadSpec { seed: 8, ..spec }));
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let spec = spec(30, 2 * CHUNK + 100, 3);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    assert_eq!(pool.install(|| lines(&spec)), lines(&spec));
}

#[test]
fn produces_exactly_the_requested_count() {
    for events in [0, 1, 17, CHUNK, CHUNK + 1] {
        let (produced, summary) = run(&spec(10, events, 2));
        assert_eq!(produced.len(), events);
        assert_eq!(summary.events, events);
        assert_eq!(summary.kinds.values().sum::<usize>(), events);
    }
    assert_eq!(big().0.len(), 20_000);
}

#[test]
fn every_event_verifies_and_has_a_group_id() {
    let (events, summary) = big();
    let groups: HashSet<&str> = events
        .iter()
        .map(|event| {
            event.verify().expect("valid id and signature");
            group_id(event).expect("group id in h or d")
        })
        .collect();
    assert_eq!(groups.len(), summary.groups);
}

#[test]
fn every_nip29_kind_appears() {
    let (events, summary) = big();
    let kinds: HashSet<u16> = events.iter().map(|event| event.kind.as_u16()).collect();
    for kind in [
        CHAT,
        PUT_USER,
        REMOVE_USER,
        EDIT_METADATA,
        DELETE_EVENT,
        CREATE_GROUP,
        DELETE_GROUP,
        CREATE_INVITE,
        JOIN,
        LEAVE,
        SNAPSHOT_METADATA,
        SNAPSHOT_ADMINS,
        SNAPSHOT_MEMBERS,
        SNAPSHOT_ROLES,
    ] {
        assert!(kinds.contains(&kind), "kind {kind} missing");
        assert!(summary.kinds[&kind] > 0);
    }
    let chat = summary.kinds[&CHAT];
    assert!((8_000..12_000).contains(&chat), "{chat} chat messages");
}

#[test]
fn workload_has_the_interesting_shapes() {
    let (events, summary) = big();
    let relay = summary.relay_pubkey;
    let mut first: HashMap<&str, &Event> = HashMap::new();
    let mut deleted: HashSet<&str> = HashSet::new();
    let mut recreated = 0;
    let (mut forged, mut relay_moderation, mut roles, mut bare) = (0, 0, 0, 0);
    let (mut json, mut legacy, mut flags) = (0, 0, 0);
    for event in events {
        let id = group_id(event).expect("group id");
        first.entry(id).or_insert(event);
        let kind = event.kind.as_u16();
        match kind {
            DELETE_GROUP => {
                deleted.insert(id);
            }
            CREATE_GROUP if deleted.remove(id) => recreated += 1,
            SNAPSHOT_METADATA..=SNAPSHOT_ROLES if event.pubkey != relay => forged += 1,
            PUT_USER | REMOVE_USER if event.pubkey == relay => relay_moderation += 1,
            _ => {}
        }
        for tag in event.tags.iter() {
            let tag = tag.as_slice();
            match tag[0].as_str() {
                "p" if kind == PUT_USER && tag.len() > 2 => roles += 1,
                "p" if kind == PUT_USER => bare += 1,
                "public" | "open" | "visible" | "unrestricted" => legacy += 1,
                "private" | "closed" | "hidden" | "restricted" => flags += 1,
                _ => {}
            }
        }
        if kind == EDIT_METADATA && event.content.starts_with('{') {
            json += 1;
        }
    }
    let seeded = first
        .values()
        .filter(|event| event.kind.as_u16() == SNAPSHOT_METADATA && event.pubkey == relay)
        .count();
    assert_eq!(seeded, summary.seeded_groups);
    assert!(seeded > 0);
    assert_eq!(recreated, summary.recreated_groups);
    assert!(recreated > 0);
    assert_eq!(forged, summary.forged_snapshots);
    assert!(forged > 0);
    for count in [relay_moderation, roles, bare, json, legacy, flags] {
        assert!(count > 0);
    }
    let same_second = events
        .windows(2)
        .filter(|pair| pair[1].created_at == pair[0].created_at)
        .count();
    let backwards = events
        .windows(2)
        .filter(|pair| pair[1].created_at < pair[0].created_at)
        .count();
    assert!(same_second > 1_000, "{same_second} same-second pairs");
    assert!((10..1_000).contains(&backwards), "{backwards} steps back");
    assert!(events[0].created_at.as_secs() >= EPOCH);
}

#[test]
fn moderation_is_mostly_by_creator_or_admins() {
    let (events, summary) = big();
    let mut authority: HashMap<&str, HashSet<PublicKey>> = HashMap::new();
    let (mut by_authority, mut total) = (0, 0);
    for event in events {
        let id = group_id(event).expect("group id");
        let kind = event.kind.as_u16();
        if matches!(kind, PUT_USER | REMOVE_USER | EDIT_METADATA | DELETE_GROUP)
            && event.pubkey != summary.relay_pubkey
        {
            total += 1;
            if authority
                .get(id)
                .is_some_and(|keys| keys.contains(&event.pubkey))
            {
                by_authority += 1;
            }
        }
        let keys = authority.entry(id).or_default();
        match kind {
            CREATE_GROUP => {
                keys.clear();
                keys.insert(event.pubkey);
            }
            PUT_USER | SNAPSHOT_ADMINS
                if kind == PUT_USER || event.pubkey == summary.relay_pubkey =>
            {
                for tag in event.tags.iter().map(Tag::as_slice) {
                    if tag[0] == "p"
                        && tag[2..]
                            .iter()
                            .any(|role| role == "admin" || role == "moderator")
                    {
                        keys.insert(PublicKey::from_hex(&tag[1]).expect("pubkey"));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(by_authority * 10 > total * 8, "{by_authority} of {total}");
}

#[test]
fn relay_secret_is_used_when_given() {
    let secret = [7_u8; 32];
    let spec = WorkloadSpec {
        relay_secret: Some(secret),
        ..spec(20, 3_000, 5)
    };
    let expected = Keys::new(SecretKey::from_slice(&secret).expect("valid")).public_key();
    assert_eq!(spec.relay_keys().expect("valid").public_key(), expected);
    let (events, summary) = run(&spec);
    assert_eq!(summary.relay_pubkey, expected);
    assert!(
        events
            .iter()
            .any(|event| event.kind.as_u16() == SNAPSHOT_ROLES && event.pubkey == expected)
    );
    let bad = WorkloadSpec {
        relay_secret: Some([0; 32]),
        ..spec
    };
    assert_eq!(
        generate(&bad, &|_| {}, &mut |_| Ok(()))
            .expect_err("zero key")
            .kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn events_are_reasonably_sized() {
    let (events, _) = big();
    let total: usize = events.iter().map(|event| event.as_json().len()).sum();
    let mean = total / events.len();
    assert!((250..=600).contains(&mean), "mean size {mean}");
}

#[test]
fn sink_errors_stop_generation() {
    let mut seen = 0;
    let result = generate(&spec(10, 3 * CHUNK, 1), &|_| {}, &mut |_| {
        seen += 1;
        if seen == 10 {
            Err(io::Error::other("disk full"))
        } else {
            Ok(())
        }
    });
    assert_eq!(result.expect_err("sink error").to_string(), "disk full");
    assert_eq!(seen, 10);
}
