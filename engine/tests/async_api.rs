//! The async API on real tokio runtimes, and bounded subscriptions: hundreds of
//! concurrent `append_async` calls share group commits and get dense sequence numbers;
//! a `current_thread` runtime keeps serving a timer while its appends wait for the
//! writer; a subscriber that falls behind is told from where to re-read the log.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_core::Stream;
use highwater_engine::{
    ApplyError, CodecError, Engine, EngineOptions, EventRef, Handle, Kinds, Projection, RecvError,
    decode_rkyv, encode_rkyv,
};
use highwater_store::{AppendOutcome, CommitObserver, Committed, Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// Counts the events of each group.
struct Count;

impl Projection for Count {
    type State = u64;
    fn name(&self) -> &'static str {
        "count"
    }
    fn version(&self) -> u64 {
        1
    }
    fn kinds(&self) -> Kinds {
        Kinds::All
    }
    fn init(&self) -> u64 {
        0
    }
    fn apply(&self, n: &mut u64, _: &EventRef<'_>) -> Result<(), ApplyError> {
        *n += 1;
        Ok(())
    }
    fn encode(&self, n: &u64) -> Result<Vec<u8>, CodecError> {
        encode_rkyv(n)
    }
    fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
        decode_rkyv(bytes)
    }
}

fn open(dir: &std::path::Path) -> (Engine, Handle<Count>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let mut builder = Engine::builder(store, EngineOptions::default());
    let count = builder.add(Count).unwrap();
    (builder.build().unwrap(), count)
}

/// `n` distinct signed events of group `g`.
fn events(n: usize) -> Vec<Event> {
    let keys = Keys::generate();
    (0..n)
        .map(|i| {
            EventBuilder::new(Kind::Custom(9), format!("message {i}"))
                .tag(Tag::parse(["h", "g"]).unwrap())
                .finalize(&keys)
                .unwrap()
        })
        .collect()
}

fn appended(outcome: &AppendOutcome) -> u64 {
    match outcome {
        AppendOutcome::Appended(seq) => *seq,
        AppendOutcome::Duplicate(seq) => panic!("expected a new append, got a duplicate at {seq}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_concurrent_appends_are_all_acknowledged_with_dense_seqs() {
    const TASKS: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let (engine, count) = open(dir.path());
    let mut tasks = Vec::new();
    for event in events(TASKS) {
        let engine = engine.clone();
        tasks.push(tokio::spawn(
            async move { engine.append_async(&event).await },
        ));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(appended(&task.await.unwrap().unwrap()));
    }
    seqs.sort_unstable();
    let dense: Vec<u64> = (1..=TASKS as u64).collect();
    assert_eq!(seqs, dense);
    assert_eq!(engine.store().head(), TASKS as u64);
    assert_eq!(count.read_async("g", |n| *n).await.unwrap(), TASKS as u64);
    // A second append of the same event is a duplicate, answered without a commit.
    let again = events(1).remove(0);
    let first = appended(&engine.append_async(&again).await.unwrap());
    assert_eq!(
        engine.append_async(&again).await.unwrap(),
        AppendOutcome::Duplicate(first)
    );
}

/// Holds the writer thread inside its first commit until released, so that appends
/// stay pending for as long as the test decides.
struct Gate {
    entered: tokio::sync::Notify,
    release: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    timed_out: AtomicBool,
}

impl CommitObserver for Gate {
    fn on_commit(&self, _: &[Committed<'_>]) {
        let Some(release) = self.release.lock().unwrap().take() else {
            return;
        };
        self.entered.notify_one();
        // Bounded, so that a blocked runtime fails the test instead of hanging it.
        if release.recv_timeout(Duration::from_secs(30)).is_err() {
            self.timed_out.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_current_thread_runtime_serves_a_timer_while_its_appends_wait() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (engine, count) = open(dir.path());
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let gate = Arc::new(Gate {
        entered: tokio::sync::Notify::new(),
        release: std::sync::Mutex::new(Some(release_rx)),
        timed_out: AtomicBool::new(false),
    });
    engine.store().add_observer(gate.clone());
    let acked = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for event in events(50) {
            let (engine, acked) = (engine.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = engine.append_async(&event).await;
                acked.fetch_add(1, Ordering::SeqCst);
                outcome
            }));
        }
        // The writer now holds a commit open; the appends in it wait for their
        // acknowledgement. The only runtime thread must still run timers and tasks.
        gate.entered.notified().await;
        let mut ticks = 0;
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        while ticks < 5 {
            interval.tick().await;
            ticks += 1;
        }
        assert_eq!(
            acked.load(Ordering::SeqCst),
            0,
            "no append is acknowledged while the writer is held"
        );
        release_tx.send(()).unwrap();
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(appended(&task.await.unwrap().unwrap()));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());
        assert_eq!(count.read_async("g", |n| *n).await.unwrap(), 50);
    });
    assert!(
        !gate.timed_out.load(Ordering::SeqCst),
        "the writer was released by the runtime's own task"
    );
    assert_eq!(acked.load(Ordering::SeqCst), 50);
}

#[test]
fn a_lagging_subscriber_learns_where_to_reread_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let slow = engine.subscribe_with_capacity(10);
    let roomy = engine.subscribe_with_capacity(100);
    assert_eq!(slow.capacity(), 10);
    let all = events(28);
    // One commit of 25 events: the slow subscriber's queue holds 10, so it lags.
    for outcome in engine.append_batch(&all[..25]).unwrap() {
        appended(&outcome.unwrap());
    }
    let lagged = slow.recv().unwrap_err();
    let RecvError::Lagged { from } = lagged else {
        panic!("expected Lagged, got {lagged:?}");
    };
    assert_eq!(from, 1, "nothing was delivered, so the re-read starts at 1");
    // Re-reading the log from there gives every missed event, in order.
    let reread: Vec<Event> = engine
        .store()
        .iter_from(from)
        .map(|item| item.unwrap().1)
        .collect();
    assert_eq!(reread, all[..25].to_vec());
    // Later commits are delivered again.
    for event in &all[25..] {
        appended(&engine.append(event).unwrap());
    }
    for (seq, event) in (26..=28).zip(&all[25..]) {
        let note = slow.recv().unwrap();
        assert_eq!((note.seq, &note.event), (seq, event));
        assert_eq!(note.group.as_deref(), Some("g"));
    }
    assert!(slow.try_recv().unwrap().is_none());
    // A subscriber with room saw everything, in order.
    for (seq, event) in (1..=28).zip(&all) {
        let note = roomy.recv().unwrap();
        assert_eq!((note.seq, &note.event), (seq, event));
    }
    let timeout = roomy.recv_timeout(Duration::from_millis(1)).unwrap_err();
    assert!(matches!(timeout, RecvError::Timeout), "{timeout:?}");
    // Once the engine is gone, receiving ends.
    drop(engine);
    let closed = slow.recv().unwrap_err();
    assert!(matches!(closed, RecvError::Closed), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_a_stream_that_ends_with_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let mut changes = engine.subscribe();
    let all = events(5);
    for event in &all {
        appended(&engine.append_async(event).await.unwrap());
    }
    for (seq, event) in (1..=5).zip(&all) {
        let note = poll_fn(|cx| Pin::new(&mut changes).poll_next(cx))
            .await
            .expect("the stream is open")
            .unwrap();
        assert_eq!((note.seq, &note.event), (seq, event));
    }
    drop(engine);
    let end = poll_fn(|cx| Pin::new(&mut changes).poll_next(cx)).await;
    assert!(end.is_none(), "{end:?}");
}
