//! A read replica following its primary over the Nostr protocol
//! ([`RelayOptions::replica_of`](crate::RelayOptions::replica_of)).
//!
//! Each connection to the primary: authenticate (NIP-42, with the replica's own key,
//! which the primary lists in [`RelayOptions::replicas`](crate::RelayOptions::replicas));
//! subscribe to the primary's rendered state events (39000–39005, kept as signatures
//! the replica serves when its own rendering says the same); reconcile the whole log
//! with NIP-77 negentropy (which events the replica lacks: its lag, and the check that
//! nothing is missed); open the primary's live log stream; then read the primary's
//! stored log after the replica's last event (`replication.rs`), in the primary's order,
//! appending as it comes; then append the live events buffered meanwhile and what
//! follows. Events negentropy found missing and the stream did not bring (a replica
//! whose log is not a prefix of the primary's) are fetched by id, in `created_at`
//! order, the primary's order being unknown for them.
//!
//! Every event is appended with its signature verified and without the write policy:
//! the primary decided. Receiving, verifying and committing overlap (`Appender`):
//! large commits while catching up, an event alone as soon as it arrives when live. A
//! lost connection is retried (1 s, doubling to 10 s), and the next connection
//! reconciles again, so a replica that was away converges without duplicates (the id
//! index) or holes (negentropy).

mod appender;
mod error;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use highwater_store::Store;
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use nostr::prelude::{
    ClientMessage, Event, EventBuilder, EventId, Filter, FinalizeEvent, Kind, RelayMessage,
    SubscriptionId, Tag, Timestamp,
};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use self::appender::{Appender, CHUNK_BYTES, CHUNK_EVENTS, json_size};
use self::error::ReplicaError;
use crate::options::ReplicaOf;
use crate::shared::Shared;

/// The store setting holding a replica's last known lag (JSON; see [`ReplicaStatus`]).
pub(crate) const STATUS_SETTING: &str = "replica.status";

/// A replica's contact with its primary, as last recorded in its database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The primary's URL.
    pub primary: String,
    /// Whether the replica was connected and following when this was recorded.
    pub connected: bool,
    /// When the primary last answered (seconds since the epoch; 0: never).
    pub last_contact: u64,
    /// When the replica last held every event the primary had (0: never).
    pub caught_up_at: u64,
    /// Events the primary had and the replica not, at the last count.
    pub behind: u64,
    /// When this was recorded.
    pub recorded_at: u64,
}

impl ReplicaStatus {
    /// Reads the status `store` holds, if any.
    ///
    /// # Errors
    ///
    /// The store's error when the setting cannot be read.
    pub fn read(store: &Store) -> Result<Option<Self>, highwater_store::StoreError> {
        let Some(bytes) = store.setting(STATUS_SETTING)? else {
            return Ok(None);
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(None);
        };
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Ok(Some(Self {
            primary: v
                .get("primary")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            connected: v
                .get("connected")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            last_contact: n("last_contact"),
            caught_up_at: n("caught_up_at"),
            behind: n("behind"),
            recorded_at: n("recorded_at"),
        }))
    }

    /// Seconds the replica's answers are behind the primary's head at `now`: 0 while it
    /// is connected and holds everything; otherwise the time since it last did.
    pub fn seconds_behind(&self, now: u64) -> Option<u64> {
        if self.connected && self.behind == 0 {
            return Some(0);
        }
        (self.caught_up_at > 0).then(|| now.saturating_sub(self.caught_up_at))
    }

    fn save(&mut self, store: &Store) {
        self.recorded_at = Timestamp::now().as_secs();
        let json = serde_json::json!({
            "primary": self.primary,
            "connected": self.connected,
            "last_contact": self.last_contact,
            "caught_up_at": self.caught_up_at,
            "behind": self.behind,
            "recorded_at": self.recorded_at,
        });
        if let Err(error) = store.set_setting(STATUS_SETTING, json.to_string().as_bytes()) {
            tracing::warn!(%error, "recording the replica's status failed");
        }
    }
}

