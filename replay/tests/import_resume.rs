//! An interrupted import, run again, ends with the log a single clean import of the
//! same file writes — byte for byte, refused events included: killed with SIGKILL again
//! and again at random moments, or stopped by a commit that fails (a full map). The
//! failure names the line up to which the log holds the file, from what was
//! committed. A finished import run again decides nothing; another file, or the same
//! file with other options, is decided from its first record.
//!
//! `HIGHWATER_IMPORT_EVENTS` (default 6,000) and `HIGHWATER_IMPORT_KILLS` (default 8)
//! size the kill test (RELIABILITY.md reports a long run).

#[allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_replay::import::{self, Options, Progress, Records, Resume};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::Event;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use support::imports::{import, summary};
use support::{
    Db, RELAY_PUBKEY, RELAY_SECRET, Sandbox, command, highwater, key, path_str, read_lines, relay,
    sign, write_events,
};

/// A generated workload (signed by the test relay key) that the write policy partly
/// refuses: forged moderation, joins without an invite, posts by non-members, …
fn workload(sandbox: &Sandbox, events: u64, seed: u32) -> std::path::PathBuf {
    let file = sandbox.path("workload.jsonl");
    highwater(&[
        "generate",
        "--groups",
        "30",
        "--events",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--relay-key",
        RELAY_SECRET,
        path_str(&file),
    ])
    .ok();
    file
}

/// Every entry of every table but the checkpoints (an accelerator, written whenever a
/// process had folded enough): the log, its indexes, the group table and the settings,
/// the import's recorded progress among them.
fn content(db: &Db) -> (u32, u64, u64) {
    {
        let store = Store::open(&db.path, StoreOptions::default()).expect("open");
        store.delete_checkpoints(None).expect("delete checkpoints");
    }
    highwater_store::content_digest(&db.path).expect("digest")
}

/// The log's events as `export` writes them, in log order.
fn exported(sandbox: &Sandbox, db: &Db, name: &str) -> Vec<String> {
    db.export(&sandbox.path(name))
}

/// Asserts that two logs (ids or exported lines, in log order) are the same, naming
/// the first place they differ rather than printing them.
#[track_caller]
fn assert_same_log<T: PartialEq + std::fmt::Debug>(got: &[T], expected: &[T], what: &str) {
    if let Some(at) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "{what}: the logs differ first at sequence {} ({} and {} events): {:?} where {:?} was expected",
            at + 1,
            got.len(),
            expected.len(),
            got[at],
            expected[at]
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: one log is a prefix of the other"
    );
}

