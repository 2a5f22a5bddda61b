//! An attacker's view of the relay's memory: what a client that never reads, or asks
//! for huge answers, or opens connection after connection, can make the relay hold.
//! Each test pins a bound in bytes (or connections) through the relay's own counters
//! (`OutboxStats`, feature `test-support`) and through what the clients observe.
//! Waits are bounded by `WAIT`; nothing asserts on time.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use highwater_relay::{ConnectionLimits, OutboxStats, RelayOptions};
use nostr_sdk::prelude as sdk;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use support::{WAIT, client, group_event, relay_keys, send};

fn keys(secret_byte: u8) -> sdk::Keys {
    let secret = sdk::SecretKey::from_slice(&[secret_byte; 32]).expect("a valid secret key");
    sdk::Keys::new(secret)
}

/// A relay on a loopback port whose outbox counters the test can read.
struct Watched {
    url: String,
    stats: OutboxStats,
    running: support::Running,
}

async fn start(dir: &std::path::Path, limits: ConnectionLimits) -> Watched {
    let options = RelayOptions {
        limits,
        ..RelayOptions::default()
    };
    let relay = support::relay_over(dir, relay_keys(), options);
    let stats = relay.outbox_stats();
    let running = support::serve(relay, "127.0.0.1:0").await;
    Watched {
        url: running.url.clone(),
        stats,
        running,
    }
}

impl Watched {
    async fn stop(self) {
        self.running.stop().await;
    }
}

/// Polls `done` until it holds; panics after `WAIT` (a bound, not a measurement).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
}

/// A raw WebSocket client.
struct Raw {
    ws: WebSocketStream<TcpStream>,
}

impl Raw {
    /// A client whose socket has a small receive buffer, so what it does not read stays
    /// on the relay's side instead of in the client's kernel buffer.
    async fn connect(url: &str) -> Self {
        Self::try_connect(url, true)
            .await
            .expect("WebSocket connect")
    }

    /// A client with the system's receive buffer (grown by the kernel as it reads).
    async fn connect_reading(url: &str) -> Self {
        Self::try_connect(url, false)
            .await
            .expect("WebSocket connect")
    }

    async fn try_connect(
        url: &str,
        small_buffer: bool,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let addr = url
            .trim_start_matches("ws://")
            .parse()
            .expect("a socket address");
        let socket = TcpSocket::new_v4().expect("a socket");
        if small_buffer {
            socket.set_recv_buffer_size(4 * 1024).expect("SO_RCVBUF");
        }
        let stream = socket.connect(addr).await.expect("TCP connect");
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
        Ok(Self { ws })
    }

    async fn send(&mut self, message: &Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send a message");
    }

    /// The next text message, parsed; `None` once the relay closed the connection.
    async fn recv(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the relay answers in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("JSON"));
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message of `kind` (`EVENT`, `EOSE`, `CLOSED`, …), skipping `AUTH`.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv().await.expect("the connection is open");
            if message[0] == kind {
                return message;
            }
            assert_eq!(message[0], "AUTH", "expected {kind}, got {message}");
        }
    }
}