/// Live events held while the stored log is still streaming; past it the replica
/// reconnects (and resumes from what it appended).
const MAX_BUFFERED: usize = 100_000;
/// Ids asked for in one `REQ` when fetching what the stream did not bring.
const FETCH: usize = 500;
/// How often the replica pings its primary and records its status.
const TICK: Duration = Duration::from_secs(2);
/// How long the replica waits for an answer the protocol expects (the NIP-42 challenge
/// and `OK`, NIP-77 messages).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Follows the primary until `shutdown`.
pub(crate) async fn follow(
    shared: Arc<Shared>,
    of: ReplicaOf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut status = ReplicaStatus::read(&shared.store)
        .ok()
        .flatten()
        .unwrap_or_default();
    status.primary.clone_from(&of.url);
    status.connected = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let missing = Missing::default();
        let (result, caught_up) = match Appender::start(&shared, &missing) {
            Ok(appender) => {
                let mut session = Session {
                    shared: &shared,
                    of: &of,
                    status: &mut status,
                    missing,
                    appender,
                    caught_up: false,
                };
                let result = session.run(&mut shutdown).await;
                let caught_up = session.caught_up;
                // What was handed over is appended before the next connection looks
                // at the log.
                session.appender.finish().await;
                status.behind = session.missing.lock().len() as u64;
                (result, caught_up)
            }
            Err(error) => (Err(error), false),
        };
        status.connected = false;
        status.save(&shared.store);
        if let Err(error) = result {
            tracing::warn!(primary = %of.url, %error, "replica: connection to the primary lost; retrying");
        } else {
            break;
        }
        if caught_up {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Where the replica is in one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the primary's stored log; live events are buffered.
    CatchingUp,
    /// Fetching by id what negentropy found missing and the stream did not bring.
    Fetching,
    /// Appending live events as they come.
    Live,
}

/// What one connection has received and not yet appended.
struct Follow {
    phase: Phase,
    /// Live events received while the stored log still streams.
    buffered: Vec<Event>,
    /// Events to hand to the append pipeline next, in order, and about their size.
    pending: Vec<Event>,
    pending_bytes: usize,
    /// Ids still to fetch one by one.
    fetching: Vec<[u8; 32]>,
    /// A fetch `REQ` is open.
    awaiting_fetch: bool,
}

struct Session<'a> {
    shared: &'a Arc<Shared>,
    of: &'a ReplicaOf,
    status: &'a mut ReplicaStatus,
    /// Ids negentropy found the primary has and the replica not, not yet appended.
    missing: Missing,
    appender: Appender,
    caught_up: bool,
}

