//! Crash torture: a child process ingests real signed NIP-29 events from several threads
//! (group commit), reads groups and writes checkpoints (periodic, on demand and by
//! per-group rebuilds) while the parent SIGKILLs it at random points — during start-up,
//! recovery, appends, checkpoint transactions — many times in a row on the same database.
//!
//! After every kill the parent reopens the database and checks:
//! - every event the child acknowledged (`ACK seq id` lines, printed and flushed after
//!   each acknowledged append) is in the log at the acknowledged sequence number;
//! - sequence numbers are dense from 1, and the group table agrees with the log;
//! - every checkpoint's watermark is within its group's log and its state equals the
//!   full replay of the group up to that watermark;
//! - for every group and projection, the served state (checkpoint plus tail) equals a
//!   full replay (`Engine::verify_group`).
//!
//! `HIGHWATER_CRASH_KILLS` sets the number of kills (default 20; RELIABILITY.md reports
//! a run with 1,000). The test binary re-executes itself as the child, selected by the
//! `HIGHWATER_TORTURE_CHILD` environment variable.

mod reliability_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use highwater_engine::EngineOptions;
use highwater_store::{AppendOutcome, StoreOptions};
use highwater_workload::{WorkloadSpec, generate};
use nostr::prelude::{Event, EventId, Keys, PublicKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reliability_support::{
    env_u64, key, observer_options, open_engine, signed, tag, verify_database,
};

const TEST_NAME: &str = "sigkill_torture_loses_no_acknowledged_event_and_no_checkpoint_lies";
const CHILD_ENV: &str = "HIGHWATER_TORTURE_CHILD";
const POOL_ENV: &str = "HIGHWATER_TORTURE_POOL";
const START_ENV: &str = "HIGHWATER_TORTURE_START";
const RELAY_ENV: &str = "HIGHWATER_TORTURE_RELAY";
const SEED_ENV: &str = "HIGHWATER_TORTURE_SEED";
const APPENDERS: usize = 4;
/// Groups of the traffic the child signs itself once the generated pool is used up.
const FRESH_GROUPS: usize = 6;
/// A child left behind by a failed parent stops on its own after this long.
const CHILD_LIFETIME: Duration = Duration::from_mins(1);

#[derive(Debug, Default)]
struct Totals {
    kills: u64,
    early_kills: u64,
    acked: u64,
    duplicates_reported: u64,
    torn_lines: u64,
    lost: u64,
    checkpoints_checked: u64,
    pairs_verified: u64,
    final_head: u64,
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one torture scenario, read top to bottom"
)]
fn sigkill_torture_loses_no_acknowledged_event_and_no_checkpoint_lies() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        run_child(Path::new(&dir));
    }
    let kills = env_u64("HIGHWATER_CRASH_KILLS", 20);
    let pool_size = env_u64("HIGHWATER_CRASH_POOL", 3_000) as usize;
    let seed = env_u64("HIGHWATER_CRASH_SEED", 29);
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    let pool_path = work.path().join("pool.jsonl");
    let spec = WorkloadSpec {
        groups: 24,
        events: pool_size,
        seed,
        relay_secret: None,
    };
    let relay = spec.relay_keys().unwrap().public_key();
    {
        let mut out = BufWriter::new(std::fs::File::create(&pool_path).unwrap());
        generate(&spec, &|_| {}, &mut |event| {
            out.write_all(event.as_json().as_bytes())?;
            out.write_all(b"\n")
        })
        .unwrap();
        out.flush().unwrap();
    }

    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut acked: HashMap<[u8; 32], u64> = HashMap::new();
    let mut pool_acked = vec![false; pool_size];
    let mut totals = Totals::default();
    for cycle in 0..kills {
        let start = pool_acked
            .iter()
            .position(|done| !done)
            .unwrap_or(pool_size);
        let cycle_seed = rng.random::<u64>();
        let lines = run_and_kill(
            work.path(),
            &db,
            &pool_path,
            start,
            relay,
            cycle_seed,
            &mut rng,
            &mut totals,
        );
        let mut torn = 0;
        for line in &lines {
            match parse(line) {
                Parsed::Ack { seq, id, pool } | Parsed::Dup { seq, id, pool } => {
                    if let Some(previous) = acked.insert(id, seq) {
                        assert_eq!(
                            previous,
                            seq,
                            "cycle {cycle}: {} acknowledged at two sequence numbers",
                            hex(&id)
                        );
                        totals.duplicates_reported += 1;
                    } else {
                        totals.acked += 1;
                    }
                    if let Some(index) = pool {
                        pool_acked[index] = true;
                    }
                }
                Parsed::Torn => torn += 1,
                Parsed::Other => {}
            }
        }
        assert!(
            torn <= 1,
            "cycle {cycle}: {torn} torn lines; only the line in flight may be cut"
        );
        totals.torn_lines += torn;

        // Reopen as the next process would, and check everything.
        let (engine, groups) = open_engine(&db, relay, StoreOptions::default(), observer_options());
        let mut ids = HashMap::new();
        let verified = verify_database(&engine, &groups, Some(&mut ids));
        let lost: Vec<_> = acked
            .iter()
            .filter(|(id, seq)| ids.get(*id) != Some(seq))
            .collect();
        totals.lost += lost.len() as u64;
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged event(s) lost or moved, e.g. {} at {}",
            lost.len(),
            hex(lost[0].0),
            lost[0].1
        );
        totals.checkpoints_checked += verified.checkpoints as u64;
        totals.pairs_verified += verified.pairs as u64;
        totals.final_head = verified.head;
        if cycle % 50 == 0 || cycle + 1 == kills {
            eprintln!(
                "cycle {cycle}: head {}, {} groups, {} acknowledged so far, {} checkpoints checked now, {:.1}s",
                verified.head,
                verified.groups,
                acked.len(),
                verified.checkpoints,
                started.elapsed().as_secs_f64()
            );
        }
        drop(groups);
        drop(engine);
    }
    eprintln!(
        "crash torture: {} kills ({} during start-up), {} events acknowledged, {} lost, \
         final head {}, {} re-acknowledged as duplicates, {} torn lines, {} checkpoint checks, \
         {} (group, projection) verifications, {:.1}s",
        totals.kills,
        totals.early_kills,
        totals.acked,
        totals.lost,
        totals.final_head,
        totals.duplicates_reported,
        totals.torn_lines,
        totals.checkpoints_checked,
        totals.pairs_verified,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(totals.kills, kills);
    assert_eq!(totals.lost, 0);
    assert!(totals.acked > 0, "the children acknowledged nothing");
}

