//! The hand-off of an `EVENT` to the write path: what a connection (and a NIP-86 call)
//! needs to reach it, and the validation on the connection's own task before the
//! sequencer's queue.

use std::sync::Arc;

use crossbeam_channel::Sender;
use highwater_store::StoreError;
use nostr::prelude::Event;
use parking_lot::RwLock;
use tokio::sync::{oneshot, watch};

use crate::shared::Shared;
use crate::writes::{Job, Reply};

/// What a connection task needs.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) writes: Writes,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The sender of the write path's jobs, taken away when the relay stops (so the
/// sequencer sees its channel close even while clones of the service live on in a
/// router).
#[derive(Debug, Clone, Default)]
pub(crate) struct Writes(pub(crate) Arc<RwLock<Option<Sender<Job>>>>);

impl Writes {
    pub(crate) fn sender(&self) -> Option<Sender<Job>> {
        self.0.read().clone()
    }
}

/// Validates, then hands the event to the sequencer and waits.
///
/// The event's own checks (the id's hash, the signature, the store's limits:
/// [`Store::validate`](highwater_store::Store::validate)) run on the connection's task:
/// about 30–40 µs of CPU for an event of a few hundred bytes, touching no LMDB page.
/// Sending them to tokio's blocking pool cost more than they do — under 256 waiting
/// clients a pool thread each, and two wake-ups and context switches per event
/// (BENCHMARKS.md, "The relay rows"). Whether the log already holds the event is the
/// sequencer's first question, on its own thread.
pub(crate) async fn write(shared: Arc<Shared>, writes: Sender<Job>, event: Event) -> Reply {
    let prepared = match shared.store.validate(&event) {
        Ok(prepared) => prepared,
        Err(StoreError::Invalid(r)) => {
            return Reply {
                accepted: false,
                message: r.to_string(),
            };
        }
        Err(e) => {
            return Reply {
                accepted: false,
                message: format!("error: {e}"),
            };
        }
    };
    let (reply, wait) = oneshot::channel();
    let job = Job {
        event,
        prepared,
        reply,
    };
    // The queue is bounded; a full queue waits on a blocking thread, not the runtime.
    let sent = match writes.try_send(job) {
        Ok(()) => true,
        Err(crossbeam_channel::TrySendError::Full(job)) => {
            tokio::task::spawn_blocking(move || writes.send(job).is_ok())
                .await
                .unwrap_or(false)
        }
        Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
    };
    if !sent {
        return Reply {
            accepted: false,
            message: "error: the relay is shutting down".into(),
        };
    }
    wait.await.unwrap_or(Reply {
        accepted: false,
        message: "error: the relay is shutting down".into(),
    })
}
