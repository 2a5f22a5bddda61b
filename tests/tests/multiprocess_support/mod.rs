//! Real child processes on one database: the test binary re-executes itself as a
//! worker that takes line commands on stdin and answers on stdout, so a test can make
//! one process append, another answer queries, and check every answer against a full
//! replay of the log at that moment. Processes are coordinated through these pipes
//! only: a command is sent after the previous answer was read, never after a sleep.
//!
//! Commands (one per line; each answered by exactly one line):
//! - `open DIR MAP_SIZE` → `ok HEAD`: a store (read-write) with an engine and the four
//!   NIP-29 projections;
//! - `append FILE` → `ack LAST_SEQ HEAD`: every event of a JSONL file, in batches through
//!   one ordered pipeline, each batch acknowledged before the next is sent;
//! - `single FILE` → a line `ack SEQ ID` per event, appended one at a time, then `done`;
//! - `ask GROUP...` → `answer JSON`: [`answer`] for each group, through the served
//!   (incremental) queries;
//! - `head` → `head N`;
//! - `exit` → the process exits.

#![allow(dead_code, unreachable_pub, reason = "shared by several test binaries")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{AppendOutcome, Prepared, Store, StoreOptions};
use highwater_workload::{WorkloadSpec, generate};
use nostr::prelude::{Event, Keys, PublicKey};
use serde_json::{Value, json};

/// Starts every protocol line a worker prints.
const MARK: &str = "@@hw ";

/// Set in a child's environment: the child runs [`run_worker`] instead of the test.
pub const CHILD_ENV: &str = "HIGHWATER_MP_WORKER";

/// The relay key of every workload here (a fixed secret).
pub fn relay_keys() -> Keys {
    Keys::parse("0000000000000000000000000000000000000000000000000000000000000007")
        .expect("a valid secret key")
}

/// If this process is a worker, serves commands and exits; otherwise returns.
pub fn serve_if_child() {
    if std::env::var_os(CHILD_ENV).is_some() {
        run_worker();
        std::process::exit(0);
    }
}

/// A worker child process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Starts a worker by re-executing this test binary for test `test_name`.
    pub fn spawn(test_name: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a worker");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends a command without waiting for its answer.
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to the worker");
        self.stdin.flush().expect("flush to the worker");
    }

    /// The next line the worker printed that belongs to the protocol: the text after
    /// [`MARK`]. The test harness's own output (`running 1 test`, and `test NAME ... `,
    /// which it prints without a newline before the test runs) is skipped.
    pub fn line(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("read from the worker");
            assert!(n > 0, "the worker exited early");
            if let Some(at) = line.find(MARK) {
                let reply = line[at + MARK.len()..].trim_end().to_owned();
                assert!(!reply.starts_with("error"), "worker failed: {reply}");
                return reply;
            }
        }
    }

    /// Sends a command and returns its answer line.
    pub fn call(&mut self, command: &str) -> String {
        self.send(command);
        self.line()
    }

    /// Kills the worker with SIGKILL.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the worker to exit and waits for it.
    pub fn exit(mut self) {
        self.send("exit");
        let status = self.child.wait().expect("wait for the worker");
        assert!(status.success(), "worker exited with {status}");
    }
}

/// A deterministic signed NIP-29 workload, in log order.
pub fn workload(events: usize, groups: usize, seed: u64) -> Vec<Event> {
    let spec = WorkloadSpec {
        groups,
        events,
        seed,
        relay_secret: Some(relay_keys().secret_key().to_secret_bytes()),
    };
    let mut out = Vec::with_capacity(events);
    generate(&spec, &|_| {}, &mut |e| {
        out.push(e.clone());
        Ok(())
    })
    .expect("generate a workload");
    out
}

