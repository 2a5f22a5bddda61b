//! Processes run against each other on one database, as an operator runs them: the real
//! `highwater relay` under write load from 8 WebSocket writers (one write in flight
//! each: posts, group creations, puts, join requests), every reading command
//! (`status --json`, `groups --json`, `export`, `verify`, `show --json`) looping beside
//! it in 2 loops, a policy-checked `highwater import` beside both, SIGKILLs of the
//! relay, the readers and the import at random moments, and rounds on a disk that
//! fills (a size-limited tmpfs where one can be mounted; otherwise the relay's
//! file-size limit, which fails its writes with `EFBIG` — the test prints which ran).
//!
//! After every round, with every process stopped, the checks are:
//! - every acknowledged event — `OK true` from the relay, or a line a completed import
//!   did not list as refused — is in the log (looked up by id);
//! - `highwater verify` exits 0: every group and projection equals a full replay;
//! - no write was refused except as its phase explains (the disk was full, the relay
//!   was stopping): no `corrupted:` or `error:` answers caused by another process; no
//!   import refusal of those kinds either;
//! - every reading command exited 0, and an `export` started after an event was
//!   acknowledged contains it;
//! - every process stopped within a bound of SIGTERM (a hang is a failure).
//!
//! Duration: `HIGHWATER_PROCS_SECS` (default 24, three rounds); the long run is
//! `HIGHWATER_PROCS_SECS=600`. `HIGHWATER_BIN` names a binary to test (for example a
//! release build); otherwise the test builds the workspace's own (see
//! `processes_support::highwater_bin`). `HIGHWATER_PROCS_DISK=limit` forces the
//! file-size-limit variant of the full disk.

mod processes_support;

