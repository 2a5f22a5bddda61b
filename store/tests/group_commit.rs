//! Group commit and batch pipelining: many single-event callers share commits (and the
//! commit wait makes them share more), every acknowledged sequence number is dense and
//! unique, and `append_batch` over several chunks gives the outcomes one commit would,
//! with a failing chunk cancelling the ones after it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use highwater_store::{
    AppendOutcome, CommitObserver, Committed, InvalidEvent, Prepared, Store, StoreError,
    StoreOptions,
};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// A kind-9 chat message in `group`.
fn chat(keys: &Keys, group: &str, content: &str) -> Event {
    EventBuilder::new(Kind::from(9u16), content)
        .tag(Tag::parse(["h", group]).unwrap())
        .finalize(keys)
        .unwrap()
}

/// Counts commits that wrote events, and the events they wrote.
#[derive(Default)]
struct Commits {
    commits: AtomicUsize,
    events: AtomicUsize,
}

impl CommitObserver for Commits {
    fn on_commit(&self, batch: &[Committed<'_>]) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.events.fetch_add(batch.len(), Ordering::SeqCst);
    }
}

fn open_counted(dir: &Path, options: StoreOptions) -> (Store, Arc<Commits>) {
    let store = Store::open(dir, options).unwrap();
    let commits = Arc::new(Commits::default());
    store.add_observer(commits.clone());
    (store, commits)
}

/// `threads` callers, released together, each appending `per_thread` events one at a
/// time and waiting for each; returns every acknowledged (seq, event) per caller.
fn single_appends(store: &Store, threads: usize, per_thread: usize) -> Vec<Vec<(u64, Event)>> {
    let events: Vec<Vec<Event>> = (0..threads)
        .map(|t| {
            let keys = Keys::generate();
            (0..per_thread)
                .map(|i| chat(&keys, &format!("g{}", t % 3), &format!("{t}/{i}")))
                .collect()
        })
        .collect();
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .iter()
            .map(|mine| {
                let store = store.clone();
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    mine.iter()
                        .map(|e| match store.append(e).unwrap() {
                            AppendOutcome::Appended(seq) => (seq, e.clone()),
                            AppendOutcome::Duplicate(seq) => panic!("a duplicate of {seq}"),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every caller's appends were acknowledged with dense, unique sequence numbers in
/// each caller's order, and the log holds exactly them.
fn check_dense(store: &Store, acked: &[Vec<(u64, Event)>]) {
    let total = acked.iter().map(Vec::len).sum::<usize>() as u64;
    let seqs: BTreeSet<u64> = acked.iter().flatten().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=total).collect(), "dense and unique");
    for mine in acked {
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "one caller's appends keep their order"
        );
    }
    assert_eq!(store.head(), total);
    for (seq, event) in acked.iter().flatten() {
        assert_eq!(store.get(*seq).unwrap().as_ref(), Some(event));
    }
}

#[test]
fn many_single_event_callers_share_commits_when_the_writer_waits() {
    const THREADS: usize = 32;
    const PER_THREAD: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    // A wait far longer than any caller needs to come back: the commits are then
    // filled by the callers, not cut by the clock.
    let options = StoreOptions {
        trusted: true,
        commit_wait: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let (store, commits) = open_counted(dir.path(), options);
    let acked = single_appends(&store, THREADS, PER_THREAD);
    check_dense(&store, &acked);
    let commits_made = commits.commits.load(Ordering::SeqCst);
    assert_eq!(commits.events.load(Ordering::SeqCst), THREADS * PER_THREAD);
    assert!(
        commits_made < THREADS * PER_THREAD,
        "{commits_made} commits for {} single appends",
        THREADS * PER_THREAD
    );
    drop(store);

    // What was acknowledged survives a reopen.
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    check_dense(&store, &acked);
}

#[test]
fn without_the_wait_single_event_callers_are_still_dense_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        trusted: true,
        commit_wait: Duration::ZERO,
        ..StoreOptions::default()
    };
    let (store, commits) = open_counted(dir.path(), options);
    let acked = single_appends(&store, 16, 10);
    check_dense(&store, &acked);
    assert_eq!(commits.events.load(Ordering::SeqCst), 160);
}

#[test]
fn a_lone_caller_gets_one_commit_per_event_and_write_jobs_go_between() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        trusted: true,
        commit_wait: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let (store, commits) = open_counted(dir.path(), options);
    let keys = Keys::generate();
    for i in 0..5u64 {
        let event = chat(&keys, "solo", &i.to_string());
        assert_eq!(
            store.append(&event).unwrap(),
            AppendOutcome::Appended(i + 1)
        );
        // A write job between appends is answered in its own transaction.
        store.set_setting("probe", &i.to_be_bytes()).unwrap();
        assert_eq!(
            store.setting("probe").unwrap(),
            Some(i.to_be_bytes().to_vec())
        );
    }
    assert_eq!(commits.commits.load(Ordering::SeqCst), 5);
    assert_eq!(store.group("solo").map(|g| (g.head, g.count)), Some((5, 5)));
}

fn chunked(dir: &Path, chunk: usize, trusted: bool) -> (Store, Arc<Commits>) {
    open_counted(
        dir,
        StoreOptions {
            trusted,
            append_chunk: chunk,
            ..StoreOptions::default()
        },
    )
}

#[test]
fn a_batch_over_many_chunks_gives_the_outcomes_of_one_commit() {
    let keys = Keys::generate();
    let other = Keys::generate();
    let mut batch: Vec<Event> = (0..23)
        .map(|i| chat(&keys, &format!("g{}", i % 4), &i.to_string()))
        .collect();
    // A copy of an event of the first chunk in a later chunk, and of one in the
    // same chunk; a bad signature; an event already in the log.
    let earlier = batch[1].clone();
    let known = chat(&keys, "g0", "already there");
    batch.insert(12, earlier.clone());
    batch.insert(3, batch[2].clone());
    let genuine = chat(&keys, "g1", "forged");
    let forged = Event::new(
        genuine.id,
        genuine.pubkey,
        genuine.created_at,
        genuine.kind,
        genuine.tags.clone(),
        genuine.content.clone(),
        chat(&other, "g1", "forged").sig,
    );
    batch.insert(17, forged);
    batch.push(known.clone());

    let mut results = Vec::new();
    for chunk in [3, 5, 1, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = chunked(dir.path(), chunk, false);
        assert_eq!(store.append(&known).unwrap(), AppendOutcome::Appended(1));
        let outcomes = store.append_batch(&batch).unwrap();
        assert_eq!(outcomes.len(), batch.len());
        let rendered: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Ok(outcome) => format!("{outcome:?}"),
                Err(StoreError::Invalid(rejection)) => format!("{rejection:?}"),
                Err(other) => panic!("chunk {chunk}: {other}"),
            })
            .collect();
        let appended: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(AppendOutcome::Appended(seq)) => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(appended, (2..=24).collect::<Vec<_>>(), "chunk {chunk}");
        let matched = matches!(
            outcomes[17],
            Err(StoreError::Invalid(InvalidEvent::BadSignature))
        );
        assert!(matched, "chunk {chunk}: {:?}", outcomes[17]);
        assert_eq!(
            *outcomes.last().unwrap().as_ref().unwrap(),
            AppendOutcome::Duplicate(1)
        );
        assert_eq!(store.head(), 24);
        for (event, outcome) in batch.iter().zip(&outcomes) {
            if let Ok(outcome) = outcome {
                assert_eq!(
                    store.get(outcome.seq()).unwrap().as_ref(),
                    Some(event),
                    "chunk {chunk}"
                );
            }
        }
        results.push(rendered);
    }
    // Every chunk size, one commit included, gives the same outcomes.
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:#?}");
    assert_eq!(results[0][3], format!("{:?}", AppendOutcome::Duplicate(4)));
    assert_eq!(results[0][13], format!("{:?}", AppendOutcome::Duplicate(3)));
}

