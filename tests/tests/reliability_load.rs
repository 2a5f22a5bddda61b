//! Load: sustained concurrent appends and reads from many threads for a bounded time,
//! with on-demand checkpoints and evictions (so reads keep reloading groups from
//! checkpoints plus tails) running against them.
//!
//! Every writer owns a few groups and keeps a model of them; after each acknowledged
//! append it immediately reads the group and must see its own write (read-your-writes:
//! `is_member`, `roles`, `metadata`, `is_creator`, `group_state`). Readers query random
//! groups through the queries and the access policy and must never get an error. At the
//! end the served state equals each writer's model, and, before and after a restart,
//! every (group, projection) equals a full replay.
//!
//! `HIGHWATER_LOAD_SECS` sets the duration (default 3 s); the test prints the events per
//! second it sustained.

mod reliability_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use highwater_engine::EngineOptions;
use highwater_projections::{AccessPolicy, Groups, Life, Policy};
use highwater_store::{AppendOutcome, StoreOptions};
use nostr::prelude::{Event, Keys, PublicKey, Timestamp};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reliability_support::{
    env_u64, key, observer_options, open_engine, signed, tag, verify_database,
};

const WRITERS: usize = 4;
const READERS: usize = 3;
const GROUPS_PER_WRITER: usize = 3;
const ROLES: [&str; 4] = ["admin", "writer", "moderator", "bot"];

/// A writer's model of one of its groups.
#[derive(Debug, Default, Clone)]
struct Model {
    life: Life,
    members: BTreeMap<PublicKey, BTreeSet<String>>,
    name: Option<String>,
    creator: Option<PublicKey>,
}

