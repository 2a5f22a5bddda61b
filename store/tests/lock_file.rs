//! LMDB's own promise, checked from another process: while a process has the
//! environment open, it holds LMDB's POSIX record lock on `lock.mdb` (a shared lock on
//! byte 0), which is how the next process to open the database learns that it is not
//! alone and must not re-initialise the lock file. Record locks belong to the process
//! and the file, so closing *any* descriptor of `lock.mdb` in this process would drop
//! LMDB's lock silently; this test sees that from outside (a process never sees its own
//! record locks), after every way the store opens, reads, shares and drops handles.

use std::path::Path;
use std::process::Command;

use highwater_store::{AppendOutcome, Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// Set in the child: the lock file to probe.
const PROBE: &str = "HIGHWATER_LOCK_FILE_PROBE";

/// In the child process: prints who holds a lock on byte 0 of the lock file that
/// conflicts with an exclusive lock (`held PID` or `free`), then exits.
fn probe_if_child() {
    let Ok(path) = std::env::var(PROBE) else {
        return;
    };
    let file = std::fs::File::open(&path).expect("open the lock file to probe");
    #[expect(unsafe_code, reason = "a zeroed C struct; see SAFETY")]
    // SAFETY: `flock` is plain data, zero is a valid value for each of its fields.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 0;
    lock.l_len = 1;
    #[expect(unsafe_code, reason = "fcntl(F_GETLK); see SAFETY")]
    // SAFETY: F_GETLK reads and writes the `flock` passed by pointer; the descriptor is
    // open for the duration of the call.
    let rc = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::F_GETLK,
            &raw mut lock,
        )
    };
    assert_eq!(rc, 0, "F_GETLK: {}", std::io::Error::last_os_error());
    if i32::from(lock.l_type) == libc::F_UNLCK {
        println!("probe: free");
    } else {
        println!("probe: held {}", lock.l_pid);
    }
    std::process::exit(0);
}

/// Runs this test's binary as a child that probes `dir/lock.mdb`; the pid holding the
/// lock, if any.
fn holder(test: &str, dir: &Path) -> Option<u32> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE, dir.join("lock.mdb"))
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("probe: ").map(|(_, answer)| answer.trim()))
        .unwrap_or_else(|| {
            panic!(
                "no probe answer: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.strip_prefix("held ").map(|pid| pid.parse().unwrap())
}

fn assert_held(test: &str, dir: &Path, step: &str) {
    assert_eq!(
        holder(test, dir),
        Some(std::process::id()),
        "after {step}: another process sees no LMDB lock of this process on lock.mdb"
    );
}

fn post(keys: &Keys, group: &str, i: usize) -> Event {
    EventBuilder::new(Kind::from(9u16), format!("message {i}"))
        .tags(vec![Tag::parse(["h", group]).unwrap()])
        .finalize(keys)
        .unwrap()
}

#[test]
fn this_process_keeps_lmdbs_record_lock_through_every_open_read_and_drop() {
    const TEST: &str = "this_process_keeps_lmdbs_record_lock_through_every_open_read_and_drop";
    probe_if_child();
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_held(TEST, dir.path(), "opening read-write");

    for i in 0..20 {
        let appended = store
            .append(&post(&keys, &format!("g{}", i % 3), i))
            .unwrap();
        assert!(matches!(appended, AppendOutcome::Appended(_)));
        // Every exact read checks for other processes' commits first.
        assert!(store.group("g0").is_some());
        assert_eq!(store.head(), u64::try_from(i).unwrap() + 1);
    }
    assert_held(TEST, dir.path(), "appends and exact reads");

    // A second handle of the same path in this process shares the environment.
    let again = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(again.head(), 20);
    drop(again);
    assert_held(TEST, dir.path(), "opening and dropping a second handle");

    // Every handle dropped (the environment closes), then opened again, read-write and
    // read-only: LMDB takes its lock again, and nothing closes it behind LMDB's back.
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.head(), 20);
    assert_held(TEST, dir.path(), "closing and reopening");
    drop(store);
    let reader = Store::open(dir.path(), StoreOptions::read_only()).unwrap();
    assert!(!reader.is_lockless(), "root can write lock.mdb");
    assert_eq!(reader.head(), 20);
    assert!(reader.group("g1").is_some());
    assert_held(TEST, dir.path(), "a read-only open and its reads");
}

#[test]
fn the_probe_sees_a_free_lock_file_when_no_process_has_the_database_open() {
    const TEST: &str = "the_probe_sees_a_free_lock_file_when_no_process_has_the_database_open";
    probe_if_child();
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    // The environment is closed: LMDB released its lock, and the probe can tell.
    assert_eq!(holder(TEST, dir.path()), None);
}
