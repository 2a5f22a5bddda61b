//! The clients: raw WebSocket connections (tokio-tungstenite) that send pre-signed
//! events and time the relay's answers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nostr::prelude::Event;
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Workload;
use crate::serve::{Process, cpu_seconds, peak_mib};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where writers stamp each post's send time: (stamps, clock base, per writer the
/// index of each of its posts).
type Stamps = (Arc<Vec<AtomicU64>>, Instant, Vec<Vec<usize>>);

/// A relay under test.
pub(crate) struct Target {
    process: Process,
    url: String,
}

impl Target {
    pub(crate) fn spawn(name: &str, db: &Path) -> Result<Self, String> {
        let process = Process::spawn(name, db)?;
        let url = format!("ws://127.0.0.1:{}", process.port);
        Ok(Self { process, url })
    }

    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.process.pid())
    }

    pub(crate) fn memory(&self) -> f64 {
        peak_mib(self.process.pid())
    }

    pub(crate) async fn stop(self, limit: Duration) {
        let _ = tokio::task::spawn_blocking(move || self.process.stop(limit)).await;
    }
}

/// Acknowledged events and their `OK` latencies.
pub(crate) struct Acked {
    pub(crate) count: usize,
    pub(crate) latencies: Vec<Duration>,
}

async fn connect(url: &str) -> Result<Ws, String> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Ok(ws)
}

fn event_message(event: &Event) -> String {
    format!(r#"["EVENT",{}]"#, event.as_json())
}

/// Sends one event and waits for its `OK`; returns whether it was accepted.
async fn send_wait(ws: &mut Ws, message: String, id: &str) -> Result<(bool, String), String> {
    ws.send(Message::text(message))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = tokio::time::timeout(Duration::from_mins(1), ws.next())
            .await
            .map_err(|_| "no OK within 60 s".to_owned())?
            .ok_or("connection closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(text) = frame {
            let value: serde_json::Value =
                serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
            if value[0] == "OK" && value[1] == id {
                let accepted = value[2].as_bool().unwrap_or(false);
                return Ok((accepted, value[3].as_str().unwrap_or("").to_owned()));
            }
        }
    }
}

/// Sends the setup events in order on one connection; every one must be accepted.
pub(crate) async fn setup(target: &Target, events: &[Event]) -> Result<(), String> {
    let mut ws = connect(&target.url).await?;
    for event in events {
        let (accepted, message) =
            send_wait(&mut ws, event_message(event), &event.id.to_hex()).await?;
        if !accepted {
            return Err(format!("setup event refused: {message}"));
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// (a): every writer sends its events one at a time, waiting for each `OK`.
pub(crate) async fn post_all(target: &Target, per_writer: &[Vec<Event>]) -> Result<Acked, String> {
    let (count, latencies) = closed_loop(target, per_writer, None).await?;
    Ok(Acked { count, latencies })
}

async fn closed_loop(
    target: &Target,
    per_writer: &[Vec<Event>],
    sent_at: Option<Stamps>,
) -> Result<(usize, Vec<Duration>), String> {
    let barrier = Arc::new(Barrier::new(per_writer.len()));
    let mut tasks = Vec::new();
    for (w, events) in per_writer.iter().enumerate() {
        let messages: Vec<(String, String)> = events
            .iter()
            .map(|e| (event_message(e), e.id.to_hex()))
            .collect();
        let mut ws = connect(&target.url).await?;
        let barrier = barrier.clone();
        let stamps = sent_at
            .as_ref()
            .map(|(at, base, idx)| (at.clone(), *base, idx[w].clone()));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut latencies = Vec::with_capacity(messages.len());
            let mut accepted = 0;
            for (i, (message, id)) in messages.into_iter().enumerate() {
                let start = Instant::now();
                if let Some((at, base, idx)) = &stamps {
                    let nanos = u64::try_from(start.duration_since(*base).as_nanos()).unwrap_or(0);
                    at[idx[i]].store(nanos.max(1), Ordering::Release);
                }
                let (ok, _) = send_wait(&mut ws, message, &id).await?;
                latencies.push(start.elapsed());
                accepted += usize::from(ok);
            }
            let _ = ws.close(None).await;
            Ok::<_, String>((accepted, latencies))
        }));
    }
    let mut count = 0;
    let mut all = Vec::new();
    for task in tasks {
        let (n, l) = task.await.map_err(|e| e.to_string())??;
        count += n;
        all.extend(l);
    }
    Ok((count, all))
}

