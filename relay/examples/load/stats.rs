//! Percentiles, the result table, and the rows against their goals (in `highwater
//! bench`'s table).

use std::time::Duration;

use highwater_bench::report::{self, Goal};

/// One measured row.
pub(crate) struct Row {
    relay: String,
    scenario: &'static str,
    acked: usize,
    seconds: f64,
    cpu: f64,
    ok: (f64, f64),
    delivered: usize,
    delivery: Option<(f64, f64)>,
    memory: f64,
}

fn percentile_ms(sorted: &[Duration], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let last = sorted.len() - 1;
    sorted[((last * per_mille + 500) / 1_000).min(last)].as_secs_f64() * 1_000.0
}

fn p50_p99(values: &[Duration]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    (percentile_ms(&sorted, 500), percentile_ms(&sorted, 990))
}

impl Row {
    #[expect(clippy::too_many_arguments, reason = "one row of measurements")]
    pub(crate) fn new(
        relay: &str,
        scenario: &'static str,
        acked: usize,
        elapsed: Duration,
        cpu: f64,
        ok: &[Duration],
        delivered: &[Duration],
        memory: f64,
    ) -> Self {
        Self {
            relay: relay.to_owned(),
            scenario,
            acked,
            seconds: elapsed.as_secs_f64(),
            cpu,
            ok: p50_p99(ok),
            delivered: delivered.len(),
            delivery: (!delivered.is_empty()).then(|| p50_p99(delivered)),
            memory,
        }
    }
}

/// Prints the rows as a Markdown table, then the ratios highwater / peer.
pub(crate) fn print_table(summary: &str, rows: &[Row]) {
    println!("{summary}\n");
    println!(
        "| relay | scenario | acked | seconds | acked events/s | OK p50 ms | OK p99 ms | delivered | delivery p50 ms | delivery p99 ms | relay CPU (cores) | relay peak RSS MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (d50, d99) = r.delivery.map_or(("–".into(), "–".into()), |(a, b)| {
            (format!("{a:.1}"), format!("{b:.1}"))
        });
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {} | {d50} | {d99} | {:.2} | {:.0} |",
            r.relay,
            r.scenario,
            r.acked,
            r.seconds,
            r.acked as f64 / r.seconds,
            r.ok.0,
            r.ok.1,
            r.delivered,
            r.cpu / r.seconds,
            r.memory
        );
    }
    println!();
    for scenario in ["(a) closed loop", "(b) fan-out", "(c) open loop"] {
        let rate = |relay: &str| {
            rows.iter()
                .find(|r| r.relay == relay && r.scenario == scenario)
                .map(|r| r.acked as f64 / r.seconds)
        };
        if let (Some(h), Some(p)) = (rate("highwater"), rate("nostr-relay-builder")) {
            println!(
                "{scenario}: highwater / peer acked events/s = {:.1}×",
                h / p
            );
        }
    }
}

/// The relay rows of the project's speed goals, highwater against the peer in the same
/// run: acknowledged events/s of (a) the closed loop and (b) the fan-out. `details` says
/// what each scenario ran. Without the peer (`--no-peer`) a row has no ratio.
pub(crate) fn goal_rows(rows: &[Row], details: [String; 2]) -> Vec<report::Row> {
    let rate = |relay: &str, scenario: &str| {
        rows.iter()
            .find(|r| r.relay == relay && r.scenario == scenario)
            .map(|r| r.acked as f64 / r.seconds)
    };
    let goals = [
        ("(a) closed loop", "relay write, acked events/s", 5.0),
        ("(b) fan-out", "relay fan-out, acked events/s", 10.0),
    ];
    goals
        .into_iter()
        .zip(details)
        .filter_map(|((scenario, name, goal), detail)| {
            let row = report::Row::new(
                format!("{name} ({detail})"),
                rate("highwater", scenario)?,
                "events/s",
                Goal::RatioAtLeast(goal),
            );
            Some(match rate("nostr-relay-builder", scenario) {
                Some(peer) => row.against(
                    "rust-nostr nostr-relay-builder on nostr-lmdb, same clients",
                    peer,
                ),
                None => row,
            })
        })
        .collect()
}
