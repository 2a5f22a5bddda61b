//! `show`, `status`, `verify` and `replay`: reading and checking a database.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::{LoadState, RebuildOptions};
use highwater_projections::GroupView;
use rayon::prelude::*;
use serde::Serialize;

use super::{Global, db, progress};

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The group id.
    #[arg(long, value_name = "ID")]
    group: String,
    /// Print JSON (members sorted by pubkey, roles sorted) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Rebuild only this projection (membership, roles, metadata, creator).
    #[arg(long, value_name = "NAME")]
    projection: Option<String>,
    /// Rebuild only this group.
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    /// Threads folding groups in parallel in a full rebuild (default: every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Verify only this group.
    #[arg(long, value_name = "ID")]
    group: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The `show --json` shape.
#[derive(Debug, Serialize)]
pub(crate) struct ShowJson {
    group: String,
    state: String,
    creator: Option<String>,
    metadata: MetadataJson,
    children: Vec<String>,
    pinned: Vec<String>,
    members: Vec<MemberJson>,
    member_count: usize,
    head: u64,
    watermarks: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the NIP-29 and seed-relay flags of the `show --json` shape"
)]
struct MetadataJson {
    name: Option<String>,
    about: Option<String>,
    picture: Option<String>,
    banner: Option<String>,
    private: bool,
    closed: bool,
    hidden: bool,
    restricted: bool,
    write_restricted: bool,
    livekit: bool,
    supported_kinds: Option<Vec<u16>>,
    parent: Option<String>,
}

#[derive(Debug, Serialize)]
struct MemberJson {
    pubkey: String,
    roles: Vec<String>,
}

pub(crate) fn show_json(view: GroupView, head: u64) -> Result<ShowJson> {
    let state = serde_json::to_value(view.state)?
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let m = view.metadata;
    Ok(ShowJson {
        group: view.group,
        state,
        creator: view.creator,
        metadata: MetadataJson {
            name: m.name,
            about: m.about,
            picture: m.picture,
            banner: m.banner,
            private: m.private,
            closed: m.closed,
            hidden: m.hidden,
            restricted: m.restricted,
            write_restricted: m.write_restricted,
            livekit: m.livekit,
            supported_kinds: m.supported_kinds,
            parent: m.parent,
        },
        children: view.children,
        pinned: view.pinned,
        member_count: view.member_count,
        members: view
            .members
            .into_iter()
            .map(|m| MemberJson {
                pubkey: m.pubkey,
                roles: m.roles,
            })
            .collect(),
        head,
        watermarks: view.watermarks,
    })
}

/// A group with no events in the log is not a group of this database.
fn no_such_group(db: &db::Db, group: &str) -> Option<ExitCode> {
    if db.store.group(group).is_some() {
        return None;
    }
    eprintln!(
        "error: no such group {group:?}: no event of it in this database (list them with `highwater groups`)"
    );
    Some(ExitCode::FAILURE)
}

