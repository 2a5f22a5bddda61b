//! The batch import decides exactly as one-at-a-time appends would: a property test on
//! random NIP-29 logs (few keys, few groups, every moderation kind, invites, joins,
//! leaves, relay and forged state events, chat, repeats, events in two groups) compares
//! `highwater import` at random batch sizes with a loop that, for each event in turn,
//! validates it, asks `AccessPolicy::check_write` against the state so far and appends
//! it, on a second database. The log (accepted ids, in order) and the refusals (line,
//! reason) must be the same.

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{Prepared, Store, StoreOptions};
use nostr::prelude::{Event, Keys};
use proptest::prelude::*;
use serde_json::Value;

use support::{RELAY_PUBKEY, Sandbox, key, path_str, relay, sign, write_events};

/// One step of a random log, as drawn: who, what kind, which group, and a few numbers
/// that pick tags.
#[derive(Debug, Clone)]
struct Step {
    author: usize,
    kind: u16,
    group: usize,
    target: usize,
    role: usize,
    flag: usize,
    extra: u8,
}

fn step() -> impl Strategy<Value = Step> {
    let kinds = prop_oneof![
        6 => Just(9u16),
        4 => Just(9000u16),
        2 => Just(9001u16),
        2 => Just(9002u16),
        2 => Just(9007u16),
        1 => Just(9008u16),
        1 => Just(9009u16),
        2 => Just(9021u16),
        1 => Just(9022u16),
        1 => Just(39_000u16),
        1 => Just(39_001u16),
        1 => Just(39_002u16),
        1 => Just(1u16),
    ];
    (
        0..6usize,
        kinds,
        0..3usize,
        0..6usize,
        0..4usize,
        0..8usize,
        any::<u8>(),
    )
        .prop_map(|(author, kind, group, target, role, flag, extra)| Step {
            author,
            kind,
            group,
            target,
            role,
            flag,
            extra,
        })
}

/// Author 0 is the relay; 1–5 are users.
fn keys() -> Vec<Keys> {
    let mut all = vec![relay()];
    all.extend((1..=5).map(key));
    all
}

fn events(steps: &[Step]) -> Vec<Event> {
    let keys = keys();
    let groups = ["a", "b", "c"];
    let roles: [&[&str]; 4] = [&[], &["admin"], &["writer"], &["admin", "writer"]];
    let flags = [
        "private",
        "closed",
        "hidden",
        "restricted",
        "open",
        "public",
    ];
    // Group `a` exists from the start, so every log has something to decide against.
    let mut out: Vec<Event> = vec![sign(&keys[1], 9007, &[&["h", "a"]], "", 1_799_999_999)];
    for (i, s) in steps.iter().enumerate() {
        // Now and then, the same event again (a dump with repeats).
        if s.extra % 17 == 0
            && let Some(previous) = out.get(usize::from(s.extra) % (out.len().max(1)))
        {
            out.push(previous.clone());
            continue;
        }
        let at = 1_800_000_000 + i as u64;
        let signer = &keys[s.author];
        let g = groups[s.group];
        let target = keys[s.target].public_key().to_hex();
        let code = format!("code{}", s.flag % 2);
        let mut tags: Vec<Vec<String>> = Vec::new();
        let h = |tags: &mut Vec<Vec<String>>| tags.push(vec!["h".into(), g.into()]);
        match s.kind {
            9000 => {
                h(&mut tags);
                let mut p = vec!["p".to_owned(), target];
                p.extend(roles[s.role].iter().map(|r| (*r).to_owned()));
                tags.push(p);
                if s.extra % 5 == 0 {
                    tags.push(vec![
                        "p".into(),
                        keys[(s.target + 1) % 6].public_key().to_hex(),
                    ]);
                }
            }
            9001 => {
                h(&mut tags);
                tags.push(vec!["p".into(), target]);
            }
            9002 | 9007 => {
                h(&mut tags);
                tags.push(vec!["name".into(), format!("name {i}")]);
                for (bit, flag) in flags.iter().enumerate() {
                    if (s.flag + usize::from(s.extra)) >> bit & 1 == 1 && bit < 4 {
                        tags.push(vec![(*flag).into()]);
                    }
                }
            }
            9009 => {
                h(&mut tags);
                tags.push(vec!["code".into(), code]);
            }
            9021 => {
                h(&mut tags);
                if s.extra % 2 == 0 {
                    tags.push(vec!["code".into(), code]);
                }
            }
            39_000..=39_002 => {
                tags.push(vec!["d".into(), g.into()]);
                if s.kind == 39_000 {
                    tags.push(vec!["name".into(), "snapshot".into()]);
                } else {
                    tags.push(vec!["p".into(), target]);
                }
            }
            1 => {}
            _ => {
                h(&mut tags);
                // Now and then a second group: refused everywhere.
                if s.extra % 23 == 1 {
                    tags.push(vec!["h".into(), groups[(s.group + 1) % 3].into()]);
                }
            }
        }
        let tags: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        out.push(sign(signer, s.kind, &tags, "", at));
    }
    out
}

/// The reference: each event validated, decided and appended on its own.
fn one_at_a_time(dir: &std::path::Path, events: &[Event]) -> (Vec<String>, Vec<(u64, String)>) {
    let store = Store::open(dir, StoreOptions::default()).expect("open");
    let mut builder = Engine::builder(store.clone(), EngineOptions::default());
    let relay = relay().public_key();
    let groups = Groups::register(&mut builder, Nip29Config::new(relay)).expect("register");
    let _engine = builder.build().expect("engine");
    let policy = AccessPolicy::new(groups, Policy::default());
    let mut log = Vec::new();
    let mut refused = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let line = i as u64 + 1;
        match store.prepare(event) {
            Ok(Prepared::Duplicate(_)) => {}
            Err(error) => refused.push((line, error.to_string())),
            Ok(Prepared::Ready(prepared)) => {
                if let Err(rejection) = policy.check_write(event) {
                    refused.push((line, rejection.to_string()));
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

fn imported(
    sandbox: &Sandbox,
    name: &str,
    file: &std::path::Path,
    batch: usize,
) -> (Vec<String>, Vec<(u64, String)>) {
    let db = sandbox.db(name);
    let rejects = sandbox.path(&format!("{name}.rejects"));
    let batch = batch.to_string();
    let run = db.run(&[
        "import",
        "--relay-pubkey",
        RELAY_PUBKEY,
        "--batch",
        &batch,
        "--rejects",
        path_str(&rejects),
        path_str(file),
    ]);
    assert!(matches!(run.status.code(), Some(0 | 1)), "{run}");
    let export = sandbox.path(&format!("{name}.export"));
    let log = db
        .export(&export)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    let refused = support::read_lines(&rejects)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            (
                v["line"].as_u64().expect("line"),
                v["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    (log, refused)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn batch_import_decides_like_one_at_a_time(
        steps in prop::collection::vec(step(), 20..160),
        batch in prop_oneof![Just(1usize), 2..40usize, Just(16_384usize)],
    ) {
        let sandbox = Sandbox::new();
        let events = events(&steps);
        let file = sandbox.path("log.jsonl");
        write_events(&file, &events);
        let expected = one_at_a_time(&sandbox.path("reference"), &events);
        let got = imported(&sandbox, "batch", &file, batch);
        prop_assert_eq!(&got.0, &expected.0, "accepted log differs (batch {})", batch);
        prop_assert_eq!(&got.1, &expected.1, "refusals differ (batch {})", batch);
    }
}
