//! The index tail (format 4) across processes and crashes: a child process appends
//! with a small `index_tail`, so that every few commits merge the tail into the
//! indexes, and is killed with SIGKILL between merges, inside a merge's transaction
//! (stopped there by `on_index_merge`) and at whatever moment the kill lands; after
//! every kill this process — which keeps the database open throughout and so follows
//! the child's commits and merges — checks that every acknowledged event is found by
//! id and by group, that appending it again is a duplicate, and that the indexes and
//! the tail describe the log exactly (`verify_indexes`). A last child opens the
//! database afresh (recovering the tail from the log) and checks every record.
//! The upgrade from format 2 is killed before and after its writes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{READY, child_command, in_child, run_child};
use highwater_store::{
    AppendOutcome, Store, StoreOptions, UpgradeOutcome, content_digest, downgrade_to_v2, upgrade,
};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};

/// Records in the tail at which a commit merges: small, so kills meet merges often.
const TAIL: u64 = 5;
/// The share of the indexed records the tail may grow to, past `TAIL`.
const SHARE: u64 = 8;
const GROUPS: [&str; 3] = ["a", "b", "c"];
/// Printed by a child stopped inside a merge's transaction.
const PAUSED: &str = "paused inside a merge at watermark";

fn merging() -> StoreOptions {
    StoreOptions {
        index_tail: TAIL,
        // The bound grows with the index as it does by default, from the floor of
        // `TAIL` to past it by the last rounds, and kills still meet merges often.
        index_tail_share: SHARE,
        ..StoreOptions::default()
    }
}

/// Event `i` of kill round `round`: the same id in every process (fixed key and
/// time; the signature may differ, the id does not).
fn event(round: u64, i: u64) -> Event {
    let keys =
        Keys::parse("6b911fd37cdf5c81d4c0adb1ab7fa822ed253ab0ad9aa18d77257c88b29b718e").unwrap();
    let group = GROUPS[usize::try_from(i).unwrap() % GROUPS.len()];
    EventBuilder::new(Kind::from(9u16), format!("round {round} event {i}"))
        .tags(vec![Tag::parse(["h", group]).unwrap()])
        .custom_created_at(Timestamp::from_secs(1_700_000_000 + i))
        .finalize(&keys)
        .unwrap()
}

fn child_step(step: &str, dir: &Path) {
    if step == "check" {
        let store = Store::open(dir, merging()).unwrap();
        check_log(&store);
        return;
    }
    let (pause, round) = match step.split_once(' ') {
        Some(("append-pause", round)) => (true, round.parse().unwrap()),
        Some(("append", round)) => (false, round.parse().unwrap()),
        _ => panic!("unknown child step {step}"),
    };
    let store = Store::open(dir, merging()).unwrap();
    if pause {
        highwater_store::on_index_merge(|watermark| {
            println!("{PAUSED} {watermark}");
            loop {
                std::thread::sleep(std::time::Duration::from_hours(1));
            }
        });
    }
    println!("{READY}");
    for i in 0.. {
        match store.append(&event(round, i)).unwrap() {
            AppendOutcome::Appended(seq) => println!("acked {i} {seq}"),
            AppendOutcome::Duplicate(seq) => panic!("event {i} is new but found at {seq}"),
        }
    }
}