/// (b): subscribers on every group receive the writers' posts; returns the writers'
/// `OK`s and each delivery's latency (from its send).
#[expect(
    clippy::too_many_lines,
    reason = "subscribers, writers and the tally in one place"
)]
pub(crate) async fn fanout(
    target: &Target,
    w: &Workload,
    subscribers: usize,
) -> Result<(Acked, Vec<Duration>), String> {
    let mut per_group: HashMap<String, usize> = HashMap::new();
    for (_, e) in w.fanout.iter().flatten() {
        let g = e
            .tags
            .iter()
            .find(|t| t.kind() == "h")
            .and_then(|t| t.content());
        *per_group.entry(g.unwrap_or("").to_owned()).or_default() += 1;
    }
    let base = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..w.fanout_total).map(|_| AtomicU64::new(0)).collect());
    let expected_total: usize = (0..subscribers)
        .map(|s| {
            per_group
                .get(&w.groups[s % w.groups.len()])
                .copied()
                .unwrap_or(0)
        })
        .sum();
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut subs = Vec::new();
    for s in 0..subscribers {
        let group = w.groups[s % w.groups.len()].clone();
        let expected = per_group.get(&group).copied().unwrap_or(0);
        let mut ws = connect(&target.url).await?;
        let req = format!(r##"["REQ","s",{{"kinds":[9],"#h":["{group}"],"limit":0}}]"##);
        ws.send(Message::text(req))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let frame = tokio::time::timeout(Duration::from_mins(1), ws.next())
                .await
                .map_err(|_| "no EOSE".to_owned())?
                .ok_or("closed")?
                .map_err(|e| e.to_string())?;
            if let Message::Text(t) = frame
                && t.as_str().starts_with(r#"["EOSE""#)
            {
                break;
            }
        }
        let sent_at = sent_at.clone();
        let delivered = delivered.clone();
        subs.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(expected);
            while latencies.len() < expected {
                let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(Duration::from_secs(30), ws.next()).await
                else {
                    break;
                };
                let Message::Text(text) = frame else { continue };
                let now = base.elapsed();
                let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    continue;
                };
                let Some(index) = value[2]["content"]
                    .as_str()
                    .and_then(|c| c.parse::<usize>().ok())
                else {
                    continue;
                };
                let sent = sent_at.get(index).map_or(0, |a| a.load(Ordering::Acquire));
                if sent > 0 {
                    latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = ws.close(None).await;
            latencies
        }));
    }
    let per_writer: Vec<Vec<Event>> = w
        .fanout
        .iter()
        .map(|v| v.iter().map(|(_, e)| e.clone()).collect())
        .collect();
    let indexes: Vec<Vec<usize>> = w
        .fanout
        .iter()
        .map(|v| v.iter().map(|(i, _)| *i).collect())
        .collect();
    let (count, ok) = closed_loop(target, &per_writer, Some((sent_at, base, indexes))).await?;
    let mut deliveries = Vec::new();
    for sub in subs {
        deliveries.extend(sub.await.map_err(|e| e.to_string())?);
    }
    eprintln!(
        "fan-out: {} of {expected_total} deliveries",
        delivered.load(Ordering::Relaxed)
    );
    Ok((
        Acked {
            count,
            latencies: ok,
        },
        deliveries,
    ))
}

/// (c): events at a fixed rate over `conns` connections, not waiting for `OK`s; the
/// latency is from each event's scheduled time.
pub(crate) async fn open_loop(
    target: &Target,
    events: &[Event],
    rate: usize,
    conns: usize,
) -> Result<Acked, String> {
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let mine: Vec<(usize, String, String)> = events
            .iter()
            .enumerate()
            .filter(|(k, _)| k % conns == c)
            .map(|(k, e)| (k, event_message(e), e.id.to_hex()))
            .collect();
        let ws = connect(&target.url).await?;
        let (mut sink, mut stream) = ws.split();
        let scheduled: HashMap<String, tokio::time::Instant> = mine
            .iter()
            .map(|(k, _, id)| {
                (
                    id.clone(),
                    start + Duration::from_secs_f64(*k as f64 / rate as f64),
                )
            })
            .collect();
        let expected = mine.len();
        let reader = tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(expected);
            let mut accepted = 0;
            while latencies.len() < expected {
                let Ok(Some(Ok(frame))) =
                    tokio::time::timeout(Duration::from_secs(30), stream.next()).await
                else {
                    break;
                };
                let Message::Text(text) = frame else { continue };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    continue;
                };
                if value[0] != "OK" {
                    continue;
                }
                if let Some(at) = value[1].as_str().and_then(|id| scheduled.get(id)) {
                    latencies.push(tokio::time::Instant::now().saturating_duration_since(*at));
                    accepted += usize::from(value[2].as_bool().unwrap_or(false));
                }
            }
            (accepted, latencies)
        });
        tasks.push((
            reader,
            tokio::spawn(async move {
                for (k, message, _) in mine {
                    tokio::time::sleep_until(
                        start + Duration::from_secs_f64(k as f64 / rate as f64),
                    )
                    .await;
                    if sink.send(Message::text(message)).await.is_err() {
                        break;
                    }
                }
                sink
            }),
        ));
    }
    let mut count = 0;
    let mut latencies = Vec::new();
    for (reader, writer) in tasks {
        let (n, l) = reader.await.map_err(|e| e.to_string())?;
        let mut sink = writer.await.map_err(|e| e.to_string())?;
        let _ = sink.close().await;
        count += n;
        latencies.extend(l);
    }
    Ok(Acked { count, latencies })
}
