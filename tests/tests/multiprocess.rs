//! One database, many processes: every process answers exactly (equal to a full replay
//! of the log at that moment) whoever wrote, writers in different processes never
//! collide, and a killed writer loses nothing it acknowledged — with real child
//! processes coordinated through pipes (see `multiprocess_support`).

mod multiprocess_support;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use highwater_store::{Store, StoreOptions};
use multiprocess_support::{
    Worker, answer, engine_over, group_names, serve_if_child, workload, write_jsonl,
};
use serde_json::Value;

/// The full-replay answers for `names`, from a read-only open of `dir` in this process.
fn replayed(dir: &std::path::Path, names: &[String]) -> Value {
    let store = Store::open(dir, StoreOptions::read_only()).expect("open read-only");
    let (_engine, groups) = engine_over(store);
    answer(&groups.oracle(), names)
}

fn parse_answer(line: &str) -> Value {
    serde_json::from_str(line.strip_prefix("answer ").expect("an answer")).expect("JSON")
}

#[test]
fn a_reader_process_answers_exactly_after_another_process_appends() {
    serve_if_child();
    let test = "a_reader_process_answers_exactly_after_another_process_appends";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let events = workload(3_000, 40, 11);
    let names = group_names(&events);
    let batches: Vec<_> = events.chunks(500).collect();

    let mut reader = Worker::spawn(test);
    let mut writer = Worker::spawn(test);
    // The writer creates the database; the reader opens it before anything is written
    // and loads every group (all empty), so later answers exercise loaded groups falling
    // behind and groups created by the other process. Both start with a 1 MiB map: the
    // writer grows it, and the reader must adopt the new size (`MDB_MAP_RESIZED`).
    assert_eq!(
        writer.call(&format!("open {} 1048576", db.display())),
        "ok 0"
    );
    assert_eq!(
        reader.call(&format!("open {} 1048576", db.display())),
        "ok 0"
    );
    let ask = format!("ask {}", names.join(" "));
    assert_eq!(parse_answer(&reader.call(&ask)), replayed(&db, &names));

    let mut appended = 0;
    for (i, batch) in batches.iter().enumerate() {
        let file = dir.path().join(format!("batch-{i}.jsonl"));
        write_jsonl(&file, batch);
        let ack = writer.call(&format!("append {}", file.display()));
        appended += batch.len();
        assert_eq!(ack, format!("ack {appended} {appended}"));
        // The writer is idle until the next command: the log is what it acknowledged.
        assert_eq!(reader.call("head"), format!("head {appended}"));
        let served = parse_answer(&reader.call(&ask));
        let expected = replayed(&db, &names);
        assert_eq!(served, expected, "after batch {i}");
        // Every group of the batch exists for the reader now.
        let existing = served
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["exists"] == Value::Bool(true))
            .count();
        eprintln!("batch {i}: {existing} groups exist, answers equal a full replay");
    }
    reader.exit();
    writer.exit();
}

/// Reads `(seq, id)` of every event in the log, checking that sequence numbers are
/// dense from 1.
fn log_ids(store: &Store) -> Vec<String> {
    let mut ids = Vec::new();
    store
        .scan(1, |seq, event| {
            assert_eq!(seq, ids.len() as u64 + 1, "sequence numbers are dense");
            ids.push(hex::encode(event.id()));
            ControlFlow::Continue(())
        })
        .unwrap();
    ids
}

/// After concurrent writers: every event present exactly once, dense sequence
/// numbers, group numbers dense and unique, and every group of every projection equal
/// to a full replay.
fn check_database(db: &std::path::Path, expected: &BTreeSet<String>) {
    let store = Store::open(db, StoreOptions::read_only()).unwrap();
    let ids = log_ids(&store);
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "an event is in the log twice");
    assert_eq!(
        &unique, expected,
        "the log holds exactly the events written"
    );
    assert_eq!(store.head(), ids.len() as u64);
    let groups = store.groups();
    let numbers: Vec<u32> = groups.iter().map(|g| g.no).collect();
    assert_eq!(
        numbers,
        (0..groups.len() as u32).collect::<Vec<_>>(),
        "group numbers dense"
    );
    let names: BTreeSet<&str> = groups.iter().map(|g| &*g.name).collect();
    assert_eq!(names.len(), groups.len(), "a group has two numbers");
    let (engine, _groups) = engine_over(store.clone());
    for g in &groups {
        for p in engine.projections() {
            assert_eq!(
                engine.verify_group(&p, &g.name).unwrap(),
                None,
                "{p} {}",
                g.name
            );
        }
    }
}

