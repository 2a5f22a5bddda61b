//! A one-value channel from the writer thread to one caller that the caller can either
//! block on or `.await`, with no async runtime in the store: the writer completes it
//! after the durable commit, which wakes a blocked thread or the awaiting task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

struct State<T> {
    value: Option<T>,
    /// The sender is gone: a value, if any, is final; without one none will come.
    done: bool,
    waker: Option<Waker>,
}

/// The writer's end: sends at most one value. Dropping it unsent closes the channel.
pub(crate) struct Sender<T>(Arc<Slot<T>>);

/// The caller's end: [`Receiver::recv`] blocks, polling it as a future does not.
pub(crate) struct Receiver<T>(Arc<Slot<T>>);

/// A new channel.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            value: None,
            done: false,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    /// Completes the channel with `value`. Returns it back when the receiver is gone
    /// (the same contract as a channel's `send`, so a caller may ignore it).
    pub(crate) fn send(self, value: T) -> Result<(), T> {
        if Arc::strong_count(&self.0) == 1 {
            return Err(value);
        }
        self.0.state.lock().value = Some(value);
        Ok(())
        // `Drop` marks the channel done and wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.state.lock();
            state.done = true;
            state.waker.take()
        };
        self.0.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Blocks until the value arrives; `None` if the sender was dropped without one.
    pub(crate) fn recv(self) -> Option<T> {
        let mut state = self.0.state.lock();
        while !state.done {
            self.0.ready.wait(&mut state);
        }
        state.value.take()
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.state.lock();
        if state.done {
            return Poll::Ready(state.value.take());
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("done", &self.0.state.lock().done)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_blocked_receiver_gets_the_value_sent_from_another_thread() {
        let (tx, rx) = channel();
        let sender = std::thread::spawn(move || tx.send(7u32));
        assert_eq!(rx.recv(), Some(7));
        assert_eq!(sender.join().unwrap(), Ok(()));
    }

    #[test]
    fn a_dropped_sender_closes_the_channel() {
        let (tx, rx) = channel::<u32>();
        drop(tx);
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn sending_to_a_dropped_receiver_returns_the_value() {
        let (tx, rx) = channel::<u32>();
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
    }

    #[test]
    fn polling_registers_the_waker_and_the_send_wakes_it() {
        let counter = Arc::new(CountWakes(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let (sender, mut receiver) = channel::<u32>();
        assert_eq!(Pin::new(&mut receiver).poll(&mut cx), Poll::Pending);
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(sender.send(5), Ok(()));
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut receiver).poll(&mut cx), Poll::Ready(Some(5)));
    }
}
