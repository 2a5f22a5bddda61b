//! How the writer forms a round of requests for one group commit: what it drains from
//! the channel, and whether (and for whom) it waits for more.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rustc_hash::FxHashSet;

use crate::request::{Append, Request};

/// Most events written in one group commit.
const MAX_EVENTS_PER_COMMIT: usize = 65_536;

/// The callers whose append requests a round holds: each request without a pipeline
/// is its own caller (it waits for its answer); the batches of one ordered pipeline
/// come from one submitter that queues ahead, so they count once.
#[derive(Default, Clone)]
pub(crate) struct Callers {
    single: usize,
    pipelines: FxHashSet<u64>,
}

impl Callers {
    pub(crate) fn add(&mut self, request: &Request) {
        match request {
            Request::Append(Append {
                pipeline: Some(p), ..
            }) => {
                self.pipelines.insert(*p);
            }
            Request::Append(Append { pipeline: None, .. }) => self.single += 1,
            Request::Exec { .. } => {}
        }
    }

    fn count(&self) -> usize {
        self.single + self.pipelines.len()
    }
}

/// How long a round may wait for callers: `commit_wait`, but at most an eighth of the
/// last group commit (its write, durable commit and acknowledgements). Waiting merges
/// cohorts of callers, which pays when a commit is long beside a caller's way back (a
/// disk whose commit takes milliseconds); when a commit takes about as long as that way
/// back, the cohorts already overlap — one queues while the other is flushed — and a
/// full wait only delays them. With one-event commits of 200–270 µs, 8 callers
/// appended 10.5–12.5k events/s with a 250 µs wait, 10.1–11.8k with none and 13.2–15.3k
/// with 30 µs (BENCHMARKS.md, "Every row short of its goal"). Before any commit:
/// `commit_wait`.
pub(crate) fn linger(commit_wait: Duration, last_commit: Option<Duration>) -> Duration {
    last_commit.map_or(commit_wait, |last| commit_wait.min(last / 8))
}

/// The requests of one round: `first`, whatever is queued behind it (up to
/// [`MAX_EVENTS_PER_COMMIT`] events), and — when `wait` is not zero and they come from
/// fewer callers than expected — those that arrive within `wait`, until the expected
/// callers are there.
///
/// The round expects the callers the previous round `answered` and those of the first
/// `waiting` requests of this one (queued before the previous round had answered).
/// Callers that append one event at a time and wait fall into cohorts otherwise: while
/// one cohort's commit is flushed the next queues, and each commit carries only the
/// callers that happened to be queued. Waiting for the answered callers to come back
/// merges the cohorts. A lone caller is never delayed: the round that answered it
/// expects only it, and its next request is that; nor is a lone pipeline that queues
/// ahead (its batches are one caller). The wait ends early on anything but an append (a
/// write job ends the run of appends a commit can take anyway), and never exceeds
/// `wait`, so no caller is delayed by more than that; requests keep their order.
pub(crate) fn collect(
    rx: &Receiver<Request>,
    first: Request,
    wait: Duration,
    answered: &Callers,
    waiting: usize,
) -> Vec<Request> {
    let mut callers = Callers::default();
    let mut events = queued_events(&first);
    let mut only_appends = matches!(first, Request::Append(_));
    callers.add(&first);
    let mut queue = vec![first];
    while events < MAX_EVENTS_PER_COMMIT {
        let Ok(more) = rx.try_recv() else { break };
        events += queued_events(&more);
        only_appends &= matches!(more, Request::Append(_));
        callers.add(&more);
        queue.push(more);
    }
    if wait.is_zero() || !only_appends {
        return queue;
    }
    let mut expected = answered.clone();
    for request in queue.iter().take(waiting) {
        expected.add(request);
    }
    let expected = expected.count();
    if callers.count() >= expected {
        return queue;
    }
    let deadline = Instant::now() + wait;
    while callers.count() < expected && events < MAX_EVENTS_PER_COMMIT {
        let Ok(more) = rx.recv_deadline(deadline) else {
            break;
        };
        events += queued_events(&more);
        let append = matches!(more, Request::Append(_));
        callers.add(&more);
        queue.push(more);
        if !append {
            break;
        }
    }
    queue
}

fn queued_events(request: &Request) -> usize {
    match request {
        Request::Append(Append { events, .. }) => events.len().max(1),
        Request::Exec { .. } => 1,
    }
}

#[cfg(test)]
mod tests {
    //! How a round of requests is formed ([`collect`]): what it drains, when it waits
    //! and for whom. The requests are never executed here; only their number and
    //! order are looked at, so nothing depends on timing except that a request sent
    //! 200 ms after `collect` started arrives while it waits (if it waits at all).

    use std::sync::atomic::Ordering;

    use super::*;
    use crate::validate::PreparedEvent;

    /// An append request of `n` events (placeholders; `collect` only counts them).
    fn append(pipeline: Option<u64>, n: usize) -> Request {
        let event = PreparedEvent {
            id: [0; 32],
            kind: 9,
            group: None,
            bytes: Vec::new(),
        };
        let (reply, _) = crate::oneshot::channel();
        Request::Append(Append {
            events: vec![event; n],
            pipeline,
            setting: None,
            reply,
        })
    }

