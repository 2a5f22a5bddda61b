//! The hot read loop of `highwater bench`'s "hot `is_member`" and "hot `can_write`" rows,
//! alone and for as long as asked, so a profiler can watch it.
//!
//! ```text
//! cargo run --release -p highwater-bench --example hot_reads -- DB RELAY_PUBKEY_HEX [SECONDS] [is_member|can_write]
//! ```
//!
//! Prints the median nanoseconds per call of 1,000-call rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::PublicKey;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, relay, rest @ ..] = args.as_slice() else {
        bail!("usage: hot_reads DB RELAY_PUBKEY_HEX [SECONDS] [is_member|can_write]");
    };
    let seconds: u64 = rest.first().map_or(Ok(5), |s| s.parse())?;
    let query = rest.get(1).map_or("is_member", String::as_str);
    let relay = PublicKey::parse(relay).context("the relay key")?;
    let store = Store::open(db, StoreOptions::read_only())?;
    let options = EngineOptions {
        checkpoint_every: 0,
        checkpoint_on_close: false,
    };
    let mut builder = Engine::builder(store.clone(), options);
    let groups = Groups::register(&mut builder, Nip29Config::new(relay))?;
    let _engine = builder.build()?;
    let policy = AccessPolicy::new(groups.clone(), Policy::default());

    let queries = highwater_bench::hot_queries(&store, &groups)?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rounds = Vec::new();
    let mut next = 0;
    let mut hits = 0u64;
    while Instant::now() < deadline {
        let started = Instant::now();
        for _ in 0..1_000 {
            let (group, member) = &queries[next];
            next = (next + 1) % queries.len();
            let answer = if query == "can_write" {
                policy.can_write(group, member)?
            } else {
                groups.is_member(group, member)?
            };
            hits += u64::from(black_box(answer));
        }
        rounds.push(started.elapsed().as_nanos() / 1_000);
    }
    rounds.sort_unstable();
    println!(
        "{query}: {} ns median per call over {} rounds ({hits} true)",
        rounds[rounds.len() / 2],
        rounds.len()
    );
    Ok(())
}