#[test]
fn two_importers_at_once_write_every_event_exactly_once() {
    serve_if_child();
    let test = "two_importers_at_once_write_every_event_exactly_once";
    let dir = tempfile::tempdir().unwrap();
    let first = workload(2_000, 30, 21);
    let second = workload(2_000, 30, 22);
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    write_jsonl(&a, &first);
    write_jsonl(&b, &second);
    let id_set = |events: &[nostr::prelude::Event]| -> BTreeSet<String> {
        events.iter().map(|e| e.id.to_hex()).collect()
    };

    // Different files at once, then the same file twice at once.
    for (name, files, expected) in [
        (
            "different",
            [&a, &b],
            id_set(&first).union(&id_set(&second)).cloned().collect(),
        ),
        ("same", [&a, &a], id_set(&first)),
    ] {
        let db = dir.path().join(name);
        let mut workers = [Worker::spawn(test), Worker::spawn(test)];
        for w in &mut workers {
            assert!(
                w.call(&format!("open {} 1073741824", db.display()))
                    .starts_with("ok ")
            );
        }
        // Both start before either is waited for: their batches interleave.
        for (w, file) in workers.iter_mut().zip(files) {
            w.send(&format!("append {}", file.display()));
        }
        for w in &mut workers {
            assert!(w.line().starts_with("ack "));
        }
        for w in workers {
            w.exit();
        }
        check_database(&db, &expected);
    }
}

#[test]
fn a_writer_killed_while_another_writes_loses_nothing_acknowledged() {
    serve_if_child();
    let test = "a_writer_killed_while_another_writes_loses_nothing_acknowledged";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let doomed_events = workload(1_500, 10, 31);
    let survivor_events = workload(400, 10, 32);
    let (d, s) = (dir.path().join("d.jsonl"), dir.path().join("s.jsonl"));
    write_jsonl(&d, &doomed_events);
    write_jsonl(&s, &survivor_events);

    let mut doomed = Worker::spawn(test);
    let mut survivor = Worker::spawn(test);
    for w in [&mut doomed, &mut survivor] {
        assert!(
            w.call(&format!("open {} 1073741824", db.display()))
                .starts_with("ok ")
        );
    }
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut ack = |line: &str| {
        let mut words = line.split(' ').skip(1);
        let seq: u64 = words.next().unwrap().parse().unwrap();
        let id = words.next().unwrap().to_owned();
        assert_eq!(acked.insert(id, seq), None, "acknowledged twice");
    };
    doomed.send(&format!("single {}", d.display()));
    survivor.send(&format!("single {}", s.display()));
    // Both write; the doomed one is killed mid-stream after 100 acknowledgements.
    for _ in 0..100 {
        ack(&doomed.line());
    }
    for _ in 0..50 {
        ack(&survivor.line());
    }
    doomed.kill();
    // The survivor keeps writing to the end.
    loop {
        let line = survivor.line();
        if line == "done" {
            break;
        }
        ack(&line);
    }
    survivor.exit();

    let store = Store::open(&db, StoreOptions::read_only()).unwrap();
    let ids = log_ids(&store);
    for (id, seq) in &acked {
        assert_eq!(
            &ids[*seq as usize - 1],
            id,
            "acknowledged event at its sequence number"
        );
    }
    let all: BTreeSet<String> = survivor_events.iter().map(|e| e.id.to_hex()).collect();
    assert!(
        all.iter().all(|id| ids.contains(id)),
        "the survivor wrote all of its events"
    );
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    drop(store);
    check_database(&db, &expected);
}
