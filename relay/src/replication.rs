//! The primary's side of replication: what a configured replica
//! ([`RelayOptions::replicas`](crate::RelayOptions::replicas), authenticated with
//! NIP-42) may read, and the log stream it follows.
//!
//! A replica reads everything (every group, private or hidden) and reconciles the whole
//! log with negentropy. To append in the primary's order it asks for the log itself,
//! with a `REQ` whose one filter carries a NIP-50 `search` extension only replicas are
//! answered for (anyone else's `search` is matched against content, as NIP-50 says):
//!
//! - `highwater:log live` — every event this relay's log commits from now on
//!   (whichever process wrote it), in log order, once, with the relay's management
//!   records and nothing rendered; `EOSE` at once.
//! - `highwater:log after:<event id>` — the stored log after that event, in log order
//!   (oldest first, no `limit`), then `EOSE`. `highwater:log start`: from the first
//!   event. An id the log does not hold is answered `CLOSED` `error: unknown position`.
//!
//! The stored stream waits for the replica to read, as any `REQ` answer does; the live
//! stream is queued like any live event, so a replica that falls a whole outbox behind
//! is disconnected and catches up again when it reconnects. The live streams open are
//! held in the shared state (`log_streams.rs`'s `LogStreams`); the live feed
//! (`delivery.rs`) hands them each committed event.

use std::ops::ControlFlow;
use std::sync::Arc;

use nostr::prelude::{EventId, Filter, PublicKey, RelayMessage, SubscriptionId};
use tokio::sync::watch;

use crate::hub::{Frame, Outbox};
use crate::shared::Shared;

/// The `search` prefix of a replica's log request.
pub(crate) const LOG_SEARCH: &str = "highwater:log";

/// Whether `reader` is one of the relay's configured replicas.
pub(crate) fn is_replica(shared: &Shared, reader: Option<&PublicKey>) -> bool {
    reader.is_some_and(|r| shared.options.replicas.contains(r))
}

/// What a replica's log request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogRequest {
    /// Every event committed from now on.
    Live,
    /// The stored log after this event (`None`: from the start).
    After(Option<EventId>),
}

/// The log request a `REQ`'s filters make, if they are one.
pub(crate) fn log_request(filters: &[Filter]) -> Option<Result<LogRequest, String>> {
    let [filter] = filters else { return None };
    let search = filter.search.as_deref()?.strip_prefix(LOG_SEARCH)?.trim();
    Some(match search {
        "live" => Ok(LogRequest::Live),
        "start" => Ok(LogRequest::After(None)),
        other => other
            .strip_prefix("after:")
            .and_then(|hex| EventId::from_hex(hex).ok())
            .map(|id| LogRequest::After(Some(id)))
            .ok_or_else(|| format!("invalid: unknown log request {other:?}")),
    })
}

/// Most bytes of events read from the log at once for a stored stream.
const CHUNK_BYTES: usize = 256 * 1024;

/// Answers a replica's log request on its connection.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    outbox: &Arc<Outbox>,
    mut shutdown: watch::Receiver<bool>,
    sub: SubscriptionId,
    request: LogRequest,
) {
    let after = match request {
        LogRequest::Live => {
            shared.log_streams.add(&sub, outbox.clone());
            outbox.send(RelayMessage::eose(sub).as_json());
            return;
        }
        LogRequest::After(after) => after,
    };
    let mut from = match after {
        None => 1,
        Some(id) => match shared.store.seq_of(&id) {
            Ok(Some(seq)) => seq + 1,
            Ok(None) => {
                outbox.send(
                    RelayMessage::closed(sub, format!("error: unknown position {id}")).as_json(),
                );
                return;
            }
            Err(e) => {
                outbox.send(RelayMessage::closed(sub, format!("error: {e}")).as_json());
                return;
            }
        },
    };
    let id_json: Arc<str> = serde_json::Value::String(sub.as_str().to_owned())
        .to_string()
        .into();
    loop {
        let reading = shared.clone();
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&reading, from)).await;
        let chunk = match chunk {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => {
                outbox.send(RelayMessage::closed(sub, format!("error: {e}")).as_json());
                return;
            }
            Err(e) => {
                outbox.send(RelayMessage::closed(sub, format!("error: {e}")).as_json());
                return;
            }
        };
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        for (_, event) in chunk {
            let frame = Frame::Event {
                sub: id_json.clone(),
                event,
            };
            let queued = tokio::select! {
                queued = outbox.send_stored(frame) => queued,
                _ = shutdown.changed() => false,
            };
            if !queued {
                return;
            }
        }
        from = last + 1;
    }
    let eose = Frame::Text(RelayMessage::eose(sub).as_json());
    tokio::select! {
        _ = outbox.send_stored(eose) => {}
        _ = shutdown.changed() => {}
    }
}

/// The log's events from `from` on, as JSON, up to about [`CHUNK_BYTES`].
fn read_chunk(
    shared: &Shared,
    from: u64,
) -> Result<Vec<(u64, Arc<str>)>, highwater_store::StoreError> {
    let mut chunk = Vec::new();
    let mut bytes = 0;
    let mut failed = None;
    shared.store.scan(from, |seq, event| {
        match event.to_event(seq) {
            Ok(event) => {
                let json: Arc<str> = event.as_json().into();
                bytes += json.len();
                chunk.push((seq, json));
            }
            Err(e) => {
                failed = Some(e);
                return ControlFlow::Break(());
            }
        }
        if bytes >= CHUNK_BYTES {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    failed.map_or(Ok(chunk), Err)
}
