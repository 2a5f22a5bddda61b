//! The sequencer decides on its overlay exactly as one-at-a-time decisions would: a
//! property test on random NIP-29 logs — moderation of every kind, invites, joins and
//! leaves, subgroups (parents named and dropped, children listed, parents deleted and
//! re-created), `previous` references to events just decided, relay snapshots and
//! repeats — decided through a [`Sequencer`] whose batches are sealed at random points
//! and acknowledged with a random lag (so later decisions read changes that are still
//! in flight, or half committed), compared with a loop that decides each event with
//! `AccessPolicy::check_write` and appends it before the next, on a second store. The
//! accepted log and the refusals (position, reason) must be the same.

use std::collections::VecDeque;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy, Sequencer, Verdict};
use highwater_store::{Prepared, Store, StoreOptions, Ticket};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use proptest::prelude::*;

/// One step of a random log, as drawn.
#[derive(Debug, Clone)]
struct Step {
    author: usize,
    kind: u16,
    group: usize,
    target: usize,
    pick: u8,
    extra: u8,
}

fn step() -> impl Strategy<Value = Step> {
    let kinds = prop_oneof![
        5 => Just(9u16),
        4 => Just(9000u16),
        2 => Just(9001u16),
        3 => Just(9002u16),
        3 => Just(9007u16),
        1 => Just(9008u16),
        1 => Just(9009u16),
        2 => Just(9021u16),
        1 => Just(9022u16),
        1 => Just(39_000u16),
        1 => Just(39_001u16),
        1 => Just(39_002u16),
    ];
    // The relay's key (a relay admin everywhere but in private groups) and the first
    // user (who creates `a`) write often, so moderation is often accepted and builds
    // on itself.
    let author = prop_oneof![3 => Just(0usize), 3 => Just(1usize), 4 => 0..5usize];
    (
        author,
        kinds,
        0..4usize,
        0..5usize,
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(author, kind, group, target, pick, extra)| Step {
            author,
            kind,
            group,
            target,
            pick,
            extra,
        })
}

/// The relay, then four users.
fn keys() -> Vec<Keys> {
    (0u8..5)
        .map(|i| Keys::parse(&format!("{:064x}", u64::from(i) + 7)).expect("key"))
        .collect()
}

fn sign(keys: &Keys, kind: u16, tags: Vec<Vec<String>>, at: u64) -> Event {
    let tags = tags
        .into_iter()
        .map(|t| Tag::parse(t).expect("tag"))
        .collect::<Vec<_>>();
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(at))
        .finalize(keys)
        .expect("sign")
}

const GROUPS: [&str; 4] = ["a", "b", "c", "d"];

fn events(steps: &[Step]) -> Vec<Event> {
    let keys = keys();
    let roles: [&[&str]; 4] = [&[], &["admin"], &["writer"], &["admin", "writer"]];
    let flags = ["private", "closed", "hidden", "restricted"];
    let mut out = vec![sign(
        &keys[1],
        9007,
        vec![vec!["h".into(), "a".into()]],
        1_800_000_000,
    )];
    for (i, s) in steps.iter().enumerate() {
        if s.extra % 19 == 0
            && let Some(again) = out.get(usize::from(s.pick) % out.len())
        {
            out.push(again.clone());
            continue;
        }
        let at = 1_800_000_001 + i as u64;
        let g = GROUPS[s.group];
        let other = GROUPS[(s.group + 1 + usize::from(s.pick) % 3) % 4];
        let target = keys[s.target].public_key().to_hex();
        let h = vec!["h".to_owned(), g.to_owned()];
        let mut tags = vec![h];
        match s.kind {
            9000 => {
                let mut p = vec!["p".to_owned(), target];
                p.extend(
                    roles[usize::from(s.pick) % 4]
                        .iter()
                        .map(|r| (*r).to_owned()),
                );
                tags.push(p);
            }
            9001 => tags.push(vec!["p".into(), target]),
            9002 | 9007 => {
                tags.push(vec!["name".into(), format!("n{i}")]);
                for (bit, flag) in flags.iter().enumerate() {
                    if (s.pick >> bit) & 1 == 1 && s.extra % 3 == 0 {
                        tags.push(vec![(*flag).into()]);
                    }
                }
                if s.extra % 2 == 0 {
                    tags.push(vec!["parent".into(), other.into()]);
                }
                // A parent lists its children, or leaves them out (refused if it has
                // any).
                if s.extra % 3 != 0 {
                    for child in GROUPS.iter().filter(|c| **c != g) {
                        tags.push(vec!["child".into(), (*child).into()]);
                    }
                }
            }
            9009 => tags.push(vec!["code".into(), format!("code{}", s.pick % 2)]),
            9021 if s.extra % 2 == 0 => {
                tags.push(vec!["code".into(), format!("code{}", s.pick % 2)]);
            }
            39_000..=39_002 => {
                tags = vec![vec!["d".into(), g.into()]];
                if s.kind == 39_000 {
                    tags.push(vec!["name".into(), "snapshot".into()]);
                    if s.extra % 2 == 0 {
                        tags.push(vec!["parent".into(), other.into()]);
                    }
                } else {
                    tags.push(vec!["p".into(), target]);
                }
            }
            9 if s.extra % 4 == 1 => {
                // A timeline reference: to an event just before (often still in
                // flight), or to nothing stored.
                let back = usize::from(s.pick % 4) + 1;
                let named = match out.len().checked_sub(back) {
                    Some(at) if s.extra % 8 != 1 => out[at].id.to_hex()[..8].to_owned(),
                    _ => "00000000".to_owned(),
                };
                tags.push(vec!["previous".into(), named]);
            }
            _ => {}
        }
        out.push(sign(&keys[s.author], s.kind, tags, at));
    }
    out
}

