//! Live subscriptions and fan-out. Subscriptions whose every filter names groups
//! (`#h`, or `#d` for state kinds) are indexed by group, so a committed event wakes only
//! the subscribers of its own group; the rest are checked against every event.
//! Each connection has an outbox bounded in bytes: a client that lets it fill is
//! disconnected, never buffered without bound, and the broadcast never waits for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use nostr::prelude::{Event, PublicKey};
use parking_lot::RwLock;
use tokio::sync::{Notify, mpsc, watch};

use crate::filter::Compiled;
use crate::index::is_state_kind;

/// Counted per queued frame on top of its text: the channel slot and the allocation.
const FRAME_OVERHEAD: usize = 64;

/// One message waiting in an outbox.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A finished message.
    Text(String),
    /// `["EVENT",<sub>,<event>]`, put together by the connection's writer, so that one
    /// event's JSON is shared by every subscriber it goes to instead of copied per
    /// subscriber.
    Event { sub: Arc<str>, event: Arc<str> },
}

impl Frame {
    /// What the frame is counted as against the outbox bound: its full text (shared
    /// parts included, so the count never understates) plus [`FRAME_OVERHEAD`].
    pub(crate) fn cost(&self) -> usize {
        FRAME_OVERHEAD
            + match self {
                Frame::Text(text) => text.len(),
                Frame::Event { sub, event } => r#"["EVENT",,]"#.len() + sub.len() + event.len(),
            }
    }

    pub(crate) fn into_text(self) -> String {
        match self {
            Frame::Text(text) => text,
            Frame::Event { sub, event } => format!(r#"["EVENT",{sub},{event}]"#),
        }
    }
}

/// Relay-wide counters of the outboxes, for the `test-support` feature's
/// `OutboxStats` and for the log.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// Bytes (as [`Frame::cost`]) queued in every outbox together.
    pub(crate) queued: AtomicUsize,
    /// The most any one outbox ever held.
    pub(crate) peak: AtomicUsize,
    /// `REQ` answers paused until their client reads.
    pub(crate) waiting: AtomicUsize,
    /// Clients disconnected for letting their outbox fill.
    pub(crate) slow: AtomicU64,
    /// Open connections.
    pub(crate) connections: AtomicUsize,
}

/// A read-only view of the outboxes' relay-wide counters (feature `test-support`), taken
/// before [`Relay::serve`](crate::Relay::serve) consumes the relay.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone)]
pub struct OutboxStats(pub(crate) Arc<Meter>);

#[cfg(feature = "test-support")]
impl OutboxStats {
    /// Bytes queued in every outbox together, counted as the frames' text plus a fixed
    /// overhead per frame.
    pub fn queued_bytes(&self) -> usize {
        self.0.queued.load(Ordering::Acquire)
    }

    /// The most bytes any one outbox ever held.
    pub fn peak_outbox_bytes(&self) -> usize {
        self.0.peak.load(Ordering::Acquire)
    }

    /// `REQ` answers paused until their client reads.
    pub fn answers_waiting(&self) -> usize {
        self.0.waiting.load(Ordering::Acquire)
    }

    /// Clients disconnected for letting their outbox fill.
    pub fn slow_disconnects(&self) -> u64 {
        self.0.slow.load(Ordering::Acquire)
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.0.connections.load(Ordering::Acquire)
    }
}

