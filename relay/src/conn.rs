//! One client connection: the NIP-01 message loop (`EVENT`, `REQ`, `CLOSE`, `AUTH`;
//! NIP-77 `NEG-*` in `negentropy.rs`),
//! its subscriptions, its bounded outbox and its writer task.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use nostr::prelude::{ClientMessage, Event, Kind, RelayMessage, SubscriptionId, Timestamp};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use crate::filter;
use crate::handoff::{self, Ctx};
use crate::hub::{Drain, Frame, Outbox, Slot, Sub};
use crate::reads::{self, Refusal};
use crate::stream;

/// Who is on the other end of a WebSocket connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// The connection's number (unique in the relay).
    pub(crate) id: u64,
    /// The client's address for per-IP limits (the proxy's `X-Forwarded-For` entry
    /// with `trust_proxy`).
    pub(crate) ip: Option<IpAddr>,
    /// The socket's peer, when known.
    pub(crate) addr: Option<SocketAddr>,
}

/// Longest wait for a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one HTTP/1.1 connection (upgrades allowed, no keep-alive, a bounded wait
/// for the request head) with `handler` until it ends, or, once `stop` turns true,
/// ends it gracefully. The one place a socket becomes an HTTP connection, for a single
/// relay and for virtual relays alike.
pub(crate) async fn serve_http<S>(stream: TcpStream, handler: S, stop: &mut watch::Receiver<bool>)
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(16 * 1024)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), handler)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Runs one upgraded WebSocket connection; `slot` is its place under
/// `max_connections`, freed when it ends.
pub(crate) async fn serve_ws<S>(ctx: Ctx, ws: WebSocketStream<S>, peer: Peer, slot: Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = peer.addr.map(tracing::field::display);
    let span = tracing::info_span!("conn", id = peer.id, peer = addr);
    async move {
        let started = Instant::now();
        tracing::info!("connection opened");
        let stats = run(&ctx, ws, peer).await;
        tracing::info!(
            received = stats.received,
            sent = stats.sent,
            reason = stats.reason,
            seconds = started.elapsed().as_secs_f64(),
            "connection closed"
        );
        drop(slot);
    }
    .instrument(span)
    .await;
}

struct Stats {
    received: u64,
    sent: u64,
    reason: &'static str,
}

struct Conn {
    ctx: Ctx,
    outbox: Arc<Outbox>,
    /// Open subscriptions: id → the length of the `REQ` that opened it.
    subs: BTreeMap<String, usize>,
    challenge: String,
    writes: JoinSet<()>,
    inflight: Arc<Semaphore>,
    /// The client's address, for per-IP limits.
    ip: Option<IpAddr>,
    /// Open NIP-77 reconciliations.
    neg: crate::negentropy::Sessions,
}

async fn run<S>(ctx: &Ctx, ws: WebSocketStream<S>, peer: Peer) -> Stats
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = peer.id;
    let limits = &ctx.shared.options.limits;
    let (sink, mut stream) = ws.split();
    let (outbox, drain) = Outbox::new(id, limits.max_queue_bytes, ctx.shared.hub.meter.clone());
    let mut killed = outbox.killed();
    let mut writer = tokio::spawn(write_frames(sink, drain, outbox.killed()));
    let mut conn = Conn {
        ctx: ctx.clone(),
        outbox: outbox.clone(),
        subs: BTreeMap::new(),
        challenge: challenge(id),
        writes: JoinSet::new(),
        inflight: Arc::new(Semaphore::new(limits.max_inflight_writes)),
        ip: peer.ip,
        neg: crate::negentropy::Sessions::default(),
    };
    conn.outbox
        .send(RelayMessage::auth(conn.challenge.clone()).as_json());
    let mut shutdown = ctx.shutdown.clone();
    let mut received = 0;
    let reason = loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    received += 1;
                    conn.on_text(text.as_str()).await;
                }
                Some(Ok(Message::Binary(_))) => {
                    conn.outbox.send(RelayMessage::notice("invalid: binary messages are not supported").as_json());
                }
                Some(Ok(Message::Close(_))) | None => break "client closed",
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "read error");
                    break "read error";
                }
            },
            _ = killed.changed() => break "send queue full",
            _ = shutdown.changed() => break "relay shutting down",
        }
        // Reap finished writes so the set stays small.
        while conn.writes.try_join_next().is_some() {}
    };
    for sub in std::mem::take(&mut conn.subs).into_keys() {
        ctx.shared.hub.remove(id, &sub);
    }
    // In-flight writes are answered before the connection closes.
    while conn.writes.join_next().await.is_some() {}
    let sent = outbox.sent.load(std::sync::atomic::Ordering::Relaxed);
    drop(conn);
    drop(outbox);
    // What is queued is flushed, within a bound: a client that stopped reading cannot
    // hold the shutdown.
    if tokio::time::timeout(Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    Stats {
        received,
        sent,
        reason,
    }
}

