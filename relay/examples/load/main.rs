//! Load test of the relay against rust-nostr's `nostr-relay-builder` on nostr-lmdb, in
//! one run, on loopback. Each relay runs in a child process (this binary re-executed
//! with `--serve`), so its CPU time and peak memory are its own.
//!
//! ```sh
//! cargo run --release -p highwater-relay --example load            # full sizes
//! cargo run --release -p highwater-relay --example load -- --events 20000 --fanout-events 5000
//! ```
//!
//! (a) `--clients` WebSocket clients each send kind-9 events one at a time, waiting for
//! `OK` before the next (`--events` in all, over `--groups` groups); (b) fan-out:
//! `--subscribers` subscribers (`{"kinds":[9],"#h":[g]}`) while the writers post
//! `--fanout-events`; (c) open loop at `--rate` events/s for `--seconds` seconds.
//! Events are signed before the clock starts; each group is set up first (a 9007 and a
//! 9000 adding every writer). Both relays verify signatures and write durably.
//!
//! After the measurements, the two relay rows of the project's speed goals ((a) ≥ 5×
//! and (b) ≥ 10× the peer's acknowledged events/s) are printed in `highwater bench`'s
//! table.

mod client;
mod serve;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use highwater_bench::report;
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, SecretKey, Tag};

use crate::client::{Target, fanout, open_loop, post_all, setup};
use crate::stats::{Row, goal_rows, print_table};