    fn exec() -> Request {
        let (reply, _) = crossbeam_channel::unbounded();
        Request::Exec {
            job: Box::new(|_, _| Ok(Box::new(()))),
            reply,
        }
    }

    /// What the previous round answered: `singles` callers and these pipelines.
    fn answered(singles: usize, pipelines: &[u64]) -> Callers {
        Callers {
            single: singles,
            pipelines: pipelines.iter().copied().collect(),
        }
    }

    /// Runs `collect` with `first`, `queued` already in the channel, and `late` sent
    /// 200 ms after it started. Returns how many requests the round took and how many
    /// were left in the channel.
    fn round(
        first: Request,
        queued: Vec<Request>,
        late: Vec<Request>,
        wait: Duration,
        answered: &Callers,
    ) -> (usize, usize) {
        let (tx, rx) = crossbeam_channel::unbounded();
        for r in queued {
            tx.send(r).unwrap();
        }
        let started = std::sync::atomic::AtomicBool::new(false);
        let taken = std::thread::scope(|s| {
            s.spawn(|| {
                // Once `collect` is about to run, and then long enough for it to have
                // drained the queue and be waiting (or done).
                while !started.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                std::thread::sleep(Duration::from_millis(200));
                for r in late {
                    tx.send(r).unwrap();
                }
            });
            started.store(true, Ordering::Release);
            collect(&rx, first, wait, answered, 0).len()
        });
        // The late requests are all sent once the scope has ended.
        (taken, rx.len())
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn a_round_drains_what_is_queued_up_to_the_event_cap() {
        let none = answered(0, &[]);
        let four = || (0..4).map(|_| append(None, 1)).collect::<Vec<_>>();
        assert_eq!(
            round(append(None, 1), four(), vec![], Duration::ZERO, &none),
            (5, 0)
        );
        // MAX − 2 events, then one-event requests: the round stops at the cap.
        let first = append(None, MAX_EVENTS_PER_COMMIT - 2);
        assert_eq!(round(first, four(), vec![], Duration::ZERO, &none), (3, 2));
        // An empty append and a write job count as one event each.
        let first = append(None, MAX_EVENTS_PER_COMMIT - 2);
        let queued = vec![append(None, 0), exec(), append(None, 1)];
        assert_eq!(round(first, queued, vec![], Duration::ZERO, &none), (3, 1));
    }

    #[test]
    fn a_round_waits_for_the_callers_the_last_round_answered_and_no_more() {
        // Three callers answered: the round waits until three are there.
        let late = || (0..3).map(|_| append(None, 1)).collect::<Vec<_>>();
        assert_eq!(
            round(append(None, 1), vec![], late(), LONG, &answered(3, &[])),
            (3, 1)
        );
        // A pipeline counts once, however many batches it queued.
        let late = vec![append(Some(7), 1), append(None, 1), append(None, 1)];
        let expected = answered(1, &[7]);
        assert_eq!(
            round(append(Some(7), 1), vec![], late, LONG, &expected),
            (3, 1)
        );
        // Nothing to wait for when the expected callers are already there.
        let queued = vec![append(None, 1)];
        assert_eq!(
            round(append(None, 1), queued, late_one(), LONG, &answered(2, &[])),
            (2, 1)
        );
        // No wait configured: no waiting.
        assert_eq!(
            round(
                append(None, 1),
                vec![],
                late_one(),
                Duration::ZERO,
                &answered(5, &[])
            ),
            (1, 1)
        );
    }

    fn late_one() -> Vec<Request> {
        vec![append(None, 1)]
    }

    #[test]
    fn a_round_does_not_wait_past_the_event_cap_or_beside_a_write_job() {
        let five = answered(5, &[]);
        // A full first request: nothing more, not even after waiting.
        let first = append(None, MAX_EVENTS_PER_COMMIT);
        assert_eq!(round(first, vec![], late_one(), LONG, &five), (1, 1));
        // Reaching the cap while waiting ends the wait.
        let first = append(None, MAX_EVENTS_PER_COMMIT - 1);
        let late = vec![append(None, 1), append(None, 1)];
        assert_eq!(round(first, vec![], late, LONG, &five), (2, 1));
        // A write job in the round (first or queued): no wait.
        assert_eq!(
            round(exec(), vec![append(None, 1)], late_one(), LONG, &five),
            (2, 1)
        );
        assert_eq!(
            round(append(None, 1), vec![exec()], late_one(), LONG, &five),
            (2, 1)
        );
        // A write job arriving while waiting ends the wait after it.
        let late = vec![append(None, 1), exec(), append(None, 1)];
        assert_eq!(round(append(None, 1), vec![], late, LONG, &five), (3, 1));
    }

    #[test]
    fn the_wait_is_at_most_an_eighth_of_the_last_commit() {
        let wait = Duration::from_micros(250);
        assert_eq!(linger(wait, None), wait, "before any commit");
        assert_eq!(
            linger(wait, Some(Duration::from_micros(240))),
            Duration::from_micros(30)
        );
        assert_eq!(linger(wait, Some(Duration::from_millis(8))), wait);
        assert_eq!(
            linger(wait, Some(Duration::from_millis(2))),
            wait,
            "exactly 2 ms / 8"
        );
        assert_eq!(
            linger(Duration::ZERO, Some(Duration::from_secs(1))),
            Duration::ZERO
        );
    }
}