/// Writes events as JSONL.
pub fn write_jsonl(path: &Path, events: &[Event]) {
    let mut text = String::new();
    for e in events {
        text.push_str(&e.as_json());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write a JSONL file");
}

/// Every group named by the events, sorted.
pub fn group_names(events: &[Event]) -> Vec<String> {
    let mut names: Vec<String> = events
        .iter()
        .filter_map(|e| {
            e.tags
                .iter()
                .map(nostr::prelude::Tag::as_slice)
                .find(|t| matches!(t.first().map(String::as_str), Some("h" | "d")))
                .and_then(|t| t.get(1).cloned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Opens the engine and the NIP-29 projections over `store`.
pub fn engine_over(store: Store) -> (Engine, Groups) {
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(relay_keys().public_key()))
        .expect("register the projections");
    (builder.build().expect("start the engine"), groups)
}

/// What a process answers about one group, as JSON: existence, members, member count,
/// creator and metadata. The same function renders the served answers (in a worker)
/// and the full-replay answers (through `Groups::oracle` in the test).
pub fn answer(groups: &Groups, names: &[String]) -> Value {
    let per_group: Vec<Value> = names
        .iter()
        .map(|g| {
            let members: Vec<String> = groups
                .members(g)
                .expect("members")
                .iter()
                .map(PublicKey::to_hex)
                .collect();
            json!({
                "group": g,
                "exists": groups.group_exists(g).expect("exists"),
                "member_count": groups.member_count(g).expect("member count"),
                "members": members,
                "creator": groups.creator(g).expect("creator").map(|k| k.to_hex()),
                "metadata": serde_json::to_value(groups.metadata(g).expect("metadata")).expect("json"),
            })
        })
        .collect();
    Value::Array(per_group)
}

fn read_events(path: &str) -> Vec<Event> {
    std::fs::read_to_string(path)
        .expect("read a JSONL file")
        .lines()
        .map(|l| Event::from_json(l).expect("an event"))
        .collect()
}

fn run_worker() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut open: Option<(Store, Engine, Groups)> = None;
    for line in stdin.lock().lines() {
        let line = line.expect("a command");
        let mut words = line.split(' ');
        let reply = match words.next().unwrap_or_default() {
            "open" => {
                let dir = PathBuf::from(words.next().expect("DIR"));
                let map_size = words
                    .next()
                    .map_or(1 << 30, |w| w.parse().expect("MAP_SIZE"));
                let store = Store::open(
                    &dir,
                    StoreOptions {
                        map_size,
                        ..StoreOptions::default()
                    },
                )
                .expect("open the store");
                let (engine, groups) = engine_over(store.clone());
                let head = store.head();
                open = Some((store, engine, groups));
                format!("ok {head}")
            }
            "append" => {
                let (store, _, _) = open.as_ref().expect("open first");
                let events = read_events(words.next().expect("FILE"));
                let pipeline = store.pipeline();
                let mut last = 0;
                for chunk in events.chunks(257) {
                    let ready = store
                        .prepare_all(chunk)
                        .into_iter()
                        .filter_map(|p| match p.expect("a valid event") {
                            Prepared::Ready(e) => Some(e),
                            Prepared::Duplicate(seq) => {
                                last = last.max(seq);
                                None
                            }
                        })
                        .collect();
                    for outcome in pipeline
                        .submit(ready)
                        .expect("submit")
                        .wait()
                        .expect("commit")
                    {
                        last = last.max(outcome.seq());
                    }
                }
                format!("ack {last} {}", store.head())
            }
            "single" => {
                let (store, _, _) = open.as_ref().expect("open first");
                for event in read_events(words.next().expect("FILE")) {
                    let seq = match store.append(&event).expect("append") {
                        AppendOutcome::Appended(seq) | AppendOutcome::Duplicate(seq) => seq,
                    };
                    writeln!(out, "{MARK}ack {seq} {}", event.id.to_hex()).expect("stdout");
                    out.flush().expect("stdout");
                }
                "done".to_owned()
            }
            "ask" => {
                let (_, _, groups) = open.as_ref().expect("open first");
                let names: Vec<String> = words.map(str::to_owned).collect();
                format!("answer {}", answer(groups, &names))
            }
            "head" => {
                let (store, _, _) = open.as_ref().expect("open first");
                format!("head {}", store.head())
            }
            "exit" => break,
            other => format!("error unknown command {other:?}"),
        };
        writeln!(out, "{MARK}{reply}").expect("stdout");
        out.flush().expect("stdout");
    }
    drop(open);
}
