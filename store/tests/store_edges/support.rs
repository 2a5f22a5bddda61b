//! Shared by the `store_edges` tests: events, checkpoints, child processes that
//! write to the same database, and a reader table filled with held read transactions.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use highwater_store::{Checkpoint, CheckpointWrite, Store, StoreError};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// Set in a child's environment: the database directory it works on.
const CHILD_DIR: &str = "HIGHWATER_STORE_MUTANTS_DIR";
/// Set in a child's environment: what it does there.
const CHILD_STEP: &str = "HIGHWATER_STORE_MUTANTS_STEP";
/// Printed by a child that did its step (a test filter matching nothing also exits 0).
const DONE: &str = "highwater-store child step done:";

/// A kind-9 message of `group`.
pub(crate) fn chat(keys: &Keys, group: &str, content: &str) -> Event {
    EventBuilder::new(Kind::from(9u16), content)
        .tags(vec![Tag::parse(["h", group]).unwrap()])
        .finalize(keys)
        .unwrap()
}

/// A checkpoint write whose `events` equals its watermark.
pub(crate) fn checkpoint_write(
    projection: &str,
    group: u32,
    watermark: u64,
    state: &[u8],
) -> CheckpointWrite {
    CheckpointWrite {
        projection: projection.into(),
        group,
        checkpoint: Checkpoint {
            version: 1,
            watermark,
            events: watermark,
            state: state.to_vec(),
        },
    }
}

/// In a child started by [`run_child`]: runs `step` on its directory and exits.
/// Call first thing in the test that starts the child; does nothing in the parent.
pub(crate) fn in_child(step: impl FnOnce(&str, &Path)) {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let name = std::env::var(CHILD_STEP).expect("a child step");
    step(&name, Path::new(&dir));
    exit_child(&name);
}

/// Ends a child that did `step` (also from inside a step: no destructor runs).
pub(crate) fn exit_child(step: &str) -> ! {
    println!("{DONE} {step}");
    std::process::exit(0);
}

/// Runs this test binary's test `test` as a child process doing `step` on `dir`, and
/// waits for it to succeed.
pub(crate) fn run_child(test: &str, step: &str, dir: &Path) {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child_command(&mut child, test, step, dir);
    expect_done(&mut child, step, "");
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// [`run_child`] as the user `nobody` (uid and gid 65534, through `setpriv`), from a
/// copy of this test binary that user can run. The caller must be root.
pub(crate) fn run_child_as_nobody(test: &str, step: &str, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("child");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    for (path, mode) in [(bin_dir.path(), 0o755), (bin.as_path(), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut child = Command::new("setpriv");
    child
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin);
    child_command(&mut child, test, step, dir);
    expect_done(&mut child, step, " as nobody");
}

/// The arguments and environment of a child doing `step` on `dir`.
pub(crate) fn child_command(command: &mut Command, test: &str, step: &str, dir: &Path) {
    command
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_DIR, dir)
        .env(CHILD_STEP, step);
}

/// Runs the child to its end and checks that it did its step (`how`: how it ran, for
/// the messages).
fn expect_done(child: &mut Command, step: &str, how: &str) {
    let output = child.output().expect("starting the child");
    assert!(
        output.status.success(),
        "child step {step}{how} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{DONE} {step}")),
        "child step {step}{how} did not run: {stdout}"
    );
}

/// Printed by a child that holds the store open (see [`spawn_child`]).
pub(crate) const READY: &str = "highwater-store child ready";

/// Starts this test binary's test `test` as a child process doing `step` on `dir`,
/// and waits until it prints [`READY`]. The child ends when its stdin is closed: see
/// [`finish_child`].
pub(crate) fn spawn_child(test: &str, step: &str, dir: &Path) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    child_command(&mut command, test, step, dir);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    let mut line = String::new();
    while !line.contains(READY) {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child step {step} ended early"
        );
    }
    child
}

/// Closes the stdin of a child started by [`spawn_child`] and waits for it to succeed.
pub(crate) fn finish_child(mut child: Child, step: &str) {
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "child step {step} failed: {}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{DONE} {step}")),
        "child step {step}: {stdout}"
    );
}

/// Opens nested read transactions (reading event 1) until the reader table is full,
/// then calls `full` with how many are held and the error of the one that failed,
/// while all of them are still held. Runs on a thread with a large stack.
pub(crate) fn fill_readers(store: &Store, full: &mut (dyn FnMut(usize, StoreError) + Send)) {
    fn nest(store: &Store, held: usize, full: &mut (dyn FnMut(usize, StoreError) + Send)) {
        match store.with_event(1, |_| nest(store, held + 1, full)) {
            Ok(Some(())) => {}
            Ok(None) => panic!("event 1 is missing"),
            Err(error) => full(held, error),
        }
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, || nest(store, 0, full))
            .unwrap()
            .join()
            .unwrap();
    });
}