fn group_name(writer: usize, g: usize) -> String {
    format!("load-{writer}-{g}")
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per kind of write and its read-back"
)]
/// One writer: appends NIP-29 moderation and chat to its own groups, checking each
/// write is visible to its next read. Returns its models and how many events it wrote.
fn writer(
    engine: &highwater_engine::Engine,
    groups: &Groups,
    writer: usize,
    members: &[Keys],
    deadline: Instant,
) -> (BTreeMap<String, Model>, u64) {
    let author = key(100 + writer as u8);
    let me = author.public_key();
    let mut rng = ChaCha8Rng::seed_from_u64(writer as u64);
    let mut models: BTreeMap<String, Model> = (0..GROUPS_PER_WRITER)
        .map(|g| (group_name(writer, g), Model::default()))
        .collect();
    let written = std::cell::Cell::new(0u64);
    let mut clock = 1_700_000_000u64;
    let append = |event: &Event| match engine.append(event).unwrap() {
        AppendOutcome::Appended(_) => written.set(written.get() + 1),
        AppendOutcome::Duplicate(seq) => panic!("a fresh event was a duplicate of {seq}"),
    };
    while Instant::now() < deadline {
        clock += 1;
        let group = group_name(writer, rng.random_range(0..GROUPS_PER_WRITER));
        let model = models.get_mut(&group).unwrap();
        let h = tag(&["h", &group]);
        if model.life != Life::Active {
            let name = format!("{group} @{clock}");
            append(&signed(
                &author,
                9007,
                &[h, tag(&["name", &name])],
                "",
                clock,
            ));
            *model = Model {
                life: Life::Active,
                name: Some(name.clone()),
                creator: Some(me),
                ..Model::default()
            };
            model.members.insert(me, BTreeSet::new());
            assert!(
                groups.is_creator(&group, &me).unwrap(),
                "{group}: creator not visible"
            );
            assert!(
                groups.is_member(&group, &me).unwrap(),
                "{group}: creator not a member"
            );
            assert_eq!(groups.metadata(&group).unwrap().name, Some(name));
            continue;
        }
        let member = members.choose(&mut rng).unwrap();
        let pk = member.public_key();
        let hex = member.public_key().to_hex();
        match rng.random_range(0..100) {
            0..45 => {
                let roles: BTreeSet<String> = ROLES
                    .iter()
                    .filter(|_| rng.random_bool(0.3))
                    .map(|r| (*r).to_owned())
                    .collect();
                let mut p = vec!["p".to_owned(), hex];
                p.extend(roles.iter().cloned());
                append(&signed(&author, 9000, &[h, p], "", clock));
                model.members.insert(pk, roles.clone());
                assert!(
                    groups.is_member(&group, &pk).unwrap(),
                    "{group}: put member not visible"
                );
                assert_eq!(
                    groups.roles(&group, &pk).unwrap(),
                    roles.into_iter().collect::<Vec<_>>()
                );
            }
            45..65 => {
                append(&signed(&author, 9001, &[h, tag(&["p", &hex])], "", clock));
                model.members.remove(&pk);
                assert!(
                    !groups.is_member(&group, &pk).unwrap(),
                    "{group}: removed member still visible"
                );
                assert!(groups.roles(&group, &pk).unwrap().is_empty());
            }
            65..72 => {
                let name = format!("renamed @{clock}");
                let private = rng.random_bool(0.5);
                let mut tags = vec![h, tag(&["name", &name])];
                if private {
                    tags.push(tag(&["private"]));
                }
                append(&signed(&author, 9002, &tags, "", clock));
                model.name = Some(name.clone());
                let metadata = groups.metadata(&group).unwrap();
                assert_eq!((metadata.name, metadata.private), (Some(name), private));
            }
            72..73 => {
                append(&signed(&author, 9008, &[h], "", clock));
                *model = Model {
                    life: Life::Deleted,
                    ..Model::default()
                };
                assert_eq!(groups.group_state(&group).unwrap(), Life::Deleted);
                assert!(!groups.is_member(&group, &me).unwrap());
            }
            _ => {
                // Chat, in small batches now and then: one commit for several events.
                let n = if rng.random_bool(0.2) { 8 } else { 1 };
                let events: Vec<Event> = (0..n)
                    .map(|i| {
                        signed(
                            member,
                            9,
                            std::slice::from_ref(&h),
                            &format!("{writer}/{clock}/{i}"),
                            clock,
                        )
                    })
                    .collect();
                for outcome in engine.append_batch(&events).unwrap() {
                    let matched = matches!(outcome, Ok(AppendOutcome::Appended(_)));
                    assert!(matched, "{outcome:?}");
                    written.set(written.get() + 1);
                }
            }
        }
        if rng.random_ratio(1, 20) {
            let expected: Vec<PublicKey> = model.members.keys().copied().collect();
            assert_eq!(
                groups.members(&group).unwrap(),
                expected,
                "{group}: members differ from the model"
            );
        }
    }
    (models, written.get())
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one load scenario, read top to bottom"
)]
fn sustained_concurrent_appends_and_reads_keep_read_your_writes_and_match_a_replay() {
    let secs = env_u64("HIGHWATER_LOAD_SECS", 3);
    let dir = tempfile::tempdir().unwrap();
    let relay = key(250);
    let options = EngineOptions {
        checkpoint_every: 64,
        checkpoint_on_close: true,
    };
    let (engine, groups) = open_engine(
        dir.path(),
        relay.public_key(),
        StoreOptions::default(),
        options,
    );
    let policy = AccessPolicy::new(groups.clone(), Policy::default());
    let members: Vec<Keys> = (1..=40).map(key).collect();
    let names: Vec<String> = (0..WRITERS)
        .flat_map(|w| (0..GROUPS_PER_WRITER).map(move |g| group_name(w, g)))
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let (mut checkpoints, mut evictions) = (0u64, 0u64);
    let results = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (engine, groups, members) = (&engine, &groups, &members);
                scope.spawn(move || writer(engine, groups, w, members, deadline))
            })
            .collect();
        for r in 0..READERS {
            let (groups, policy, names, members, stop, reads) =
                (&groups, &policy, &names, &members, &stop, &reads);
            scope.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(1_000 + r as u64);
                while !stop.load(Ordering::Relaxed) {
                    let group = names.choose(&mut rng).unwrap();
                    let pk = members.choose(&mut rng).unwrap().public_key();
                    match rng.random_range(0..6) {
                        0 => {
                            let _ = groups.members_with_roles(group).unwrap();
                        }
                        1 => {
                            let _ = groups.metadata(group).unwrap();
                        }
                        2 => {
                            let _ = policy.can_read(Some(&pk), group).unwrap();
                        }
                        3 => {
                            let _ = policy.can_write(group, &pk).unwrap();
                        }
                        4 => {
                            let _ = groups
                                .render(group, Timestamp::from_secs(1_800_000_000))
                                .unwrap();
                        }
                        _ => {
                            let _ = groups.has_role(group, &pk, "admin").unwrap();
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Checkpoints on demand and evictions: reads reload from checkpoint plus tail
        // while live folds go on.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
            engine.checkpoint().unwrap();
            checkpoints += 1;
            if rng.random_ratio(1, 3) {
                engine.evict_all();
                evictions += 1;
            }
        }
        let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        results
    });
    let elapsed = started.elapsed().as_secs_f64();
    let written: u64 = results.iter().map(|(_, n)| n).sum();
    let reads = reads.load(Ordering::Relaxed);

    // The served state equals every writer's model ...
    let check_models = |groups: &Groups| {
        for (models, _) in &results {
            for (group, model) in models {
                assert_eq!(groups.group_state(group).unwrap(), model.life, "{group}");
                let served: BTreeMap<PublicKey, BTreeSet<String>> = groups
                    .members_with_roles(group)
                    .unwrap()
                    .into_iter()
                    .map(|m| (m.pubkey, m.roles.into_iter().collect()))
                    .collect();
                assert_eq!(served, model.members, "{group}: members and roles");
                assert_eq!(
                    groups.creator(group).unwrap(),
                    model.creator,
                    "{group}: creator"
                );
                if model.life == Life::Active {
                    assert_eq!(
                        groups.metadata(group).unwrap().name,
                        model.name,
                        "{group}: name"
                    );
                }
            }
        }
    };
    check_models(&groups);
    // ... and a full replay, now and after a restart (from the checkpoints written).
    let verified = verify_database(&engine, &groups, None);
    assert_eq!(verified.head, written);
    drop(policy);
    drop(groups);
    drop(engine);
    let (engine, groups) = open_engine(
        dir.path(),
        relay.public_key(),
        StoreOptions::default(),
        observer_options(),
    );
    check_models(&groups);
    let after = verify_database(&engine, &groups, None);
    assert_eq!(after.head, written);
    assert!(after.checkpoints > 0, "checkpoints were written under load");
    eprintln!(
        "load: {written} events appended by {WRITERS} writers ({:.0} events/s) and {reads} reads by {READERS} readers \
         ({:.0} reads/s) in {elapsed:.1} s, with {checkpoints} on-demand checkpoints and {evictions} evictions; \
         read-your-writes held; {} (group, projection) pairs equal a full replay before and after a restart",
        written as f64 / elapsed,
        reads as f64 / elapsed,
        after.pairs
    );
    assert!(written > 0 && reads > 0);
}