/// One open connection's place under `ConnectionLimits::max_connections`; dropping it frees it.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Meter>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Meter {
    /// A place for one more connection, unless `max` are open.
    pub(crate) fn admit(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

/// What an outbox shares with its connection's writer task: the bytes queued and the
/// wake-up for a paused `REQ` answer.
#[derive(Debug)]
struct Backlog {
    /// Bytes (as [`Frame::cost`]) accepted and not yet written to the socket or dropped.
    bytes: AtomicUsize,
    /// Woken when the writer took bytes off the queue, the writer ended, or the client
    /// was disconnected.
    room: Notify,
    meter: Arc<Meter>,
}

impl Backlog {
    fn release(&self, cost: usize) {
        self.bytes.fetch_sub(cost, Ordering::AcqRel);
        self.meter.queued.fetch_sub(cost, Ordering::AcqRel);
    }
}

/// The writer's side of an outbox. Dropping it (the writer ended, or was aborted)
/// closes the queue and releases what was still queued.
#[derive(Debug)]
pub(crate) struct Drain {
    rx: mpsc::UnboundedReceiver<Frame>,
    backlog: Arc<Backlog>,
    /// The cost of the frame taken by [`recv`](Self::recv) and not yet [`written`](Self::written):
    /// still counted, since the socket has not taken it.
    writing: usize,
}

impl Drain {
    /// The next frame; `None` once every sender is gone. It stays counted until
    /// [`written`](Self::written).
    pub(crate) async fn recv(&mut self) -> Option<Frame> {
        self.finish();
        let frame = self.rx.recv().await?;
        self.writing = frame.cost();
        Some(frame)
    }

    /// The next frame if one is queued now, without waiting; it stays counted, with the
    /// frames received before it, until [`written`](Self::written).
    pub(crate) fn try_next(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.writing += frame.cost();
        Some(frame)
    }

    /// The frames received since the last call were written to the socket (or failed
    /// to be).
    pub(crate) fn written(&mut self) {
        self.finish();
        self.backlog.room.notify_waiters();
    }

    fn finish(&mut self) {
        self.backlog.release(std::mem::take(&mut self.writing));
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.finish();
        self.rx.close();
        while let Ok(frame) = self.rx.try_recv() {
            self.backlog.release(frame.cost());
        }
        self.backlog.room.notify_waiters();
    }
}

/// The sending side of one connection: a queue bounded in bytes, emptied by the
/// connection's writer task through its [`Drain`].
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) id: u64,
    tx: mpsc::UnboundedSender<Frame>,
    backlog: Arc<Backlog>,
    max_bytes: usize,
    kill: watch::Sender<bool>,
    killed: AtomicBool,
    /// The pubkey authenticated with NIP-42, if any.
    reader: RwLock<Option<PublicKey>>,
    pub(crate) sent: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(id: u64, max_bytes: usize, meter: Arc<Meter>) -> (Arc<Self>, Drain) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (kill, _) = watch::channel(false);
        let backlog = Arc::new(Backlog {
            bytes: AtomicUsize::new(0),
            room: Notify::new(),
            meter,
        });
        let outbox = Arc::new(Self {
            id,
            tx,
            backlog: backlog.clone(),
            max_bytes,
            kill,
            killed: AtomicBool::new(false),
            reader: RwLock::new(None),
            sent: AtomicU64::new(0),
        });
        (
            outbox,
            Drain {
                rx,
                backlog,
                writing: 0,
            },
        )
    }

    /// Queues a message; one that would take the queue past its bound disconnects the
    /// client. Returns whether queued. Never waits.
    pub(crate) fn send(&self, message: String) -> bool {
        self.push_or_kill(Frame::Text(message))
    }

    /// Queues `["EVENT",<sub>,<event>]` like [`send`](Self::send), sharing `event`.
    pub(crate) fn send_event(&self, sub: &Arc<str>, event: &Arc<str>) -> bool {
        self.push_or_kill(Frame::Event {
            sub: sub.clone(),
            event: event.clone(),
        })
    }

    fn push_or_kill(&self, frame: Frame) -> bool {
        if self.is_killed() {
            return false;
        }
        let Ok(queued) = self.push(frame, self.max_bytes) else {
            self.disconnect_slow();
            return false;
        };
        queued
    }

    /// Queues a stored event of a `REQ` answer: while the queue holds less than half its
    /// bound, at once; otherwise once the client has read enough. Returns false when the
    /// connection ended first.
    pub(crate) async fn send_stored(&self, frame: Frame) -> bool {
        let meter = &self.backlog.meter;
        let mut frame = frame;
        let mut waiting = false;
        let queued = loop {
            let room = self.backlog.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.is_killed() || self.tx.is_closed() {
                break false;
            }
            match self.push(frame, self.max_bytes / 2) {
                Ok(queued) => break queued,
                Err(back) => frame = back,
            }
            if !waiting {
                waiting = true;
                meter.waiting.fetch_add(1, Ordering::AcqRel);
            }
            room.await;
        };
        if waiting {
            meter.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        queued
    }

    /// Queues a stored event of a `REQ` answer if the queue holds less than half its
    /// bound; gives it back otherwise.
    pub(crate) fn try_send_stored(&self, frame: Frame) -> Result<(), Frame> {
        self.push(frame, self.max_bytes / 2).map(drop)
    }

    /// Queues `frame` if the queue is empty or stays within `bound`; gives it back
    /// otherwise. `Ok(false)`: the writer is gone.
    fn push(&self, frame: Frame, bound: usize) -> Result<bool, Frame> {
        let cost = frame.cost();
        let Ok(before) =
            self.backlog
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                    (q == 0 || q + cost <= bound).then_some(q + cost)
                })
        else {
            return Err(frame);
        };
        let meter = &self.backlog.meter;
        meter.queued.fetch_add(cost, Ordering::AcqRel);
        if self.tx.send(frame).is_err() {
            self.backlog.release(cost);
            return Ok(false);
        }
        meter.peak.fetch_max(before + cost, Ordering::AcqRel);
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    fn disconnect_slow(&self) {
        if !self.killed.swap(true, Ordering::AcqRel) {
            self.backlog.meter.slow.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                conn = self.id,
                queued = self.backlog.bytes.load(Ordering::Acquire),
                bound = self.max_bytes,
                "send queue full: disconnecting a slow client"
            );
            self.kill.send_replace(true);
            self.backlog.room.notify_waiters();
        }
    }

    /// Resolves when the connection is to be dropped (its queue overflowed).
    pub(crate) fn killed(&self) -> watch::Receiver<bool> {
        self.kill.subscribe()
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub(crate) fn reader(&self) -> Option<PublicKey> {
        *self.reader.read()
    }

    pub(crate) fn set_reader(&self, pubkey: PublicKey) {
        *self.reader.write() = Some(pubkey);
    }
}

