//! The write path: one sequencer thread decides, in arrival order, whether each event
//! is accepted (`AccessPolicy::check_write`) and hands accepted events to the store's
//! writer; one acknowledger thread waits for each durable commit, answers `OK`, takes
//! note of deletions and wakes the matching subscribers, with the state events of
//! every group the commit changed, rendered anew.
//!
//! Posts (anything that does not change a group's state) are checked against the
//! current state and submitted in batches without waiting, so many commits are in
//! flight and the store commits them together (group commit). Moderation and join/leave
//! requests change what later checks see, so the sequencer waits for each one to be
//! durable before it decides the next event. The relay's answer to a join or leave
//! request (a 9000 for an accepted 9021, a 9001 for a 9022) is submitted with the
//! request, in one transaction: a crash leaves both or neither.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use highwater_store::{AppendOutcome, Prepared, PreparedEvent, StoreError, Ticket};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Kind, Tag, Timestamp};
use tokio::sync::oneshot;

use highwater_projections::MANAGEMENT_KIND;

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
    /// When it was handed to the store's writer (for the commit-latency histogram).
    submitted: std::time::Instant,
    events: Vec<Event>,
    replies: Vec<Option<oneshot::Sender<Reply>>>,
    /// For the sequencer when it waits for this batch (moderation, follow-ups).
    done: Option<Sender<Result<Vec<AppendOutcome>, String>>>,
}

/// Most events the sequencer takes from its queue in one round.
const ROUND: usize = 4_096;

/// Starts the write path's two threads and the live feed's follower; returns the
/// sender clients' jobs go to.
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
    let s = shared.clone();
    let follower = std::thread::Builder::new()
        .name("relay-feed".into())
        .spawn(move || crate::feed::Feed::follow(&s))?;
    Ok((jobs, vec![sequencer, acker, follower]))
}

/// Kinds that change a group's state or hide events: decided one at a time.
pub(crate) fn is_moderation(kind: u16) -> bool {
    (9000..=9030).contains(&kind) || (39_000..=39_009).contains(&kind)
}

