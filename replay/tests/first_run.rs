//! The README's main job on a fresh directory: `highwater demo` with no option makes the
//! default database (`./highwater.lmdb`) with the relay's secret key beside it, and
//! `highwater relay` with no option then serves it; `highwater relay` on a database
//! that does not exist (a mistyped `--db`) is refused instead of starting an empty
//! relay.

#[allow(dead_code, reason = "this binary uses a few of the shared helpers")]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Sandbox, command};

#[test]
fn demo_then_relay_with_no_options_serves_the_demo_database() {
    let sandbox = Sandbox::new();
    let cwd = sandbox.path("fresh");
    std::fs::create_dir_all(&cwd).unwrap();
    let demo = command()
        .current_dir(&cwd)
        .args(["demo", "--events", "2000", "--groups", "10"])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let db = cwd.join("highwater.lmdb");
    assert!(
        db.join("data.mdb").is_file(),
        "the demo made the default database"
    );
    let key = db.join("relay-secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret key is private (mode {mode:o})");
    }
    let stdout = String::from_utf8_lossy(&demo.stdout);
    assert!(
        stdout.contains("-- relay"),
        "the demo says how to serve it: {stdout}"
    );

    let mut relay = command()
        .current_dir(&cwd)
        .args(["relay", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_mins(1);
    let listening = loop {
        let line = lines
            .next()
            .expect("the relay prints before it exits")
            .unwrap();
        if line.contains("listening on ws://") {
            break line;
        }
        assert!(Instant::now() < deadline, "the relay did not start");
    };
    assert!(listening.contains("./highwater.lmdb"), "{listening}");
    // The relay serves with the demo's key: the key in the file is the database's.
    let status = command()
        .current_dir(&cwd)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    relay.kill().unwrap();
    relay.wait().unwrap();
}

#[test]
fn relay_refuses_a_database_that_does_not_exist() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path("typo.lmdb");
    let run = command()
        .args([
            "--db",
            support::path_str(&missing),
            "relay",
            "--bind",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no highwater database at"), "{stderr}");
    assert!(stderr.contains("--create"), "{stderr}");
    assert!(!missing.exists(), "nothing was created");
}