/// How many queued frames the connection's writer hands the socket in one write.
const FRAMES_PER_WRITE: usize = 64;

/// The connection's writer: sends queued frames until every sender is gone, then a
/// close frame. The frames queued when it wakes go out together, up to
/// `FRAMES_PER_WRITE`, in one flush (one `sendto` where the socket takes them all, not
/// one per frame: under fan-out a subscriber's deliveries pile up while its task waits
/// for a core). A killed (slow) client gets nothing more, not even what is queued.
async fn write_frames<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut drain: Drain,
    mut killed: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let write = async {
        while let Some(frame) = drain.recv().await {
            let mut fed = sink.feed(Message::text(frame.into_text())).await;
            let mut frames = 1;
            while fed.is_ok() && frames < FRAMES_PER_WRITE {
                let Some(next) = drain.try_next() else { break };
                fed = sink.feed(Message::text(next.into_text())).await;
                frames += 1;
            }
            let sent = match fed {
                Ok(()) => sink.flush().await,
                Err(e) => Err(e),
            };
            // The frames' bytes are released once the socket took them (or failed).
            drain.written();
            if sent.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    };
    tokio::select! {
        () = write => {}
        _ = killed.changed() => {}
    }
}

/// A per-connection NIP-42 challenge: unpredictable enough, and never reused.
fn challenge(id: u64) -> String {
    let keys = nostr::prelude::Keys::generate();
    format!("{id}-{}", &keys.public_key().to_hex()[..32])
}

impl Conn {
    async fn on_text(&mut self, text: &str) {
        let message = match ClientMessage::from_json(text) {
            Ok(m) => m,
            Err(e) => {
                self.outbox.send(
                    RelayMessage::notice(format!("invalid: could not parse the message: {e}"))
                        .as_json(),
                );
                return;
            }
        };
        match message {
            ClientMessage::Event(event) => {
                let shared = &self.ctx.shared;
                let refusal = shared
                    .limiters
                    .check_ip(self.ip)
                    .or_else(|| shared.limiters.check_pubkey(&event.pubkey));
                match refusal {
                    Some(refusal) => self.ok(&event, false, refusal),
                    None => self.on_event(event.into_owned()).await,
                }
            }
            ClientMessage::Req {
                subscription_id, ..
            } if self.ctx.shared.limiters.check_ip(self.ip).is_some() => {
                self.outbox.send(
                    RelayMessage::closed(
                        subscription_id.into_owned(),
                        "rate-limited: too many messages from this address; slow down",
                    )
                    .as_json(),
                );
            }
            ClientMessage::Req {
                subscription_id,
                filters,
            } => {
                let filters = filters
                    .into_iter()
                    .map(std::borrow::Cow::into_owned)
                    .collect();
                self.on_req(subscription_id.into_owned(), filters, text.len())
                    .await;
            }
            ClientMessage::Close(id) => {
                self.ctx.shared.hub.remove(self.outbox.id, id.as_str());
                self.ctx
                    .shared
                    .log_streams
                    .remove(self.outbox.id, id.as_str());
                self.subs.remove(id.as_str());
            }
            ClientMessage::Auth(event) => self.on_auth(&event),
            ClientMessage::Count {
                subscription_id, ..
            } => {
                self.outbox.send(
                    RelayMessage::closed(
                        subscription_id.into_owned(),
                        "unsupported: COUNT is not supported",
                    )
                    .as_json(),
                );
            }
            ClientMessage::NegOpen {
                subscription_id,
                filter,
                initial_message,
                ..
            } => {
                let reply = self
                    .neg
                    .open(
                        &self.ctx.shared,
                        self.outbox.reader(),
                        subscription_id.into_owned(),
                        filter.into_owned(),
                        &initial_message,
                    )
                    .await;
                self.outbox.send(reply);
            }
            ClientMessage::NegMsg {
                subscription_id,
                message,
            } => {
                let reply = self
                    .neg
                    .message(subscription_id.into_owned(), &message)
                    .await;
                self.outbox.send(reply);
            }
            ClientMessage::NegClose { subscription_id } => self.neg.close(&subscription_id),
        }
    }

