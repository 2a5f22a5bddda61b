//! Read replicas measured (issue 26): a primary and two replicas, each a child process
//! of the release `highwater` binary (`highwater relay`, `--replica-of`), on loopback.
//!
//! ```sh
//! cargo build --release -p highwater-replay -p highwater-relay --examples
//! target/release/examples/replica_bench                       # all three parts
//! target/release/examples/replica_bench --only catchup --catchup-events 200000
//! target/release/examples/replica_bench --only catchup --rounds 2 --bin /tmp/new --compare-bin /tmp/old
//! ```
//!
//! (1) lag: `--clients` writers post `--lag-events` kind-9 events to the primary, one at a
//! time each, waiting for `OK`; one live subscription (`{"kinds":[9],"limit":0}`) on the
//! first replica and one on the primary time each delivery; lag = replica delivery minus
//! the writer's `OK` (the primary's own delivery beside it, as a reference).
//! (2) fan-out: `--subscribers` subscriptions (`#h` one group each) spread round-robin
//! over 1, 2 and 3 processes (primary, replica 1, replica 2) while the writers post
//! `--fanout-events`; deliveries/s = deliveries / (last delivery - first send).
//! (3) catch-up: `highwater generate --groups 500 --events N`, `import --trusted` into a
//! primary's database, then a fresh replica is timed until its head equals the
//! primary's; the baseline is `highwater import --no-policy` of the same file into an
//! empty database, same run, alternating with the replicas (`--rounds` of import,
//! replica, … import: the load of a shared machine changes between steps, so each
//! replica is compared with the imports just before and after it). With
//! `--compare-bin`, a second fresh replica running that binary (another build) is timed
//! against the same primary right after the first, in every round. The load average
//! is printed beside each step. Every database lives
//! under `--dir` (a temporary directory by default) and is deleted at the end.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, SecretKey, Tag};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone)]
struct Opts {
    bin: PathBuf,
    dir: Option<PathBuf>,
    only: Option<String>,
    compare_bin: Option<PathBuf>,
    rounds: usize,
    clients: usize,
    groups: usize,
    lag_events: usize,
    subscribers: usize,
    fanout_events: usize,
    catchup_events: usize,
}

