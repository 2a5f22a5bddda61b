//! A disk that fills during `highwater import` (a small tmpfs): the failed batch and
//! every batch queued behind it are cancelled, the tool says which lines are in the log,
//! and after space comes back a re-run leaves the log holding the file's events in file
//! order — the same log as a clean import of the same file, not just the same events.

mod mounts;

use mounts::{Unmount, has_cap_sys_admin};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_highwater");

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
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
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
    std::fs::write(&filler, vec![0x5au8; 5 << 19]).unwrap();
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