/// Ids negentropy found missing, shared by a connection and its append pipeline.
type Missing = Arc<Mutex<HashSet<[u8; 32]>>>;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Session<'_> {
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ReplicaError> {
        let (ws, _) = tokio_tungstenite::connect_async(self.of.url.as_str())
            .await
            .map_err(|e| ReplicaError::Connect {
                url: self.of.url.clone(),
                source: Box::new(e),
            })?;
        let (mut sink, mut stream) = ws.split();
        self.contact();
        self.authenticate(&mut sink, &mut stream).await?;
        send(
            &mut sink,
            &ClientMessage::req(
                SubscriptionId::new("state"),
                vec![
                    Filter::new().kinds(
                        highwater_projections::RENDERED_KINDS
                            .iter()
                            .map(|&k| Kind::from(k)),
                    ),
                ],
            ),
        )
        .await?;
        self.reconcile(&mut sink, &mut stream).await?;
        self.status.behind = self.missing.lock().len() as u64;
        self.status.connected = true;
        self.status.save(&self.shared.store);
        send(&mut sink, &log_req("live", "live")).await?;
        send(&mut sink, &log_req("catchup", &self.position()?)).await?;
        let mut follow = Follow {
            phase: Phase::CatchingUp,
            buffered: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            fetching: Vec::new(),
            awaiting_fetch: false,
        };
        let mut tick = tokio::time::interval(TICK);
        loop {
            let mut message = tokio::select! {
                message = stream.next() => message,
                report = self.appender.reports.recv() => {
                    let report = report.ok_or(ReplicaError::PipelineStopped)?;
                    self.appender.on_report(report)?;
                    self.settled(follow.phase);
                    continue;
                }
                _ = tick.tick() => {
                    sink.send(Message::Ping(Vec::new().into())).await.map_err(ReplicaError::connection)?;
                    if follow.phase == Phase::Live && self.missing.lock().is_empty() {
                        self.status.caught_up_at = Timestamp::now().as_secs();
                    }
                    self.status.save(&self.shared.store);
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
            };
            // What is already received is handed to the append pipeline together, a
            // chunk at most at a time.
            loop {
                let Some(received) = message else {
                    self.hand(&mut follow).await?;
                    self.appender.drain().await?;
                    return Err(ReplicaError::Closed);
                };
                let received = received.map_err(ReplicaError::connection)?;
                self.contact();
                if let Message::Text(text) = received {
                    self.on_text(&mut sink, &mut follow, text.as_str()).await?;
                }
                if follow.pending.len() >= CHUNK_EVENTS || follow.pending_bytes >= CHUNK_BYTES {
                    break;
                }
                match stream.next().now_or_never() {
                    Some(next) => message = next,
                    None => break,
                }
            }
            self.hand(&mut follow).await?;
        }
    }

    /// Hands the pending events to the append pipeline.
    async fn hand(&mut self, follow: &mut Follow) -> Result<(), ReplicaError> {
        follow.pending_bytes = 0;
        self.appender.hand(&mut follow.pending).await
    }

    /// After the pipeline settled events: the lag recorded.
    fn settled(&mut self, phase: Phase) {
        let missing = self.missing.lock().len() as u64;
        self.status.behind = missing;
        if phase == Phase::Live && missing == 0 {
            self.status.caught_up_at = Timestamp::now().as_secs();
        }
    }

    /// Handles one message from the primary.
    async fn on_text(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        follow: &mut Follow,
        text: &str,
    ) -> Result<(), ReplicaError> {
        match RelayMessage::from_json(text).map_err(ReplicaError::Message)? {
            RelayMessage::Event {
                subscription_id,
                event,
            } => match (subscription_id.as_str(), follow.phase) {
                ("state", _) => self.adopt(event.into_owned()).await,
                ("live", Phase::CatchingUp | Phase::Fetching) => {
                    follow.buffered.push(event.into_owned());
                    if follow.buffered.len() > MAX_BUFFERED {
                        return Err(ReplicaError::TooManyBuffered(MAX_BUFFERED));
                    }
                }
                ("live" | "catchup" | "fetch", _) => {
                    let event = event.into_owned();
                    follow.pending_bytes += json_size(&event);
                    follow.pending.push(event);
                }
                _ => {}
            },
            RelayMessage::EndOfStoredEvents(sub) if sub.as_str() == "catchup" => {
                self.hand(follow).await?;
                self.appender.drain().await?;
                self.settled(follow.phase);
                follow.fetching = self.missing.lock().iter().copied().collect();
                follow.fetching.sort_unstable();
                follow.phase = Phase::Fetching;
                if !follow.fetching.is_empty() {
                    tracing::warn!(
                        missing = follow.fetching.len(),
                        "replica: events the primary holds were not after this replica's last event; fetching them by id"
                    );
                }
                follow.awaiting_fetch = self.fetch_next(sink, &mut follow.fetching).await?;
            }
            RelayMessage::EndOfStoredEvents(sub) if sub.as_str() == "fetch" => {
                // Their order in the primary's log is unknown: by date.
                follow.pending.sort_by_key(|e| (e.created_at, e.id));
                self.hand(follow).await?;
                self.appender.drain().await?;
                self.settled(follow.phase);
                follow.awaiting_fetch = self.fetch_next(sink, &mut follow.fetching).await?;
            }
            RelayMessage::Closed {
                subscription_id,
                message,
            } => {
                if subscription_id.as_str() == "catchup" && message.contains("unknown position") {
                    tracing::warn!(
                        "replica: the primary does not hold this replica's last event; reading its whole log"
                    );
                    send(sink, &log_req("catchup", "start")).await?;
                } else {
                    return Err(ReplicaError::SubscriptionClosed {
                        subscription: subscription_id.as_str().to_owned(),
                        message: message.into_owned(),
                    });
                }
            }
            RelayMessage::Notice(notice) => {
                tracing::warn!(%notice, "replica: the primary says");
            }
            _ => {}
        }
        if follow.phase == Phase::Fetching && !follow.awaiting_fetch {
            // Everything stored is in; the live events held meanwhile follow.
            follow.pending = std::mem::take(&mut follow.buffered);
            follow.pending_bytes = follow.pending.iter().map(json_size).sum();
            follow.phase = Phase::Live;
            self.caught_up = true;
            let missing = self.missing.lock().len();
            if missing > 0 {
                tracing::warn!(
                    missing,
                    "replica: events negentropy found missing could not be fetched"
                );
            }
        }
        Ok(())
    }

    fn contact(&mut self) {
        self.status.last_contact = Timestamp::now().as_secs();
    }

    /// Answers the primary's NIP-42 challenge with the replica's key.
    async fn authenticate(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        stream: &mut futures_util::stream::SplitStream<Socket>,
    ) -> Result<(), ReplicaError> {
        let challenge = loop {
            if let RelayMessage::Auth { challenge } = recv(stream).await? {
                break challenge.into_owned();
            }
        };
        let auth = EventBuilder::new(Kind::Authentication, "")
            .tags([
                Tag::parse(["relay", self.of.url.as_str()]).map_err(ReplicaError::Sign)?,
                Tag::parse(["challenge", challenge.as_str()]).map_err(ReplicaError::Sign)?,
            ])
            .finalize(&self.shared.keys)
            .map_err(ReplicaError::Sign)?;
        let id = auth.id;
        send(sink, &ClientMessage::auth(auth)).await?;
        loop {
            if let RelayMessage::Ok {
                event_id,
                status,
                message,
            } = recv(stream).await?
                && event_id == id
            {
                if status {
                    return Ok(());
                }
                return Err(ReplicaError::AuthRefused(message.into_owned()));
            }
        }
    }

    /// Reconciles the whole log with the primary (NIP-77); fills `missing`.
    async fn reconcile(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        stream: &mut futures_util::stream::SplitStream<Socket>,
    ) -> Result<(), ReplicaError> {
        let store = self.shared.store.clone();
        let items = tokio::task::spawn_blocking(move || own_items(&store)).await??;
        let mut session = Negentropy::owned(items, 60_000).map_err(ReplicaError::Negentropy)?;
        let first = session.initiate().map_err(ReplicaError::Negentropy)?;
        let sub = SubscriptionId::new("neg");
        send(
            sink,
            &ClientMessage::neg_open(sub.clone(), Filter::new(), hex::encode(first)),
        )
        .await?;
        let mut have = Vec::new();
        let mut need = Vec::new();
        loop {
            match recv(stream).await? {
                RelayMessage::NegMsg {
                    subscription_id,
                    message,
                } if subscription_id.as_str() == "neg" => {
                    let query = hex::decode(message.as_ref())?;
                    match session
                        .reconcile_with_ids(&query, &mut have, &mut need)
                        .map_err(ReplicaError::Negentropy)?
                    {
                        Some(next) => {
                            send(
                                sink,
                                &ClientMessage::NegMsg {
                                    subscription_id: std::borrow::Cow::Borrowed(&sub),
                                    message: std::borrow::Cow::Owned(hex::encode(next)),
                                },
                            )
                            .await?;
                        }
                        None => break,
                    }
                }
                RelayMessage::NegErr {
                    subscription_id,
                    message,
                } if subscription_id.as_str() == "neg" => {
                    return Err(ReplicaError::ReconcileRefused(message.into_owned()));
                }
                RelayMessage::Event {
                    subscription_id,
                    event,
                } if subscription_id.as_str() == "state" => {
                    self.adopt(event.into_owned()).await;
                }
                _ => {}
            }
        }
        send(
            sink,
            &ClientMessage::NegClose {
                subscription_id: std::borrow::Cow::Borrowed(&sub),
            },
        )
        .await?;
        if !have.is_empty() {
            tracing::warn!(
                events = have.len(),
                "replica: this replica holds events its primary does not (was the primary's database replaced?)"
            );
        }
        let mut missing = self.missing.lock();
        *missing = need.iter().map(|id| *id.as_bytes()).collect();
        tracing::info!(
            missing = missing.len(),
            "replica: reconciled with the primary"
        );
        Ok(())
    }

    /// Where the primary's stored log is to be read from: after the replica's last
    /// event, or from the start.
    fn position(&self) -> Result<String, ReplicaError> {
        let store = &self.shared.store;
        let head = store.head();
        if head == 0 {
            return Ok("start".into());
        }
        match store.get(head)? {
            Some(event) => Ok(format!("after:{}", event.id.to_hex())),
            None => Ok("start".into()),
        }
    }

    /// Asks for the next batch of ids still missing; false when none is left.
    async fn fetch_next(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        fetching: &mut Vec<[u8; 32]>,
    ) -> Result<bool, ReplicaError> {
        {
            let missing = self.missing.lock();
            fetching.retain(|id| missing.contains(id));
        }
        if fetching.is_empty() {
            send(sink, &ClientMessage::close(SubscriptionId::new("fetch"))).await?;
            return Ok(false);
        }
        let batch: Vec<EventId> = fetching
            .drain(..fetching.len().min(FETCH))
            .map(EventId::from_byte_array)
            .collect();
        let n = batch.len();
        send(
            sink,
            &ClientMessage::req(
                SubscriptionId::new("fetch"),
                vec![Filter::new().ids(batch).limit(n)],
            ),
        )
        .await?;
        Ok(true)
    }

    /// Keeps a state event signed by the primary, and tells live subscribers if it is
    /// what the replica now serves.
    async fn adopt(&mut self, event: Event) {
        if event.pubkey != self.of.primary || event.verify().is_err() {
            return;
        }
        let shared = self.shared.clone();
        let announced = tokio::task::spawn_blocking(move || {
            let group = shared.rendered.adopt(event)?;
            shared
                .rendered
                .announce(shared.policy.groups(), &group)
                .map(|events| (shared, events))
                .ok()
        })
        .await;
        if let Ok(Some((shared, events))) = announced
            && !events.is_empty()
        {
            let events: Vec<(u64, Event)> = events.into_iter().map(|e| (0, e)).collect();
            shared.hub.broadcast(&shared, &events);
        }
    }
}