enum Parsed {
    Ack {
        seq: u64,
        id: [u8; 32],
        pool: Option<usize>,
    },
    Dup {
        seq: u64,
        id: [u8; 32],
        pool: Option<usize>,
    },
    Torn,
    Other,
}

fn parse(line: &str) -> Parsed {
    let (dup, rest) = if let Some(rest) = line.strip_prefix("ACK ") {
        (false, rest)
    } else if let Some(rest) = line.strip_prefix("DUP ") {
        (true, rest)
    } else {
        // Test harness chatter, READY, or the start of a line cut before its prefix.
        let cut = !line.is_empty() && ("ACK".starts_with(line) || "DUP".starts_with(line));
        return if cut { Parsed::Torn } else { Parsed::Other };
    };
    let mut parts = rest.split(' ');
    let parsed = (|| {
        let seq: u64 = parts.next()?.parse().ok()?;
        let id = EventId::from_hex(parts.next().filter(|id| id.len() == 64)?)
            .ok()?
            .to_bytes();
        let pool = match parts.next()? {
            "-" => None,
            index => Some(index.parse().ok()?),
        };
        parts.next().is_none().then_some((seq, id, pool))
    })();
    match parsed {
        Some((seq, id, pool)) if dup => Parsed::Dup { seq, id, pool },
        Some((seq, id, pool)) => Parsed::Ack { seq, id, pool },
        None => Parsed::Torn,
    }
}

fn hex(id: &[u8; 32]) -> String {
    EventId::from_byte_array(*id).to_hex()
}