/// A store, an engine and the policy over them.
fn open(dir: &std::path::Path) -> (Store, Engine, AccessPolicy) {
    let store = Store::open(dir, StoreOptions::default()).expect("open");
    let mut builder = Engine::builder(store.clone(), EngineOptions::default());
    let relay = keys()[0].public_key();
    let groups = Groups::register(&mut builder, Nip29Config::new(relay)).expect("register");
    let engine = builder.build().expect("engine");
    (store, engine, AccessPolicy::new(groups, Policy::default()))
}

/// What a writer decided: the accepted ids in log order, and the refusals.
type Outcome = (Vec<String>, Vec<(usize, String)>);

/// The reference: each event decided and appended before the next.
fn one_at_a_time(dir: &std::path::Path, events: &[Event]) -> Outcome {
    let (store, _engine, policy) = open(dir);
    let mut log = Vec::new();
    let mut refused = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match store.prepare(event).expect("prepare") {
            Prepared::Duplicate(_) => {}
            Prepared::Ready(prepared) => {
                if let Err(rejection) = policy.check_write(event) {
                    refused.push((i, rejection.to_string()));
                } else {
                    store
                        .submit(vec![prepared])
                        .expect("submit")
                        .wait()
                        .expect("commit");
                    log.push(event.id.to_hex());
                }
            }
        }
    }
    (log, refused)
}

/// Through the sequencer: a batch is sealed after event `i` when `seal[i]`, and at most
/// `lag` sealed batches stay unacknowledged.
fn sequenced(dir: &std::path::Path, events: &[Event], seal: &[bool], lag: usize) -> Outcome {
    let (store, _engine, policy) = open(dir);
    let writer = store.pipeline();
    let mut sequencer = Sequencer::new();
    let mut queued = Vec::new();
    let mut in_flight: VecDeque<(u64, Ticket)> = VecDeque::new();
    let mut refused = Vec::new();
    let acknowledge = |sequencer: &mut Sequencer, in_flight: &mut VecDeque<(u64, Ticket)>, keep| {
        while in_flight.len() > keep {
            let (batch, ticket) = in_flight.pop_front().expect("a batch");
            ticket.wait().expect("commit");
            sequencer.acknowledged(batch);
            sequencer.index_read_at(batch);
        }
    };
    for (i, event) in events.iter().enumerate() {
        if let Prepared::Ready(prepared) = store.prepare(event).expect("prepare") {
            if sequencer.must_wait() {
                if !queued.is_empty() {
                    let ticket = writer.submit(std::mem::take(&mut queued)).expect("submit");
                    in_flight.push_back((sequencer.sealed(), ticket));
                }
                acknowledge(&mut sequencer, &mut in_flight, 0);
            }
            match sequencer.decide(&policy, event, &prepared) {
                Verdict::Accepted => queued.push(prepared),
                Verdict::Duplicate => {}
                Verdict::Refused(rejection) => refused.push((i, rejection.to_string())),
            }
        }
        if seal.get(i).copied().unwrap_or(false) && !queued.is_empty() {
            let ticket = writer.submit(std::mem::take(&mut queued)).expect("submit");
            in_flight.push_back((sequencer.sealed(), ticket));
            acknowledge(&mut sequencer, &mut in_flight, lag);
        }
    }
    if !queued.is_empty() {
        let ticket = writer.submit(queued).expect("submit");
        in_flight.push_back((sequencer.sealed(), ticket));
    }
    acknowledge(&mut sequencer, &mut in_flight, 0);
    let mut log = Vec::new();
    store
        .scan(1, |_, event| {
            log.push(nostr::prelude::EventId::from_byte_array(*event.id()).to_hex());
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    (log, refused)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sequencer_on_its_overlay_decides_like_one_at_a_time(
        steps in prop::collection::vec(step(), 20..140),
        seal in prop::collection::vec(prop::bool::weighted(0.15), 140),
        lag in 0..5usize,
    ) {
        let events = events(&steps);
        let dir = tempfile::tempdir().expect("dir");
        let expected = one_at_a_time(&dir.path().join("reference"), &events);
        let got = sequenced(&dir.path().join("sequenced"), &events, &seal, lag);
        prop_assert_eq!(&got.1, &expected.1, "refusals differ (lag {})", lag);
        prop_assert_eq!(&got.0, &expected.0, "accepted log differs (lag {})", lag);
    }
}
