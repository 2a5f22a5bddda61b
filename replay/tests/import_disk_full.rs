//! A disk that fills during `highwater import` (a small tmpfs): the failed batch and
//! every batch queued behind it are cancelled, the tool says which lines are in the log,
//! and after space comes back a re-run leaves the log holding the file's events in file
//! order — the same log as a clean import of the same file, not just the same events.
//! With the write policy too: a re-run resumes after the last committed line instead
//! of deciding again the events refused before it, so it writes nothing while the disk
//! is still full and the clean import's log once there is room.

mod mounts;

use mounts::{Unmount, has_cap_sys_admin};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_highwater");

/// The relay key the generated workload is signed with, and its public key.
const RELAY_SECRET: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const RELAY_PUBKEY: &str = "a706ad8f73115f90500266f273f7571df9429a4cfb4bbfbcd825227202dabad1";

fn highwater(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("HIGHWATER_DB")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// `import --no-policy --batch 150 FILE` on `db`: small batches, several in flight.
fn import(db: &Path, file: &Path) -> Output {
    highwater(
        db,
        &[
            "import",
            "--no-policy",
            "--batch",
            "150",
            file.to_str().unwrap(),
        ],
    )
}

/// `import --relay-pubkey RELAY --batch 150 FILE` on `db`: the write policy, which
/// refuses part of a generated workload.
fn import_with_policy(db: &Path, file: &Path) -> Output {
    highwater(
        db,
        &[
            "import",
            "--relay-pubkey",
            RELAY_PUBKEY,
            "--batch",
            "150",
            file.to_str().unwrap(),
        ],
    )
}

/// A 4 MiB tmpfs under `work`, most of it taken by a filler file (returned: deleting
/// it is how space comes back); `None` (the test skips) without `CAP_SYS_ADMIN`.
fn full_tmpfs(work: &Path) -> Option<(Unmount, PathBuf)> {
    let mnt = work.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    if !mounted.status.success() {
        let reason = String::from_utf8_lossy(&mounted.stderr);
        assert!(
            !has_cap_sys_admin(),
            "CAP_SYS_ADMIN is held but mount failed: {reason}"
        );
        eprintln!("SKIPPED: no CAP_SYS_ADMIN to mount a tmpfs ({reason})");
        return None;
    }
    let tmpfs = Unmount(mnt.clone());
    let filler = mnt.join("filler");
    // 1.5 MiB left while the filler is there (the import fills it), and room to spare
    // once it is deleted: the resumed import also writes the touched groups'
    // checkpoints, and a commit that finds the disk full again fails with EIO (LMDB's
    // answer to a short write), which would read as this test's failure.
    std::fs::write(&filler, vec![0x5au8; 13 << 19]).unwrap();
    Some((tmpfs, filler))
}

/// The line "every accepted event up to line N is in the log" names (0 when the
/// message says none is).
fn committed_line(stderr: &str) -> u64 {
    if stderr.contains("no accepted event of this input is in the log yet") {
        return 0;
    }
    stderr
        .split_once("every accepted event up to line ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no line named: {stderr}"))
}

