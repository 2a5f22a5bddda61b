//! The "open + first answer after restart" row of `highwater bench`, alone and many
//! times over, so a profiler can see where a restart's first answer goes.
//!
//! ```text
//! cargo run --release -p highwater-bench --example first_answer -- DB RELAY_PUBKEY_HEX [ROUNDS]
//! ```
//!
//! Opens the database, asks whether the first member of the busiest group is a member,
//! drops everything, and again; prints the median of each step in microseconds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::PublicKey;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, relay, rest @ ..] = args.as_slice() else {
        bail!("usage: first_answer DB RELAY_PUBKEY_HEX [ROUNDS]");
    };
    let rounds: usize = rest.first().map_or(Ok(200), |s| s.parse())?;
    let relay = PublicKey::parse(relay).context("the relay key")?;
    let (group, member) = {
        let store = Store::open(db, StoreOptions::read_only())?;
        let mut builder = Engine::builder(store.clone(), EngineOptions::default());
        let groups = Groups::register(&mut builder, Nip29Config::new(relay))?;
        let _engine = builder.build()?;
        let busiest = store
            .groups()
            .into_iter()
            .max_by_key(|g| g.count)
            .context("an empty log")?;
        let member = groups
            .members(&busiest.name)?
            .into_iter()
            .next()
            .context("a group without members")?;
        (busiest.name.to_string(), member)
    };
    let (mut opening, mut building, mut answering) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let store = Store::open(db, StoreOptions::default())?;
        let opened = Instant::now();
        let mut builder = Engine::builder(store, EngineOptions::default());
        let groups = Groups::register(&mut builder, Nip29Config::new(relay))?;
        let engine = builder.build()?;
        let engine_ready = Instant::now();
        let is = groups.is_member(&group, &member)?;
        let answered = Instant::now();
        assert!(is);
        opening.push(opened - started);
        building.push(engine_ready - opened);
        answering.push(answered - engine_ready);
        drop(groups);
        drop(engine);
    }
    println!(
        "{group}: open {:.0} µs, engine {:.0} µs, first answer {:.0} µs (medians of {rounds})",
        median(opening),
        median(building),
        median(answering)
    );
    Ok(())
}