/// Creates `group` and posts `count` events of `size` bytes of content, each waiting for
/// its `OK` (which comes after the live subscribers were handed the event).
async fn post(relay: &str, author: &sdk::Keys, group: &str, count: usize, size: usize) {
    let a = client(relay, author, true).await;
    assert_eq!(
        send(&a, &group_event(author, 9007, group, "", &[])).await,
        Ok(())
    );
    let payload = "x".repeat(size);
    for i in 0..count {
        let event = group_event(author, 9, group, &format!("{i} {payload}"), &[]);
        assert_eq!(send(&a, &event).await, Ok(()), "post {i}");
    }
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_id_past_the_bound_is_closed_as_invalid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), ConnectionLimits::default()).await;
    let bound = ConnectionLimits::default().max_subscription_id_bytes;
    let mut raw = Raw::connect(&relay.url).await;

    // At the bound: served.
    let fits = "s".repeat(bound);
    raw.send(&json!(["REQ", fits, {"kinds": [9], "#h": ["none"]}]))
        .await;
    assert_eq!(raw.expect("EOSE").await, json!(["EOSE", fits]));

    // One byte more (here 100 KB, as an attacker would): refused, nothing subscribed.
    let long = "s".repeat(100 * 1024);
    raw.send(&json!(["REQ", long, {"kinds": [9], "#h": ["none"]}]))
        .await;
    assert_eq!(
        raw.expect("CLOSED").await,
        json!([
            "CLOSED",
            long,
            format!("invalid: subscription id longer than {bound} bytes")
        ])
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_off_at_its_byte_bound_and_writers_go_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The message-count queue this replaces held 4,096 messages whatever their size:
    // these 100 posts of 100 KB (10 MB) never reached it.
    let limits = ConnectionLimits {
        max_queue_bytes: 1024 * 1024,
        ..ConnectionLimits::default()
    };
    let bound = limits.max_queue_bytes;
    let relay = start(dir.path(), limits).await;
    let (posts, size) = (100, 100 * 1024);
    let alice = keys(1);
    let a = client(&relay.url, &alice, true).await;
    assert_eq!(
        send(&a, &group_event(&alice, 9007, "busy", "", &[])).await,
        Ok(())
    );
    let subscribe = json!(["REQ", "live", {"kinds": [9], "#h": ["busy"], "limit": 0}]);

    // One subscriber stops reading after EOSE; another reads everything.
    let mut stalled = Raw::connect(&relay.url).await;
    stalled.send(&subscribe).await;
    stalled.expect("EOSE").await;
    let mut reading = Raw::connect_reading(&relay.url).await;
    reading.send(&subscribe).await;
    reading.expect("EOSE").await;
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < posts {
            reading.expect("EVENT").await;
            seen += 1;
        }
        seen
    });

    let payload = "x".repeat(size);
    for i in 0..posts {
        let event = group_event(&alice, 9, "busy", &format!("{i} {payload}"), &[]);
        assert_eq!(send(&a, &event).await, Ok(()), "the writer's post {i}");
    }
    assert_eq!(reader.await.expect("the reader"), posts);

    let mut received = 0;
    while let Some(message) = stalled.recv().await {
        assert_eq!(message[0], "EVENT");
        received += 1;
    }
    assert!(
        received < posts,
        "{received} of {posts} posts, then cut off"
    );
    assert_eq!(relay.stats.slow_disconnects(), 1);
    // Never more than the bound was queued for anyone (a frame that alone exceeds the
    // bound would be queued onto an empty queue; these do not).
    assert!(
        relay.stats.peak_outbox_bytes() <= bound,
        "peak {} > bound {bound}",
        relay.stats.peak_outbox_bytes()
    );
    eventually("the cut-off client's queue is released", || {
        eprintln!(
            "queued {} conns {}",
            relay.stats.queued_bytes(),
            relay.stats.connections()
        );
        relay.stats.queued_bytes() == 0
    })
    .await;
    a.shutdown().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_answer_larger_than_the_bound_waits_for_the_reader_instead_of_queueing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ConnectionLimits {
        max_queue_bytes: 256 * 1024,
        ..ConnectionLimits::default()
    };
    let bound = limits.max_queue_bytes;
    let relay = start(dir.path(), limits).await;
    // 8 MB of stored posts: more than the bound and the socket buffers together.
    let (posts, size) = (80, 100 * 1024);
    post(&relay.url, &keys(2), "archive", posts, size).await;

    let mut raw = Raw::connect(&relay.url).await;
    raw.send(&json!(["REQ", "all", {"kinds": [9], "#h": ["archive"], "limit": posts}]))
        .await;
    eventually("the answer pauses for the client", || {
        relay.stats.answers_waiting() == 1
    })
    .await;
    // Stored events take at most half the bound (one 100 KB frame at a time here).
    assert!(
        relay.stats.queued_bytes() <= bound / 2,
        "{} bytes queued",
        relay.stats.queued_bytes()
    );

    // The client reads after all: the whole answer arrives, and nobody was cut off.
    // Newest first, none missing, none twice, though most were read back from the log
    // after the pause.
    let mut order = Vec::new();
    loop {
        let message = raw.recv().await.expect("the connection stays open");
        match message[0].as_str() {
            Some("EVENT") => {
                let content = message[2]["content"].as_str().expect("content");
                let number = content.split(' ').next().expect("a number");
                order.push(number.parse::<usize>().expect("the post's number"));
            }
            Some("EOSE") => break,
            _ => {}
        }
    }
    assert_eq!(order, (0..posts).rev().collect::<Vec<_>>());
    assert_eq!(relay.stats.slow_disconnects(), 0);
    assert!(
        relay.stats.peak_outbox_bytes() <= bound / 2,
        "peak {} > half the bound {}",
        relay.stats.peak_outbox_bytes(),
        bound / 2
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_req_returns_at_most_max_limit_stored_events_over_all_its_filters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ConnectionLimits {
        max_limit: 10,
        ..ConnectionLimits::default()
    };
    let relay = start(dir.path(), limits).await;
    let bob = keys(3);
    let b = client(&relay.url, &bob, true).await;
    assert_eq!(
        send(&b, &group_event(&bob, 9007, "many", "", &[])).await,
        Ok(())
    );
    let mut ids = Vec::new();
    for i in 0..30 {
        let event = group_event(&bob, 9, "many", &i.to_string(), &[]);
        assert_eq!(send(&b, &event).await, Ok(()));
        ids.push(event.id.to_hex());
    }
    // Three filters of ten different ids each, each within `max_limit` on its own.
    let filters: Vec<Value> = ids
        .chunks(10)
        .map(|chunk| json!({"ids": chunk, "limit": 10}))
        .collect();
    let mut raw = Raw::connect(&relay.url).await;
    let mut req = vec![json!("REQ"), json!("ids")];
    req.extend(filters);
    raw.send(&Value::Array(req)).await;
    let mut returned = 0;
    loop {
        let message = raw.recv().await.expect("open");
        match message[0].as_str() {
            Some("EVENT") => returned += 1,
            Some("EOSE") => break,
            _ => {}
        }
    }
    assert_eq!(returned, 10);
    b.shutdown().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_bound_are_answered_503() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ConnectionLimits {
        max_connections: 2,
        ..ConnectionLimits::default()
    };
    let relay = start(dir.path(), limits).await;
    let mut first = Raw::connect(&relay.url).await;
    first.expect("AUTH").await;
    let mut second = Raw::connect(&relay.url).await;
    second.expect("AUTH").await;

    let refused = Raw::try_connect(&relay.url, true)
        .await
        .err()
        .expect("a third connection is refused");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected HTTP 503, got {other}"),
    }

    // A closed connection frees its place.
    drop(first);
    eventually("the closed connection is counted out", || {
        relay.stats.connections() == 1
    })
    .await;
    let mut third = Raw::connect(&relay.url).await;
    third.expect("AUTH").await;
    drop((second, third));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_the_byte_bound_of_their_filters_are_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ConnectionLimits::default();
    let bound = limits.max_subscription_bytes;
    let relay = start(dir.path(), limits).await;
    let mut raw = Raw::connect(&relay.url).await;
    // Filters of ~200 KB each (3,000 event ids); five fit in the bound, the sixth not.
    let ids: Vec<String> = (0..3_000u32).map(|i| format!("{i:064x}")).collect();
    let req = |n: usize| json!(["REQ", format!("s{n}"), {"ids": ids, "limit": 0}]);
    let size = req(0).to_string().len();
    let fit = bound / size;
    assert!((1..ConnectionLimits::default().max_subscriptions).contains(&fit));
    for n in 0..fit {
        raw.send(&req(n)).await;
        assert_eq!(raw.expect("EOSE").await, json!(["EOSE", format!("s{n}")]));
    }
    raw.send(&req(fit)).await;
    assert_eq!(
        raw.expect("CLOSED").await,
        json!([
            "CLOSED",
            format!("s{fit}"),
            format!(
                "restricted: this connection's subscriptions would exceed {bound} bytes of filters"
            )
        ])
    );
    // Replacing an open subscription counts it once.
    raw.send(&req(0)).await;
    assert_eq!(raw.expect("EOSE").await, json!(["EOSE", "s0"]));
    // Closing one makes room.
    raw.send(&json!(["CLOSE", "s1"])).await;
    raw.send(&req(fit)).await;
    assert_eq!(raw.expect("EOSE").await, json!(["EOSE", format!("s{fit}")]));
    relay.stop().await;
}