/// The event ids of the log, in log order.
fn log_ids(db: &Path) -> Vec<String> {
    let out = highwater(db, &["export", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn an_import_cut_short_by_a_full_disk_resumes_in_file_order() {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = work.path().join("events.jsonl");
    let generated = Command::new(BIN)
        .args(["generate", "--events", "6000", "--groups", "30"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(generated.status.success());

    // The reference: a clean import of the same file.
    let clean = work.path().join("clean");
    let out = import(&clean, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = log_ids(&clean);
    assert_eq!(expected.len(), 6000);

    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    if !mounted.status.success() {
        let reason = String::from_utf8_lossy(&mounted.stderr);
        assert!(
            !has_cap_sys_admin(),
            "CAP_SYS_ADMIN is held but mount failed: {reason}"
        );
        eprintln!("SKIPPED: no CAP_SYS_ADMIN to mount a tmpfs ({reason})");
        return;
    }
    let tmpfs = Unmount(mnt.clone());
    // A filler takes most of the filesystem; deleting it is how space comes back.
    let filler = mnt.join("filler");
    // 1.5 MiB left while the filler is there (the import fills it), and room to spare
    // once it is deleted: the resumed import also writes the touched groups'
    // checkpoints, and a commit that finds the disk full again fails with EIO (LMDB's
    // answer to a short write), which would read as this test's failure.
    std::fs::write(&filler, vec![0x5au8; 13 << 19]).unwrap();
    let db = mnt.join("db");

    let first = import(&db, &file);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "the disk did not fill: {stderr}");
    assert!(
        stderr.contains("is in the log, nothing after it was written"),
        "{stderr}"
    );
    let partial = log_ids(&db);
    assert!(partial.len() < expected.len());
    assert_eq!(
        partial[..],
        expected[..partial.len()],
        "the log is a prefix of the file"
    );

    std::fs::remove_file(&filler).unwrap();
    let second = import(&db, &file);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        log_ids(&db),
        expected,
        "the resumed log equals a clean import, in order"
    );
    let verify = highwater(&db, &["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    drop(tmpfs);
}

#[test]
fn a_policy_import_cut_short_by_a_full_disk_resumes_to_the_clean_log() {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = work.path().join("events.jsonl");
    let generated = Command::new(BIN)
        .args([
            "generate", "--events", "6000", "--groups", "30", "--seed", "7",
        ])
        .args(["--relay-key", RELAY_SECRET])
        .arg(&file)
        .output()
        .unwrap();
    assert!(generated.status.success());
    let line_of: HashMap<String, u64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .zip(1..)
        .map(|(l, line)| {
            let id = serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (id, line)
        })
        .collect();

    let clean = work.path().join("clean");
    let out = import_with_policy(&clean, &file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some events are refused: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let expected = log_ids(&clean);
    assert!(expected.len() < 5_800, "{} accepted", expected.len());

    let Some((tmpfs, filler)) = full_tmpfs(work.path()) else {
        return;
    };
    let db = tmpfs.0.join("db");
    let first = import_with_policy(&db, &file);
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(!first.status.success(), "the disk did not fill: {stderr}");
    // The line named is what the log holds: every accepted event of the lines up to
    // it, and nothing of the lines after it.
    let line = committed_line(&stderr);
    let partial = log_ids(&db);
    let held: Vec<String> = expected
        .iter()
        .filter(|id| line_of[*id] <= line)
        .cloned()
        .collect();
    assert!(partial.len() < expected.len(), "{stderr}");
    assert!(
        partial == held,
        "line {line} named, but the log holds {} events where the clean log has {} up to it: {stderr}",
        partial.len(),
        held.len()
    );
    assert!(
        stderr.contains(&format!("the log's head is {}", partial.len())),
        "{stderr}"
    );

    // Still full: the re-run resumes after that line and stops again. It may commit a
    // little more (LMDB reuses pages freed inside its file before it grows it), but
    // only what the clean import has, in its order: nothing decided a second time, and
    // the line it names is again exactly what the log holds.
    let again = import_with_policy(&db, &file);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(!again.status.success(), "{stderr}");
    let line_again = committed_line(&stderr);
    assert!(line_again >= line, "{stderr}");
    let held_again: Vec<String> = expected
        .iter()
        .filter(|id| line_of[*id] <= line_again)
        .cloned()
        .collect();
    assert!(
        log_ids(&db) == held_again,
        "a re-run on a full disk wrote events the clean import does not have: {stderr}"
    );

    std::fs::remove_file(&filler).unwrap();
    let last = import_with_policy(&db, &file);
    assert_eq!(
        last.status.code(),
        Some(1),
        "the clean import's exit status: {}",
        String::from_utf8_lossy(&last.stderr)
    );
    let resumed = log_ids(&db);
    let differ = resumed.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        differ.is_none() && resumed.len() == expected.len(),
        "the resumed log differs from the clean one at sequence {:?} ({} and {} events)",
        differ.map(|at| at + 1),
        resumed.len(),
        expected.len()
    );
    drop(tmpfs);
}