fn parse() -> Result<Opts, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/release/examples/replica_bench -> target/release/highwater
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("highwater"))
        .ok_or("no binary directory")?;
    let mut o = Opts {
        bin,
        dir: None,
        only: None,
        compare_bin: None,
        rounds: 1,
        clients: 64,
        groups: 100,
        lag_events: 5_000,
        subscribers: 1_000,
        fanout_events: 5_000,
        catchup_events: 1_000_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let name = pair[0].as_str();
        let value = pair.get(1).ok_or_else(|| format!("{name} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{name}: {e}"));
        match name {
            "--bin" => o.bin = PathBuf::from(value),
            "--dir" => o.dir = Some(PathBuf::from(value)),
            "--only" => o.only = Some(value.clone()),
            "--compare-bin" => o.compare_bin = Some(PathBuf::from(value)),
            "--rounds" => o.rounds = number()?,
            "--clients" => o.clients = number()?,
            "--groups" => o.groups = number()?,
            "--lag-events" => o.lag_events = number()?,
            "--subscribers" => o.subscribers = number()?,
            "--fanout-events" => o.fanout_events = number()?,
            "--catchup-events" => o.catchup_events = number()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn keys(n: u64) -> Keys {
    let mut bytes = [9u8; 32];
    bytes[..8].copy_from_slice(&(n + 1).to_be_bytes());
    Keys::new(SecretKey::from_slice(&bytes).expect("a valid secret key"))
}

fn write_key(path: &Path, keys: &Keys) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{}", keys.secret_key().to_secret_hex()).map_err(|e| e.to_string())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A `highwater relay` child process.
#[derive(Debug)]
struct Relay {
    child: Child,
    url: String,
    db: PathBuf,
}

impl Relay {
    /// Starts a relay over `db` with the secret key in `key`; `replica_of` makes it a
    /// replica (its own key must already be `db/replica-secret.key`).
    fn spawn(
        o: &Opts,
        db: &Path,
        key: &Path,
        replica_of: Option<(&str, &Keys)>,
        replica_keys: &[Keys],
    ) -> Result<Self, String> {
        Self::spawn_bin(&o.bin, db, key, replica_of, replica_keys)
    }

    /// [`Relay::spawn`] with another `highwater` binary.
    fn spawn_bin(
        bin: &Path,
        db: &Path,
        key: &Path,
        replica_of: Option<(&str, &Keys)>,
        replica_keys: &[Keys],
    ) -> Result<Self, String> {
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--db")
            .arg(db)
            .args(["relay", "--create", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--max-connections", "4096", "--max-queue-bytes", "33554432"]);
        if let Some((url, primary)) = replica_of {
            cmd.args(["--replica-of", url])
                .args(["--primary-pubkey", &primary.public_key().to_hex()]);
        } else {
            cmd.arg("--secret-key-file").arg(key);
        }
        for r in replica_keys {
            cmd.args(["--replica-key", &r.public_key().to_hex()]);
        }
        let log = std::fs::File::create(db.with_extension("log")).map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut relay = Self {
            child,
            url: format!("ws://127.0.0.1:{port}"),
            db: db.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_mins(1);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(relay.child.try_wait(), Ok(Some(_))) {
                let log = std::fs::read_to_string(db.with_extension("log")).unwrap_or_default();
                return Err(format!("relay on {} did not start:\n{log}", db.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(relay)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn store(&self) -> Result<Store, String> {
        Store::open(&self.db, StoreOptions::default()).map_err(|e| e.to_string())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // SIGTERM for a clean shutdown, then wait.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
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
    (ticks(11) + ticks(12)) / 100.0
}

async fn connect(url: &str) -> Result<Ws, String> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Ok(ws)
}

async fn next_text(ws: &mut Ws, limit: Duration) -> Result<String, String> {
    loop {
        let frame = tokio::time::timeout(limit, ws.next())
            .await
            .map_err(|_| "timed out".to_owned())?
            .ok_or("connection closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(t) = frame {
            return Ok(t.as_str().to_owned());
        }
    }
}

async fn send_wait(ws: &mut Ws, event: &Event) -> Result<(bool, String), String> {
    let id = event.id.to_hex();
    ws.send(Message::text(format!(r#"["EVENT",{}]"#, event.as_json())))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let text = next_text(ws, Duration::from_mins(1)).await?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if v[0] == "OK" && v[1] == id.as_str() {
            return Ok((
                v[2].as_bool().unwrap_or(false),
                v[3].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
}

/// Opens a live subscription and waits for its `EOSE`.
async fn subscribe(url: &str, filter: &str) -> Result<Ws, String> {
    let mut ws = connect(url).await?;
    ws.send(Message::text(format!(r#"["REQ","s",{filter}]"#)))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws, Duration::from_mins(1)).await?;
        if t.starts_with(r#"["EOSE""#) {
            return Ok(ws);
        }
        if t.starts_with(r#"["CLOSED""#) {
            return Err(format!("{url}: {t}"));
        }
    }
}

#[derive(Debug)]
struct Workload {
    creator: Keys,
    writers: Vec<Keys>,
    groups: Vec<String>,
}

impl Workload {
    fn new(o: &Opts) -> Self {
        Self {
            creator: keys(1_000_000),
            writers: (0..o.clients as u64).map(keys).collect(),
            groups: (0..o.groups).map(|g| format!("rb-{g}")).collect(),
        }
    }

    fn setup(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for g in &self.groups {
            let h = Tag::parse(["h", g.as_str()]).expect("h tag");
            out.push(
                EventBuilder::new(Kind::GroupCreateGroup, "")
                    .tags([h.clone(), Tag::parse(["name", g.as_str()]).expect("tag")])
                    .finalize(&self.creator)
                    .expect("sign"),
            );
            let mut tags = vec![h];
            tags.extend(
                self.writers
                    .iter()
                    .map(|w| Tag::parse(["p", w.public_key().to_hex().as_str()]).expect("p")),
            );
            out.push(
                EventBuilder::new(Kind::GroupPutUser, "")
                    .tags(tags)
                    .finalize(&self.creator)
                    .expect("sign"),
            );
        }
        out
    }

    fn post(&self, w: usize, g: usize, content: String) -> Event {
        EventBuilder::new(Kind::Custom(9), content)
            .tag(Tag::parse(["h", self.groups[g % self.groups.len()].as_str()]).expect("h"))
            .finalize(&self.writers[w % self.writers.len()])
            .expect("sign")
    }

    /// Per writer, its posts; `n` in all, spread over the groups.
    fn posts(&self, tag: &str, n: usize) -> Vec<Vec<Event>> {
        let mut per = vec![Vec::new(); self.writers.len()];
        for j in 0..n {
            let w = j % self.writers.len();
            per[w].push(self.post(w, j / self.writers.len() + w, format!("{tag} {j}")));
        }
        per
    }
}

/// Every writer posts its events one at a time; returns (id, ack time since `base`).
async fn write_all(
    url: &str,
    per_writer: Vec<Vec<Event>>,
    base: Instant,
) -> Result<Vec<(String, Duration)>, String> {
    let mut tasks = Vec::new();
    let start = Arc::new(tokio::sync::Barrier::new(per_writer.len()));
    for events in per_writer {
        let mut ws = connect(url).await?;
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut acks = Vec::with_capacity(events.len());
            for e in &events {
                let (ok, why) = send_wait(&mut ws, e).await?;
                if !ok {
                    return Err(format!("refused: {why}"));
                }
                acks.push((e.id.to_hex(), base.elapsed()));
            }
            let _ = ws.close(None).await;
            Ok::<_, String>(acks)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}

/// Posts a probe to the primary and waits until every replica serves it.
async fn sync(w: &Workload, primary: &str, replicas: &[&str]) -> Result<Duration, String> {
    let t = Instant::now();
    let probe = w.post(0, 0, format!("probe {:?}", Instant::now()));
    let mut ws = connect(primary).await?;
    let (ok, why) = send_wait(&mut ws, &probe).await?;
    if !ok {
        return Err(format!("probe refused: {why}"));
    }
    let filter = format!(r#"{{"ids":["{}"]}}"#, probe.id.to_hex());
    for r in replicas {
        let mut ws = connect(r).await?;
        ws.send(Message::text(format!(r#"["REQ","p",{filter}]"#)))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let t2 = next_text(&mut ws, Duration::from_mins(10)).await?;
            if t2.starts_with(r#"["EVENT""#) {
                break;
            }
        }
    }
    Ok(t.elapsed())
}

/// Collects (id, delivery time since `base`) from a live subscription until `expected`
/// deliveries or 20 s without one.
fn collect(
    mut ws: Ws,
    base: Instant,
    expected: usize,
) -> tokio::task::JoinHandle<Vec<(String, Duration)>> {
    tokio::spawn(async move {
        let mut got = Vec::with_capacity(expected);
        while got.len() < expected {
            let Ok(text) = next_text(&mut ws, Duration::from_secs(20)).await else {
                break;
            };
            let at = base.elapsed();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && v[0] == "EVENT"
                && let Some(id) = v[2]["id"].as_str()
            {
                got.push((id.to_owned(), at));
            }
        }
        let _ = ws.close(None).await;
        got
    })
}

fn quantiles(mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return "-".to_owned();
    }
    ms.sort_by(f64::total_cmp);
    // Per mille: the index is within 0..len.
    let q = |permille: usize| ms[(ms.len() - 1) * permille / 1000];
    format!(
        "{:>8.1} | {:>8.1} | {:>8.1}",
        q(500),
        q(990),
        ms[ms.len() - 1]
    )
}

async fn lag(o: &Opts, w: &Workload, primary: &Relay, replica: &Relay) -> Result<(), String> {
    let per_writer = w.posts("lag", o.lag_events);
    let filter = r#"{"kinds":[9],"limit":0}"#;
    let base = Instant::now();
    let on_replica = collect(subscribe(&replica.url, filter).await?, base, o.lag_events);
    let on_primary = collect(subscribe(&primary.url, filter).await?, base, o.lag_events);
    // When each event became visible in the replica's log (its commit), polled every
    // millisecond from this process: separates the append from the replica's delivery.
    let store = replica.store()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = store.head();
            let mut at: Vec<(u64, Duration)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let head = store.head();
                let now = base.elapsed();
                at.extend((seen + 1..=head).map(|seq| (seq, now)));
                seen = head;
                std::thread::sleep(Duration::from_millis(1));
            }
            at.into_iter()
                .filter_map(|(seq, t)| Some((store.get(seq).ok()??.id.to_hex(), t)))
                .collect::<Vec<_>>()
        })
    };
    let cpu = (cpu_seconds(primary.pid()), cpu_seconds(replica.pid()));
    let t = Instant::now();
    let acks = write_all(&primary.url, per_writer, base).await?;
    let writing = t.elapsed();
    let replica_got = on_replica.await.map_err(|e| e.to_string())?;
    let primary_got = on_primary.await.map_err(|e| e.to_string())?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = watcher.join().map_err(|_| "the watcher panicked")?;
    let acked: HashMap<String, Duration> = acks.into_iter().collect();
    let lags = |got: &[(String, Duration)]| -> (Vec<f64>, usize) {
        let mut early = 0;
        let ms = got
            .iter()
            .filter_map(|(id, at)| {
                let ack = acked.get(id)?;
                if at < ack {
                    early += 1;
                }
                Some((at.as_secs_f64() - ack.as_secs_f64()).max(0.0) * 1e3)
            })
            .collect();
        (ms, early)
    };
    let (replica_ms, replica_early) = lags(&replica_got);
    let (primary_ms, primary_early) = lags(&primary_got);
    let (appended_ms, appended_early) = lags(&appended);
    println!(
        "\n(1) lag: {} writers, {} events over {} groups, {:.0} events/s acknowledged by the primary \
         ({:.1} s); CPU s during it: primary {:.1}, replica 1 {:.1}",
        o.clients,
        acked.len(),
        o.groups,
        acked.len() as f64 / writing.as_secs_f64(),
        writing.as_secs_f64(),
        cpu_seconds(primary.pid()) - cpu.0,
        cpu_seconds(replica.pid()) - cpu.1
    );
    println!(
        "| delivery after the writer's OK        | received | before OK |  p50 ms  |  p99 ms  |  max ms  |"
    );
    println!(
        "|---------------------------------------|----------|-----------|----------|----------|----------|"
    );
    println!(
        "| replica 1 live subscription (the lag) | {:>8} | {:>9} | {} |",
        replica_ms.len(),
        replica_early,
        quantiles(replica_ms)
    );
    println!(
        "| replica 1 log head (its commit, info) | {:>8} | {:>9} | {} |",
        appended_ms.len(),
        appended_early,
        quantiles(appended_ms)
    );
    println!(
        "| primary live subscription (reference) | {:>8} | {:>9} | {} |",
        primary_ms.len(),
        primary_early,
        quantiles(primary_ms)
    );
    Ok(())
}

async fn fanout(o: &Opts, w: &Workload, relays: &[&Relay]) -> Result<(), String> {
    println!(
        "\n(2) fan-out: {} subscribers (one group each, round-robin over the processes), {} writers \
         posting {} events to the primary",
        o.subscribers, o.clients, o.fanout_events
    );
    println!(
        "| processes serving subscribers | deliveries | expected | seconds | deliveries/s | ratio to 1 | writes/s |"
    );
    println!(
        "|-------------------------------|------------|----------|---------|--------------|------------|----------|"
    );
    let mut one = 0.0;
    for k in 1..=relays.len() {
        let urls: Vec<&str> = relays[1..].iter().map(|r| r.url.as_str()).collect();
        sync(w, &relays[0].url, &urls).await?;
        let per_writer = w.posts(&format!("fan{k}"), o.fanout_events);
        let mut per_group: HashMap<String, usize> = HashMap::new();
        for e in per_writer.iter().flatten() {
            let g = e
                .tags
                .iter()
                .find(|t| t.kind() == "h")
                .and_then(|t| t.content());
            *per_group.entry(g.unwrap_or("").to_owned()).or_default() += 1;
        }
        let base = Instant::now();
        let last = Arc::new(Mutex::new(Duration::ZERO));
        let mut subs = Vec::new();
        let mut expected = 0;
        for s in 0..o.subscribers {
            let group = &w.groups[s % w.groups.len()];
            let want = per_group.get(group).copied().unwrap_or(0);
            expected += want;
            let filter = format!(r##"{{"kinds":[9],"#h":["{group}"],"limit":0}}"##);
            let mut ws = subscribe(&relays[s % k].url, &filter).await?;
            let last = last.clone();
            subs.push(tokio::spawn(async move {
                let mut n = 0;
                while n < want {
                    let Ok(Some(Ok(frame))) =
                        tokio::time::timeout(Duration::from_secs(20), ws.next()).await
                    else {
                        break;
                    };
                    if let Message::Text(t) = frame
                        && t.as_str().starts_with(r#"["EVENT""#)
                    {
                        n += 1;
                    }
                }
                let at = base.elapsed();
                {
                    let mut l = last.lock().expect("lock");
                    *l = (*l).max(at);
                }
                let _ = ws.close(None).await;
                n
            }));
        }
        let start = base.elapsed();
        let t = Instant::now();
        let acks = write_all(&relays[0].url, per_writer, base).await?;
        let writing = t.elapsed();
        let mut delivered = 0;
        for s in subs {
            delivered += s.await.map_err(|e| e.to_string())?;
        }
        let seconds = last
            .lock()
            .expect("lock")
            .saturating_sub(start)
            .as_secs_f64();
        let rate = delivered as f64 / seconds;
        if k == 1 {
            one = rate;
        }
        println!(
            "| {:<29} | {delivered:>10} | {expected:>8} | {seconds:>7.2} | {rate:>12.0} | {:>9.2}x | {:>8.0} |",
            [
                "1 (primary)",
                "2 (primary + replica)",
                "3 (primary + 2 replicas)"
            ][k - 1],
            rate / one,
            acks.len() as f64 / writing.as_secs_f64()
        );
    }
    Ok(())
}

fn run(o: &Opts, cmd: &mut Command) -> Result<Duration, String> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", o.bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(t.elapsed())
}

/// The load average over the last minute, as `uptime` prints it.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `highwater import --no-policy` of `file` into a fresh database: the time and the
/// events imported.
fn baseline_import(
    o: &Opts,
    dir: &Path,
    file: &Path,
    pubkey: &str,
) -> Result<(Duration, u64), String> {
    let db = dir.join("baseline.lmdb");
    let took = run(
        o,
        Command::new(&o.bin)
            .arg("--db")
            .arg(&db)
            .args(["import", "--no-policy", "--relay-pubkey", pubkey])
            .arg(file),
    )?;
    let head = Store::open(&db, StoreOptions::default())
        .map_err(|e| e.to_string())?
        .head();
    let _ = std::fs::remove_dir_all(&db);
    eprintln!(
        "import --no-policy: {head} events in {:.1} s (load {})",
        took.as_secs_f64(),
        load()
    );
    Ok((took, head))
}

/// One fresh replica's catch-up.
struct CatchUp {
    took: Duration,
    first: Duration,
    samples: Vec<(Duration, u64)>,
    cpu_primary: f64,
    cpu_replica: f64,
    load: (String, String),
}

/// Times a fresh replica running `bin` from its spawn until its head is `head`, the
/// primary's; its database is deleted after.
fn catch_up(
    bin: &Path,
    dir: &Path,
    primary: &Relay,
    key: &Path,
    relay_keys: &Keys,
    replica_keys: &Keys,
    head: u64,
) -> Result<CatchUp, String> {
    let replica_db = dir.join("catchup-replica.lmdb");
    std::fs::create_dir_all(&replica_db).map_err(|e| e.to_string())?;
    write_key(&replica_db.join("replica-secret.key"), replica_keys)?;
    let cpu_primary = cpu_seconds(primary.pid());
    let load_before = load();
    let t = Instant::now();
    let replica = Relay::spawn_bin(bin, &replica_db, key, Some((&primary.url, relay_keys)), &[])?;
    let store = replica.store()?;
    let mut first = None;
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    loop {
        let h = store.head();
        let at = t.elapsed();
        if h > 0 && first.is_none() {
            first = Some(at);
        }
        if at >= next_sample {
            samples.push((at, h));
            next_sample += Duration::from_secs(5);
        }
        if h >= head {
            break;
        }
        if at > Duration::from_hours(1) {
            return Err(format!("the replica is at {h} of {head} after an hour"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed();
    let done = CatchUp {
        took,
        first: first.unwrap_or(took),
        samples,
        cpu_primary: cpu_seconds(primary.pid()) - cpu_primary,
        cpu_replica: cpu_seconds(replica.pid()),
        load: (load_before, load()),
    };
    drop(store);
    drop(replica);
    let _ = std::fs::remove_dir_all(&replica_db);
    Ok(done)
}

#[expect(
    clippy::too_many_lines,
    reason = "the imports, the replicas and the table in one place"
)]
fn catchup(o: &Opts, dir: &Path) -> Result<(), String> {
    let n = o.catchup_events;
    let relay_keys = keys(2_000_000);
    let replica_keys = keys(2_000_001);
    let pubkey = relay_keys.public_key().to_hex();
    let file = dir.join("events.jsonl");
    let generating = run(
        o,
        Command::new(&o.bin)
            .args(["generate", "--groups", "500", "--events", &n.to_string()])
            .args(["--relay-key", &relay_keys.secret_key().to_secret_hex()])
            .arg(&file),
    )?;
    eprintln!("generated {n} events in {:.1} s", generating.as_secs_f64());
    let primary_db = dir.join("catchup-primary.lmdb");
    let trusted = run(
        o,
        Command::new(&o.bin)
            .arg("--db")
            .arg(&primary_db)
            .args(["import", "--trusted", "--relay-pubkey", &pubkey])
            .arg(&file),
    )?;
    let key = dir.join("catchup-primary.key");
    write_key(&key, &relay_keys)?;
    let primary = Relay::spawn(
        o,
        &primary_db,
        &key,
        None,
        std::slice::from_ref(&replica_keys),
    )?;
    let head = primary.store()?.head();
    eprintln!(
        "import --trusted: {head} events in {:.1} s",
        trusted.as_secs_f64()
    );
    // Baselines and replicas alternate: B R [C] B R [C] … B; each replica is compared
    // with the mean rate of the baselines just before and just after it.
    let mut baselines = vec![(baseline_import(o, dir, &file, &pubkey)?, load())];
    let mut replicas = Vec::new();
    for round in 0..o.rounds.max(1) {
        let r = catch_up(
            &o.bin,
            dir,
            &primary,
            &key,
            &relay_keys,
            &replica_keys,
            head,
        )?;
        eprintln!("replica: {head} events in {:.1} s", r.took.as_secs_f64());
        replicas.push((round, "replica catch-up (spawn to head equal)", r));
        if let Some(other) = &o.compare_bin {
            let r = catch_up(other, dir, &primary, &key, &relay_keys, &replica_keys, head)?;
            eprintln!(
                "--compare-bin replica: {head} events in {:.1} s",
                r.took.as_secs_f64()
            );
            replicas.push((round, "replica catch-up, --compare-bin", r));
        }
        baselines.push((baseline_import(o, dir, &file, &pubkey)?, load()));
    }
    drop(primary);
    let _ = std::fs::remove_dir_all(&primary_db);
    let _ = std::fs::remove_file(&file);
    let rate = |events: u64, took: Duration| events as f64 / took.as_secs_f64();
    println!(
        "\n(3) catch-up of a fresh replica from a {head}-event primary (generated {n}: \
         --groups 500), {} round(s); ratio = the replica's rate / the mean rate of the \
         imports just before and after it; load = the 1-minute load average at the end of \
         the step (start-end, for a replica)",
        o.rounds.max(1)
    );
    println!(
        "| what                                   | events  | seconds | events/s | ratio | load      | CPU s replica, primary |"
    );
    println!(
        "|----------------------------------------|---------|---------|----------|-------|-----------|------------------------|"
    );
    let baseline_row = |((took, events), load): &((Duration, u64), String)| {
        println!(
            "| import --no-policy (baseline)          | {events:>7} | {:>7.1} | {:>8.0} |       | {load:>9} |                        |",
            took.as_secs_f64(),
            rate(*events, *took)
        );
    };
    baseline_row(&baselines[0]);
    for round in 0..o.rounds.max(1) {
        let before = &baselines[round].0;
        let after = &baselines[round + 1].0;
        let import_rate = f64::midpoint(rate(before.1, before.0), rate(after.1, after.0));
        for (_, what, r) in replicas.iter().filter(|(k, _, _)| *k == round) {
            let replica_rate = rate(head, r.took);
            println!(
                "| {what:<38} | {head:>7} | {:>7.1} | {replica_rate:>8.0} | {:.2}x | {:>9} | {:>10.1}, {:>9.1} |",
                r.took.as_secs_f64(),
                replica_rate / import_rate,
                format!("{}-{}", r.load.0, r.load.1),
                r.cpu_replica,
                r.cpu_primary
            );
        }
        baseline_row(&baselines[round + 1]);
    }
    println!(
        "| import --trusted (the primary, info)   | {head:>7} | {:>7.1} | {:>8.0} |       |           |                        |",
        trusted.as_secs_f64(),
        rate(head, trusted)
    );
    for (round, what, r) in &replicas {
        println!(
            "{what}, round {}: first event appended {:.2} s after spawn (start, AUTH, negentropy); head every 5 s: {}",
            round + 1,
            r.first.as_secs_f64(),
            r.samples
                .iter()
                .map(|(at, h)| format!("{:.0}s={h}", at.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}

async fn live(o: &Opts, dir: &Path) -> Result<(), String> {
    let w = Workload::new(o);
    let relay_keys = keys(3_000_000);
    let replica_keys = [keys(3_000_001), keys(3_000_002)];
    let key = dir.join("primary.key");
    write_key(&key, &relay_keys)?;
    let primary = Relay::spawn(o, &dir.join("primary.lmdb"), &key, None, &replica_keys)?;
    let mut ws = connect(&primary.url).await?;
    for e in w.setup() {
        let (ok, why) = send_wait(&mut ws, &e).await?;
        if !ok {
            return Err(format!("setup refused: {why}"));
        }
    }
    let mut replicas = Vec::new();
    for (i, r) in replica_keys.iter().enumerate() {
        let db = dir.join(format!("replica{}.lmdb", i + 1));
        std::fs::create_dir_all(&db).map_err(|e| e.to_string())?;
        write_key(&db.join("replica-secret.key"), r)?;
        replicas.push(Relay::spawn(
            o,
            &db,
            &key,
            Some((&primary.url, &relay_keys)),
            &[],
        )?);
    }
    let urls: Vec<&str> = replicas.iter().map(|r| r.url.as_str()).collect();
    let synced = sync(&w, &primary.url, &urls).await?;
    eprintln!("replicas in sync after {:.2} s", synced.as_secs_f64());
    if o.only.as_deref().is_none_or(|s| s == "lag") {
        lag(o, &w, &primary, &replicas[0]).await?;
    }
    if o.only.as_deref().is_none_or(|s| s == "fanout") {
        fanout(o, &w, &[&primary, &replicas[0], &replicas[1]]).await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let temp = match &o.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    };
    let temp = match temp {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "replica_bench: {} cores; binary {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        o.bin.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut result = Ok(());
    if o.only.as_deref() != Some("catchup") {
        result = runtime.block_on(live(&o, temp.path()));
    }
    if result.is_ok() && o.only.as_deref().is_none_or(|s| s == "catchup") {
        result = catchup(&o, temp.path());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
