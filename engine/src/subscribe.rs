//! Bounded subscriptions to committed events.
//!
//! The writer thread only queues a (sequence number, group) pair per commit into each
//! subscriber's bounded queue: it never converts an event, never blocks on a slow
//! subscriber and never grows memory for one. The subscriber reads the event back from
//! the log on its own thread when it receives it. A subscriber whose queue is full is
//! marked *lagged*: its queue is cleared, nothing more is queued for it, and its next
//! receive reports [`RecvError::Lagged`] with the first sequence number it missed, from
//! which it re-reads the log (the way `tokio::sync::broadcast` reports `Lagged`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use highwater_store::{Store, StoreError};
use nostr::prelude::Event;
use parking_lot::{Condvar, Mutex};

/// A committed event, as received by a [`Subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its sequence number.
    pub seq: u64,
    /// Its group, if any.
    pub group: Option<Arc<str>>,
    /// The event.
    pub event: Event,
}

/// Why a [`Subscription`] returned no notification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell more than its capacity behind the writer. Everything from
    /// sequence number `from` on was not delivered: re-read the log from there (for
    /// example with [`Store::iter_from`]); notifications resume with commits after
    /// this error, so skip those at or below the last sequence number re-read.
    #[error("the subscriber lagged behind; re-read the log from sequence number {from}")]
    Lagged {
        /// The first sequence number not delivered.
        from: u64,
    },
    /// A committed event could not be read back from the log.
    #[error("reading committed event {seq} back from the log: {source}")]
    Read {
        /// Its sequence number.
        seq: u64,
        /// Why the read failed.
        #[source]
        source: StoreError,
    },
    /// The engine was dropped and every queued notification has been received.
    #[error("the engine is closed")]
    Closed,
    /// [`Subscription::recv_timeout`] waited its full time without a notification.
    #[error("no notification within the timeout")]
    Timeout,
}

/// The queue shared by the writer thread (through the engine's commit observer) and
/// one subscriber.
#[derive(Debug)]
pub(crate) struct Channel {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<(u64, Option<Arc<str>>)>,
    /// Set when the queue overflowed: the first sequence number not delivered.
    lagged_from: Option<u64>,
    /// The engine is gone: no more notifications will be queued.
    closed: bool,
    /// The subscriber is gone: the writer may forget this channel.
    dropped: bool,
    waker: Option<Waker>,
}

/// What the subscriber finds when it looks at its queue.
enum Next {
    Entry(u64, Option<Arc<str>>),
    Lagged(u64),
    Closed,
    Empty,
}

