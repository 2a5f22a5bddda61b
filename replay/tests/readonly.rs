//! Reading commands on a database the user cannot write: `show`, `status`, `verify` and
//! `export` run as `nobody` (CI runs as root, which ignores permissions, so the test
//! drops privileges with `setpriv`) against a database owned by root, with `lock.mdb`
//! writable by that user (LMDB's reader table is used) and not (reads go without the
//! lock file, with a note). A read-only bind mount is tried as well; where the machine
//! forbids mounts, that one variant is skipped with the reason printed.

mod mounts;

use mounts::{Unmount, has_cap_sys_admin};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_highwater");
const EVENTS: usize = 2_000;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A database of `EVENTS` generated events in `dir/db`, and a copy of the binary that
/// `nobody` can execute; returns (binary, database, one group id).
fn setup(dir: &Path) -> (PathBuf, PathBuf, String) {
    chmod(dir, 0o755);
    let bin = dir.join("highwater");
    std::fs::copy(BIN, &bin).unwrap();
    chmod(&bin, 0o755);
    let file = dir.join("events.jsonl");
    let db = dir.join("db");
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .env_remove("HIGHWATER_DB")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "generate",
        "--events",
        &EVENTS.to_string(),
        "--groups",
        "20",
        file.to_str().unwrap(),
    ]);
    run(&[
        "--db",
        db.to_str().unwrap(),
        "import",
        "--trusted",
        file.to_str().unwrap(),
    ]);
    let first = std::fs::read_to_string(&file).unwrap();
    let event: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let group = event["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t[0] == "h" || t[0] == "d")
        .map(|t| t[1].as_str().unwrap().to_owned())
        .unwrap();
    (bin, db, group)
}

/// Runs the binary as `nobody` when `unprivileged`, else as this user.
fn run_as(unprivileged: bool, bin: &Path, db: &Path, args: &[&str]) -> Output {
    let mut cmd = if unprivileged {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("HIGHWATER_DB")
        .env_remove("RUST_LOG");
    cmd.output().unwrap()
}

/// Every reading command succeeds and answers about the whole log; nothing in the
/// database directory changes. Returns the commands' combined stderr.
fn read_everything(unprivileged: bool, bin: &Path, db: &Path, group: &str) -> String {
    let files = |db: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(db)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .filter(|(name, _)| name != "lock.mdb")
            .collect();
        out.sort();
        out
    };
    let before = files(db);
    let mut stderr = String::new();
    for args in [
        vec!["status", "--json"],
        vec!["show", "--group", group, "--json"],
        vec!["verify"],
        vec!["export", "-"],
    ] {
        let out = run_as(unprivileged, bin, db, &args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?} failed: {err}");
        let text = String::from_utf8(out.stdout).unwrap();
        match args[0] {
            "status" => {
                let status: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(status["head"], EVENTS, "{text}");
            }
            "show" => assert!(text.contains(&format!("\"{group}\"")), "{text}"),
            "export" => assert_eq!(text.lines().count(), EVENTS),
            _ => {}
        }
        stderr.push_str(&err);
    }
    assert!(
        before == files(db),
        "a reading command changed the database"
    );
    stderr
}

#[test]
fn reading_commands_work_for_a_user_who_cannot_write_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, db, group) = setup(dir.path());
    chmod(&db, 0o755);
    chmod(&db.join("data.mdb"), 0o644);

    // lock.mdb writable by the user: LMDB's reader table is used.
    chmod(&db.join("lock.mdb"), 0o666);
    let stderr = read_everything(true, &bin, &db, &group);
    assert!(!stderr.contains("not writable"), "{stderr}");

    // lock.mdb not writable either: reads go without the lock file, and say so.
    chmod(&db.join("lock.mdb"), 0o644);
    let stderr = read_everything(true, &bin, &db, &group);
    assert!(stderr.contains("not writable by this user"), "{stderr}");

    // A writing command fails with a clear message, not a crash.
    let out = run_as(true, &bin, &db, &["replay"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ermission denied"), "{err}");
}

#[test]
fn reading_commands_work_on_a_read_only_bind_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, db, group) = setup(dir.path());
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let bind = Command::new("mount")
        .arg("--bind")
        .arg(&db)
        .arg(&ro)
        .output()
        .unwrap();
    if !bind.status.success() {
        let reason = String::from_utf8_lossy(&bind.stderr);
        assert!(
            !has_cap_sys_admin(),
            "CAP_SYS_ADMIN is held but mount failed: {reason}"
        );
        eprintln!(
            "SKIPPED the read-only bind mount variant: mounting is not allowed here ({reason})"
        );
        return;
    }
    let _unmount = Unmount(ro.clone());
    let remount = Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&ro)
        .output()
        .unwrap();
    assert!(
        remount.status.success(),
        "{}",
        String::from_utf8_lossy(&remount.stderr)
    );
    assert!(
        std::fs::write(ro.join("probe"), b"x").is_err(),
        "the mount is read-only"
    );
    // Even root cannot write there: LMDB reads without its lock file (EROFS).
    read_everything(false, &bin, &ro, &group);
}
