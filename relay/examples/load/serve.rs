//! The child process: serves one relay (highwater or the peer) on a free loopback port,
//! prints `READY <port>`, and stops when its standard input closes.

use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_relay::{Relay, RelayOptions};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::Keys;

pub(crate) fn child(which: &str, db: Option<&Path>) -> ExitCode {
    let Some(db) = db else {
        eprintln!("--serve needs --db");
        return ExitCode::FAILURE;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        match which {
            "highwater" => highwater(db).await,
            "nostr-relay-builder" => peer(db).await,
            other => Err(format!("unknown relay {other}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves when the parent closes our standard input.
async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await;
}

fn ready(port: u16) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "READY {port}");
    let _ = out.flush();
}

async fn highwater(db: &Path) -> Result<(), String> {
    let keys = Keys::generate();
    let store = Store::open(db, StoreOptions::default()).map_err(|e| e.to_string())?;
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(keys.public_key()))
        .map_err(|e| e.to_string())?;
    let engine = builder.build().map_err(|e| e.to_string())?;
    let options = RelayOptions {
        limits: highwater_relay::ConnectionLimits {
            // The load clients read everything, in bursts: 1,256 connections, and room
            // for a burst of fan-out per subscriber.
            max_connections: 4_096,
            max_queue_bytes: 32 * 1024 * 1024,
            ..highwater_relay::ConnectionLimits::default()
        },
        ..RelayOptions::default()
    };
    let relay = Relay::new(engine, groups, keys, options).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    ready(listener.local_addr().map_err(|e| e.to_string())?.port());
    relay
        .serve(listener, stdin_closed())
        .await
        .map_err(|e| e.to_string())
}

async fn peer(db: &Path) -> Result<(), String> {
    use nostr_lmdb_peer::NostrLMDB;
    use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let database = NostrLMDB::open(db).map_err(|e| e.to_string())?;
    let builder = RelayBuilder::default()
        .addr(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(port)
        .database(database)
        .rate_limit(RateLimit {
            max_reqs: 100_000,
            notes_per_minute: u32::MAX,
        });
    let relay = LocalRelay::new(builder);
    relay.run().await.map_err(|e| e.to_string())?;
    ready(port);
    stdin_closed().await;
    relay.shutdown();
    Ok(())
}

/// A relay in a child process.
pub(crate) struct Process {
    child: Child,
    pub(crate) port: u16,
}

impl Process {
    pub(crate) fn spawn(which: &str, db: &Path) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["--serve", which, "--db"])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("the {which} child did not start: {line:?}"))?;
        Ok(Self { child, port })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the child's standard input and waits for it to exit.
    pub(crate) fn stop(mut self, limit: Duration) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of a process, in MiB.
pub(crate) fn peak_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
