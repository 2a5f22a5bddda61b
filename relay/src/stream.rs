//! A `REQ`'s stored answer, streamed into a connection's outbox with back-pressure:
//! straight from the query while the client keeps up, then as event ids read back from
//! the log in batches as the client reads (`hub.rs` bounds the queue).

use std::collections::VecDeque;
use std::sync::Arc;

use highwater_store::StoreError;
use nostr::prelude::{Event, EventId};
use tokio::sync::watch;

use crate::hub::{Frame, Outbox};
use crate::shared::Shared;

/// Streams a `REQ`'s stored events, in order, into the outbox. While the client keeps
/// up they go straight from the query's answer; once its queue is half full, the rest
/// is kept as ids and read back from the log in batches of about half the queue as
/// the client reads, so a client that stops reading pins 32 bytes per stored event,
/// not the events. (Rendered state events, which the log may not hold, stay whole.)
/// False when the connection ends or the relay shuts down first.
pub(crate) async fn stream_stored(
    shared: &Arc<Shared>,
    outbox: &Outbox,
    shutdown: &watch::Receiver<bool>,
    sub: &Arc<str>,
    events: Vec<Event>,
) -> bool {
    let frame = |event: &Event| Frame::Event {
        sub: sub.clone(),
        event: event.as_json().into(),
    };
    let mut events = events.into_iter();
    let mut paused = None;
    for event in events.by_ref() {
        if let Err(back) = outbox.try_send_stored(frame(&event)) {
            paused = Some(back);
            break;
        }
    }
    let Some(first) = paused else { return true };
    let mut rest: VecDeque<Pending> = events
        .map(|event| {
            if is_rendered_kind(event.kind.as_u16()) {
                Pending::Whole(event)
            } else {
                Pending::Stored(event.id)
            }
        })
        .collect();
    if !send_stored(outbox, shutdown, first).await {
        return false;
    }
    let budget = shared.options.limits.max_queue_bytes / 2;
    while !rest.is_empty() {
        let shared = shared.clone();
        let (batch, left) = match tokio::task::spawn_blocking(move || {
            let batch = read_back(&shared, &mut rest, budget);
            (batch, rest)
        })
        .await
        {
            Ok((Ok(batch), left)) => (batch, left),
            Ok((Err(e), _)) => {
                tracing::error!(error = %e, "reading a paused answer back failed");
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a paused answer back failed");
                return false;
            }
        };
        rest = left;
        for event in batch {
            let frame = Frame::Event {
                sub: sub.clone(),
                event,
            };
            if !send_stored(outbox, shutdown, frame).await {
                return false;
            }
        }
    }
    true
}

/// Queues one stored event of a `REQ` answer, waiting for the client to read if its
/// queue is half full; false when the connection ends or the relay shuts down first.
pub(crate) async fn send_stored(
    outbox: &Outbox,
    shutdown: &watch::Receiver<bool>,
    frame: Frame,
) -> bool {
    let mut shutdown = shutdown.clone();
    if *shutdown.borrow_and_update() {
        return false;
    }
    tokio::select! {
        queued = outbox.send_stored(frame) => queued,
        _ = shutdown.changed() => false,
    }
}

/// An event of a paused `REQ` answer not yet queued.
enum Pending {
    /// In the log: read back by id when the client has room.
    Stored(EventId),
    /// Rendered by the relay (39000–39005), perhaps never stored.
    Whole(Event),
}

fn is_rendered_kind(kind: u16) -> bool {
    (39_000..=39_005).contains(&kind)
}

/// Takes events off the front of `rest` until their JSON reaches `budget` bytes (at
/// least one), reading stored ones back from the log; an event the log no longer finds
/// is skipped. Returns their JSON.
fn read_back(
    shared: &Shared,
    rest: &mut VecDeque<Pending>,
    budget: usize,
) -> Result<Vec<Arc<str>>, StoreError> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while bytes < budget {
        let Some(next) = rest.pop_front() else { break };
        let event = match next {
            Pending::Whole(event) => Some(event),
            Pending::Stored(id) => match shared.store.seq_of(&id)? {
                Some(seq) => shared
                    .store
                    .with_event(seq, |e| e.to_event(seq))?
                    .transpose()?,
                None => None,
            },
        };
        if let Some(event) = event {
            let json: Arc<str> = event.as_json().into();
            bytes += json.len();
            batch.push(json);
        }
    }
    Ok(batch)
}
