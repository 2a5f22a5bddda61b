//! Support for `reliability_processes`: the real `highwater` binary run as separate
//! processes against one database — a relay written to over WebSocket, reading commands
//! in loops, imports — with SIGTERM bounds, SIGKILLs, and a disk that fills.
//!
//! Everything here talks to the product the way an operator and clients do: command
//! lines, exit statuses, stdout, and NIP-01 `OK` messages. The only in-process access
//! to the database is the final lookup of acknowledged ids, made after every process
//! has stopped.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a helper module of one test binary; `pub` is read as crate-wide"
)]

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nostr::prelude::{Event, EventBuilder, EventId, FinalizeEvent, Keys, Kind, Tag};
use tungstenite::{Message, WebSocket};

/// The relay's secret key in every run (fixed, so a restarted relay is the same relay).
pub const RELAY_SECRET: &str = "3b2a6bb3b1d1f04b54b0c21c1f25a4a4d3a91c29c0cbd2a0d66c1e9a0a6e5f11";

/// How long a process may take to exit after SIGTERM before it counts as hung. A bound
/// for detecting a hang, not a speed requirement: a healthy stop takes milliseconds.
pub const STOP_BOUND: Duration = Duration::from_mins(1);

/// How long a write may wait for its `OK` while the relay is up before it counts as
/// stalled (a writer deadlock), and how long a reading command may run.
pub const STALL_BOUND: Duration = Duration::from_mins(2);

pub fn relay_keys() -> Keys {
    Keys::parse(RELAY_SECRET).expect("a valid secret key")
}

// ---------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------

/// The `highwater` binary: `$HIGHWATER_BIN` when set; otherwise the one cargo builds
/// into this test's target directory and profile, built first (`cargo build -p
/// highwater-replay --bin highwater`) when it is missing or older than any source of
/// the crates it is made of — so a narrow `cargo nextest run -p highwater-tests` never
/// tests a stale binary, and the gate's workspace run (which has just built it) does
/// not rebuild it.
pub fn highwater_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HIGHWATER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HIGHWATER_BIN={} is not a file",
            path.display()
        );
        eprintln!("highwater binary: {} (HIGHWATER_BIN)", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target directory");
    let bin = profile_dir.join("highwater");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let mut newest = SystemTime::UNIX_EPOCH;
    for krate in [
        "store",
        "engine",
        "projections",
        "relay",
        "workload",
        "bench",
        "replay",
    ] {
        newest = newest.max(newest_mtime(&workspace.join(krate).join("src")));
        newest = newest.max(mtime(&workspace.join(krate).join("Cargo.toml")));
    }
    newest = newest.max(mtime(&workspace.join("Cargo.lock")));
    let built = bin.metadata().and_then(|m| m.modified()).ok();
    if built.is_some_and(|built| built >= newest) {
        eprintln!("highwater binary: {}", bin.display());
        return bin;
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    eprintln!(
        "highwater binary: {} is {}; building it (profile {profile})",
        bin.display(),
        if built.is_some() {
            "older than its sources"
        } else {
            "missing"
        }
    );
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--locked",
            "-p",
            "highwater-replay",
            "--bin",
            "highwater",
        ])
        .args(["--profile", &profile])
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the highwater binary failed");
    assert!(bin.is_file(), "cargo built no {}", bin.display());
    bin
}

fn mtime(path: &Path) -> SystemTime {
    path.metadata()
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = mtime(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let t = if path.is_dir() {
                newest_mtime(&path)
            } else {
                mtime(&path)
            };
            newest = newest.max(t);
        }
    }
    newest
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A child process whose stdout and stderr go to files.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub started: Instant,
}

/// How a process ended when asked to stop.
#[derive(Debug)]
pub enum Stopped {
    /// It had already exited by itself.
    Exited(ExitStatus),
    /// It exited after SIGTERM, within [`STOP_BOUND`].
    Terminated(ExitStatus),
}

