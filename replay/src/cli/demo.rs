//! `highwater demo`: the end-to-end run on a fresh machine, with timings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::EngineOptions;
use highwater_projections::AccessPolicy;
use highwater_store::{Store, StoreOptions};

use super::{Global, db, generate, import, inspect, progress};

#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Where the workload goes (default `./highwater-demo`). It must be new, empty, or
    /// a previous demo's (marked by a `.highwater-demo` file); nothing else is ever
    /// deleted or overwritten. The database goes to `--db` (or `$HIGHWATER_DB`) when
    /// given, else into `--dir` when that is given, else to the default database
    /// (`./highwater.lmdb`), where `highwater relay` finds it — with the relay's secret
    /// key beside it (`relay-secret.key`, mode 0600), so that `highwater relay` serves
    /// it with no further option.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Events to generate.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Groups to spread them over.
    #[arg(long, default_value_t = 500)]
    groups: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

struct Timings(Vec<(&'static str, f64, String)>);

impl Timings {
    fn add(&mut self, step: &'static str, started: Instant, note: String) {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("  {step:<28} {secs:>8.3} s  {note}");
        self.0.push((step, secs, note));
    }
}

/// Where the workload goes when `--dir` is not given.
const DEFAULT_DIR: &str = "./highwater-demo";

/// The file that marks a directory (and a database) as made by `demo`.
const MARKER: &str = ".highwater-demo";

/// Whether `dir` may be used by the demo: absent, empty, or marked as a demo's own.
fn claimable(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(true);
    }
    if dir.join(MARKER).is_file() {
        return Ok(true);
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries.next().is_none())
}

/// Makes `dir` (if needed) and marks it as the demo's.
fn claim(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `highwater demo`; a later demo may replace what is here\n",
    )
    .with_context(|| format!("marking {}", dir.display()))
}

/// Decides where the workload and the database go, checks that the demo may use both
/// (new, empty, or a previous demo's), and claims them. Returns (workload dir, database).
fn prepare_places(global: &Global, args: &DemoArgs) -> Result<(PathBuf, PathBuf)> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    // `--db` (or HIGHWATER_DB) is honoured; an explicit --dir holds the database too;
    // otherwise it is the default database, which `highwater relay` serves.
    let db_dir = match &args.dir {
        _ if global.db != Path::new(super::DEFAULT_DB) => global.db.clone(),
        Some(dir) => dir.join("highwater.lmdb"),
        None => global.db.clone(),
    };
    for place in [&dir, &db_dir] {
        if !claimable(place)? {
            bail!(
                "{} is not empty and not a previous demo's (no {MARKER} file in it); the demo never deletes or overwrites what it did not make — pass a new or empty --dir{}",
                place.display(),
                if place == &db_dir { " and --db" } else { "" }
            );
        }
    }
    claim(&dir)?;
    if db_dir.exists() {
        // A previous demo's database (checked above): replaced.
        std::fs::remove_dir_all(&db_dir)
            .with_context(|| format!("clearing {}", db_dir.display()))?;
    }
    claim(&db_dir)?;
    Ok((dir, db_dir))
}

