//! What LMDB promises about the order of snapshots across processes, and what the store
//! makes of it.
//!
//! A read transaction takes its snapshot from the meta page named by the lock file's
//! transaction id (`mdb_txn_renew0`): it reads the id, publishes it in its reader slot,
//! then copies that meta page's roots. Nothing stops a writer in another process from
//! committing twice in between — the second commit rewrites the very meta page the
//! reader is about to copy — so a transaction labelled T can hold T + 2's roots, and the
//! next transaction of the same thread, taken once the lock file says T + 1, holds
//! fewer records than the one before. (The pages stay valid: the reader's slot says T,
//! which keeps everything T + 1 and T + 2 freed.) So LMDB does not promise that one
//! thread's successive snapshots only grow; it promises that a snapshot begun after a
//! commit returned holds that commit.
//!
//! The first test watches the raw library from another process and checks the part of
//! the promise the store relies on: a view that went back is caught up by a later
//! snapshot, within a bound. The second checks the store: a process following another
//! process's appends never reports the log as shrunk, and its head never goes back.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use heed::types::{Bytes, U64};
use heed::{Database, EnvOpenOptions};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

type Be = heed::byteorder::BigEndian;

/// Set in the child: the directory to write to, raw.
const RAW_WRITER: &str = "HIGHWATER_SNAPSHOT_RAW_WRITER";
/// Set in the child: the directory to append to through the store.
const STORE_WRITER: &str = "HIGHWATER_SNAPSHOT_STORE_WRITER";
/// Set in the child: the directory to append two events to, after a pause.
const APPEND_LATER: &str = "HIGHWATER_SNAPSHOT_APPEND_LATER";
/// How long the writers run.
const RUN: Duration = Duration::from_secs(4);
/// How long a view that went back may take to be caught up by a later snapshot.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Opens the test's environment; the writer commits without fsync (`no_sync`), so that
/// commits come microseconds apart, as many small durable commits of a fast disk do.
fn open_raw(dir: &Path, no_sync: bool) -> (heed::Env<heed::WithoutTls>, Database<U64<Be>, Bytes>) {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(1 << 30).max_dbs(2).max_readers(256);
    #[expect(unsafe_code, reason = "opening an LMDB environment; see SAFETY")]
    // SAFETY: a fresh directory of this test, opened once per process, never resized;
    // every transaction is scoped to a loop iteration. NO_SYNC only gives up
    // durability across a machine crash, which this test does not look at.
    let env = unsafe {
        if no_sync {
            options.flags(heed::EnvFlags::NO_SYNC);
        }
        options.open(dir)
    }
    .expect("open the environment");
    let mut wtxn = env.write_txn().unwrap();
    let db = env.create_database(&mut wtxn, Some("log")).unwrap();
    wtxn.commit().unwrap();
    (env, db)
}

/// In the child: commits one key per transaction, as fast as LMDB allows, for `RUN`.
fn raw_writer_if_child() {
    let Ok(dir) = std::env::var(RAW_WRITER) else {
        return;
    };
    let (env, db) = open_raw(Path::new(&dir), false);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < RUN {
        n += 1;
        let mut wtxn = env.write_txn().unwrap();
        db.put(&mut wtxn, &n, b"x").unwrap();
        wtxn.commit().unwrap();
    }
    println!("raw writer: {n} commits");
    std::process::exit(0);
}

/// In the child: appends events through the store for `RUN`, from four threads.
fn store_writer_if_child() {
    let Ok(dir) = std::env::var(STORE_WRITER) else {
        return;
    };
    let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                let keys = Keys::generate();
                let mut i = 0u64;
                while started.elapsed() < RUN {
                    i += 1;
                    store.append(&post(&keys, i * 4 + t)).unwrap();
                }
            });
        }
    });
    println!("store writer: head {}", store.head());
    std::process::exit(0);
}

/// In the child: opens the store, says `ready`, appends two events 300 ms later, then
/// exits.
fn append_later_if_child() {
    let Ok(dir) = std::env::var(APPEND_LATER) else {
        return;
    };
    let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    println!("ready");
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..2 {
        store.append(&post(&Keys::generate(), i)).unwrap();
    }
    std::process::exit(0);
}

fn post(keys: &Keys, i: u64) -> nostr::prelude::Event {
    EventBuilder::new(Kind::from(9u16), format!("message {i}"))
        .tags(vec![Tag::parse(["h", &format!("g{}", i % 7)]).unwrap()])
        .finalize(keys)
        .unwrap()
}