impl Proc {
    /// Spawns `command` with stdout and stderr written to `logs/NAME.out` and `.err`.
    pub fn spawn(name: &str, mut command: Command, logs: &Path) -> Self {
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        let child = command
            .env_remove("HIGHWATER_DB")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for a child")
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to [`STOP_BOUND`]. A process still running then is hung:
    /// what each of its threads is blocked in is returned as the error (and the process
    /// is killed).
    pub fn terminate(&mut self) -> Result<Stopped, String> {
        if let Some(status) = self.exited() {
            return Ok(Stopped::Exited(status));
        }
        signal("TERM", self.pid());
        let deadline = Instant::now() + STOP_BOUND;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Ok(Stopped::Terminated(status));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let threads = thread_states(self.pid());
        self.kill();
        Err(format!(
            "{} (pid {}) did not exit within {:?} of SIGTERM; its threads: {threads}; stderr: {}",
            self.name,
            self.pid(),
            STOP_BOUND,
            self.stderr_tail()
        ))
    }

    /// Waits for the process to exit by itself, up to `bound`.
    pub fn wait_bounded(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last lines of its stderr.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// Sends `SIG<name>` to `pid` (through `kill(1)`: the workspace forbids `unsafe`).
pub fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Each thread's name, state and kernel wait channel, for a hang report.
fn thread_states(pid: u32) -> String {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let dir = task.path();
            let read = |f: &str| {
                std::fs::read_to_string(dir.join(f))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            let state = read("stat")
                .rsplit(") ")
                .next()
                .and_then(|s| s.split(' ').next())
                .unwrap_or("?")
                .to_owned();
            let stack: Vec<String> = read("stack")
                .lines()
                .take(4)
                .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
                .collect();
            out.push(format!(
                "[{} {} wchan={} {}]",
                read("comm"),
                state,
                read("wchan"),
                stack.join("<")
            ));
        }
    }
    out.join(" ")
}

/// `highwater --db DB ARGS…`
pub fn highwater(bin: &Path, db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command.arg("--db").arg(db).args(args);
    command
}

/// Starts `highwater relay` on a free loopback port; returns it and its `ws://` URL.
/// `ignore_xfsz`: start it with SIGXFSZ ignored (inherited through `exec`), so a
/// file-size limit set on it later makes its writes fail with `EFBIG` instead of
/// killing it.
pub fn start_relay(
    bin: &Path,
    db: &Path,
    logs: &Path,
    name: &str,
    ignore_xfsz: bool,
) -> (Proc, String) {
    let mut command = if ignore_xfsz {
        let mut sh = Command::new("sh");
        sh.args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""]).arg(bin);
        sh
    } else {
        Command::new(bin)
    };
    command
        .arg("--db")
        .arg(db)
        .args(["relay", "--create", "--bind", "127.0.0.1:0"])
        .env("HIGHWATER_RELAY_SECRET_KEY", RELAY_SECRET);
    let mut relay = Proc::spawn(name, command, logs);
    let deadline = Instant::now() + STALL_BOUND;
    loop {
        let text = std::fs::read_to_string(&relay.stderr).unwrap_or_default();
        if let Some(at) = text.find("listening on ws://") {
            let rest = &text[at + "listening on ".len()..];
            let url = rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
            return (relay, url);
        }
        if let Some(status) = relay.exited() {
            panic!("the relay exited at start ({status}): {text}");
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not start listening: {text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// What the writers are in: which refusals are expected depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Nothing is wrong: every write must be accepted.
    Normal = 0,
    /// The disk is full (or was, with writes still in flight): writes may be refused
    /// with the store's error.
    DiskFull = 1,
    /// The relay is being stopped: writes in flight may be refused as shutting down.
    Stopping = 2,
}

/// Where an acknowledged event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `OK true` from the relay.
    Relay,
    /// A completed `highwater import` that did not list it as refused.
    Import,
}

/// A refusal (`OK false`), with the phase it arrived in.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: u16,
    pub message: String,
    pub phase: Phase,
}

/// State shared by the threads of one round.
#[derive(Debug)]
pub struct Round {
    /// The relay's URL while it is up; `None` while it is being restarted.
    pub url: Mutex<Option<String>>,
    phase: AtomicU8,
    /// Set at the end of the round: threads finish what they are doing and return.
    pub stop: AtomicBool,
    /// Every acknowledged event, in acknowledgement order.
    pub acked: Mutex<Vec<(EventId, Source, u16)>>,
    pub refusals: Mutex<Vec<Refusal>>,
    /// Groups whose creation the relay acknowledged (for `show`).
    pub groups: Mutex<Vec<String>>,
    /// Everything that went wrong; the round fails if this is not empty.
    pub failures: Mutex<Vec<String>>,
    /// Named counters for the report (reader runs, kills, stops …).
    pub counts: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Round {
    pub fn new(url: String) -> Arc<Self> {
        Arc::new(Self {
            url: Mutex::new(Some(url)),
            phase: AtomicU8::new(Phase::Normal as u8),
            stop: AtomicBool::new(false),
            acked: Mutex::new(Vec::new()),
            refusals: Mutex::new(Vec::new()),
            groups: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            counts: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Normal,
            1 => Phase::DiskFull,
            _ => Phase::Stopping,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn fail(&self, what: String) {
        eprintln!("FAILURE: {what}");
        self.failures.lock().unwrap().push(what);
    }

    pub fn count(&self, what: &str) {
        self.count_n(what, 1);
    }

    pub fn count_n(&self, what: &str, n: u64) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(what.to_owned())
            .or_default() += n;
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn url(&self) -> Option<String> {
        self.url.lock().unwrap().clone()
    }
}

/// Whether a refusal is one the phase explains; anything else is a refusal caused by
/// something that should not cause one (another process, a lost lock, a bug).
pub fn refusal_expected(refusal: &Refusal) -> bool {
    let m = refusal.message.as_str();
    match refusal.phase {
        Phase::Normal => false,
        Phase::DiskFull => m.starts_with("error: could not store the event"),
        Phase::Stopping => m == "error: the relay is shutting down" || m == "error: relay stopped",
    }
}

type Socket = WebSocket<TcpStream>;

fn connect(url: &str) -> Option<Socket> {
    let addr = url.strip_prefix("ws://")?;
    let stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    stream.set_nodelay(true).ok()?;
    let (socket, _) = tungstenite::client::client(url, stream).ok()?;
    Some(socket)
}

/// What waiting for an `OK` gave.
enum Answer {
    Ok(bool, String),
    /// The connection ended (the relay was killed or stopped).
    Gone,
    /// No answer within [`STALL_BOUND`] while the connection stayed open.
    Stalled,
}

fn wait_ok(socket: &mut Socket, id: &EventId) -> Answer {
    let deadline = Instant::now() + STALL_BOUND;
    let id = id.to_hex();
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    continue;
                };
                if value[0] == "OK" && value[1] == id.as_str() {
                    let accepted = value[2].as_bool().unwrap_or(false);
                    let message = value[3].as_str().unwrap_or_default().to_owned();
                    return Answer::Ok(accepted, message);
                }
            }
            Ok(Message::Close(_)) => return Answer::Gone,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return Answer::Stalled;
                }
            }
            Err(_) => return Answer::Gone,
        }
    }
}

