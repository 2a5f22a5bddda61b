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

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use highwater_store::{AppendOutcome, Store, StoreError, Ticket};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use nostr::prelude::{
    ClientMessage, Event, EventBuilder, EventId, Filter, FinalizeEvent, Kind, RelayMessage,
    SubscriptionId, Tag, Timestamp,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

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
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), String> {
        let (ws, _) = tokio_tungstenite::connect_async(self.of.url.as_str())
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.of.url))?;
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
                    let report = report.ok_or("the append pipeline stopped")?;
                    self.appender.on_report(report)?;
                    self.settled(follow.phase);
                    continue;
                }
                _ = tick.tick() => {
                    sink.send(Message::Ping(Vec::new().into())).await.map_err(|e| e.to_string())?;
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
                    return Err("the primary closed the connection".into());
                };
                let received = received.map_err(|e| e.to_string())?;
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
    async fn hand(&mut self, follow: &mut Follow) -> Result<(), String> {
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
    ) -> Result<(), String> {
        match RelayMessage::from_json(text).map_err(|e| e.to_string())? {
            RelayMessage::Event {
                subscription_id,
                event,
            } => match (subscription_id.as_str(), follow.phase) {
                ("state", _) => self.adopt(event.into_owned()).await,
                ("live", Phase::CatchingUp | Phase::Fetching) => {
                    follow.buffered.push(event.into_owned());
                    if follow.buffered.len() > MAX_BUFFERED {
                        return Err("too many live events while catching up".into());
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
                    return Err(format!(
                        "the primary closed {}: {message}",
                        subscription_id.as_str()
                    ));
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
    ) -> Result<(), String> {
        let challenge = loop {
            if let RelayMessage::Auth { challenge } = recv(stream).await? {
                break challenge.into_owned();
            }
        };
        let auth = EventBuilder::new(Kind::Authentication, "")
            .tags([
                Tag::parse(["relay", self.of.url.as_str()]).map_err(|e| e.to_string())?,
                Tag::parse(["challenge", challenge.as_str()]).map_err(|e| e.to_string())?,
            ])
            .finalize(&self.shared.keys)
            .map_err(|e| e.to_string())?;
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
                return Err(format!(
                    "the primary refused this replica's authentication: {message}"
                ));
            }
        }
    }

    /// Reconciles the whole log with the primary (NIP-77); fills `missing`.
    async fn reconcile(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        stream: &mut futures_util::stream::SplitStream<Socket>,
    ) -> Result<(), String> {
        let store = self.shared.store.clone();
        let items = tokio::task::spawn_blocking(move || own_items(&store))
            .await
            .map_err(|e| e.to_string())??;
        let mut session = Negentropy::owned(items, 60_000).map_err(|e| e.to_string())?;
        let first = session.initiate().map_err(|e| e.to_string())?;
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
                    let query = hex::decode(message.as_ref()).map_err(|e| e.to_string())?;
                    match session
                        .reconcile_with_ids(&query, &mut have, &mut need)
                        .map_err(|e| e.to_string())?
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
                    return Err(format!("the primary refused to reconcile: {message}"));
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
    fn position(&self) -> Result<String, String> {
        let store = &self.shared.store;
        let head = store.head();
        if head == 0 {
            return Ok("start".into());
        }
        match store.get(head).map_err(|e| e.to_string())? {
            Some(event) => Ok(format!("after:{}", event.id.to_hex())),
            None => Ok("start".into()),
        }
    }

    /// Asks for the next batch of ids still missing; false when none is left.
    async fn fetch_next(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        fetching: &mut Vec<[u8; 32]>,
    ) -> Result<bool, String> {
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

/// Events the connection's reader hands to the append pipeline at once: at most this
/// many …
const CHUNK_EVENTS: usize = 1_024;
/// … or about this many bytes (as JSON).
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued between the reader and the verifier.
const QUEUE: usize = 16;
/// Most events the verifier takes into one commit (whatever is queued, up to this many
/// events plus one chunk) …
const COMMIT_EVENTS: usize = 16_384;
/// … or about this many bytes.
const COMMIT_BYTES: usize = 16 << 20;

/// About the size of `event` as JSON: what the pipeline's byte bounds count.
fn json_size(event: &Event) -> usize {
    // The id, pubkey, sig, created_at, kind and the punctuation.
    let fixed = 64 + 64 + 128 + 80;
    let tags: usize = event
        .tags
        .iter()
        .map(|t| t.as_slice().iter().map(|s| s.len() + 3).sum::<usize>() + 2)
        .sum();
    fixed + event.content.len() + tags
}

/// What the verifier hands to the committer: one commit's events, per event what
/// validation found (`None`: sent to the writer; the sequence number of a duplicate;
/// the refusal), and the writer's ticket for those sent (none when nothing was).
struct Verified {
    events: Vec<Event>,
    prepared: Vec<Result<Option<u64>, StoreError>>,
    ticket: Result<Option<Ticket>, StoreError>,
}

/// The append pipeline's progress, reported to the connection in order.
enum Report {
    /// This many more of the events handed over are settled: appended, found in the
    /// log already, or refused.
    Settled(usize),
    /// A commit failed: nothing handed over after it is appended on this connection.
    Failed(String),
}

/// One connection's append pipeline: the reader (the connection's task) receives and
/// parses; a verifier thread takes whatever chunks are queued (up to a commit's worth),
/// validates them on every core ([`Store::prepare_all`]) and submits them through one
/// ordered [`highwater_store::Pipeline`]; a committer thread waits for each durable
/// commit, hands what was appended to the live feed and reports. So receiving,
/// verifying and committing overlap; during catch-up the queue fills and commits grow
/// to [`COMMIT_EVENTS`], while a live event arriving alone is committed alone at once.
/// The log holds a prefix of what was handed over, in order: a failed commit cancels
/// every later one of the pipeline.
struct Appender {
    tx: Option<mpsc::Sender<Vec<Event>>>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Events handed over, and settled, on this connection.
    sent: usize,
    settled: usize,
}

impl Appender {
    fn start(shared: &Arc<Shared>, missing: &Missing) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<Vec<Event>>(QUEUE);
        // One verified commit waits while the committer holds another.
        let (verified_tx, verified_rx) = crossbeam_channel::bounded::<Verified>(1);
        let (report_tx, reports) = mpsc::unbounded_channel();
        let store = shared.store.clone();
        std::thread::Builder::new()
            .name("highwater-replica-verify".into())
            .spawn(move || verify(&store, rx, &verified_tx))
            .map_err(|e| format!("starting the replica's verifier: {e}"))?;
        let (shared, missing) = (shared.clone(), missing.clone());
        std::thread::Builder::new()
            .name("highwater-replica-commit".into())
            .spawn(move || commit(&shared, &missing, &verified_rx, &report_tx))
            .map_err(|e| format!("starting the replica's committer: {e}"))?;
        Ok(Self {
            tx: Some(tx),
            reports,
            sent: 0,
            settled: 0,
        })
    }

    /// Hands `pending` to the pipeline (waiting while its queue is full).
    async fn hand(&mut self, pending: &mut Vec<Event>) -> Result<(), String> {
        if pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(pending);
        let n = events.len();
        let tx = self.tx.as_ref().ok_or("the append pipeline is closed")?;
        if tx.send(events).await.is_err() {
            // The pipeline stopped: its report says why.
            while let Some(report) = self.reports.recv().await {
                self.on_report(report)?;
            }
            return Err("the append pipeline stopped".into());
        }
        self.sent += n;
        Ok(())
    }

    /// Takes one report into account; a failed commit is an error.
    fn on_report(&mut self, report: Report) -> Result<(), String> {
        match report {
            Report::Settled(n) => {
                self.settled += n;
                Ok(())
            }
            Report::Failed(error) => Err(error),
        }
    }

    /// Waits until everything handed over is settled.
    async fn drain(&mut self) -> Result<(), String> {
        while self.settled < self.sent {
            let report = self
                .reports
                .recv()
                .await
                .ok_or("the append pipeline stopped")?;
            self.on_report(report)?;
        }
        Ok(())
    }

    /// Closes the pipeline and waits until its threads are done with what was handed
    /// over: the next connection starts from the log they leave.
    async fn finish(mut self) {
        self.tx = None;
        while let Some(report) = self.reports.recv().await {
            if let Report::Failed(error) = report {
                tracing::warn!(%error, "replica: appending failed");
            }
        }
    }
}

/// The verifier thread: validates what is queued, a commit's worth at a time, and
/// submits it in order.
fn verify(
    store: &Store,
    mut rx: mpsc::Receiver<Vec<Event>>,
    out: &crossbeam_channel::Sender<Verified>,
) {
    let pipeline = store.pipeline();
    while let Some(mut events) = rx.blocking_recv() {
        let mut bytes: usize = events.iter().map(json_size).sum();
        while events.len() < COMMIT_EVENTS && bytes < COMMIT_BYTES {
            let Ok(more) = rx.try_recv() else { break };
            bytes += more.iter().map(json_size).sum::<usize>();
            events.extend(more);
        }
        let (ready, prepared) = store.prepare_split(&events);
        let ticket = if ready.is_empty() {
            Ok(None)
        } else {
            pipeline.submit(ready).map(Some)
        };
        let failed = ticket.is_err();
        if out
            .send(Verified {
                events,
                prepared,
                ticket,
            })
            .is_err()
            || failed
        {
            break;
        }
    }
}

/// The committer thread: waits for each commit, in order; hands what was appended to
/// the live feed and announces the state events it completes; reports.
fn commit(
    shared: &Arc<Shared>,
    missing: &Missing,
    rx: &crossbeam_channel::Receiver<Verified>,
    reports: &mpsc::UnboundedSender<Report>,
) {
    for Verified {
        events,
        prepared,
        ticket,
    } in rx
    {
        let outcomes = match ticket {
            Ok(Some(ticket)) => ticket.wait(),
            Ok(None) => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        let mut committed = match outcomes {
            Ok(outcomes) => outcomes.into_iter(),
            Err(error) => {
                let _ = reports.send(Report::Failed(format!("appending: {error}")));
                return;
            }
        };
        let mut groups = BTreeSet::new();
        let mut appended = Vec::new();
        {
            let mut missing = missing.lock();
            for (event, p) in events.iter().zip(prepared) {
                let result = match p {
                    Ok(None) => committed.next().ok_or(StoreError::WriterGone),
                    Ok(Some(seq)) => Ok(AppendOutcome::Duplicate(seq)),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(outcome) => {
                        if let AppendOutcome::Appended(seq) = outcome {
                            appended.push((seq, event.clone()));
                        }
                        missing.remove(event.id.as_bytes());
                        if let Some(g) = crate::hub::group_of(event) {
                            groups.insert(g.to_owned());
                        }
                    }
                    Err(error) => {
                        tracing::warn!(id = %event.id, %error, "replica: an event from the primary was refused");
                    }
                }
            }
        }
        // The replica's own subscribers get what it appended now, not at the feed
        // follower's next look (up to 100 ms later).
        if let Some(&(to, _)) = appended.last()
            && let Err(error) = shared.feed.deliver(shared, appended, to)
        {
            tracing::warn!(%error, "replica: delivering appended events failed");
        }
        // State events the primary sent before the replica held what they describe.
        let mut announced = Vec::new();
        for g in groups {
            if let Ok(events) = shared.rendered.announce(shared.policy.groups(), &g) {
                announced.extend(events.into_iter().map(|e| (0, e)));
            }
        }
        if !announced.is_empty() {
            shared.hub.broadcast(shared, &announced);
        }
        if reports.send(Report::Settled(events.len())).is_err() {
            return;
        }
    }
}

/// The replica's own log as negentropy items: (`created_at`, id), 40 bytes an event.
fn own_items(store: &Store) -> Result<NegentropyStorageVector, String> {
    let mut items = NegentropyStorageVector::new();
    store
        .scan(1, |_, event| {
            let _ = items.insert(event.created_at(), Id::from_byte_array(*event.id()));
            std::ops::ControlFlow::Continue(())
        })
        .map_err(|e| e.to_string())?;
    items.seal().map_err(|e| e.to_string())?;
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
) -> Result<(), String> {
    sink.send(Message::text(message.as_json()))
        .await
        .map_err(|e| format!("sending to the primary: {e}"))
}

async fn recv(
    stream: &mut futures_util::stream::SplitStream<Socket>,
) -> Result<RelayMessage<'static>, String> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .map_err(|_| "the primary did not answer for 30 s".to_owned())?
            .ok_or("the primary closed the connection")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(text) = message {
            return RelayMessage::from_json(text.as_str()).map_err(|e| e.to_string());
        }
    }
}