fn sequence(shared: &Arc<Shared>, jobs: &Receiver<Job>, acks: &Sender<Pending>) {
    while let Ok(first) = jobs.recv() {
        let mut round = vec![first];
        round.extend(jobs.try_iter().take(ROUND - 1));
        let mut batch: Vec<Job> = Vec::new();
        for job in round {
            if let Some(refusal) =
                managed(shared, &job.event).or_else(|| late_publication(shared, &job.event))
            {
                let _ = job.reply.send(refusal);
                continue;
            }
            let kind = job.event.kind.as_u16();
            if crate::nip43::is_request(kind) {
                // A join or leave changes what later events are allowed: decided alone.
                submit(shared, acks, std::mem::take(&mut batch), None);
                relay_access(shared, acks, job);
                continue;
            }
            let refusal = crate::nip43::relay_kind_refusal(shared, &job.event).or_else(|| {
                (kind == 9007)
                    .then(|| {
                        crate::nip43::members_only_refusal(
                            shared,
                            &job.event.pubkey,
                            "create groups",
                        )
                    })
                    .flatten()
            });
            if let Some(refusal) = refusal {
                let _ = job.reply.send(Reply::refused(refusal));
                continue;
            }
            if kind == MANAGEMENT_KIND {
                // The relay's own NIP-86 record (`managed` refused anyone else's):
                // decided alone, like moderation, so later events see it.
                submit(shared, acks, std::mem::take(&mut batch), None);
                let (done, wait) = crossbeam_channel::bounded(1);
                submit(shared, acks, vec![job], Some(done));
                let _ = wait.recv();
                continue;
            }
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

/// The refusal of an event by NIP-86's management state (the `management`
/// projection, current as of the log head): a banned pubkey's or a banned event
/// (`blocked:`), an author outside a non-empty allow list (`restricted:`; relay admins
/// are never outside it), and the relay's management kind from anyone but the relay.
/// The relay's own events are never refused.
fn managed(shared: &Shared, event: &Event) -> Option<Reply> {
    if event.pubkey == shared.keys.public_key() {
        return None;
    }
    if event.kind.as_u16() == MANAGEMENT_KIND {
        return Some(Reply::refused(format!(
            "restricted: kind {MANAGEMENT_KIND} is the relay's own record of NIP-86 management"
        )));
    }
    let author = event.pubkey.to_bytes();
    let id = event.id.to_bytes();
    let admin = shared.policy.policy().relay_admins.contains(&event.pubkey);
    let verdict = shared.policy.groups().management_projection().read(|m| {
        if m.is_banned(&author) {
            Some("blocked: this pubkey is banned from the relay")
        } else if m.is_banned_event(&id) {
            Some("blocked: this event is banned from the relay")
        } else if !admin && m.is_outside_allow_list(&author) {
            Some("restricted: this relay accepts events only from pubkeys on its allow list")
        } else {
            None
        }
    });
    match verdict {
        Ok(refusal) => refusal.map(Reply::refused),
        Err(error) => {
            tracing::error!(%error, "the management state cannot be read; refusing the event");
            Some(Reply::refused(
                "error: the relay cannot read its ban list; try again later",
            ))
        }
    }
}

/// The refusal of a group event dated more than `late_publication_secs` before the
/// relay's clock (NIP-29 "Relays should prevent late publication"). Decided here, by
/// the relay, because the access policy and the folds never read a clock; the relay's
/// own answers and other processes' writes (imports) are not checked.
fn late_publication(shared: &Shared, event: &Event) -> Option<Reply> {
    let window = shared.options.late_publication_secs?;
    crate::hub::group_of(event)?;
    let oldest = Timestamp::now().as_secs().saturating_sub(window);
    (event.created_at.as_secs() < oldest).then(|| {
        Reply::refused(format!(
            "invalid: late publication: created_at is more than {window} seconds ago"
        ))
    })
}

/// Decides a NIP-43 join or leave request: the request itself is ephemeral and never
/// stored; an accepted one is answered once the relay's 8000/8001 and its new 13534
/// list are durable, so later decisions see the new membership.
fn relay_access(shared: &Shared, acks: &Sender<Pending>, job: Job) {
    let decision = crate::nip43::decide(shared, &job.event);
    let mut jobs = Vec::new();
    for event in decision.writes {
        match shared.store.prepare(&event) {
            Ok(Prepared::Ready(prepared)) => jobs.push(Job {
                event,
                prepared,
                reply: oneshot::channel().0,
            }),
            Ok(Prepared::Duplicate(_)) => {}
            Err(error) => {
                let _ = job.reply.send(Reply::refused(format!("error: {error}")));
                return;
            }
        }
    }
    if !jobs.is_empty() {
        let (done, wait) = crossbeam_channel::bounded(1);
        submit(shared, acks, jobs, Some(done));
        let failed = match wait.recv() {
            Ok(Ok(_)) => None,
            Ok(Err(message)) => Some(message),
            Err(_) => Some("error: the relay is shutting down".to_owned()),
        };
        if let Some(message) = failed {
            let _ = job.reply.send(Reply::refused(message));
            return;
        }
    }
    let _ = job.reply.send(Reply {
        accepted: decision.accepted,
        message: decision.message,
    });
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
        submitted: std::time::Instant::now(),
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

/// Decides one moderation event, with the relay's answer to it, and waits for both.
fn moderate(shared: &Arc<Shared>, acks: &Sender<Pending>, job: Job) {
    if let Err(rejection) = shared.policy.check_write(&job.event) {
        let _ = job.reply.send(Reply::refused(rejection.to_string()));
        return;
    }
    let answer = match answer(shared, &job.event) {
        Ok(answer) => answer,
        Err(message) => {
            tracing::error!(error = %message, "the relay could not sign its answer");
            let _ = job.reply.send(Reply::refused(format!("error: {message}")));
            return;
        }
    };
    let (done, wait) = crossbeam_channel::bounded(1);
    let mut jobs = vec![job];
    jobs.extend(answer);
    submit(shared, acks, jobs, Some(done));
    // The sequencer decides the next event against the state this one made.
    let _ = wait.recv();
}

/// The relay's own event answering an accepted `event` (a 9000 for a 9021, a 9001 for a
/// 9022), ready to be committed with it.
fn answer(shared: &Shared, event: &Event) -> Result<Option<Job>, String> {
    let kind = match event.kind.as_u16() {
        // Without `answer_joins` (zooid's `auto_join = false`), a join request waits
        // for a moderator's 9000.
        9021 if shared.policy.policy().answer_joins => Kind::GroupPutUser,
        9022 => Kind::GroupRemoveUser,
        _ => return Ok(None),
    };
    let Some(group) = crate::hub::group_of(event) else {
        return Ok(None);
    };
    let h = Tag::parse(["h", group]).map_err(|e| e.to_string())?;
    let p = Tag::parse(["p", event.pubkey.to_hex().as_str()]).map_err(|e| e.to_string())?;
    let signed = EventBuilder::new(kind, "")
        .tags([h, p])
        .finalize(&shared.keys)
        .map_err(|e| e.to_string())?;
    match shared.store.prepare(&signed).map_err(|e| e.to_string())? {
        Prepared::Ready(prepared) => Ok(Some(Job {
            event: signed,
            prepared,
            // Nobody waits for the relay's own event but the sequencer.
            reply: oneshot::channel().0,
        })),
        Prepared::Duplicate(_) => Ok(None),
    }
}

fn acknowledge(shared: &Arc<Shared>, pending: &Receiver<Pending>) {
    for p in pending {
        let result = p.ticket.and_then(Ticket::wait);
        shared
            .metrics
            .observe_commit(p.submitted.elapsed().as_secs_f64());
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
                // Subscribers get the event (and the state it changed) before its author
                // gets `OK`: a client that subscribes after its `OK` finds the event
                // stored, not twice.
                if let Some(&(to, _)) = fresh.last()
                    && let Err(error) = shared.feed.deliver(shared, fresh, to)
                {
                    tracing::error!(%error, "delivering committed events to subscribers failed");
                }
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
                if matches!(error, StoreError::WriterGone) {
                    shared
                        .writer_failed
                        .store(true, std::sync::atomic::Ordering::Release);
                }
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
