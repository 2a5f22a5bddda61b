//! Crash consistency: a real child process appends from several threads and is killed
//! with SIGKILL; after reopening, every acknowledged event must be in the log at the
//! sequence number it was acknowledged with, and the log must have no gaps.
//!
//! The test binary re-executes itself: with `HIGHWATER_CRASH_CHILD=<dir>` set, the test
//! function below acts as the child and appends until it is killed, printing
//! `ACK <seq> <event id hex>` after each acknowledged append.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use highwater_store::{AppendOutcome, Store, StoreOptions};
use nostr::prelude::{EventBuilder, EventId, FinalizeEvent, Keys, Kind, Tag};

const CHILD_ENV: &str = "HIGHWATER_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_during_appends_loses_no_acknowledged_event";
const CYCLES: u64 = 5;
const CHILD_THREADS: usize = 6;
/// A child left behind by a failed parent stops on its own after this long.
const CHILD_LIFETIME: Duration = Duration::from_mins(1);

#[test]
fn sigkill_during_appends_loses_no_acknowledged_event() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        run_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    // id → acknowledged seq, over every cycle.
    let mut acked: BTreeMap<EventId, u64> = BTreeMap::new();
    for cycle in 0..CYCLES {
        let (new, torn) = run_and_kill(dir.path(), 200 + cycle * 50, cycle * 7);
        assert!(new.len() >= 200, "cycle {cycle}: only {} acks", new.len());
        for (id, seq) in new {
            assert_eq!(acked.insert(id, seq), None, "{id} acknowledged twice");
        }
        let head = verify(dir.path(), &acked);
        // Committed but never acknowledged (killed between commit and print) is allowed.
        eprintln!(
            "cycle {cycle}: {} acknowledged, head {head}, {torn} torn line(s)",
            acked.len()
        );
    }
}

/// Starts a child on `dir`, waits for at least `min_acks` acknowledgements plus
/// `extra_ms`, kills it with SIGKILL and returns every acknowledgement it printed, and
/// how many of its lines were cut off mid-write.
fn run_and_kill(dir: &Path, min_acks: u64, extra_ms: u64) -> (Vec<(EventId, u64)>, usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    let mut torn = 0;
    let started = Instant::now();
    while (acks.len() as u64) < min_acks {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the child made too little progress"
        );
        let line = lines
            .next()
            .expect("the child exited before it was killed")
            .unwrap();
        parse(&line, &mut acks, &mut torn);
    }
    std::thread::sleep(Duration::from_millis(extra_ms));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    // Lines written before the kill are still in the pipe.
    for line in lines {
        parse(&line.unwrap(), &mut acks, &mut torn);
    }
    (acks, torn)
}

fn parse(line: &str, acks: &mut Vec<(EventId, u64)>, torn: &mut usize) {
    let Some(rest) = line.strip_prefix("ACK ") else {
        return; // test harness chatter
    };
    let parsed = rest.split_once(' ').and_then(|(seq, id)| {
        let id = (id.len() == 64).then(|| EventId::from_hex(id).ok())??;
        Some((id, seq.parse().ok()?))
    });
    match parsed {
        Some(ack) => acks.push(ack),
        // Only the line being written at the kill can be incomplete.
        None => *torn += 1,
    }
    assert!(*torn <= 1, "more than one torn line: {line:?}");
}

/// Reopens the log and checks it against the acknowledgements. Returns the head.
fn verify(dir: &Path, acked: &BTreeMap<EventId, u64>) -> u64 {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let head = store.head();
    let mut expected_seq = 1;
    let mut by_group: BTreeMap<String, u64> = BTreeMap::new();
    store
        .scan(1, |seq, event| {
            assert_eq!(seq, expected_seq, "the log has a gap");
            expected_seq += 1;
            if let Some(group) = event.first_tag_value("h") {
                *by_group.entry(group.to_owned()).or_default() += 1;
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(expected_seq - 1, head, "dense 1..=head");
    for (id, seq) in acked {
        let (stored_seq, event) = store
            .get_by_id(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged event {id} (seq {seq}) is missing"));
        assert_eq!(stored_seq, *seq, "{id} moved");
        assert_eq!(event.id, *id);
        assert!(event.verify().is_ok());
    }
    // The group table agrees with the log.
    let groups: BTreeMap<String, u64> = store
        .groups()
        .into_iter()
        .map(|g| (g.name.to_string(), g.count))
        .collect();
    assert_eq!(groups, by_group);
    for group in store.groups() {
        let mut last = 0;
        let scan = store
            .scan_group(
                group.no,
                0,
                |_| true,
                |seq, _| {
                    last = seq;
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!((last, scan.events), (group.head, group.count));
    }
    head
}

/// The child: appends from several threads until killed, announcing each ack.
fn run_child(dir: &Path) -> ! {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let deadline = Instant::now() + CHILD_LIFETIME;
    std::thread::scope(|scope| {
        for thread in 0..CHILD_THREADS {
            let store = store.clone();
            scope.spawn(move || {
                let keys = Keys::generate();
                let group = format!("crash-{}", thread % 3);
                for i in 0u64.. {
                    if Instant::now() > deadline {
                        return;
                    }
                    let event = EventBuilder::new(Kind::from(9), format!("{thread}/{i}"))
                        .tag(Tag::parse(["h", group.as_str()]).unwrap())
                        .finalize(&keys)
                        .unwrap();
                    let AppendOutcome::Appended(seq) = store.append(&event).unwrap() else {
                        panic!("a fresh event was a duplicate");
                    };
                    // One write per line, so a kill can tear at most the line in flight.
                    let line = format!("ACK {seq} {}\n", event.id.to_hex());
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        // The parent is gone.
                        return;
                    }
                }
            });
        }
    });
    std::process::exit(0);
}