    async fn on_event(&mut self, event: Event) {
        let shared = &self.ctx.shared;
        if let Some(of) = &shared.options.replica_of {
            self.ok(
                &event,
                false,
                format!(
                    "restricted: this relay is a read-only replica; send writes to its primary {}",
                    of.url
                ),
            );
            return;
        }
        let ungrouped = match highwater_store::group_of(&event, &shared.store.options().limits) {
            Ok(group) => group.is_none(),
            Err(rejection) => {
                self.ok(&event, false, rejection.to_string());
                return;
            }
        };
        // NIP-70: a protected event is accepted only from its authenticated author.
        if event.tags.iter().any(|t| t.as_slice() == ["-"])
            && self.outbox.reader() != Some(event.pubkey)
        {
            self.ok(
                &event,
                false,
                "auth-required: this event is protected (NIP-70); authenticate as its author",
            );
            self.outbox
                .send(RelayMessage::auth(self.challenge.clone()).as_json());
            return;
        }
        if ungrouped && let Some(refusal) = crate::nip43::ungrouped_refusal(shared, &event) {
            self.ok(&event, false, refusal);
            return;
        }
        let Ok(permit) = self.inflight.clone().acquire_owned().await else {
            return;
        };
        let Some(writes) = self.ctx.writes.sender() else {
            self.ok(&event, false, "error: the relay is shutting down");
            return;
        };
        let shared = shared.clone();
        let outbox = self.outbox.clone();
        self.writes.spawn(async move {
            let id = event.id;
            let reply = handoff::write(shared.clone(), writes, event).await;
            shared.metrics.count_reply(reply.accepted, &reply.message);
            outbox.send(RelayMessage::ok(id, reply.accepted, reply.message).as_json());
            drop(permit);
        });
    }

    /// Answers an `EVENT` here (not through the write path), and counts the answer.
    fn ok(&self, event: &Event, accepted: bool, message: impl Into<String>) {
        let message = message.into();
        if event.kind != Kind::Authentication {
            self.ctx.shared.metrics.count_reply(accepted, &message);
        }
        self.outbox
            .send(RelayMessage::ok(event.id, accepted, message).as_json());
    }

