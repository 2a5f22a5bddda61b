//! `highwater groups`: every group of the database with its state, member count,
//! event count and head, as a table or JSON.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use super::{Global, db, progress};

#[derive(Debug, Args)]
pub(crate) struct GroupsArgs {
    /// Print JSON (one array, sorted by group id) instead of a table.
    #[arg(long)]
    json: bool,
}

/// One row of `groups --json`.
#[derive(Debug, Serialize)]
struct GroupRow {
    group: String,
    state: String,
    members: usize,
    events: u64,
    head: u64,
}

pub(crate) fn run(global: &Global, args: &GroupsArgs) -> Result<ExitCode> {
    let db = db::open(global)?;
    let mut infos = db.store.groups();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    let bar = progress::bar(infos.len() as u64, "groups");
    bar.set_message("loading");
    let rows: Result<Vec<GroupRow>> = infos
        .par_iter()
        .map(|g| {
            let life = db.groups.group_state(&g.name)?;
            let members = db.groups.member_count(&g.name)?;
            bar.inc(1);
            Ok(GroupRow {
                group: g.name.to_string(),
                state: serde_json::to_value(life)?
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
                members,
                events: g.count,
                head: g.head,
            })
        })
        .collect();
    bar.finish_and_clear();
    let rows = rows?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:>8} {:>9} {:>9} {:>12}",
        "group", "state", "members", "events", "head"
    );
    for r in &rows {
        println!(
            "{:<32} {:>8} {:>9} {:>9} {:>12}",
            r.group, r.state, r.members, r.events, r.head
        );
    }
    println!("{} groups", rows.len());
    Ok(ExitCode::SUCCESS)
}
