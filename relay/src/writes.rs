//! The write path: one sequencer thread decides, in arrival order, whether each event
//! is accepted (`AccessPolicy::check_write`) and hands accepted events to the store's
//! writer; one acknowledger thread waits for each durable commit, answers `OK`, updates
//! the state index and wakes the matching subscribers.
//!
//! Posts (anything that does not change a group's state) are checked against the
//! current state and submitted in batches without waiting, so many commits are in
//! flight and the store commits them together (group commit). Moderation and join/leave
//! requests change what later checks see, so the sequencer waits for each one to be
//! durable, then appends the relay's follow-ups through the same log — a 9000 for an
//! accepted 9021, a 9001 for a 9022, and the regenerated 39000–39003 — before it
//! answers and decides the next event.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use highwater_store::{AppendOutcome, EventRef, Prepared, PreparedEvent, StoreError, Ticket};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Kind, Tag, Timestamp};
use tokio::sync::oneshot;

use crate::shared::Shared;

/// The answer to one `EVENT`: accepted or not, and the NIP-01 `OK` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) accepted: bool,
    pub(crate) message: String,
}

impl Reply {
    fn refused(message: impl Into<String>) -> Self {
        Self {
            accepted: false,
            message: message.into(),
        }
    }
}

/// An event from a client, validated and encoded, waiting for its decision.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) event: Event,
    pub(crate) prepared: PreparedEvent,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// A submitted batch on its way to the acknowledger.
struct Pending {
    ticket: Result<Ticket, StoreError>,
    events: Vec<Event>,
    replies: Vec<Option<oneshot::Sender<Reply>>>,
    /// For the sequencer when it waits for this batch (moderation, follow-ups).
    done: Option<Sender<Result<Vec<AppendOutcome>, String>>>,
}

/// Most events the sequencer takes from its queue in one round.
const ROUND: usize = 4_096;

/// Starts the two threads; returns the sender clients' jobs go to.
pub(crate) fn start(
    shared: &Arc<Shared>,
) -> Result<(Sender<Job>, Vec<std::thread::JoinHandle<()>>), std::io::Error> {
    let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(65_536);
    let (acks, ack_rx) = crossbeam_channel::bounded::<Pending>(1_024);
    let s = shared.clone();
    let sequencer = std::thread::Builder::new()
        .name("relay-sequencer".into())
        .spawn(move || sequence(&s, &job_rx, &acks))?;
    let s = shared.clone();
    let acker = std::thread::Builder::new()
        .name("relay-acks".into())
        .spawn(move || acknowledge(&s, &ack_rx))?;
    Ok((jobs, vec![sequencer, acker]))
}

/// Kinds that change a group's state or hide events: decided one at a time.
fn is_moderation(kind: u16) -> bool {
    (9000..=9030).contains(&kind) || (39_000..=39_009).contains(&kind)
}

/// Kinds after which the relay regenerates the group's state events.
fn changes_state(kind: u16) -> bool {
    [9000, 9001, 9002, 9003, 9007, 9008, 9021, 9022].contains(&kind)
}

fn sequence(shared: &Arc<Shared>, jobs: &Receiver<Job>, acks: &Sender<Pending>) {
    while let Ok(first) = jobs.recv() {
        let mut round = vec![first];
        round.extend(jobs.try_iter().take(ROUND - 1));
        let mut batch: Vec<Job> = Vec::new();
        for job in round {
            let kind = job.event.kind.as_u16();
            if is_moderation(kind) {
                submit(shared, acks, std::mem::take(&mut batch), None);
                moderate(shared, acks, job);
                continue;
            }
            match shared.policy.check_write(&job.event) {
                Ok(()) => batch.push(job),
                Err(rejection) => {
                    let _ = job.reply.send(Reply::refused(rejection.to_string()));
                }
            }
        }
        submit(shared, acks, batch, None);
    }
}

/// Submits client jobs to the store without waiting.
fn submit(
    shared: &Shared,
    acks: &Sender<Pending>,
    batch: Vec<Job>,
    done: Option<Sender<Result<Vec<AppendOutcome>, String>>>,
) {
    if batch.is_empty() {
        return;
    }
    let mut prepared = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        prepared.push(job.prepared);
        events.push(job.event);
        replies.push(Some(job.reply));
    }
    let pending = Pending {
        ticket: shared.store.submit(prepared),
        events,
        replies,
        done,
    };
    if let Err(crossbeam_channel::SendError(pending)) = acks.send(pending) {
        fail(pending, "error: the relay is shutting down");
    }
}

fn fail(pending: Pending, message: &str) {
    for reply in pending.replies.into_iter().flatten() {
        let _ = reply.send(Reply::refused(message));
    }
    if let Some(done) = pending.done {
        let _ = done.send(Err(message.to_owned()));
    }
}

