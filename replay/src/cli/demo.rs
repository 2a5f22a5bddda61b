//! `highwater demo`: the end-to-end run on a fresh machine, with timings.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use highwater_engine::EngineOptions;
use highwater_store::{Store, StoreOptions};

use super::{Global, db, generate, import, inspect, progress};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the workload and the database go (emptied first).
    #[arg(long, default_value = "./highwater-demo")]
    dir: PathBuf,
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

pub(crate) fn run(_global: &Global, args: &DemoArgs) -> Result<ExitCode> {
    let db_dir = args.dir.join("highwater.lmdb");
    if db_dir.exists() {
        std::fs::remove_dir_all(&db_dir)
            .with_context(|| format!("clearing {}", db_dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    eprintln!(
        "highwater demo: {} events over {} groups in {}",
        args.events,
        args.groups,
        args.dir.display()
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
    println!("database: {}", db_dir.display());
    println!(
        "next: cargo run --release -p highwater-replay -- --db {} show --group {example}",
        db_dir.display()
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
    let workload = args.dir.join("workload.jsonl");
    let started = Instant::now();
    let gen_args = generate::GenerateArgs {
        groups: args.groups,
        events: args.events,
        seed: args.seed,
        relay_key: None,
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
    let file = std::fs::File::open(&workload)
        .with_context(|| format!("opening {}", workload.display()))?;
    let bar = progress::bytes(size);
    bar.set_message("importing");
    let summary = import::import(
        &store,
        BufReader::with_capacity(1 << 20, file),
        false,
        16_384,
        &|b, _| bar.set_position(b),
    )?;
    bar.finish_and_clear();
    let rejected: u64 = summary.rejected.values().sum();
    let secs = started.elapsed().as_secs_f64();
    t.add(
        "import (verified)",
        started,
        format!(
            "{} accepted, {} duplicate, {rejected} rejected — {:.0} events/s",
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
