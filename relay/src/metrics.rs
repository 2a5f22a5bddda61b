//! The relay's Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Counters and the commit-latency histogram are kept as the relay works; gauges of
//! things the relay already knows (connections, subscriptions, queued bytes, groups,
//! the log head, checkpoint lag) are read when scraped, so nothing is counted twice.
//! Each relay has its own registry: two relays in one process do not mix their counts.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The relay's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    accepted: IntCounter,
    refused: IntCounterVec,
    commit: Histogram,
    nip86: IntCounterVec,
    connections: IntGauge,
    subscriptions: IntGauge,
    queued: IntGauge,
    groups: IntGauge,
    head: IntGauge,
    lag: IntGaugeVec,
    up: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new().expect("the relay's metric definitions are valid")
    }
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let accepted = IntCounter::new(
            "highwater_events_accepted_total",
            "Events accepted (OK true), duplicates included.",
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "highwater_events_refused_total",
                "Events refused (OK false), by the machine-readable prefix of the message.",
            ),
            &["reason"],
        )?;
        let commit = Histogram::with_opts(
            HistogramOpts::new(
                "highwater_commit_seconds",
                "Time from handing a batch to the store's writer to its durable commit.",
            )
            .buckets(vec![
                0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let nip86 = IntCounterVec::new(
            Opts::new(
                "highwater_nip86_requests_total",
                "NIP-86 management requests, by outcome (ok, unauthorized, forbidden, error).",
            ),
            &["outcome"],
        )?;
        let connections = IntGauge::new(
            "highwater_connections",
            "Open connections (WebSocket, and HTTP on the relay's own listener).",
        )?;
        let subscriptions = IntGauge::new("highwater_subscriptions", "Open subscriptions.")?;
        let queued = IntGauge::new(
            "highwater_fanout_queue_bytes",
            "Bytes of frames queued for clients and not yet written to their sockets.",
        )?;
        let groups = IntGauge::new("highwater_groups", "Groups in the log.")?;
        let head = IntGauge::new("highwater_log_head", "The log's last sequence number.")?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "highwater_checkpoint_lag",
                "Log records after a relay-wide projection's stored checkpoint (the head \
                 when it has none), by projection.",
            ),
            &["projection"],
        )?;
        let up = IntGauge::new(
            "highwater_up",
            "1 while the relay's write path runs (what /health reports), else 0.",
        )?;
        // Every label value is exported from the start, at 0, so a scrape lists each
        // series before the first event of its kind.
        for reason in PREFIXES.iter().chain(&["other"]) {
            refused.with_label_values(&[*reason]);
        }
        for outcome in ["ok", "unauthorized", "forbidden", "error"] {
            nip86.with_label_values(&[outcome]);
        }
        for collector in [
            Box::new(accepted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
            Box::new(commit.clone()),
            Box::new(nip86.clone()),
            Box::new(connections.clone()),
            Box::new(subscriptions.clone()),
            Box::new(queued.clone()),
            Box::new(groups.clone()),
            Box::new(head.clone()),
            Box::new(lag.clone()),
            Box::new(up.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Self {
            registry,
            accepted,
            refused,
            commit,
            nip86,
            connections,
            subscriptions,
            queued,
            groups,
            head,
            lag,
            up,
        })
    }

    /// Counts the `OK` answer to one `EVENT`.
    pub(crate) fn count_reply(&self, accepted: bool, message: &str) {
        if accepted {
            self.accepted.inc();
        } else {
            self.refused.with_label_values(&[reason(message)]).inc();
        }
    }

    /// Records one commit's latency.
    pub(crate) fn observe_commit(&self, seconds: f64) {
        self.commit.observe(seconds);
    }

    /// Counts one NIP-86 request.
    pub(crate) fn count_nip86(&self, outcome: &'static str) {
        self.nip86.with_label_values(&[outcome]).inc();
    }

    /// The metrics in Prometheus' text format, with the gauges set to `now`.
    pub(crate) fn render(&self, now: &Gauges) -> String {
        self.connections.set(gauge(now.connections));
        self.subscriptions.set(gauge(now.subscriptions));
        self.queued.set(gauge(now.queued));
        self.groups.set(gauge(now.groups));
        self.head.set(i64::try_from(now.head).unwrap_or(i64::MAX));
        for (name, lag) in &now.lags {
            self.lag
                .with_label_values(&[name.as_str()])
                .set(i64::try_from(*lag).unwrap_or(i64::MAX));
        }
        self.up.set(i64::from(now.healthy));
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "encoding the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What the gauges show, read when the metrics are scraped (`Shared::gauges`).
pub(crate) struct Gauges {
    /// Open connections.
    pub(crate) connections: usize,
    /// Open subscriptions.
    pub(crate) subscriptions: usize,
    /// Bytes queued in every outbox.
    pub(crate) queued: usize,
    /// Groups in the store.
    pub(crate) groups: usize,
    /// The log head.
    pub(crate) head: u64,
    /// Each relay-wide projection's name and how far its checkpoint is behind the head
    /// (none when their status cannot be read: the gauges keep their values).
    pub(crate) lags: Vec<(String, u64)>,
    /// What `/health` would answer.
    pub(crate) healthy: bool,
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// NIP-01's machine-readable prefixes of `OK` messages.
const PREFIXES: [&str; 9] = [
    "auth-required",
    "blocked",
    "duplicate",
    "error",
    "invalid",
    "mute",
    "pow",
    "rate-limited",
    "restricted",
];

/// The machine-readable prefix of a NIP-01 `OK` message, or `other`: a bounded set of
/// label values whatever a message says.
fn reason(message: &str) -> &'static str {
    let prefix = message.split_once(':').map_or("", |(p, _)| p);
    PREFIXES
        .iter()
        .find(|&&p| p == prefix)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    #[test]
    fn refusal_reasons_are_the_nip01_prefixes() {
        assert_eq!(super::reason("blocked: banned"), "blocked");
        assert_eq!(super::reason("rate-limited: slow down"), "rate-limited");
        assert_eq!(super::reason("whatever: x"), "other");
        assert_eq!(super::reason("no prefix"), "other");
    }
}