#[test]
fn a_chunk_that_fails_cancels_the_later_chunks_and_keeps_the_earlier_ones() {
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        trusted: true,
        map_size: MIB,
        max_map_size: MIB,
        append_chunk: 10,
        ..StoreOptions::default()
    };
    let (store, _) = open_counted(dir.path(), options);
    let keys = Keys::generate();
    let padding = "p".repeat(20 * 1024);
    // 100 events of 20 KiB: 2 MiB, more than the map holds.
    let batch: Vec<Event> = (0..100)
        .map(|i| chat(&keys, "big", &format!("{i} {padding}")))
        .collect();
    // The first chunk alone first: chunks queued together may share one commit, and a
    // commit that fails fails all of its chunks, so which chunk fails first depends on
    // how the writer happened to group them; this one is durable whatever happens.
    store.append_batch(&batch[..10]).unwrap();
    let error = store.append_batch(&batch).unwrap_err();
    let matched = matches!(error, StoreError::MapFull { .. });
    assert!(matched, "{error:?}");
    // Whole chunks, in order, up to the one that failed; nothing after it.
    let head = store.head();
    assert!(
        head >= 10 && head.is_multiple_of(10) && head < 100,
        "head {head}"
    );
    for (i, event) in batch.iter().enumerate() {
        let seq = store.seq_of(&event.id).unwrap();
        let expected = (i as u64) < head;
        assert_eq!(seq, expected.then_some(i as u64 + 1), "event {i}");
    }
    // The store goes on: a retry of the batch reports the written chunks as duplicates
    // and fails again. It may get a chunk further (chunks queued together share one
    // commit, so the retry can commit alone a chunk that failed beside another), but
    // the log stays whole chunks of the batch, in order.
    let again = store.append_batch(&batch).unwrap_err();
    let matched = matches!(again, StoreError::MapFull { .. });
    assert!(matched, "{again:?}");
    let retried = store.head();
    assert!(
        retried >= head && retried.is_multiple_of(10) && retried < 100,
        "head {retried} after {head}"
    );
    for (i, event) in batch.iter().enumerate() {
        let seq = store.seq_of(&event.id).unwrap();
        assert_eq!(
            seq,
            ((i as u64) < retried).then_some(i as u64 + 1),
            "event {i}"
        );
    }
    let small = store.append_batch(&batch[..3]).unwrap();
    for (i, outcome) in small.into_iter().enumerate() {
        assert_eq!(outcome.unwrap(), AppendOutcome::Duplicate(i as u64 + 1));
    }
}