    async fn on_req(
        &mut self,
        id: SubscriptionId,
        filters: Vec<nostr::prelude::Filter>,
        req_bytes: usize,
    ) {
        let limits = &self.ctx.shared.options.limits;
        let closed = |text: String| RelayMessage::closed(id.clone(), text).as_json();
        if id.as_str().len() > limits.max_subscription_id_bytes {
            self.outbox.send(closed(format!(
                "invalid: subscription id longer than {} bytes",
                limits.max_subscription_id_bytes
            )));
            return;
        }
        if filters.len() > limits.max_filters {
            self.outbox.send(closed(format!(
                "invalid: too many filters (at most {})",
                limits.max_filters
            )));
            return;
        }
        let replaced = self.subs.get(id.as_str()).copied();
        if replaced.is_none() && self.subs.len() >= limits.max_subscriptions {
            self.outbox.send(closed(format!(
                "restricted: too many subscriptions (at most {})",
                limits.max_subscriptions
            )));
            return;
        }
        // What the open subscriptions' filters hold grows with the REQs they came from.
        let held: usize = self.subs.values().sum::<usize>() - replaced.unwrap_or(0);
        if held + req_bytes > limits.max_subscription_bytes {
            self.outbox.send(closed(format!(
                "restricted: this connection's subscriptions would exceed {} bytes of filters",
                limits.max_subscription_bytes
            )));
            return;
        }
        if crate::replication::is_replica(&self.ctx.shared, self.outbox.reader().as_ref())
            && let Some(request) = crate::replication::log_request(&filters)
        {
            match request {
                Ok(request) => {
                    let shutdown = self.ctx.shutdown.clone();
                    crate::replication::serve(
                        &self.ctx.shared,
                        &self.outbox,
                        shutdown,
                        id,
                        request,
                    )
                    .await;
                }
                Err(reason) => {
                    self.outbox.send(closed(reason));
                }
            }
            return;
        }
        let compiled = filter::compile_req(filters, limits.default_limit, limits.max_limit);
        let reader = self.outbox.reader();
        let shared = self.ctx.shared.clone();
        let check = compiled.clone();
        let refusal =
            tokio::task::spawn_blocking(move || reads::check_groups(&shared, reader, &check))
                .await
                .unwrap_or(None);
        if let Some(refusal) = refusal {
            self.outbox.send(closed(refusal.message()));
            if matches!(refusal, Refusal::AuthRequired(_) | Refusal::InviteNeedsAuth) {
                self.outbox
                    .send(RelayMessage::auth(self.challenge.clone()).as_json());
            }
            return;
        }
        let id_json: Arc<str> = serde_json::Value::String(id.as_str().to_owned())
            .to_string()
            .into();
        let sub = Arc::new(Sub {
            outbox: self.outbox.clone(),
            id_json: id_json.clone(),
            filters: compiled.clone(),
        });
        self.ctx.shared.hub.add(id.as_str(), sub);
        self.subs.insert(id.as_str().to_owned(), req_bytes);
        let shared = self.ctx.shared.clone();
        let found =
            tokio::task::spawn_blocking(move || reads::query(&shared, reader, &compiled)).await;
        match found {
            Ok(Ok(events)) => {
                // EOSE is the last frame of the stored answer: it waits for room like
                // the events before it (pushed as a live frame, it would find a large
                // stored event still queued and cut off a client that reads).
                let (shared, shutdown) = (&self.ctx.shared, &self.ctx.shutdown);
                if stream::stream_stored(shared, &self.outbox, shutdown, &id_json, events).await {
                    let eose = Frame::Text(RelayMessage::eose(id).as_json());
                    stream::send_stored(&self.outbox, shutdown, eose).await;
                }
            }
            Ok(Err(e)) => self.refuse_query(&id, &e),
            Err(e) => {
                tracing::error!(error = %e, "query task failed");
                self.ctx.shared.hub.remove(self.outbox.id, id.as_str());
                self.subs.remove(id.as_str());
                self.outbox.send(closed("error: query failed".into()));
            }
        }
    }

    fn refuse_query(&mut self, id: &SubscriptionId, error: &crate::RelayError) {
        tracing::error!(error = %error, "query failed");
        self.ctx.shared.hub.remove(self.outbox.id, id.as_str());
        self.subs.remove(id.as_str());
        self.outbox.send(
            RelayMessage::closed(id.clone(), format!("error: could not answer: {error}")).as_json(),
        );
    }

    fn on_auth(&self, event: &Event) {
        match self.check_auth(event) {
            Ok(()) => {
                self.outbox.set_reader(event.pubkey);
                tracing::debug!(pubkey = %event.pubkey, "authenticated");
                self.ok(event, true, "");
            }
            Err(reason) => self.ok(event, false, format!("invalid: {reason}")),
        }
    }

    fn check_auth(&self, event: &Event) -> Result<(), &'static str> {
        if event.kind != Kind::Authentication {
            return Err("an AUTH event must be of kind 22242");
        }
        if event.verify().is_err() {
            return Err("bad id or signature");
        }
        let tag = |name: &str| {
            event
                .tags
                .iter()
                .find(|t| t.kind() == name)
                .and_then(|t| t.content())
        };
        if tag("challenge") != Some(self.challenge.as_str()) {
            return Err("wrong challenge");
        }
        let Some(relay) = tag("relay") else {
            return Err("missing relay tag");
        };
        if let Some(url) = &self.ctx.shared.options.public_url
            && relay.trim_end_matches('/') != url.trim_end_matches('/')
        {
            return Err("the relay tag names another relay");
        }
        let now = Timestamp::now().as_secs();
        if now.abs_diff(event.created_at.as_secs()) > 600 {
            return Err("created_at is more than 10 minutes away");
        }
        Ok(())
    }
}