pub(crate) fn show(global: &Global, args: &ShowArgs) -> Result<ExitCode> {
    let db = db::open(global)?;
    if let Some(code) = no_such_group(&db, &args.group) {
        return Ok(code);
    }
    let view = db
        .groups
        .view(&db.engine, &args.group)
        .with_context(|| format!("loading group {:?}", args.group))?;
    let head = db.store.group(&args.group).map_or(0, |g| g.head);
    let json = show_json(view, head)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_table(&json);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_table(g: &ShowJson) {
    const SHOWN: usize = 25;
    let flag = |b: bool, name: &'static str| if b { name } else { "" };
    let m = &g.metadata;
    println!("group        {}", g.group);
    println!("state        {}", g.state);
    println!("creator      {}", g.creator.as_deref().unwrap_or("-"));
    println!("name         {}", m.name.as_deref().unwrap_or("-"));
    println!("about        {}", m.about.as_deref().unwrap_or("-"));
    println!("picture      {}", m.picture.as_deref().unwrap_or("-"));
    println!("banner       {}", m.banner.as_deref().unwrap_or("-"));
    let flags: Vec<&str> = [
        flag(m.private, "private"),
        flag(m.closed, "closed"),
        flag(m.hidden, "hidden"),
        flag(m.restricted, "restricted"),
        flag(m.write_restricted, "write-restricted"),
        flag(m.livekit, "livekit"),
    ]
    .into_iter()
    .filter(|f| !f.is_empty())
    .collect();
    println!(
        "flags        {}",
        if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(", ")
        }
    );
    let kinds = m.supported_kinds.as_ref().map_or_else(
        || "all".to_owned(),
        |kinds| {
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        },
    );
    println!("kinds        {kinds}");
    println!("parent       {}", m.parent.as_deref().unwrap_or("-"));
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    println!("children     {}", list(&g.children));
    println!("pinned       {}", list(&g.pinned));
    let marks: Vec<String> = g
        .watermarks
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "head         {}   (watermarks: {})",
        g.head,
        marks.join(", ")
    );
    println!("members      {}", g.member_count);
    for member in g.members.iter().take(SHOWN) {
        let roles = if member.roles.is_empty() {
            String::new()
        } else {
            format!("  [{}]", member.roles.join(", "))
        };
        println!("  {}{roles}", member.pubkey);
    }
    if g.members.len() > SHOWN {
        println!(
            "  … and {} more (use --json for all)",
            g.members.len() - SHOWN
        );
    }
}

pub(crate) fn replay(global: &Global, args: &ReplayArgs) -> Result<ExitCode> {
    let db = db::open_writable(global)?;
    if let Some(group) = &args.group
        && db.store.group(group).is_none()
    {
        bail!("group {group:?} has no events in this database");
    }
    let options = args.threads.map_or_else(RebuildOptions::default, |n| {
        RebuildOptions::threads(usize::from(n))
    });
    let reports =
        db.engine
            .rebuild_with(args.projection.as_deref(), args.group.as_deref(), &options)?;
    if args.group.is_none() {
        println!(
            "{} projection{} rebuilt on up to {} thread{} (one walk of each group):",
            reports.len(),
            if reports.len() == 1 { "" } else { "s" },
            options.threads,
            if options.threads == 1 { "" } else { "s" }
        );
    }
    for r in &reports {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "{:<11} {:>10} events  {:>6} groups  {:>8.3} s  {:>12.0} events/s{}",
            r.projection,
            r.events,
            r.groups,
            secs,
            r.events as f64 / secs.max(1e-9),
            if r.failed > 0 {
                format!("  ({} groups FAILED, see log)", r.failed)
            } else {
                String::new()
            }
        );
    }
    if reports.iter().any(|r| r.failed > 0) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Differences found by `verify`, per group and projection; without `only`, also of
/// each relay-wide projection (listed under the group `(relay-wide)`).
pub(crate) fn verify_all(db: &db::Db, only: Option<&str>) -> Result<Vec<(String, String, String)>> {
    let names: Vec<String> = match only {
        Some(g) => vec![g.to_owned()],
        None => db
            .store
            .groups()
            .into_iter()
            .map(|g| g.name.to_string())
            .collect(),
    };
    let projections = db.engine.projections();
    let bar = progress::bar(names.len() as u64, "groups");
    bar.set_message("verifying");
    let diffs: Result<Vec<Vec<(String, String, String)>>> = names
        .par_iter()
        .map(|group| {
            let mut out = Vec::new();
            for p in &projections {
                if let Some(diff) = db.engine.verify_group(p, group)? {
                    out.push((group.clone(), p.clone(), diff));
                }
            }
            bar.inc(1);
            Ok(out)
        })
        .collect();
    bar.finish_and_clear();
    let mut diffs: Vec<_> = diffs?.into_iter().flatten().collect();
    if only.is_none() {
        for p in db.engine.relay_wide_projections() {
            if let Some(diff) = db.engine.verify_relay_wide(&p)? {
                diffs.push(("(relay-wide)".to_owned(), p, diff));
            }
        }
    }
    Ok(diffs)
}