pub(crate) fn run(global: &Global, args: &DemoArgs) -> Result<ExitCode> {
    let (dir, db_dir) = prepare_places(global, args)?;
    let args = &DemoArgs {
        dir: Some(dir.clone()),
        ..args.clone()
    };
    eprintln!(
        "highwater demo: {} events over {} groups in {}",
        args.events,
        args.groups,
        dir.display()
    );
    let mut t = Timings(Vec::new());
    let store = generate_and_import(args, &db_dir, &mut t)?;

    let db = db::open_with(store, EngineOptions::default())?;
    let started = Instant::now();
    let reports = db.engine.rebuild(None, None)?;
    let events = reports.first().map_or(0, |r| r.events);
    let secs = started.elapsed().as_secs_f64();
    t.add(
        "replay, 4 projections",
        started,
        format!(
            "{:.0} events/s (one scan feeds all four; checkpoints rewritten)",
            events as f64 / secs.max(1e-9)
        ),
    );

    // As after a restart: nothing in memory; reads load checkpoint + tail per group.
    db.engine.evict_all();
    let started = Instant::now();
    let diffs = inspect::verify_all(&db, None)?;
    t.add(
        "verify (served == replay)",
        started,
        format!(
            "{} groups, {} differences",
            db.store.group_count(),
            diffs.len()
        ),
    );
    for (group, projection, diff) in &diffs {
        println!("DIFFERENT group {group} projection {projection}:\n{diff}");
    }
    let largest = largest_group(&db)?;
    drop(db);

    // A real restart: reopen, and answer one question about the largest group. Only
    // that group is loaded (its checkpoint plus tail); nothing is warmed first.
    let started = Instant::now();
    let db = db::open(&Global {
        db: db_dir.clone(),
        verbose: 0,
    })?;
    if let Some(name) = &largest {
        let creator = db.groups.creator(name)?;
        let member = creator.map(|c| db.groups.is_member(name, &c)).transpose()?;
        let answer = match member {
            Some(true) => "yes",
            Some(false) => "no",
            None => "the group has no creator",
        };
        t.add(
            "reopen + first answer",
            started,
            format!("is the creator of {name} a member? {answer}"),
        );
        let view = db.groups.view(&db.engine, name)?;
        let head = db.store.group(name).map_or(0, |g| g.head);
        println!();
        inspect::print_table(&inspect::show_json(view, head)?);
    }
    println!();
    inspect::print_status(&inspect::status_of(&db)?);
    println!();
    println!("timings:");
    for (step, secs, note) in &t.0 {
        println!("  {step:<28} {secs:>8.3} s  {note}");
    }
    println!();
    let example = largest.as_deref().unwrap_or("<ID>");
    let db_flag = if db_dir == Path::new(super::DEFAULT_DB) {
        String::new()
    } else {
        format!("--db {} ", db_dir.display())
    };
    println!(
        "database: {} (relay secret key in {})",
        db_dir.display(),
        db_dir.join(super::relay::DEFAULT_KEY_FILE).display()
    );
    println!("next: cargo run --release -p highwater-replay -- {db_flag}show --group {example}");
    println!(
        "      cargo run --release -p highwater-replay -- {db_flag}relay   (serves it on ws://127.0.0.1:7777)"
    );
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Generates the workload file and imports it (verified) into a fresh store.
fn generate_and_import(
    args: &DemoArgs,
    db_dir: &std::path::Path,
    t: &mut Timings,
) -> Result<Store> {
    let workload = args
        .dir
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_DIR))
        .join("workload.jsonl");
    let started = Instant::now();
    // A fresh relay key, saved beside the database so that `highwater relay` can sign
    // with it (a key derived from the public seed would be anyone's).
    let relay_keys = nostr::prelude::Keys::generate();
    let gen_args = generate::GenerateArgs {
        groups: args.groups,
        events: args.events,
        seed: args.seed,
        relay_key: Some(relay_keys.secret_key().to_secret_hex()),
        file: workload.clone(),
    };
    let (relay, _) = generate::write(&gen_args)?;
    let size = std::fs::metadata(&workload).map_or(0, |m| m.len());
    t.add(
        "generate + sign",
        started,
        format!("{} ({:.1} MB)", workload.display(), size as f64 / 1e6),
    );

    let started = Instant::now();
    let store =
        Store::open(db_dir, StoreOptions::default()).context("opening the demo database")?;
    db::set_relay_key(&store, &db::parse_pubkey(&relay)?)?;
    super::relay::write_key_file(&db_dir.join(super::relay::DEFAULT_KEY_FILE), &relay_keys)?;
    let file = std::fs::File::open(&workload)
        .with_context(|| format!("opening {}", workload.display()))?;
    let (mut records, read) =
        import::Records::open(file, false, import::record_cap(&store.options().limits))?;
    let bar = progress::bytes(size);
    bar.set_message("importing");
    let db = db::open_with(store.clone(), EngineOptions::default())?;
    let policy = AccessPolicy::new(db.groups.clone(), db::policy(&store)?);
    let summary = import::import(
        &store,
        Some(&policy),
        &mut records,
        &import::Options::default(),
        None,
        &|_| bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed)),
    )?;
    drop(policy);
    drop(db);
    bar.finish_and_clear();
    let refused = summary.refused_total();
    let secs = started.elapsed().as_secs_f64();
    t.add(
        "import (verified, policy)",
        started,
        format!(
            "{} accepted, {} duplicate, {refused} refused by the relay's rules — {:.0} events/s",
            summary.accepted,
            summary.duplicate,
            summary.accepted as f64 / secs.max(1e-9)
        ),
    );
    Ok(store)
}

/// The group with the most members.
fn largest_group(db: &db::Db) -> Result<Option<String>> {
    let mut largest: Option<(usize, String)> = None;
    for g in db.store.groups() {
        let count = db.groups.member_count(&g.name)?;
        if largest.as_ref().is_none_or(|(n, _)| count > *n) {
            largest = Some((count, g.name.to_string()));
        }
    }
    Ok(largest.map(|(_, name)| name))
}
