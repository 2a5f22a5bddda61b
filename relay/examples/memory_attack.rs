//! The two memory attacks of RELIABILITY.md's "Relay memory", against a running
//! `highwater relay` whose process id is given, reading its resident memory from
//! `/proc/PID/status` (Linux).
//!
//! ```sh
//! highwater --db /tmp/attack.lmdb relay --open-reads --bind 127.0.0.1:7777 & PID=$!
//! cargo run --release -p highwater-relay --example memory_attack -- ws://127.0.0.1:7777 $PID fanout
//! cargo run --release -p highwater-relay --example memory_attack -- ws://127.0.0.1:7777 $PID bigreq
//! ```
//!
//! - `fanout`: 200 subscribers to one group that never read, then 6,000 posts of 2 KB
//!   from one well-behaved client that waits for each `OK`; prints the `OK` latencies and
//!   the relay's memory.
//! - `bigreq [ID_BYTES]`: 4,000 posts of 2 KB in a group, then 4 connections that never
//!   read, each sending a `REQ` with a subscription id of `ID_BYTES` (default 100 KB)
//!   and `limit` 4,000; prints the relay's memory while they sit.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `VmRSS` and `VmHWM` (peak) of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(pid: u32, when: &str) {
    let (rss, peak) = memory(pid);
    println!("{when}: RSS {rss:.0} MiB (peak so far {peak:.0} MiB)");
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// A connection that will never read: a small receive buffer keeps what it is sent on
/// the relay's side.
async fn connect_deaf(url: &str) -> WebSocketStream<TcpStream> {
    let addr = url.trim_start_matches("ws://").parse().expect("host:port");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4 * 1024).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake")
        .0
}

fn post(keys: &Keys, kind: u16, group: &str, content: String) -> Event {
    EventBuilder::new(Kind::Custom(kind), content)
        .tag(Tag::parse(["h", group]).expect("h tag"))
        .finalize(keys)
        .expect("sign")
}

/// Sends `event` and waits for its `OK`; panics if refused.
async fn send_wait(ws: &mut Ws, event: &Event) -> Duration {
    let start = Instant::now();
    let id = event.id.to_hex();
    ws.send(Message::text(format!(r#"["EVENT",{}]"#, event.as_json())))
        .await
        .expect("send");
    loop {
        let frame = ws.next().await.expect("open").expect("frame");
        if let Message::Text(text) = frame {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
            if value[0] == "OK" && value[1] == id.as_str() {
                assert_eq!(value[2], true, "refused: {value}");
                return start.elapsed();
            }
        }
    }
}

async fn posts(ws: &mut Ws, keys: &Keys, group: &str, count: usize) -> Vec<Duration> {
    let payload = "x".repeat(2_000);
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        latencies.push(send_wait(ws, &post(keys, 9, group, format!("{i} {payload}"))).await);
    }
    latencies
}

/// The latency at `per_mille` thousandths of the sorted list, in ms.
fn percentile(sorted: &[Duration], per_mille: usize) -> f64 {
    sorted[(sorted.len() - 1) * per_mille / 1000].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, pid, scenario, rest @ ..] = args.as_slice() else {
        eprintln!("usage: memory_attack URL PID fanout|bigreq [ID_BYTES]");
        std::process::exit(2);
    };
    let pid: u32 = pid.parse().expect("a process id");
    let keys = Keys::generate();
    let group = format!("g{}", &keys.public_key().to_hex()[..8]);
    let mut writer = connect(url).await;
    let create = EventBuilder::new(Kind::Custom(9007), "")
        .tags([
            Tag::parse(["h", group.as_str()]).expect("h tag"),
            Tag::parse(["public"]).expect("public tag"),
            Tag::parse(["open"]).expect("open tag"),
        ])
        .finalize(&keys)
        .expect("sign");
    send_wait(&mut writer, &create).await;
    report(pid, "start");
    match scenario.as_str() {
        "fanout" => {
            let req = format!(r##"["REQ","live",{{"kinds":[9],"#h":["{group}"],"limit":0}}]"##);
            let mut deaf = Vec::new();
            for _ in 0..200 {
                let mut ws = connect_deaf(url).await;
                ws.send(Message::text(req.clone())).await.expect("REQ");
                deaf.push(ws);
            }
            report(pid, "200 subscribers that never read");
            let mut latencies = posts(&mut writer, &keys, &group, 6_000).await;
            latencies.sort_unstable();
            println!(
                "6,000 posts of 2 KB: OK p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                percentile(&latencies, 500),
                percentile(&latencies, 990),
                percentile(&latencies, 1000)
            );
            report(pid, "after the posts");
            drop(deaf);
        }
        "bigreq" => {
            let id_bytes: usize = rest
                .first()
                .map_or(100 * 1024, |s| s.parse().expect("bytes"));
            posts(&mut writer, &keys, &group, 4_000).await;
            report(pid, "4,000 posts of 2 KB stored");
            let id = "s".repeat(id_bytes);
            let req = format!(r##"["REQ","{id}",{{"kinds":[9],"#h":["{group}"],"limit":4000}}]"##);
            let mut deaf = Vec::new();
            for _ in 0..4 {
                let mut ws = connect_deaf(url).await;
                ws.send(Message::text(req.clone())).await.expect("REQ");
                deaf.push(ws);
            }
            // The relay answers at its own pace; the peak is what it reached in 10 s.
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            report(
                pid,
                &format!("4 REQs with {id_bytes}-byte ids, limit 4,000, never read"),
            );
            drop(deaf);
        }
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    }
    let _ = writer.close(None).await;
}