/// One open subscription.
#[derive(Debug)]
pub(crate) struct Sub {
    pub(crate) outbox: Arc<Outbox>,
    /// The subscription id as a JSON string, ready to splice into messages.
    pub(crate) id_json: Arc<str>,
    pub(crate) filters: Vec<Compiled>,
}

type Key = (u64, String);

#[derive(Debug, Default)]
struct Inner {
    by_group: HashMap<Box<str>, BTreeMap<Key, Arc<Sub>>>,
    others: BTreeMap<Key, Arc<Sub>>,
    groups_of: HashMap<Key, Vec<Box<str>>>,
}

/// Every live subscription of the relay.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    inner: RwLock<Inner>,
    /// The outboxes' relay-wide counters.
    pub(crate) meter: Arc<Meter>,
}

/// The groups a filter confines events to, if it does.
fn filter_groups(filter: &Compiled) -> Option<Vec<Box<str>>> {
    if let Some(h) = filter.tag_values("h") {
        return Some(h.iter().map(|g| g.as_str().into()).collect());
    }
    let state_only = filter
        .kinds
        .as_ref()
        .is_some_and(|k| k.iter().all(|&k| is_state_kind(k)));
    match filter.tag_values("d") {
        Some(d) if state_only => Some(d.iter().map(|g| g.as_str().into()).collect()),
        _ => None,
    }
}

impl Hub {
    /// Adds (or replaces) subscription `id` of the outbox's connection.
    pub(crate) fn add(&self, id: &str, sub: Arc<Sub>) {
        let key = (sub.outbox.id, id.to_owned());
        let groups: Option<Vec<Box<str>>> = sub
            .filters
            .iter()
            .map(filter_groups)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect());
        let mut inner = self.inner.write();
        remove_locked(&mut inner, &key);
        match groups {
            Some(groups) => {
                for g in &groups {
                    inner
                        .by_group
                        .entry(g.clone())
                        .or_default()
                        .insert(key.clone(), sub.clone());
                }
                inner.groups_of.insert(key, groups);
            }
            None => {
                inner.others.insert(key, sub);
            }
        }
    }

    pub(crate) fn remove(&self, conn: u64, id: &str) {
        remove_locked(&mut self.inner.write(), &(conn, id.to_owned()));
    }

    /// Open subscriptions.
    pub(crate) fn len(&self) -> usize {
        let inner = self.inner.read();
        inner.others.len() + inner.groups_of.len()
    }

    /// The subscriptions an event of `group` may match: those confined to `group`, and
    /// those not confined to groups.
    pub(crate) fn candidates(&self, group: Option<&str>) -> Vec<Arc<Sub>> {
        let inner = self.inner.read();
        let grouped = group
            .and_then(|g| inner.by_group.get(g))
            .into_iter()
            .flat_map(|m| m.values());
        grouped.chain(inner.others.values()).cloned().collect()
    }
}

fn remove_locked(inner: &mut Inner, key: &Key) {
    inner.others.remove(key);
    if let Some(groups) = inner.groups_of.remove(key) {
        for g in groups {
            if let Some(map) = inner.by_group.get_mut(&g) {
                map.remove(key);
                if map.is_empty() {
                    inner.by_group.remove(&g);
                }
            }
        }
    }
}

/// The group an event belongs to: `d` for state kinds, `h` otherwise.
pub(crate) fn group_of(event: &Event) -> Option<&str> {
    let name = if is_state_kind(event.kind.as_u16()) {
        "d"
    } else {
        "h"
    };
    event
        .tags
        .iter()
        .find(|t| t.kind() == name)
        .and_then(|t| t.content())
        .filter(|g| !g.is_empty())
}