/// Decides one moderation event, waits for it, and appends the relay's follow-ups.
fn moderate(shared: &Arc<Shared>, acks: &Sender<Pending>, job: Job) {
    if let Err(rejection) = shared.policy.check_write(&job.event) {
        let _ = job.reply.send(Reply::refused(rejection.to_string()));
        return;
    }
    let event = job.event.clone();
    let (done, wait) = crossbeam_channel::bounded(1);
    // The client's reply waits for the follow-ups, so take it out of the batch.
    let (inner_reply, inner_wait) = oneshot::channel();
    let reply = job.reply;
    submit(
        shared,
        acks,
        vec![Job {
            event: job.event,
            prepared: job.prepared,
            reply: inner_reply,
        }],
        Some(done),
    );
    let outcome = wait
        .recv()
        .unwrap_or_else(|_| Err("error: relay stopped".into()));
    let answer = inner_wait
        .blocking_recv()
        .unwrap_or_else(|_| Reply::refused("error: relay stopped"));
    match outcome {
        Ok(outcomes) if matches!(outcomes.first(), Some(AppendOutcome::Appended(_))) => {
            if let Err(e) = follow_up(shared, acks, &event) {
                tracing::error!(error = %e, "appending the relay's follow-up events failed");
            }
        }
        _ => {}
    }
    let _ = reply.send(answer);
}

/// The relay's own events after an accepted moderation event.
fn follow_up(shared: &Arc<Shared>, acks: &Sender<Pending>, event: &Event) -> Result<(), String> {
    let kind = event.kind.as_u16();
    let Some(group) = crate::hub::group_of(event).map(str::to_owned) else {
        return Ok(());
    };
    let keys = &shared.keys;
    let h = Tag::parse(["h", group.as_str()]).map_err(|e| e.to_string())?;
    let p = Tag::parse(["p", event.pubkey.to_hex().as_str()]).map_err(|e| e.to_string())?;
    let answer = match kind {
        9021 => Some(Kind::GroupPutUser),
        9022 => Some(Kind::GroupRemoveUser),
        _ => None,
    };
    if let Some(k) = answer {
        let signed = EventBuilder::new(k, "")
            .tags([h, p])
            .finalize(keys)
            .map_err(|e| e.to_string())?;
        append_own(shared, acks, vec![signed])?;
    }
    if changes_state(kind) {
        let previous = shared.index.group(&group).map_or(0, |s| s.created_at);
        let now = Timestamp::now().as_secs().max(previous + 1);
        let rendered = shared
            .policy
            .groups()
            .render_signed(&group, keys, Timestamp::from_secs(now))
            .map_err(|e| e.to_string())?;
        append_own(shared, acks, rendered)?;
    }
    Ok(())
}

/// Appends relay-signed events through the same log and waits for them.
fn append_own(shared: &Shared, acks: &Sender<Pending>, events: Vec<Event>) -> Result<(), String> {
    let mut prepared = Vec::with_capacity(events.len());
    let mut kept = Vec::with_capacity(events.len());
    for event in events {
        match shared.store.prepare(&event).map_err(|e| e.to_string())? {
            Prepared::Ready(p) => {
                prepared.push(p);
                kept.push(event);
            }
            Prepared::Duplicate(_) => {}
        }
    }
    if kept.is_empty() {
        return Ok(());
    }
    let (done, wait) = crossbeam_channel::bounded(1);
    let replies = kept.iter().map(|_| None).collect();
    acks.send(Pending {
        ticket: shared.store.submit(prepared),
        events: kept,
        replies,
        done: Some(done),
    })
    .map_err(|_| "the relay is shutting down".to_owned())?;
    wait.recv()
        .map_err(|_| "the relay is shutting down".to_owned())?
        .map(|_| ())
}

fn acknowledge(shared: &Arc<Shared>, pending: &Receiver<Pending>) {
    for p in pending {
        let result = p.ticket.and_then(Ticket::wait);
        match result {
            Ok(outcomes) => {
                let fresh: Vec<(u64, Event)> = p
                    .events
                    .into_iter()
                    .zip(&outcomes)
                    .filter_map(|(event, outcome)| match *outcome {
                        AppendOutcome::Appended(seq) => Some((seq, event)),
                        AppendOutcome::Duplicate(_) => None,
                    })
                    .collect();
                for (seq, event) in &fresh {
                    observe(shared, *seq, event);
                }
                // Subscribers get the event before its author gets `OK`: a client that
                // subscribes after its `OK` finds the event stored, not twice.
                shared.hub.broadcast(shared, &fresh);
                for (reply, outcome) in p.replies.into_iter().zip(&outcomes) {
                    let message = match outcome {
                        AppendOutcome::Appended(_) => String::new(),
                        AppendOutcome::Duplicate(_) => "duplicate: already have this event".into(),
                    };
                    if let Some(reply) = reply {
                        let _ = reply.send(Reply {
                            accepted: true,
                            message,
                        });
                    }
                }
                if let Some(done) = p.done {
                    let _ = done.send(Ok(outcomes));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "a batch could not be stored");
                let message = format!("error: could not store the event: {error}");
                fail(
                    Pending {
                        ticket: Err(StoreError::WriterGone),
                        ..p
                    },
                    &message,
                );
            }
        }
    }
}

/// Advances the state index with a committed event (read back as the log stores it).
fn observe(shared: &Shared, seq: u64, event: &Event) {
    let kind = event.kind.as_u16();
    if kind == crate::index::DELETE_EVENT
        || kind == crate::index::DELETE_GROUP
        || crate::index::is_state_kind(kind)
    {
        let _ = shared
            .store
            .with_event(seq, |e: EventRef<'_>| shared.index.observe(seq, e));
    }
}