#[test]
fn a_read_only_store_refuses_a_batch_even_of_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let event = chat(&keys, "g", "once");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.append(&event).unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    let refused = store.append_batch(std::slice::from_ref(&event));
    let matched = matches!(refused, Err(StoreError::ReadOnly));
    assert!(matched, "{refused:?}");
}

#[test]
fn a_setting_submitted_with_a_batch_is_written_with_it_and_never_without_it() {
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        trusted: true,
        map_size: MIB,
        max_map_size: MIB,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).unwrap();
    let keys = Keys::generate();
    let padding = "p".repeat(20 * 1024);
    let pipeline = store.pipeline();
    // Batches of 10 events of 20 KiB, each recording its own number, waited for one by
    // one: the map (1 MiB) fills after a few of them.
    let mut committed = None;
    let mut failure = None;
    for batch in 1..=20u64 {
        let events = (0..10)
            .map(|i| {
                let event = chat(&keys, "big", &format!("{batch}/{i} {padding}"));
                match store.prepare(&event).unwrap() {
                    Prepared::Ready(prepared) => prepared,
                    Prepared::Duplicate(seq) => panic!("a new event is a duplicate of {seq}"),
                }
            })
            .collect();
        let ticket = pipeline
            .submit_with_setting(events, "progress", batch.to_be_bytes().to_vec())
            .unwrap();
        match ticket.wait() {
            Ok(outcomes) => {
                assert_eq!(outcomes.len(), 10);
                committed = Some(batch);
                assert_eq!(
                    store.setting("progress").unwrap(),
                    Some(batch.to_be_bytes().to_vec()),
                    "the setting of a committed batch"
                );
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let error = failure.expect("the map filled");
    assert!(matches!(error, StoreError::MapFull { .. }), "{error:?}");
    let committed = committed.expect("a batch fitted before the map filled");
    // The failed batch's setting was not written: the value is the last committed
    // batch's, and the log holds exactly the committed batches.
    assert_eq!(
        store.setting("progress").unwrap(),
        Some(committed.to_be_bytes().to_vec())
    );
    assert_eq!(store.head(), committed * 10);
    // A later batch of the same pipeline is cancelled, its setting with it.
    let event = chat(&keys, "small", "after the failure");
    let Prepared::Ready(prepared) = store.prepare(&event).unwrap() else {
        panic!("a new event is a duplicate");
    };
    let cancelled = pipeline
        .submit_with_setting(vec![prepared], "progress", vec![0xff])
        .unwrap()
        .wait();
    let Err(StoreError::Cancelled) = cancelled else {
        panic!("expected the batch cancelled, got {cancelled:?}");
    };
    assert_eq!(
        store.setting("progress").unwrap(),
        Some(committed.to_be_bytes().to_vec())
    );
}
