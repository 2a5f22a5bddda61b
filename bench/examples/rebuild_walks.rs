//! The two ways a full rebuild reads the log, on one thread and on two: walking each
//! group's index (`RebuildWalk::GroupIndex`, the default) or scanning the whole log
//! (`RebuildWalk::Log`), for the four NIP-29 projections and for membership alone.
//! Also the read side alone (no fold): a validated log scan against index walks.
//!
//! ```text
//! cargo run --release -p highwater-bench --example rebuild_walks -- DB RELAY_PUBKEY_HEX [ROUNDS]
//! ```
//!
//! Per variant: the best wall time of ROUNDS rebuilds (default 10), the mean wall time,
//! and the mean CPU time of the whole process (Linux `/proc/self/stat`, 10 ms ticks).

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use highwater_engine::{Engine, EngineOptions, RebuildOptions, RebuildWalk};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{Store, StoreOptions};

/// The kinds the four NIP-29 projections fold, and those membership folds.
const FOUR: [u16; 11] = [
    9000, 9001, 9002, 9007, 9008, 39000, 39001, 39002, 9009, 9010, 39003,
];
const MEMBERSHIP: [u16; 8] = [9000, 9001, 9002, 9007, 9008, 39000, 39001, 39002];

/// CPU time of this process so far, in milliseconds.
fn cpu_millis() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rfind(')').context("malformed /proc/self/stat")? + 2;
    let fields: Vec<&str> = stat[after..].split(' ').collect();
    // utime and stime, fields 14 and 15 of the file (11 and 12 after the name).
    Ok((fields[11].parse::<u64>()? + fields[12].parse::<u64>()?) * 10)
}

fn read_side(store: &Store, rounds: usize) -> Result<()> {
    let mut groups = store.groups();
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    let mut best = [Duration::MAX; 3];
    for _ in 0..rounds {
        let started = Instant::now();
        let mut n = 0u64;
        store.scan(1, |_, event| {
            if let Some(no) = event.group_id().and_then(|id| store.group_no(id))
                && FOUR.contains(&event.kind())
            {
                n += u64::from(no);
            }
            ControlFlow::Continue(())
        })?;
        black_box(n);
        best[0] = best[0].min(started.elapsed());
        for (i, kinds) in [&FOUR[..], &MEMBERSHIP[..]].into_iter().enumerate() {
            let started = Instant::now();
            let mut n = 0u64;
            for g in &groups {
                let scan = store.scan_group(
                    g.no,
                    0,
                    |k| kinds.contains(&k),
                    |_, event| {
                        n += u64::from(event.kind());
                        ControlFlow::Continue(())
                    },
                )?;
                n += scan.events;
            }
            black_box(n);
            best[i + 1] = best[i + 1].min(started.elapsed());
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "read side, best of {rounds}: validated log scan {:.1} ms; index walks reading the four projections' kinds {:.1} ms, membership's {:.1} ms",
        ms(best[0]),
        ms(best[1]),
        ms(best[2])
    );
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(relay)) = (args.next(), args.next()) else {
        bail!("usage: rebuild_walks DB RELAY_PUBKEY_HEX [ROUNDS]");
    };
    let rounds: u32 = args.next().map_or(Ok(10), |r| r.parse())?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(relay, &mut key)?;
    let store = Store::open(&dir, StoreOptions::default())?;
    read_side(&store, rounds as usize)?;
    let mut builder = Engine::builder(
        store,
        EngineOptions {
            checkpoint_every: 0,
            checkpoint_on_close: false,
        },
    );
    let _groups = Groups::register(
        &mut builder,
        Nip29Config::new(nostr::prelude::PublicKey::from_byte_array(key)),
    )?;
    let engine = builder.build()?;
    for projection in [None, Some("membership")] {
        for walk in [RebuildWalk::GroupIndex, RebuildWalk::Log] {
            for threads in [1, 2] {
                let options = RebuildOptions::threads(threads).walk(walk);
                let cpu = cpu_millis()?;
                let all = Instant::now();
                let mut best = Duration::MAX;
                for _ in 0..rounds {
                    let started = Instant::now();
                    let reports = engine.rebuild_with(projection, None, &options)?;
                    if reports.iter().any(|r| r.failed > 0) {
                        bail!("a group failed");
                    }
                    best = best.min(started.elapsed());
                }
                println!(
                    "{:<10} {walk:?}, {threads} thread(s): best {:.1} ms, mean wall {:.1} ms, mean CPU {} ms",
                    projection.unwrap_or("all four"),
                    best.as_secs_f64() * 1e3,
                    (all.elapsed() / rounds).as_secs_f64() * 1e3,
                    (cpu_millis()? - cpu) / u64::from(rounds)
                );
            }
        }
    }
    Ok(())
}
