//! Helpers of the command-line tests: running the built `highwater` binary against a
//! temporary database (here), fixed keys, signed events and the workload files
//! (`events`), and what the tool prints — the `show --json` shape, the import summary,
//! the one insta helper that writes to `snapshots/` (`output`).

#![allow(
    unreachable_pub,
    reason = "a helper module of a test binary; `pub` is read as crate-wide"
)]

mod events;
pub mod imports;
mod output;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::Value;
use tempfile::TempDir;

pub use events::*;
pub use output::*;

/// The built binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_highwater");

/// A `highwater` command with a clean environment: no `HIGHWATER_DB` to pick up, no
/// `RUST_LOG` to change what is printed.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("HIGHWATER_DB").env_remove("RUST_LOG");
    cmd
}

/// Runs `highwater ARGS` (no `--db`: for `generate`, `demo`, `--help`).
pub fn highwater<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let what = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let output = command()
        .args(args)
        .output()
        .expect("the highwater binary runs");
    Run {
        what: format!("highwater {what}"),
        status: output.status,
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit status 0 and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(self.status.success(), "{self}");
        self.stdout
    }

    /// Asserts a non-zero exit status and returns the run.
    #[track_caller]
    pub fn fails(self) -> Self {
        assert!(!self.status.success(), "expected a failure: {self}");
        assert!(self.status.code().is_some(), "killed by a signal: {self}");
        self
    }

    /// Asserts a failure whose stderr is one line, `error: …`; returns that line.
    #[track_caller]
    pub fn error_line(self) -> String {
        let run = self.fails();
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line of error expected: {run}");
        assert!(lines[0].starts_with("error: "), "{run}");
        lines[0].to_owned()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// A temporary directory for the files and databases of one test.
#[derive(Debug)]
pub struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// A path in the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A database in the sandbox (not created until a command opens it).
    pub fn db(&self, name: &str) -> Db {
        Db {
            path: self.path(name),
        }
    }
}

/// A database directory, passed as `--db` to every command.
#[derive(Debug)]
pub struct Db {
    pub path: PathBuf,
}

impl Db {
    /// Runs `highwater --db PATH ARGS`.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let mut all: Vec<&OsStr> = vec![OsStr::new("--db"), self.path.as_os_str()];
        all.extend(args.iter().map(AsRef::as_ref));
        highwater(&all)
    }

    /// `import --relay-pubkey RELAY FILE [EXTRA]`, which must run to the end: exit 0,
    /// or 1 when it refused something. Its summary.
    #[track_caller]
    pub fn import(&self, file: &Path, extra: &[&str]) -> Summary {
        let mut args = vec!["import", "--relay-pubkey", RELAY_PUBKEY];
        args.extend_from_slice(extra);
        args.push(path_str(file));
        let run = self.run(&args);
        let summary = Summary::parse(&run.stdout);
        let expected = i32::from(summary.rejected > 0);
        assert_eq!(run.status.code(), Some(expected), "{run}");
        summary
    }

    /// `status --json`.
    #[track_caller]
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.run(&["status", "--json"]).ok()).expect("status is JSON")
    }

    /// The log head, from `status --json`.
    #[track_caller]
    pub fn head(&self) -> u64 {
        self.status()["head"].as_u64().expect("head is a number")
    }

    /// `show --group GROUP --json`, checked for its shape.
    #[track_caller]
    pub fn show(&self, group: &str) -> String {
        let text = self.run(&["show", "--group", group, "--json"]).ok();
        check_show_shape(&text, group);
        text
    }

    /// `export FILE`; returns the exported lines.
    #[track_caller]
    pub fn export(&self, file: &Path) -> Vec<String> {
        self.run(&["export", path_str(file)]).ok();
        read_lines(file)
    }
}

/// A sandbox path as a command-line argument.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The lines of a text file.
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("the file is readable text")
        .lines()
        .map(str::to_owned)
        .collect()
}