/// Every record of the log is found by its id and in its group's scan, and the
/// indexes with the tail describe the log exactly.
fn check_log(store: &Store) {
    store.refresh().unwrap();
    let report = store.verify_indexes().unwrap();
    assert_eq!(report.records, store.head(), "no holes without compaction");
    // The bound: below the floor, or the share of the indexed records past it.
    assert!(
        report.tail < TAIL.max(report.watermark / SHARE),
        "{report:?}"
    );
    let mut by_group: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut ids = Vec::new();
    store
        .scan(1, |seq, event| {
            let group = event.group_id().unwrap().to_owned();
            by_group.entry(group).or_default().push(seq);
            ids.push((seq, event.to_event(seq).unwrap().id));
            ControlFlow::Continue(())
        })
        .unwrap();
    for (seq, id) in ids {
        assert_eq!(store.seq_of(&id).unwrap(), Some(seq));
        assert!(store.has_id_prefix(&id.as_bytes()[..5]).unwrap());
    }
    for (group, seqs) in by_group {
        let no = store.group(&group).unwrap().no;
        let mut scanned = Vec::new();
        store
            .scan_group(
                no,
                0,
                |_| true,
                |seq, _| {
                    scanned.push(seq);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(scanned, seqs, "group {group}");
        assert_eq!(store.group(&group).unwrap().head, *seqs.last().unwrap());
    }
}

#[test]
fn sigkill_between_and_inside_index_merges_loses_nothing_and_lookups_stay_exact() {
    const TEST: &str =
        "tail::sigkill_between_and_inside_index_merges_loses_nothing_and_lookups_stay_exact";
    in_child(child_step);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), merging()).unwrap();
    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    let mut paused = 0;
    for round in 0..18u64 {
        let pause = round % 3 == 2;
        let step = format!("{} {round}", if pause { "append-pause" } else { "append" });
        let mut command = Command::new(std::env::current_exe().unwrap());
        child_command(&mut command, TEST, &step, dir.path());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after this many acknowledgements (or once stopped inside a merge).
        let want = 1 + (round * 7) % 12;
        let mut got = 0;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(ack) = line.strip_prefix("acked ") {
                let (i, seq) = ack.split_once(' ').unwrap();
                acked.push((round, i.parse().unwrap(), seq.parse().unwrap()));
                got += 1;
                if !pause && got == want {
                    break;
                }
            } else if line.contains(PAUSED) {
                paused += 1;
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        // This process saw the child's commits and merges only through the log.
        check_log(&store);
        for &(round, i, seq) in &acked {
            let event = event(round, i);
            assert_eq!(
                store.get_by_id(&event.id).unwrap().map(|(s, _)| s),
                Some(seq)
            );
            assert_eq!(store.append(&event).unwrap(), AppendOutcome::Duplicate(seq));
        }
    }
    assert_eq!(paused, 6, "every pausing round stopped inside a merge");
    let merged = store.verify_indexes().unwrap().watermark;
    assert!(
        merged / SHARE > TAIL,
        "the last rounds ran with a bound above the floor ({merged} indexed)"
    );
    assert!(merged > 0, "the children merged");
    drop(store);
    // A fresh process recovers the tail from the log.
    run_child(TEST, "check", dir.path());
    // And this one too, once its handle is gone.
    check_log(&Store::open(dir.path(), merging()).unwrap());
}

/// The upgrade from format 2 writes the index watermark and the version in one
/// transaction: killed before or after its writes, the database is format 2 as it
/// was; run to its end, every record is indexed.
#[test]
fn sigkill_inside_an_upgrade_from_format_2_leaves_format_2_untouched() {
    const TEST: &str = "tail::sigkill_inside_an_upgrade_from_format_2_leaves_format_2_untouched";
    in_child(|step, dir| {
        let stop: u64 = step.strip_prefix("upgrade-stop ").unwrap().parse().unwrap();
        upgrade(dir, &mut |done, total| {
            if done == stop {
                println!("{READY} {done} of {total}");
                loop {
                    std::thread::sleep(std::time::Duration::from_hours(1));
                }
            }
        })
        .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..23).map(|i| event(0, i)).collect();
    {
        let store = Store::open(dir.path(), merging()).unwrap();
        for event in &events {
            store.append(event).unwrap();
        }
        // Some records indexed, some in the tail: format 2 has them all indexed.
        let report = store.verify_indexes().unwrap();
        assert!(report.watermark > 0 && report.tail > 0, "{report:?}");
    }
    downgrade_to_v2(dir.path()).unwrap();
    let v2 = content_digest(dir.path()).unwrap();
    assert_eq!(v2.0, 2);
    for stop in [0, 1] {
        let mut command = Command::new(std::env::current_exe().unwrap());
        child_command(
            &mut command,
            TEST,
            &format!("upgrade-stop {stop}"),
            dir.path(),
        );
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        // The test harness's "test NAME ... " may share the line.
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .find(|line| line.contains(READY))
            .unwrap();
        assert!(line.ends_with(&format!("{READY} {stop} of 2")), "{line}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            content_digest(dir.path()).unwrap(),
            v2,
            "killed at step {stop}"
        );
    }
    let outcome = upgrade(dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(
        outcome,
        UpgradeOutcome::Upgraded {
            from: 2,
            to: 4,
            events: 0,
            checkpoints: 0
        }
    );
    let store = Store::open(dir.path(), merging()).unwrap();
    let report = store.verify_indexes().unwrap();
    assert_eq!((report.records, report.watermark, report.tail), (23, 23, 0));
    check_log(&store);
    for (seq, event) in (1..).zip(&events) {
        assert_eq!(store.append(event).unwrap(), AppendOutcome::Duplicate(seq));
    }
}