impl Channel {
    pub(crate) fn new(capacity: usize) -> Arc<Channel> {
        let capacity = capacity.max(1);
        Arc::new(Channel {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity.min(1024)),
                lagged_from: None,
                closed: false,
                dropped: false,
                waker: None,
            }),
            ready: Condvar::new(),
            capacity,
        })
    }

    /// Queues one commit; runs on the writer thread, so it only takes this channel's
    /// short lock. Returns false once the subscriber is gone.
    pub(crate) fn push(&self, seq: u64, group: Option<&Arc<str>>) -> bool {
        let waker = {
            let mut state = self.state.lock();
            if state.dropped {
                return false;
            }
            if state.lagged_from.is_some() {
                return true;
            }
            if state.queue.len() >= self.capacity {
                let from = state.queue.front().map_or(seq, |(first, _)| *first);
                state.lagged_from = Some(from);
                state.queue = VecDeque::new();
            } else {
                state.queue.push_back((seq, group.cloned()));
            }
            state.waker.take()
        };
        self.ready.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The engine is gone; the subscriber drains what is queued, then sees the end.
    pub(crate) fn close(&self) {
        let waker = {
            let mut state = self.state.lock();
            state.closed = true;
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn take(state: &mut State) -> Next {
        if let Some(from) = state.lagged_from.take() {
            return Next::Lagged(from);
        }
        match state.queue.pop_front() {
            Some((seq, group)) => Next::Entry(seq, group),
            None if state.closed => Next::Closed,
            None => Next::Empty,
        }
    }
}

/// A bounded stream of committed events, in sequence order, from
/// [`Engine::subscribe`](crate::Engine::subscribe).
///
/// Receive with [`recv`](Self::recv) (blocking), [`try_recv`](Self::try_recv),
/// [`recv_timeout`](Self::recv_timeout), or — with the `tokio` feature — as a
/// `futures_core::Stream`. Dropping it unsubscribes. It holds a handle to the store
/// (to read events back), which keeps the database open while it lives.
pub struct Subscription {
    channel: Arc<Channel>,
    store: Store,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("capacity", &self.channel.capacity)
            .finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.channel.state.lock().dropped = true;
    }
}

impl Subscription {
    pub(crate) fn new(channel: Arc<Channel>, store: Store) -> Subscription {
        Subscription { channel, store }
    }

    /// How many notifications may wait before the subscriber counts as lagged.
    pub fn capacity(&self) -> usize {
        self.channel.capacity
    }

    /// Waits for the next committed event.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] when notifications were skipped, [`RecvError::Closed`]
    /// once the engine is gone and the queue is drained, [`RecvError::Read`] when the
    /// event cannot be read back from the log.
    pub fn recv(&self) -> Result<Notification, RecvError> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`RecvError::Timeout`] when nothing arrived in time.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Notification, RecvError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// The next committed event if one is queued, without waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<Notification>, RecvError> {
        let next = Channel::take(&mut self.channel.state.lock());
        match next {
            Next::Empty => Ok(None),
            next => self.resolve(next).map(Some),
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Notification, RecvError> {
        let next = {
            let mut state = self.channel.state.lock();
            loop {
                match Channel::take(&mut state) {
                    Next::Empty => match deadline {
                        Some(deadline) => {
                            if self
                                .channel
                                .ready
                                .wait_until(&mut state, deadline)
                                .timed_out()
                            {
                                match Channel::take(&mut state) {
                                    Next::Empty => return Err(RecvError::Timeout),
                                    next => break next,
                                }
                            }
                        }
                        None => self.channel.ready.wait(&mut state),
                    },
                    next => break next,
                }
            }
        };
        self.resolve(next)
    }

    /// Reads a queued entry's event back from the log, on the subscriber's thread.
    fn resolve(&self, next: Next) -> Result<Notification, RecvError> {
        match next {
            Next::Entry(seq, group) => match self.store.get(seq) {
                Ok(Some(event)) => Ok(Notification { seq, group, event }),
                Ok(None) => Err(RecvError::Read {
                    seq,
                    source: StoreError::Corrupted(highwater_store::Corruption::Index {
                        table: "events",
                        reason: format!("committed sequence number {seq} is missing"),
                    }),
                }),
                Err(source) => Err(RecvError::Read { seq, source }),
            },
            Next::Lagged(from) => Err(RecvError::Lagged { from }),
            Next::Closed | Next::Empty => Err(RecvError::Closed),
        }
    }
}

#[cfg(feature = "tokio")]
impl futures_core::Stream for Subscription {
    type Item = Result<Notification, RecvError>;

    /// The next notification; the stream ends once the engine is gone. The event is
    /// read back from the log inside the poll (a short LMDB read transaction on memory
    /// mapped pages).
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = {
            let mut state = self.channel.state.lock();
            match Channel::take(&mut state) {
                Next::Empty => {
                    match &mut state.waker {
                        Some(waker) => waker.clone_from(cx.waker()),
                        None => state.waker = Some(cx.waker().clone()),
                    }
                    return std::task::Poll::Pending;
                }
                Next::Closed => return std::task::Poll::Ready(None),
                next => next,
            }
        };
        std::task::Poll::Ready(Some(self.resolve(next)))
    }
}