pub(crate) fn verify(global: &Global, args: &VerifyArgs) -> Result<ExitCode> {
    let db = db::open(global)?;
    if let Some(group) = &args.group
        && let Some(code) = no_such_group(&db, group)
    {
        return Ok(code);
    }
    let started = Instant::now();
    if args.group.is_none() {
        // The indexes and the index tail against the log: every record found by id and
        // by group, nothing else indexed.
        match db.store.verify_indexes() {
            Ok(report) => println!(
                "indexes: {} records, {} up to the index watermark {} indexed, {} in the index tail: exact",
                report.records,
                report.records - report.tail,
                report.watermark,
                report.tail
            ),
            Err(error) => {
                println!("DIFFERENT indexes: {error}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let groups = if args.group.is_some() {
        1
    } else {
        db.store.group_count()
    };
    let diffs = verify_all(&db, args.group.as_deref())?;
    for (group, projection, diff) in &diffs {
        println!("DIFFERENT group {group} projection {projection}:\n{diff}");
    }
    let relay_wide = if args.group.is_some() {
        String::new()
    } else {
        format!(
            " and {} relay-wide projections",
            db.engine.relay_wide_projections().len()
        )
    };
    println!(
        "verified {groups} groups × {} projections{relay_wide} in {:.2} s: {} differences",
        db.engine.projections().len(),
        started.elapsed().as_secs_f64(),
        diffs.len()
    );
    Ok(if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusJson {
    head: u64,
    events: u64,
    groups: usize,
    relay_pubkey: Option<String>,
    projections: Vec<ProjectionJson>,
    relay_wide: Vec<RelayWideJson>,
}

/// A relay-wide projection: one state over the whole log.
#[derive(Debug, Serialize)]
struct RelayWideJson {
    name: String,
    version: u64,
    /// Whether this process holds it in memory (a reading command loads it only when
    /// a query needs it).
    loaded: bool,
    failed: bool,
    /// The log position of its stored checkpoint of this version, if one validates.
    checkpoint: Option<u64>,
    /// Log records a cold read passes after the checkpoint (their headers; the bodies
    /// only of the kinds it folds).
    checkpoint_lag: u64,
}

#[derive(Debug, Serialize)]
struct ProjectionJson {
    name: String,
    version: u64,
    groups: usize,
    loaded: usize,
    failed: usize,
    with_checkpoint: usize,
    stale_checkpoints: usize,
    lag: u64,
    checkpoint_lag: u64,
}

pub(crate) fn status_of(db: &db::Db) -> Result<StatusJson> {
    let mut projections = Vec::new();
    let groups = db.store.groups();
    for s in db.engine.status()? {
        let headers: BTreeMap<u32, _> = db.store.checkpoint_headers(&s.name)?.into_iter().collect();
        let mut stale = 0;
        let mut checkpoint_lag = 0;
        for g in &groups {
            match headers.get(&g.no) {
                Some(Ok((version, _, events))) if *version == s.version => {
                    checkpoint_lag += g.count.saturating_sub(*events);
                }
                Some(_) => {
                    stale += 1;
                    checkpoint_lag += g.count;
                }
                None => checkpoint_lag += g.count,
            }
        }
        projections.push(ProjectionJson {
            name: s.name,
            version: s.version,
            groups: s.groups,
            loaded: s.loaded,
            failed: s.failed,
            with_checkpoint: s.with_checkpoint - stale,
            stale_checkpoints: stale,
            lag: s.lag,
            checkpoint_lag,
        });
    }
    let relay_wide = db
        .engine
        .relay_wide_status()?
        .into_iter()
        .map(|r| RelayWideJson {
            loaded: r.state == LoadState::Loaded,
            failed: matches!(r.state, LoadState::Failed { .. }),
            checkpoint_lag: r.head - r.checkpoint.unwrap_or(0).min(r.head),
            checkpoint: r.checkpoint,
            name: r.name,
            version: r.version,
        })
        .collect();
    Ok(StatusJson {
        head: db.store.head(),
        events: db.store.event_count()?,
        groups: groups.len(),
        relay_pubkey: db::relay_key(&db.store)?.map(|k| k.to_hex()),
        projections,
        relay_wide,
    })
}

/// The status in words: healthy or not, and what the numbers of the table mean for
/// this database.
pub(crate) fn status_summary(s: &StatusJson) -> String {
    let failed: usize = s.projections.iter().map(|p| p.failed).sum::<usize>()
        + s.relay_wide.iter().filter(|r| r.failed).count();
    let unfolded = s.projections.iter().map(|p| p.lag).max().unwrap_or(0);
    let cold = s
        .projections
        .iter()
        .map(|p| p.checkpoint_lag)
        .max()
        .unwrap_or(0);
    let plural = |n: u64, one: &str, many: &str| {
        format!(
            "{} {}",
            progress::thousands(n),
            if n == 1 { one } else { many }
        )
    };
    let head = if failed == 0 {
        "healthy".to_owned()
    } else {
        format!(
            "NOT healthy: {failed} projection state(s) failed to fold (reads of them answer an error; `highwater verify` names them)"
        )
    };
    let memory = if unfolded == 0 {
        "every event folded in memory".to_owned()
    } else {
        format!(
            "{} not yet folded in memory (a group is folded on its first read)",
            plural(unfolded, "event", "events")
        )
    };
    let checkpoints = if cold == 0 {
        "checkpoints are current".to_owned()
    } else {
        format!(
            "{} after the checkpoints for a cold start to fold (`highwater replay` writes fresh ones)",
            plural(cold, "event", "events")
        )
    };
    format!("{head}, {memory}; {checkpoints}")
}

pub(crate) fn print_status(s: &StatusJson) {
    println!("{}", status_summary(s));
    println!(
        "log head {}   events {}   groups {}",
        s.head, s.events, s.groups
    );
    println!(
        "relay key {}",
        s.relay_pubkey.as_deref().unwrap_or("(none)")
    );
    println!(
        "{:<11} {:>8} {:>8} {:>8} {:>11} {:>7} {:>10} {:>15}",
        "projection", "groups", "loaded", "failed", "checkpoint", "stale", "lag", "checkpoint lag"
    );
    for p in &s.projections {
        println!(
            "{:<11} {:>8} {:>8} {:>8} {:>11} {:>7} {:>10} {:>15}",
            p.name,
            p.groups,
            p.loaded,
            p.failed,
            p.with_checkpoint,
            p.stale_checkpoints,
            p.lag,
            p.checkpoint_lag
        );
    }
    for r in &s.relay_wide {
        println!(
            "{:<11} {:>8} {:>8} {:>8} {:>11} {:>7} {:>10} {:>15}",
            r.name,
            "(log)",
            if r.loaded { "yes" } else { "no" },
            if r.failed { "yes" } else { "no" },
            r.checkpoint
                .map_or_else(|| "none".to_owned(), |c| format!("@{c}")),
            "",
            "",
            r.checkpoint_lag
        );
    }
    println!(
        "(lag: events not folded in this process's memory; checkpoint lag: events a cold read must fold after its checkpoint; relay-wide projections fold the whole log: their checkpoint lag is in log records)"
    );
}

pub(crate) fn status(global: &Global, args: &StatusArgs) -> Result<ExitCode> {
    let db = db::open(global)?;
    let s = status_of(&db)?;
    let lag = super::promote::lag(&db.store)?;
    if args.json {
        let mut json = serde_json::to_value(&s)?;
        if let Some(lag) = lag {
            json["replica"] = lag;
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_status(&s);
        if let Some(lag) = lag {
            println!("{}", super::promote::lag_line(&lag));
        }
    }
    Ok(ExitCode::SUCCESS)
}