fn spawn_child(test: &str, var: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, dir)
        .spawn()
        .expect("start the writer")
}

#[test]
fn a_view_that_goes_back_is_caught_up_by_a_later_snapshot() {
    const TEST: &str = "a_view_that_goes_back_is_caught_up_by_a_later_snapshot";
    raw_writer_if_child();
    let dir = tempfile::tempdir().unwrap();
    let (env, db) = open_raw(dir.path(), false);
    let mut child = spawn_child(TEST, RAW_WRITER, dir.path());
    let done = Arc::new(AtomicBool::new(false));
    let went_back = Arc::new(AtomicU64::new(0));
    let views = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (env, done, went_back, views) =
                (env.clone(), done.clone(), went_back.clone(), views.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let last = || {
                    let rtxn = env.read_txn().unwrap();
                    db.last(&rtxn).unwrap().map_or(0, |(k, _)| k)
                };
                let mut seen = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let now = last();
                    views.fetch_add(1, Ordering::Relaxed);
                    if now >= seen {
                        seen = now;
                        continue;
                    }
                    went_back.fetch_add(1, Ordering::Relaxed);
                    let since = Instant::now();
                    while last() < seen {
                        if since.elapsed() > CATCH_UP {
                            return Err(format!(
                                "saw the log reach {seen}, then {now}, and no snapshot caught up within {CATCH_UP:?}"
                            ));
                        }
                        std::thread::yield_now();
                    }
                }
                Ok(())
            })
        })
        .collect();
    let status = child.wait().unwrap();
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap().unwrap();
    }
    assert!(status.success(), "the writer failed: {status}");
    let rtxn = env.read_txn().unwrap();
    assert!(db.len(&rtxn).unwrap() > 0, "the writer committed nothing");
    eprintln!(
        "{} views, {} went back (each caught up within {CATCH_UP:?})",
        views.load(Ordering::Relaxed),
        went_back.load(Ordering::Relaxed)
    );
}

#[test]
fn following_another_process_never_sees_the_log_shrink() {
    const TEST: &str = "following_another_process_never_sees_the_log_shrink";
    store_writer_if_child();
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    let store = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    let mut child = spawn_child(TEST, STORE_WRITER, dir.path());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || -> Result<u64, String> {
                let mut seen = 0u64;
                let mut looks = 0u64;
                while !done.load(Ordering::Relaxed) {
                    store.refresh().map_err(|e| e.to_string())?;
                    let head = store.head();
                    if head < seen {
                        return Err(format!("the head went from {seen} back to {head}"));
                    }
                    seen = head;
                    looks += 1;
                }
                Ok(looks)
            })
        })
        .collect();
    let status = child.wait().unwrap();
    done.store(true, Ordering::Relaxed);
    let mut looks = 0;
    for reader in readers {
        looks += reader.join().unwrap().unwrap();
    }
    assert!(status.success(), "the writer failed: {status}");
    store.refresh().unwrap();
    assert!(store.head() > 0, "the writer appended nothing");
    eprintln!("{looks} looks, head {}", store.head());
}

#[test]
fn a_snapshot_behind_the_seen_head_is_retried_until_one_catches_up() {
    const TEST: &str = "a_snapshot_behind_the_seen_head_is_retried_until_one_catches_up";
    append_later_if_child();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for i in 0..3 {
        store.append(&post(&Keys::generate(), i)).unwrap();
    }
    // As after a snapshot that held another process's commit early: the process has
    // seen two more records than the log now shows. Another process commits them.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(APPEND_LATER, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the appender");
    // Its start-up is not part of the wait: the bound covers the 300 ms pause and two
    // durable commits.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("ready"));
    assert!(ready, "the appender never opened the store");
    store.pretend_seen_head(5);
    store.refresh().expect("a later snapshot catches up");
    assert_eq!(store.head(), 5);
    assert!(store.behind_views() >= 1, "no snapshot was found behind");
    assert!(child.wait().unwrap().success());
    // Read to the end only now, so the child never writes to a closed pipe.
    let _ = lines.count();
}

#[test]
fn a_log_that_stays_behind_the_seen_head_is_reported_shrunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for i in 0..3 {
        store.append(&post(&Keys::generate(), i)).unwrap();
    }
    store.pretend_seen_head(4);
    let error = store.refresh().expect_err("the log stays behind");
    assert!(
        error.to_string().contains("replaced or truncated"),
        "{error}"
    );
    assert!(store.behind_views() > 1, "reported without a retry");
}