/// Runs one child and kills it: either at a random moment of its start-up (one cycle in
/// eight) or a random 10–250 ms after it is ready. Returns every line it printed.
#[expect(
    clippy::too_many_arguments,
    reason = "one cycle's parameters, used once"
)]
fn run_and_kill(
    work: &Path,
    db: &Path,
    pool: &Path,
    start: usize,
    relay: PublicKey,
    seed: u64,
    rng: &mut ChaCha8Rng,
    totals: &mut Totals,
) -> Vec<String> {
    let stderr_path: PathBuf = work.join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .env(POOL_ENV, pool)
        .env(START_ENV, start.to_string())
        .env(RELAY_ENV, relay.to_hex())
        .env(SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print `test NAME ... ` just before it, on the same line.
            if line.ends_with("READY") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if rng.random_ratio(1, 8) {
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        totals.early_kills += 1;
    } else {
        let ready = ready_rx.recv_timeout(Duration::from_mins(1));
        assert!(
            ready.is_ok(),
            "the child never became ready: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(rng.random_range(10..250)));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the child ended on its own ({status}) instead of being killed:\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    totals.kills += 1;
    reader.join().unwrap()
}

/// The child: loads the unacknowledged rest of the pool, then appends from several
/// threads (pool events first, then traffic it signs itself), reads groups and writes
/// checkpoints, until it is killed.
fn run_child(dir: &Path) -> ! {
    let deadline = Instant::now() + CHILD_LIFETIME;
    let var =
        |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for the child"));
    let relay = PublicKey::from_hex(&var(RELAY_ENV)).unwrap();
    let start: usize = var(START_ENV).parse().unwrap();
    let seed: u64 = var(SEED_ENV).parse().unwrap();
    let text = std::fs::read_to_string(var(POOL_ENV)).unwrap();
    let pool: Vec<Event> = text
        .lines()
        .skip(start)
        .map(|l| Event::from_json(l).unwrap())
        .collect();
    let mut names: Vec<String> = (0..FRESH_GROUPS).map(|g| format!("fresh-{g}")).collect();
    names.extend(pool.iter().filter_map(group_of));
    names.sort();
    names.dedup();

    let (engine, groups) = open_engine(
        dir,
        relay,
        StoreOptions::default(),
        EngineOptions {
            checkpoint_every: 4,
            checkpoint_on_close: false,
        },
    );
    println!("READY");
    std::io::stdout().flush().unwrap();
    let next = AtomicUsize::new(0);
    let members: Vec<String> = (1..=24).map(|n| key(n).public_key().to_hex()).collect();
    std::thread::scope(|scope| {
        for thread in 0..APPENDERS {
            let (engine, pool, next, members) = (&engine, &pool, &next, &members);
            scope.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (thread as u64 + 1));
                let author = key(100 + thread as u8);
                for i in 0u64.. {
                    if Instant::now() > deadline {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let (event, label) = match pool.get(index) {
                        Some(event) => (event.clone(), (start + index).to_string()),
                        None => (
                            fresh_event(&mut rng, &author, members, seed, thread, i),
                            "-".to_owned(),
                        ),
                    };
                    let (word, seq) = match engine.append(&event).unwrap() {
                        AppendOutcome::Appended(seq) => ("ACK", seq),
                        AppendOutcome::Duplicate(seq) => ("DUP", seq),
                    };
                    // One write per line, so a kill can cut at most the line in flight.
                    let line = format!("{word} {seq} {} {label}\n", event.id.to_hex());
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return; // the parent is gone
                    }
                }
            });
        }
        // A reader, so that groups get loaded and live folds make checkpoints due.
        let (groups_ref, names_ref, members_ref) = (&groups, &names, &members);
        scope.spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xabc);
            let probe = PublicKey::from_hex(&members_ref[0]).unwrap();
            while Instant::now() < deadline {
                let group = &names_ref[rng.random_range(0..names_ref.len())];
                groups_ref.is_member(group, &probe).unwrap();
                groups_ref.metadata(group).unwrap();
                groups_ref.members_with_roles(group).unwrap();
            }
        });
        // On-demand checkpoints of every changed group, and now and then a per-group
        // rebuild, which replaces that group's checkpoints.
        let (engine_ref, names_ref) = (&engine, &names);
        scope.spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xdef);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(rng.random_range(1..12)));
                engine_ref.checkpoint().unwrap();
                if rng.random_ratio(1, 10) {
                    let group = &names_ref[rng.random_range(0..names_ref.len())];
                    engine_ref.rebuild(None, Some(group)).unwrap();
                }
            }
        });
    });
    std::process::exit(0);
}

fn group_of(event: &Event) -> Option<String> {
    let name = if (39_000..=39_003).contains(&event.kind.as_u16()) {
        "d"
    } else {
        "h"
    };
    event
        .tags
        .iter()
        .find(|t| t.kind() == name)
        .and_then(|t| t.content())
        .map(str::to_owned)
}

/// NIP-29 traffic signed by the child: creations, deletions, puts with roles, removals,
/// metadata edits, invites and chat, over a few groups and members.
fn fresh_event(
    rng: &mut ChaCha8Rng,
    author: &Keys,
    members: &[String],
    seed: u64,
    thread: usize,
    i: u64,
) -> Event {
    let group = format!("fresh-{}", rng.random_range(0..FRESH_GROUPS));
    let h = tag(&["h", &group]);
    let member = &members[rng.random_range(0..members.len())];
    let unique = format!("{seed}/{thread}/{i}");
    let at = 1_700_000_000 + i;
    let roll = rng.random_range(0..100);
    let (kind, tags, content) = match roll {
        0..5 => (9007, vec![h, tag(&["name", &unique])], String::new()),
        5..7 => (9008, vec![h], unique),
        7..35 => {
            let mut p = vec!["p".to_owned(), member.clone()];
            for role in ["admin", "writer", "moderator"] {
                if rng.random_bool(0.3) {
                    p.push(role.to_owned());
                }
            }
            (9000, vec![h, p], unique)
        }
        35..50 => (9001, vec![h, tag(&["p", member])], unique),
        50..58 => {
            let mut tags = vec![h, tag(&["name", &unique])];
            for flag in ["private", "closed", "hidden", "restricted"] {
                if rng.random_bool(0.3) {
                    tags.push(tag(&[flag]));
                }
            }
            (9002, tags, String::new())
        }
        58..62 => (9009, vec![h, tag(&["code", &unique])], String::new()),
        _ => (9, vec![h], unique),
    };
    signed(author, kind, &tags, &content, at)
}