/// `import --relay-pubkey RELAY --batch 100 FILE`: (exit status, stdout, stderr).
fn import_small_batches(db: &Db, file: &Path) -> (i32, String, String) {
    import(db, file, &["--batch", "100"])
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn an_import_killed_again_and_again_ends_with_the_clean_import_log() {
    let sandbox = Sandbox::new();
    let events = env_u64("HIGHWATER_IMPORT_EVENTS", 6_000);
    let kills = env_u64("HIGHWATER_IMPORT_KILLS", 8);
    let file = workload(&sandbox, events, 11);

    // The reference: one clean run.
    let clean = sandbox.db("clean");
    clean.run(&["init", "--relay-pubkey", RELAY_PUBKEY]).ok();
    let (code, stdout, stderr) = import_small_batches(&clean, &file);
    assert_eq!(code, 1, "some events are refused: {stdout}{stderr}");
    let reference = summary(&stdout);
    assert!(reference.rejected > 300, "{stdout}");
    let head = clean.head();

    // The same file into another database, killed at a random head each time.
    let db = sandbox.db("killed");
    db.run(&["init", "--relay-pubkey", RELAY_PUBKEY]).ok();
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let mut inside = 0;
    for _ in 0..kills {
        let reached = {
            let reader = Store::open(&db.path, StoreOptions::read_only()).expect("open");
            reader.head()
        };
        if reached >= head {
            break;
        }
        let target = reached + rng.random_range(1..=(head - reached).div_ceil(3));
        let mut child = command()
            .args(["--db", path_str(&db.path), "import"])
            .args(["--relay-pubkey", RELAY_PUBKEY, "--batch", "100"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the import");
        let reader = Store::open(&db.path, StoreOptions::read_only()).expect("open");
        let started = Instant::now();
        let finished = loop {
            if child.try_wait().expect("poll the import").is_some() {
                break true;
            }
            if reader.head() >= target {
                break false;
            }
            assert!(started.elapsed() < Duration::from_mins(2), "no progress");
            std::thread::sleep(Duration::from_millis(1));
        };
        if !finished {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
        let at = reader.head();
        if at > reached && at < head {
            inside += 1;
        }
        drop(reader);
    }
    assert!(inside > 0, "no kill landed inside the import");
    eprintln!(
        "{inside} kills inside an import of {events} records ({} refused, {head} accepted)",
        reference.rejected
    );

    let (code, stdout, stderr) = import_small_batches(&db, &file);
    assert_eq!(code, 1, "the clean import's exit status: {stdout}{stderr}");
    assert_same_log(
        &exported(&sandbox, &db, "killed.jsonl"),
        &exported(&sandbox, &clean, "clean.jsonl"),
        &format!("after {inside} kills inside the import"),
    );
    assert_eq!(content(&db), content(&clean), "every table, byte for byte");
    let stdout = db.run(&["verify"]).ok();
    assert!(stdout.contains(": 0 differences"), "{stdout}");
}

/// The test relay's key as the projections take it.
fn config() -> Nip29Config {
    Nip29Config::new(relay().public_key())
}

/// Imports `file` into the store at `dir` through the library, resuming where the
/// recorded progress says, with a map of at most `max_map_size` bytes and batches of
/// `batch`. The error, if the import stopped, with its whole chain of context.
fn import_library(
    dir: &Path,
    file: &Path,
    max_map_size: usize,
    batch: usize,
) -> Result<(), String> {
    let store = Store::open(
        dir,
        StoreOptions {
            map_size: 1 << 20,
            max_map_size,
            // Merge the index tail in every commit, as format 2 indexed every commit:
            // with the default tail a re-run on the same full map found room for one
            // more two-event batch (pages the first run could not reuse yet), which
            // breaks this test's premise that a full map stays full, not the resume.
            index_tail: 1,
            index_tail_share: 0,
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let mut builder = Engine::builder(store.clone(), EngineOptions::default());
    let groups = Groups::register(&mut builder, config()).expect("register");
    let engine = builder.build().expect("engine");
    let policy = AccessPolicy::new(groups, Policy::default());
    let input = std::fs::File::open(file).expect("the input");
    let (mut records, _) = Records::open(input, false, 1 << 20).expect("records");
    let start = Progress::start(b"test");
    let recorded = import::recorded(&store).expect("the recorded progress");
    let start = match import::skip_decided(&mut records, recorded, start.position).expect("skip") {
        Resume::Fresh => start,
        Resume::After(progress) => progress,
        Resume::Other { .. } => panic!("the recorded progress is of another input"),
    };
    let options = Options {
        batch,
        start,
        ..Options::default()
    };
    let result = import::import(&store, Some(&policy), &mut records, &options, None, &|_| {});
    drop(policy);
    drop(engine);
    result.map(|_| ()).map_err(|e| format!("{e:#}"))
}

/// The ids of the log, in log order.
fn log_ids(dir: &Path) -> Vec<String> {
    let store = Store::open(dir, StoreOptions::read_only()).expect("open");
    let mut ids = Vec::new();
    for seq in 1..=store.head() {
        let event = store.get(seq).expect("read").expect("dense");
        ids.push(event.id.to_hex());
    }
    ids
}

/// The relay's NIP-43 member list changed again and again (a relay-wide change: the
/// next event must wait for it to commit) between chat messages its creator posts in
/// one group: every forced commit ends just before an accepted event. The content pads
/// the events so that a small map fills after a few commits.
fn alternating(n: u64) -> Vec<Event> {
    let alice = key(1);
    let pad = "x".repeat(6_000);
    let at = 1_800_000_000;
    let mut events = vec![sign(&alice, 9007, &[&["h", "g"]], "", at)];
    for i in 0..n {
        let bob = key(2).public_key().to_hex();
        let (kind, tags): (u16, &[&[&str]]) = if i % 2 == 0 {
            (8000, &[&["-"], &["p", &bob]])
        } else {
            (8001, &[&["-"], &["p", &bob]])
        };
        events.push(sign(&relay(), kind, tags, "", at + 2 * i + 1));
        events.push(sign(
            &alice,
            9,
            &[&["h", "g"]],
            &format!("{i} {pad}"),
            at + 2 * i + 2,
        ));
    }
    events
}

#[test]
fn a_failed_commit_names_the_line_the_log_holds_and_a_rerun_resumes_there() {
    let sandbox = Sandbox::new();
    let events = alternating(400);
    let file = sandbox.path("alternating.jsonl");
    write_events(&file, &events);
    let line_of: HashMap<String, u64> = events
        .iter()
        .zip(1..)
        .map(|(e, line)| (e.id.to_hex(), line))
        .collect();

    let clean = sandbox.path("clean");
    import_library(&clean, &file, 1 << 30, 16_384).expect("the clean import");
    let expected = log_ids(&clean);
    assert_eq!(expected.len(), events.len(), "every event is accepted");

    // A map of 2 MiB holds a few hundred of these events: the import stops there.
    let db = sandbox.path("db");
    let error = import_library(&db, &file, 2 << 20, 16_384).expect_err("the map fills");
    let line: u64 = error
        .split_once("every accepted event up to line ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no line named: {error}"));
    assert!(error.contains("nothing after it was written"), "{error}");
    let partial = log_ids(&db);
    let held: Vec<&String> = expected.iter().filter(|id| line_of[*id] <= line).collect();
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "{error}"
    );
    assert_same_log(
        &partial.iter().collect::<Vec<_>>(),
        &held,
        &format!("the log holds exactly the events of lines up to {line}: {error}"),
    );
    assert!(
        error.contains(&format!("the log's head is {}", partial.len())),
        "{error}"
    );

    // Still full: a re-run writes nothing and names the same line.
    let again = import_library(&db, &file, 2 << 20, 16_384).expect_err("still full");
    assert!(
        again.contains(&format!("every accepted event up to line {line} ")),
        "{again}"
    );
    assert_same_log(&log_ids(&db), &partial, "a re-run on a full map");

    // Room again: the re-run resumes after that line and ends with the clean log.
    import_library(&db, &file, 1 << 30, 16_384).expect("the resumed import");
    assert_same_log(&log_ids(&db), &expected, "the resumed import");
}

#[test]
fn a_resumed_import_decides_only_what_is_new_and_other_options_start_over() {
    let sandbox = Sandbox::new();
    let file = workload(&sandbox, 1_500, 12);
    let lines = read_lines(&file);
    let clean = sandbox.db("clean");
    let (code, stdout, _) = import(&clean, &file, &[]);
    assert_eq!(code, 1, "{stdout}");

    // The file's first 1,200 lines (an export still being written), then all of it:
    // the second run decides the 300 new records only.
    let db = sandbox.db("db");
    let part = sandbox.path("part.jsonl");
    std::fs::write(&part, lines[..1_200].join("\n") + "\n").expect("write");
    import(&db, &part, &[]);
    let (code, stdout, _) = import(&db, &file, &[]);
    assert_eq!(code, 1, "the whole import's exit status: {stdout}");
    let rest = summary(&stdout);
    assert_eq!(
        rest.accepted + rest.duplicate + rest.rejected,
        300,
        "{stdout}"
    );
    assert!(stdout.contains("resumed after line 1200: an earlier run of this import decided the 1200 records before it"), "{stdout}");
    assert_same_log(
        &exported(&sandbox, &db, "db.jsonl"),
        &exported(&sandbox, &clean, "clean.jsonl"),
        "an import of a file that grew",
    );
    let head = db.head();

    // Once more: nothing to decide, and the exit status of the import that ran.
    let (code, stdout, _) = import(&db, &file, &[]);
    assert_eq!(code, 1, "{stdout}");
    let again = summary(&stdout);
    assert_eq!(
        (again.accepted, again.duplicate, again.rejected),
        (0, 0, 0),
        "{stdout}"
    );
    assert!(
        stdout.contains("nothing new: an earlier run of this import decided every record of it (through line 1500)"),
        "{stdout}"
    );
    assert_eq!(db.head(), head);

    // Other options decide other things: decided from the first record.
    let (code, stdout, _) = import(&db, &file, &["--kinds", "nip29"]);
    assert!(matches!(code, 0 | 1), "{stdout}");
    let other = summary(&stdout);
    assert_eq!(
        other.accepted + other.duplicate + other.rejected + other.skipped,
        1_500,
        "{stdout}"
    );
    assert!(!stdout.contains("resumed"), "{stdout}");

    // `--from-start`: every record decided again, against the log as it is.
    let (_, stdout, _) = import(&db, &file, &["--from-start"]);
    let redone = summary(&stdout);
    assert_eq!(
        redone.accepted + redone.duplicate + redone.rejected,
        1_500,
        "{stdout}"
    );
}

#[test]
fn an_unfinished_import_of_another_file_is_named_and_this_one_starts_over() {
    let sandbox = Sandbox::new();
    let file = workload(&sandbox, 3_000, 13);
    let db = sandbox.db("db");
    // The first half of the file, then the same half with its first event removed:
    // another input.
    let lines = read_lines(&file);
    let half = sandbox.path("half.jsonl");
    std::fs::write(&half, lines[..1_500].join("\n") + "\n").expect("write");
    let (_, stdout, _) = import(&db, &half, &[]);
    assert_eq!(summary(&stdout).head_after, db.head());
    // Recorded as finished: a stop before the end is what a kill leaves.
    let recorded = {
        let store = Store::open(&db.path, StoreOptions::default()).expect("open");
        let mut progress = import::recorded(&store).expect("read").expect("recorded");
        assert!(progress.complete);
        progress.complete = false;
        store
            .set_setting(import::PROGRESS_SETTING, &progress.encode())
            .expect("write");
        progress
    };
    assert_eq!(recorded.position.records, 1_500);
    let shifted = sandbox.path("shifted.jsonl");
    std::fs::write(&shifted, lines[1..1_500].join("\n") + "\n").expect("write");
    let (_, stdout, stderr) = import(&db, &shifted, &[]);
    assert!(
        stderr.contains("warning: the database records an unfinished import of another input (or with other options), stopped after line 1500"),
        "{stderr}"
    );
    let s = summary(&stdout);
    assert_eq!(s.accepted + s.duplicate + s.rejected, 1_499, "{stdout}");
}