/// The replica's own log as negentropy items: (`created_at`, id), 40 bytes an event.
fn own_items(store: &Store) -> Result<NegentropyStorageVector, ReplicaError> {
    let mut items = NegentropyStorageVector::new();
    store.scan(1, |_, event| {
        let _ = items.insert(event.created_at(), Id::from_byte_array(*event.id()));
        std::ops::ControlFlow::Continue(())
    })?;
    items.seal().map_err(ReplicaError::Negentropy)?;
    Ok(items)
}

fn log_req(sub: &str, what: &str) -> ClientMessage<'static> {
    ClientMessage::req(
        SubscriptionId::new(sub),
        vec![Filter::new().search(format!("{} {what}", crate::replication::LOG_SEARCH))],
    )
}

async fn send(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    message: &ClientMessage<'_>,
) -> Result<(), ReplicaError> {
    sink.send(Message::text(message.as_json()))
        .await
        .map_err(ReplicaError::connection)
}

async fn recv(
    stream: &mut futures_util::stream::SplitStream<Socket>,
) -> Result<RelayMessage<'static>, ReplicaError> {
    loop {
        let message = tokio::time::timeout(ANSWER_WITHIN, stream.next())
            .await
            .map_err(|_| ReplicaError::Silent(ANSWER_WITHIN))?
            .ok_or(ReplicaError::Closed)?
            .map_err(ReplicaError::connection)?;
        if let Message::Text(text) = message {
            return RelayMessage::from_json(text.as_str()).map_err(ReplicaError::Message);
        }
    }
}