/// Options, from `--name value` pairs.
#[derive(Debug, Clone)]
struct Opts {
    clients: usize,
    events: usize,
    groups: usize,
    subscribers: usize,
    fanout_events: usize,
    rate: usize,
    seconds: u64,
    peer: bool,
    serve: Option<String>,
    db: Option<PathBuf>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        clients: 256,
        events: 100_000,
        groups: 100,
        subscribers: 1_000,
        fanout_events: 20_000,
        rate: 1_000,
        seconds: 10,
        peer: true,
        serve: None,
        db: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let name = args[i].as_str();
        if name == "--no-peer" {
            o.peer = false;
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{name} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{name}: {e}"));
        match name {
            "--clients" => o.clients = number()?,
            "--events" => o.events = number()?,
            "--groups" => o.groups = number()?,
            "--subscribers" => o.subscribers = number()?,
            "--fanout-events" => o.fanout_events = number()?,
            "--rate" => o.rate = number()?,
            "--seconds" => o.seconds = number()? as u64,
            "--serve" => o.serve = Some(value.clone()),
            "--db" => o.db = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    Ok(o)
}

/// Everything signed before any clock starts.
pub(crate) struct Workload {
    pub(crate) setup: Vec<Event>,
    /// Per writer, its posts for (a).
    pub(crate) closed: Vec<Vec<Event>>,
    /// Per writer, its posts for (b); content is the post's index.
    pub(crate) fanout: Vec<Vec<(usize, Event)>>,
    pub(crate) fanout_total: usize,
    /// Posts for (c), in sending order.
    pub(crate) open: Vec<Event>,
    pub(crate) groups: Vec<String>,
}

fn keys(n: u64) -> Keys {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&(n + 1).to_be_bytes());
    Keys::new(SecretKey::from_slice(&bytes).expect("a valid secret key"))
}

fn post(writer: &Keys, group: &str, content: String) -> Event {
    EventBuilder::new(Kind::Custom(9), content)
        .tag(Tag::parse(["h", group]).expect("h tag"))
        .finalize(writer)
        .expect("sign")
}

fn workload(o: &Opts) -> Workload {
    let creator = keys(1_000_000);
    let writers: Vec<Keys> = (0..o.clients as u64).map(keys).collect();
    let groups: Vec<String> = (0..o.groups).map(|g| format!("load-{g}")).collect();
    let mut setup = Vec::new();
    for g in &groups {
        let h = Tag::parse(["h", g.as_str()]).expect("h tag");
        setup.push(
            EventBuilder::new(Kind::GroupCreateGroup, "")
                .tags([h.clone(), Tag::parse(["name", g.as_str()]).expect("tag")])
                .finalize(&creator)
                .expect("sign"),
        );
        let mut tags = vec![h];
        tags.extend(
            writers
                .iter()
                .map(|w| Tag::parse(["p", w.public_key().to_hex().as_str()]).expect("p tag")),
        );
        setup.push(
            EventBuilder::new(Kind::GroupPutUser, "")
                .tags(tags)
                .finalize(&creator)
                .expect("sign"),
        );
    }
    let mut closed = vec![Vec::new(); writers.len()];
    for j in 0..o.events {
        let w = j % writers.len();
        closed[w].push(post(
            &writers[w],
            &groups[j % groups.len()],
            format!("a {j}"),
        ));
    }
    let mut fanout = vec![Vec::new(); writers.len()];
    for j in 0..o.fanout_events {
        let w = j % writers.len();
        let g = &groups[(j / writers.len() + w) % groups.len()];
        fanout[w].push((j, post(&writers[w], g, format!("{j}"))));
    }
    let open_total = o.rate * usize::try_from(o.seconds).unwrap_or(0);
    let open = (0..open_total)
        .map(|j| {
            let w = j % writers.len();
            post(&writers[w], &groups[j % groups.len()], format!("c {j}"))
        })
        .collect();
    Workload {
        setup,
        closed,
        fanout,
        fanout_total: o.fanout_events,
        open,
        groups,
    }
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(which) = &o.serve {
        return serve::child(which, o.db.as_deref());
    }
    let started = Instant::now();
    let w = workload(&o);
    eprintln!(
        "signed {} events in {:.1} s",
        w.setup.len()
            + w.closed.iter().map(Vec::len).sum::<usize>()
            + w.fanout_total
            + w.open.len(),
        started.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows: Vec<Row> = Vec::new();
    let mut relays = vec!["highwater"];
    if o.peer {
        relays.push("nostr-relay-builder");
    }
    for name in relays {
        let rows_of = runtime.block_on(run_one(name, &o, &w));
        match rows_of {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("error ({name}): {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&o_summary(&o), &rows);
    println!("\nAgainst the goals:\n");
    let details = [
        format!("{} clients, {} events", o.clients, o.events),
        format!(
            "{} subscribers, {} writers, {} events",
            o.subscribers, o.clients, o.fanout_events
        ),
    ];
    print!("{}", report::table(&goal_rows(&rows, details)));
    ExitCode::SUCCESS
}

fn o_summary(o: &Opts) -> String {
    format!(
        "(a) {} clients, {} events, {} groups; (b) {} subscribers, {} writers, {} events; (c) {} events/s for {} s",
        o.clients, o.events, o.groups, o.subscribers, o.clients, o.fanout_events, o.rate, o.seconds
    )
}

async fn run_one(name: &str, o: &Opts, w: &Workload) -> Result<Vec<Row>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let target = Target::spawn(name, dir.path())?;
    setup(&target, &w.setup).await?;
    let mut rows = Vec::new();
    let before = target.cpu_seconds();
    let t = Instant::now();
    let ok = post_all(&target, &w.closed).await?;
    rows.push(Row::new(
        name,
        "(a) closed loop",
        ok.count,
        t.elapsed(),
        target.cpu_seconds() - before,
        &ok.latencies,
        &[],
        target.memory(),
    ));
    let before = target.cpu_seconds();
    let t = Instant::now();
    let (ok, delivered) = fanout(&target, w, o.subscribers).await?;
    rows.push(Row::new(
        name,
        "(b) fan-out",
        ok.count,
        t.elapsed(),
        target.cpu_seconds() - before,
        &ok.latencies,
        &delivered,
        target.memory(),
    ));
    let before = target.cpu_seconds();
    let t = Instant::now();
    let ok = open_loop(&target, &w.open, o.rate, 64).await?;
    rows.push(Row::new(
        name,
        "(c) open loop",
        ok.count,
        t.elapsed(),
        target.cpu_seconds() - before,
        &ok.latencies,
        &[],
        target.memory(),
    ));
    target.stop(Duration::from_secs(30)).await;
    let _ = &w.groups;
    Ok(rows)
}