use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use highwater_store::{Store, StoreOptions};
use highwater_workload::{WorkloadSpec, generate};
use nostr::prelude::EventId;
use processes_support::{
    Disk, Phase, Proc, Round, STALL_BOUND, Source, Stopped, fill, has_cap_sys_admin, highwater,
    highwater_bin, mount_tmpfs, prlimit_available, relay_keys, set_file_size_limit, start_relay,
    writer,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WRITERS: usize = 8;
const READERS: usize = 2;
/// Events in each generated import file.
const IMPORT_EVENTS: usize = 1_000;
/// Normal rounds on one database before a long run starts another.
const ROUNDS_PER_DATABASE: u64 = 8;

/// What one run needs in every round.
struct Run {
    bin: PathBuf,
    work: PathBuf,
    logs: PathBuf,
    round_secs: u64,
    seed: u64,
}

/// The report's figures, summed over rounds.
#[derive(Default)]
struct Totals {
    counts: BTreeMap<String, u64>,
    /// The first message of each class of refusal.
    examples: BTreeMap<String, String>,
}

impl Totals {
    fn add(&mut self, what: &str, n: u64) {
        *self.counts.entry(what.to_owned()).or_default() += n;
    }
}

#[test]
fn processes_against_each_other_lose_no_acknowledged_event() {
    let secs = std::env::var("HIGHWATER_PROCS_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(24);
    let round_secs = if secs < 60 { (secs / 3).max(4) } else { 10 };
    let rounds = (secs / round_secs).max(3);
    let bin = highwater_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path().to_owned();
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let seed = std::env::var("HIGHWATER_PROCS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u32>().into());
    eprintln!(
        "{rounds} rounds of {round_secs} s (HIGHWATER_PROCS_SECS={secs}), seed {seed} (HIGHWATER_PROCS_SEED)"
    );
    let run = Run {
        bin,
        work: work.clone(),
        logs,
        round_secs,
        seed,
    };
    let disk = choose_disk(&work);
    let mut main_db = work.join("db0");
    let mut main_acked: Vec<(EventId, Source, u16)> = Vec::new();
    let mut normal_rounds = 0u64;
    let mut totals = Totals::default();
    totals.add("databases of the normal rounds", 1);
    let started = Instant::now();
    let mut failures = Vec::new();
    for index in 0..rounds {
        let disk_round = index % 4 == 1;
        let outcome = if disk_round {
            match &disk {
                Some(disk) => disk_round_on(&run, index, disk, &mut totals),
                None => Ok(()),
            }
        } else {
            // A long run starts a new database every few rounds, so what each round
            // costs (exports, verifications) stays bounded; every round of one
            // database re-checks every event acknowledged on it since it was created.
            if normal_rounds > 0 && normal_rounds.is_multiple_of(ROUNDS_PER_DATABASE) {
                let _ = std::fs::remove_dir_all(&main_db);
                main_db = work.join(format!("db{index}"));
                main_acked.clear();
                totals.add("databases of the normal rounds", 1);
            }
            normal_rounds += 1;
            normal_round(&run, index, &main_db, &mut main_acked, &mut totals)
        };
        if let Err(found) = outcome {
            failures = found;
            break;
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "\n=== processes against each other: {:.0} s ===",
        elapsed.as_secs_f64()
    );
    for (what, n) in &totals.counts {
        eprintln!("{what:<52} {n}");
    }
    for (what, example) in &totals.examples {
        eprintln!("{what}, for example: {example}");
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The full disk: a tmpfs where one can be mounted, else the file-size limit; `None`
/// (printed) only where neither is possible.
fn choose_disk(work: &Path) -> Option<Disk> {
    let forced = std::env::var("HIGHWATER_PROCS_DISK").unwrap_or_default();
    if forced != "limit" {
        let probe = work.join("probe-mount");
        match mount_tmpfs(&probe, "1m") {
            Ok(mounted) => {
                drop(mounted);
                eprintln!("full disk: a size-limited tmpfs (mount -t tmpfs -o size=…)");
                return Some(Disk::Tmpfs(work.join("mnt")));
            }
            Err(reason) => {
                assert!(
                    !has_cap_sys_admin(),
                    "CAP_SYS_ADMIN is held but mounting a tmpfs failed: {reason}"
                );
                eprintln!("full disk: no tmpfs can be mounted here ({reason})");
            }
        }
    }
    if prlimit_available() {
        eprintln!(
            "full disk: INJECTED — the relay's file-size limit (prlimit --fsize) stops its data file growing (EFBIG)"
        );
        Some(Disk::FileSizeLimit)
    } else {
        eprintln!(
            "SKIPPED the full-disk rounds: no tmpfs can be mounted and prlimit(1) is not installed"
        );
        None
    }
}

/// The processes of one round beside a running relay.
struct Beside {
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn start_beside(run: &Run, round: &Arc<Round>, db: &Path, index: u64) -> Beside {
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let round = round.clone();
        let seed = run.seed ^ (index << 8) ^ w as u64;
        threads.push(std::thread::spawn(move || writer(&round, w, seed)));
    }
    for r in 0..READERS {
        let round = round.clone();
        let (bin, db, logs) = (run.bin.clone(), db.to_owned(), run.logs.clone());
        let seed = run.seed ^ (index << 16) ^ (r as u64 + 100);
        threads.push(std::thread::spawn(move || {
            reader_loop(&round, &bin, &db, &logs, r, seed);
        }));
    }
    let round = round.clone();
    let (bin, db, logs, work) = (
        run.bin.clone(),
        db.to_owned(),
        run.logs.clone(),
        run.work.clone(),
    );
    let seed = run.seed.wrapping_mul(1_000) + index;
    threads.push(std::thread::spawn(move || {
        import_loop(&round, &bin, &db, &logs, &work, seed);
    }));
    Beside { threads }
}

/// Stops the relay with SIGTERM while writes are in flight, then everything else.
fn stop_round(round: &Arc<Round>, relay: &mut Proc, beside: Beside) {
    round.set_phase(Phase::Stopping);
    *round.url.lock().unwrap() = None;
    match relay.terminate() {
        Ok(Stopped::Terminated(status)) => {
            round.count("stopped by SIGTERM: relay");
            if status.signal() == Some(15) {
                // The signal came before the relay installed its handler (it does so
                // after it starts listening): it ended as a kill would end it, which
                // the log must survive like any other kill.
                round.count("  relay ended by SIGTERM's default action (during start-up)");
            } else if !status.success() {
                round.fail(format!(
                    "the relay exited with {status} after SIGTERM: {}",
                    relay.stderr_tail()
                ));
            }
        }
        Ok(Stopped::Exited(status)) => round.fail(format!(
            "the relay had exited by itself ({status}): {}",
            relay.stderr_tail()
        )),
        Err(hang) => round.fail(hang),
    }
    round.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for thread in beside.threads {
        if thread.join().is_err() {
            round.fail("a client thread panicked".into());
        }
    }
}

/// A round on the main database: load, readers, an import, and SIGKILLs of the relay
/// at random moments (it is restarted each time).
fn normal_round(
    run: &Run,
    index: u64,
    db: &Path,
    acked: &mut Vec<(EventId, Source, u16)>,
    totals: &mut Totals,
) -> Result<(), Vec<String>> {
    let mut rng = ChaCha8Rng::seed_from_u64(run.seed ^ index);
    let (mut relay, url) = start_relay(&run.bin, db, &run.logs, "relay", false);
    let round = Round::new(url);
    let beside = start_beside(run, &round, db, index);
    let started = Instant::now();
    let end = Duration::from_secs(run.round_secs);
    loop {
        let left = end.saturating_sub(started.elapsed());
        if left < Duration::from_millis(500) {
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2_500)).min(left));
        if started.elapsed() + Duration::from_millis(500) < end && rng.random_bool(0.5) {
            *round.url.lock().unwrap() = None;
            relay.kill();
            round.count("SIGKILL: relay");
            let (restarted, url) = start_relay(&run.bin, db, &run.logs, "relay", false);
            relay = restarted;
            *round.url.lock().unwrap() = Some(url);
        }
    }
    stop_round(&round, &mut relay, beside);
    acked.extend(round.acked.lock().unwrap().iter().copied());
    finish_round(run, &round, db, acked, totals, index, "normal")
}

/// A round on a fresh database whose disk fills while the relay writes, then frees.
fn disk_round_on(
    run: &Run,
    index: u64,
    disk: &Disk,
    totals: &mut Totals,
) -> Result<(), Vec<String>> {
    let (db, mount) = match disk {
        Disk::Tmpfs(base) => {
            let mnt = base.with_file_name(format!("mnt{index}"));
            match mount_tmpfs(&mnt, "32m") {
                Ok(mounted) => (mnt.join("db"), Some(mounted)),
                Err(reason) => {
                    return Err(vec![format!("mounting the round's tmpfs failed: {reason}")]);
                }
            }
        }
        Disk::FileSizeLimit => (run.work.join(format!("disk{index}")).join("db"), None),
    };
    let limited = matches!(disk, Disk::FileSizeLimit);
    let (mut relay, url) = start_relay(&run.bin, &db, &run.logs, "relay", limited);
    let round = Round::new(url);
    let beside = start_beside(run, &round, &db, index);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1_500));
    round.set_phase(Phase::DiskFull);
    let filled_at = round.acked_count();
    if let Some(mounted) = &mount {
        fill(&mounted.0);
        round.count("disk rounds: tmpfs filled");
    } else {
        let size = std::fs::metadata(db.join("data.mdb")).map_or(0, |m| m.len());
        set_file_size_limit(relay.pid(), Some(size));
        round.count("disk rounds: file-size limit injected");
    }
    let refused = |round: &Round| {
        round
            .refusals
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.phase == Phase::DiskFull)
            .count()
    };
    let deadline = Instant::now() + STALL_BOUND;
    while refused(&round) == 0
        && Instant::now() < deadline
        && round.failures.lock().unwrap().is_empty()
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    if refused(&round) == 0 {
        round.fail(format!(
            "the disk was full for {STALL_BOUND:?} and no write was refused ({} acknowledged meanwhile)",
            round.acked_count() - filled_at
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    let full_for = round.acked_count() - filled_at;
    match &mount {
        Some(mounted) => std::fs::remove_file(mounted.0.join("filler")).expect("remove the filler"),
        None => set_file_size_limit(relay.pid(), None),
    }
    let freed_at = round.acked_count();
    let deadline = Instant::now() + STALL_BOUND;
    while round.acked_count() < freed_at + WRITERS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if round.acked_count() < freed_at + WRITERS {
        round.fail(format!(
            "writes did not resume within {STALL_BOUND:?} of the space coming back"
        ));
    } else {
        round.count("disk rounds where writes resumed after space came back");
    }
    round.count_n("acknowledged while the disk was full", full_for as u64);
    let rest = Duration::from_secs(run.round_secs).saturating_sub(started.elapsed());
    std::thread::sleep(rest);
    stop_round(&round, &mut relay, beside);
    let acked: Vec<_> = round.acked.lock().unwrap().clone();
    let outcome = finish_round(run, &round, &db, &acked, totals, index, "disk");
    drop(mount);
    outcome
}

/// The checks after a round (every process stopped), and the round's figures.
fn finish_round(
    run: &Run,
    round: &Round,
    db: &Path,
    acked: &[(EventId, Source, u16)],
    totals: &mut Totals,
    index: u64,
    what: &str,
) -> Result<(), Vec<String>> {
    let lost = lost_events(db, acked);
    for (id, source, kind) in &lost {
        round.fail(format!(
            "acknowledged event {id} (kind {kind}, {source:?}) is not in the log"
        ));
    }
    let mut verify = Proc::spawn(
        "final-verify",
        highwater(&run.bin, db, &["verify"]),
        &run.logs,
    );
    match verify.wait_bounded(STALL_BOUND * 5) {
        Some(status) if status.success() => round.count("verify after the round: passed"),
        Some(status) => round.fail(format!(
            "highwater verify after the round exited {status}: {}{}",
            tail(&verify.stdout),
            verify.stderr_tail()
        )),
        None => round.fail("highwater verify after the round did not finish".into()),
    }
    let this_round: Vec<_> = round.acked.lock().unwrap().clone();
    let relay_acked = this_round.iter().filter(|a| a.1 == Source::Relay).count();
    let import_acked = this_round.len() - relay_acked;
    totals.add("rounds", 1);
    totals.add(&format!("rounds: {what}"), 1);
    totals.add(
        "events acknowledged by the relay (OK true)",
        relay_acked as u64,
    );
    for kind in [9u16, 9000, 9007, 9021] {
        let n = this_round
            .iter()
            .filter(|a| a.1 == Source::Relay && a.2 == kind)
            .count();
        totals.add(
            &format!("events acknowledged by the relay (OK true): kind {kind}"),
            n as u64,
        );
    }
    totals.add(
        "events acknowledged by completed imports",
        import_acked as u64,
    );
    totals.add("acknowledged events lost", lost.len() as u64);
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    for r in round.refusals.lock().unwrap().iter() {
        let class = r.message.split(':').next().unwrap_or("").to_owned();
        let key = format!("writes refused ({:?}, {class}:)", r.phase);
        totals
            .examples
            .entry(key.clone())
            .or_insert_with(|| r.message.clone());
        *refusals.entry(key).or_default() += 1;
    }
    for (what, n) in refusals {
        totals.add(&what, n);
    }
    for (what, n) in round.counts.lock().unwrap().iter() {
        totals.add(what, *n);
    }
    let failures = round.failures.lock().unwrap().clone();
    eprintln!(
        "round {index} ({what}): {relay_acked} acknowledged by the relay, {import_acked} imported, {} lost, {} failure(s)",
        lost.len(),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// The acknowledged events not found in the log, by id (a read-only open of the
/// database in this process, after every other process has stopped).
fn lost_events(db: &Path, acked: &[(EventId, Source, u16)]) -> Vec<(EventId, Source, u16)> {
    let store = Store::open(db, StoreOptions::read_only()).expect("open the database read-only");
    acked
        .iter()
        .filter(
            |(id, _, _)| !matches!(store.get_by_id(id), Ok(Some((_, event))) if event.id == *id),
        )
        .copied()
        .collect()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// A loop running the reading commands one after another against `db`; one run in 8
/// is killed (SIGKILL) at a random moment; at the round's end the running one gets SIGTERM.
fn reader_loop(round: &Round, bin: &Path, db: &Path, logs: &Path, thread: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let commands = ["status", "groups", "export", "verify", "show"];
    let mut k = thread;
    while !round.stopping() {
        let which = commands[k % commands.len()];
        k += 1;
        let before = round.acked_count();
        let group;
        let args: Vec<&str> = match which {
            "status" => vec!["status", "--json"],
            "groups" => vec!["groups", "--json"],
            "export" => vec!["export", "-"],
            "verify" => vec!["verify"],
            _ => {
                let groups = round.groups.lock().unwrap();
                if groups.is_empty() {
                    continue;
                }
                group = groups[rng.random_range(0..groups.len())].clone();
                vec!["show", "--group", &group, "--json"]
            }
        };
        let mut proc = Proc::spawn(&format!("reader{thread}"), highwater(bin, db, &args), logs);
        let kill_at = rng
            .random_ratio(1, 8)
            .then(|| Duration::from_millis(rng.random_range(0..400)));
        loop {
            if let Some(status) = proc.exited() {
                round.count(&format!("reader runs: {which}"));
                check_reader(round, which, &args, &proc, status, before);
                break;
            }
            if round.stopping() {
                match proc.terminate() {
                    Ok(_) => round.count("stopped by SIGTERM: reader"),
                    Err(hang) => round.fail(hang),
                }
                break;
            }
            if kill_at.is_some_and(|t| proc.started.elapsed() >= t) {
                proc.kill();
                round.count("SIGKILL: reader");
                break;
            }
            if proc.started.elapsed() > STALL_BOUND {
                round.fail(format!(
                    "highwater {} ran for more than {STALL_BOUND:?}",
                    args.join(" ")
                ));
                proc.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A reading command's run: it exited 0, and what it printed agrees with what had been
/// acknowledged before it started.
fn check_reader(
    round: &Round,
    which: &str,
    args: &[&str],
    proc: &Proc,
    status: ExitStatus,
    before: usize,
) {
    let command = args.join(" ");
    if !status.success() {
        round.fail(format!(
            "highwater {command} exited {status}: {}{}",
            tail(&proc.stdout),
            proc.stderr_tail()
        ));
        return;
    }
    let stdout = std::fs::read_to_string(&proc.stdout).unwrap_or_default();
    match which {
        "export" => {
            let ids: HashSet<&str> = stdout
                .lines()
                .filter_map(|l| l.split("\"id\":\"").nth(1))
                .filter_map(|rest| rest.get(..64))
                .collect();
            let acked = round.acked.lock().unwrap();
            let missing: Vec<String> = acked[..before]
                .iter()
                .filter(|(id, _, _)| !ids.contains(id.to_hex().as_str()))
                .map(|(id, source, kind)| format!("{id} (kind {kind}, {source:?})"))
                .collect();
            if !missing.is_empty() {
                round.fail(format!(
                    "an export started after {} acknowledgements lacks {} of them: {}",
                    before,
                    missing.len(),
                    missing[..missing.len().min(5)].join(", ")
                ));
            }
        }
        "status" => match serde_json::from_str::<serde_json::Value>(&stdout) {
            Ok(json) => {
                let events = json["events"].as_u64().unwrap_or(0);
                if events < before as u64 {
                    round.fail(format!(
                        "status --json counts {events} events after {before} were acknowledged"
                    ));
                }
            }
            Err(e) => round.fail(format!("status --json printed no JSON ({e}): {stdout}")),
        },
        "groups" | "show" => {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&stdout) {
                round.fail(format!("{command} printed no JSON ({e})"));
            }
        }
        _ => {}
    }
}

/// Imports generated workloads (through the write policy, with `--rejects`) one after
/// another; one in 3 is killed (SIGKILL) at a random moment. A completed import (exit 0 or 1)
/// acknowledges every line its rejects file does not list.
fn import_loop(round: &Round, bin: &Path, db: &Path, logs: &Path, work: &Path, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let relay = relay_keys();
    let pubkey = relay.public_key().to_hex();
    let file = work.join("import.jsonl");
    let rejects = work.join("rejects.jsonl");
    let mut n = 0u64;
    while !round.stopping() {
        if n > 0 {
            // A pause between imports, so the relay's writers are not outnumbered.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..1_000)));
        }
        n += 1;
        let spec = WorkloadSpec {
            groups: 12,
            events: IMPORT_EVENTS,
            seed: seed.wrapping_mul(10_007).wrapping_add(n),
            relay_secret: Some(relay.secret_key().to_secret_bytes()),
        };
        let mut ids = Vec::with_capacity(IMPORT_EVENTS);
        let mut text = String::new();
        generate(&spec, &|_| {}, &mut |e| {
            ids.push((e.id, e.kind.as_u16()));
            text.push_str(&e.as_json());
            text.push('\n');
            Ok(())
        })
        .expect("generate a workload");
        std::fs::write(&file, text).expect("write the import file");
        let _ = std::fs::remove_file(&rejects);
        let args = [
            "import",
            "--relay-pubkey",
            &pubkey,
            "--batch",
            "256",
            "--rejects",
            rejects.to_str().unwrap(),
            file.to_str().unwrap(),
        ];
        let mut proc = Proc::spawn("import", highwater(bin, db, &args), logs);
        let kill_at = rng
            .random_ratio(1, 3)
            .then(|| Duration::from_millis(rng.random_range(0..1_500)));
        loop {
            if let Some(status) = proc.exited() {
                completed_import(round, &proc, status, &rejects, &ids);
                break;
            }
            if round.stopping() {
                match proc.terminate() {
                    Ok(_) => round.count("stopped by SIGTERM: import"),
                    Err(hang) => round.fail(hang),
                }
                break;
            }
            if kill_at.is_some_and(|t| proc.started.elapsed() >= t) {
                proc.kill();
                round.count("SIGKILL: import");
                break;
            }
            if proc.started.elapsed() > STALL_BOUND {
                round.fail(format!("an import ran for more than {STALL_BOUND:?}"));
                proc.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn completed_import(
    round: &Round,
    proc: &Proc,
    status: ExitStatus,
    rejects: &Path,
    ids: &[(EventId, u16)],
) {
    match status.code() {
        Some(0 | 1) => {}
        Some(3) if round.phase() == Phase::DiskFull => {
            round.count("imports stopped by the full disk");
            return;
        }
        _ => {
            round.fail(format!(
                "highwater import exited {status}: {}",
                proc.stderr_tail()
            ));
            return;
        }
    }
    round.count("imports completed");
    let text = std::fs::read_to_string(rejects).unwrap_or_default();
    let mut refused_lines = HashSet::new();
    for line in text.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("a rejects line");
        let reason = entry["reason"].as_str().unwrap_or_default();
        if reason.starts_with("corrupted:") || reason.starts_with("error:") {
            round.fail(format!(
                "the import refused line {}: {reason}",
                entry["line"]
            ));
        }
        refused_lines.insert(entry["line"].as_u64().expect("a line number"));
        round.count("import lines refused by the write policy");
    }
    let mut acked = round.acked.lock().unwrap();
    for (i, (id, kind)) in ids.iter().enumerate() {
        if !refused_lines.contains(&(i as u64 + 1)) {
            acked.push((*id, Source::Import, *kind));
        }
    }
}