fn signed(keys: &Keys, kind: u16, content: &str, tags: &[Vec<String>]) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags.iter().map(|t| Tag::parse(t.clone()).expect("a tag")))
        .finalize(keys)
        .expect("sign")
}

fn h(group: &str) -> Vec<String> {
    vec!["h".into(), group.into()]
}

/// A writer: one WebSocket connection with one write in flight at a time, sending
/// group creations (9007), posts (9), puts (9000) and join requests (9021, answered by
/// the relay with a 9000) into its own groups, recording every `OK`. Reconnects when
/// the relay is restarted. Returns when the round stops.
pub fn writer(round: &Round, number: usize, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let author = Keys::generate();
    let mut groups: Vec<String> = Vec::new();
    let mut n = 0u64;
    while !round.stopping() {
        let Some(url) = round.url() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Some(mut socket) = connect(&url) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        while !round.stopping() {
            n += 1;
            let content = format!("writer {number} write {n} seed {seed}");
            let (event, group) = if groups.len() < 3 || rng.random_ratio(1, 60) {
                let group = format!("procs-{seed:x}-{number}-{n}");
                (signed(&author, 9007, &content, &[h(&group)]), Some(group))
            } else {
                let group = &groups[rng.random_range(0..groups.len())];
                let roll = rng.random_range(0..20);
                let event = if roll < 14 {
                    signed(&author, 9, &content, &[h(group)])
                } else if roll < 17 {
                    let member = Keys::generate().public_key().to_hex();
                    signed(
                        &author,
                        9000,
                        &content,
                        &[h(group), vec!["p".into(), member]],
                    )
                } else {
                    signed(&Keys::generate(), 9021, &content, &[h(group)])
                };
                (event, None)
            };
            let kind = event.kind.as_u16();
            let text = serde_json::json!(["EVENT", event]).to_string();
            if socket.send(Message::text(text)).is_err() {
                break;
            }
            match wait_ok(&mut socket, &event.id) {
                Answer::Ok(true, _) => {
                    round
                        .acked
                        .lock()
                        .unwrap()
                        .push((event.id, Source::Relay, kind));
                    if let Some(group) = group {
                        round.groups.lock().unwrap().push(group.clone());
                        groups.push(group);
                    }
                }
                Answer::Ok(false, message) => {
                    let refusal = Refusal {
                        kind,
                        message,
                        phase: round.phase(),
                    };
                    if !refusal_expected(&refusal) {
                        round.fail(format!(
                            "writer {number}: kind {kind} refused in phase {:?}: {}",
                            refusal.phase, refusal.message
                        ));
                    }
                    round.refusals.lock().unwrap().push(refusal);
                }
                Answer::Gone => break,
                Answer::Stalled => {
                    round.fail(format!(
                        "writer {number}: no OK for a kind {kind} event within {STALL_BOUND:?} on an open connection"
                    ));
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The disk
// ---------------------------------------------------------------------------------------

/// How a full disk is made.
#[derive(Debug)]
pub enum Disk {
    /// A size-limited tmpfs mounted at the path; filled with a filler file.
    Tmpfs(PathBuf),
    /// No mount possible: the relay's file-size limit (`prlimit --fsize`) is set to its
    /// data file's current size, so growing it fails with `EFBIG`, as a full disk fails
    /// it with `ENOSPC`; raised again to bring the space back.
    FileSizeLimit,
}

/// Whether this process holds `CAP_SYS_ADMIN` (needed to mount), from /proc.
pub fn has_cap_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// A mounted tmpfs, unmounted on drop (also when the test panics).
#[derive(Debug)]
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        unmount(&self.0);
    }
}

/// Mounts a tmpfs of `size` at `dir`; `Err` with mount's message when it cannot.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
    std::fs::create_dir_all(dir).expect("mount point");
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(Mounted(dir.to_owned()))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

pub fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).status();
}

/// Fills the filesystem of `dir` with `dir/filler` until a write fails; returns the
/// bytes written.
pub fn fill(dir: &Path) -> u64 {
    use std::io::Write;
    let mut file = File::create(dir.join("filler")).expect("create the filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4 << 10, 512] {
        let bytes = vec![0xa5u8; chunk];
        while file.write_all(&bytes).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

/// Sets the soft file-size limit of a running process (`None`: unlimited).
pub fn set_file_size_limit(pid: u32, limit: Option<u64>) {
    let soft = limit.map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .status()
        .expect("run prlimit");
    assert!(
        status.success(),
        "prlimit --pid {pid} --fsize={soft} failed"
    );
}

/// Whether `prlimit` can run here.
pub fn prlimit_available() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
