//! The write path: one sequencer thread decides, in arrival order, whether each event
//! is accepted, through the library's [`Sequencer`] (the decisions `highwater import`
//! makes), and hands accepted events to the store's writer; one acknowledger thread
//! waits for each durable commit, answers `OK`, and wakes the matching subscribers
//! with the state events of every group the commit changed, rendered anew.
//!
//! Events are decided against the committed state plus the sequencer's overlay of what
//! is accepted and not yet committed (moderation folded into a copy of its group's
//! state), and submitted in batches through one ordered pipeline without waiting, so
//! many commits are in flight and the store commits them together (group commit).
//! Only a relay-wide change (the relay's NIP-43 and NIP-86 records) holds back the
//! decisions after it: the sequencer submits what is queued and waits until the
//! acknowledger has seen it committed. A failed batch fails every later one with it;
//! the sequencer then drops its overlay and decides again from the committed state.
//! What the relay adds is its own: refusals by
//! its ban list, NIP-43 membership and clock, and its answers — a 9000 for an accepted
//! 9021, a 9001 for a 9022, the 8000/13534 for a NIP-43 join — queued in the same
//! batch as the request, so one transaction holds both: a crash leaves both or neither.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use highwater_projections::{AccessPolicy, MANAGEMENT_KIND, Sequencer, Verdict};
use highwater_store::{AppendOutcome, Prepared, PreparedEvent, StoreError, Ticket};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Kind, Tag, Timestamp};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::error::RelayError;
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

    /// NIP-01's answer to an event the relay already has.
    fn duplicate() -> Self {
        Self {
            accepted: true,
            message: "duplicate: already have this event".into(),
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

/// A batch handed to the store, on its way to the acknowledger.
struct Submitted {
    /// Its number in the sequencer's order.
    number: u64,
    ticket: Result<Ticket, StoreError>,
    /// When it was handed to the store's writer (for the commit-latency histogram).
    at: std::time::Instant,
    events: Vec<Event>,
    /// Each event's author waiting for `OK` (none for the relay's own events).
    replies: Vec<Option<oneshot::Sender<Reply>>>,
    /// Answers to requests that are not stored themselves (NIP-43 joins and leaves),
    /// sent once the batch is durable.
    answers: Vec<(oneshot::Sender<Reply>, Reply)>,
}

/// The newest batch the acknowledger has seen committed (or failed), for the
/// sequencer when it waits.
#[derive(Debug, Default)]
struct Acknowledged {
    batch: Mutex<u64>,
    /// The newest batch that failed (0: none).
    failed: std::sync::atomic::AtomicU64,
    /// Set when the acknowledger's thread ends (however it ends).
    stopped: std::sync::atomic::AtomicBool,
    changed: Condvar,
}

impl Acknowledged {
    fn get(&self) -> u64 {
        *self.batch.lock()
    }

    fn set(&self, batch: u64) {
        *self.batch.lock() = batch;
        self.changed.notify_all();
    }

    /// Records that `batch` failed, before it is [`Acknowledged::set`].
    fn set_failed(&self, batch: u64) {
        self.failed
            .store(batch, std::sync::atomic::Ordering::Release);
    }

    fn failed(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until `batch` is acknowledged; false if the acknowledger stopped first.
    fn wait_for(&self, batch: u64) -> bool {
        let mut at = self.batch.lock();
        while *at < batch {
            if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
                return false;
            }
            self.changed.wait(&mut at);
        }
        true
    }
}

/// Marks the acknowledger stopped when its thread ends, panics included.
struct StopGuard<'a>(&'a Acknowledged);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let _held = self.0.batch.lock();
        self.0
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.0.changed.notify_all();
    }
}

/// Most events the sequencer takes from its queue in one round.
const ROUND: usize = 4_096;

/// Starts the write path's two threads and the live feed's follower; returns the
/// sender clients' jobs go to.
pub(crate) fn start(
    shared: &Arc<Shared>,
) -> Result<(Sender<Job>, Vec<std::thread::JoinHandle<()>>), std::io::Error> {
    let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(65_536);
    let (acks, ack_rx) = crossbeam_channel::bounded::<Submitted>(1_024);
    let acknowledged = Arc::new(Acknowledged::default());
    let s = shared.clone();
    let a = acknowledged.clone();
    let sequencer = std::thread::Builder::new()
        .name("relay-sequencer".into())
        .spawn(move || Writer::new(&s, acks, a).run(&job_rx))?;
    let s = shared.clone();
    let acker = std::thread::Builder::new()
        .name("relay-acks".into())
        .spawn(move || acknowledge(&s, &ack_rx, &acknowledged))?;
    let s = shared.clone();
    let follower = std::thread::Builder::new()
        .name("relay-feed".into())
        .spawn(move || crate::feed::Feed::follow(&s))?;
    Ok((jobs, vec![sequencer, acker, follower]))
}

/// The sequencer thread's state: the decisions in flight and the batch being filled.
struct Writer<'a> {
    shared: &'a Arc<Shared>,
    acks: Sender<Submitted>,
    acknowledged: Arc<Acknowledged>,
    sequencer: Sequencer,
    /// The ordered submitter: once a batch fails, every later batch of it fails too,
    /// so no decision made on top of a failed change is committed.
    pipeline: highwater_store::Pipeline,
    /// The newest failed batch the sequencer has been told of.
    failure_seen: u64,
    /// Decided, not yet submitted, with their authors' replies.
    queued: Vec<(PreparedEvent, Event, Option<oneshot::Sender<Reply>>)>,
    answers: Vec<(oneshot::Sender<Reply>, Reply)>,
    /// The number of the newest batch submitted.
    submitted: u64,
}

impl<'a> Writer<'a> {
    fn new(
        shared: &'a Arc<Shared>,
        acks: Sender<Submitted>,
        acknowledged: Arc<Acknowledged>,
    ) -> Self {
        Self {
            shared,
            acks,
            acknowledged,
            sequencer: Sequencer::new(),
            pipeline: shared.store.pipeline(),
            failure_seen: 0,
            queued: Vec::new(),
            answers: Vec::new(),
            submitted: 0,
        }
    }

    fn run(mut self, jobs: &Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            self.catch_up();
            self.decide(first);
            for job in jobs.try_iter().take(ROUND - 1) {
                self.decide(job);
            }
            self.submit();
        }
    }

    /// Takes note of the batches acknowledged so far, without waiting — unless one
    /// failed: then every batch submitted after it fails with it (one ordered
    /// pipeline); once they are all acknowledged, decisions start again from the
    /// committed state, on a new pipeline. (Nothing is queued when this runs.)
    fn catch_up(&mut self) {
        let failed = self.acknowledged.failed();
        if failed > self.failure_seen {
            if !self.acknowledged.wait_for(self.submitted) {
                tracing::error!("the relay's acknowledger stopped");
            }
            self.failure_seen = failed;
            self.sequencer.failed();
            self.pipeline = self.shared.store.pipeline();
        }
        let acked = self.acknowledged.get();
        self.sequencer.acknowledged(acked);
        // Each job's duplicate check read the index before it was decided; the store
        // finds the rest at commit. What the sequencer remembers of ids is only for
        // `previous` references, which need nothing acknowledged.
        self.sequencer.index_read_at(acked);
    }

    /// Submits what is queued and waits until everything submitted is acknowledged.
    fn flush(&mut self) {
        self.submit();
        if !self.acknowledged.wait_for(self.submitted) {
            tracing::error!(
                "the relay's acknowledger stopped; decisions continue on the committed state"
            );
        }
        self.catch_up();
    }

    fn decide(&mut self, job: Job) {
        let shared = self.shared;
        // A copy of a stored event is answered first, whatever else it would meet (the
        // connection validated it; the lookup is on this thread, off the runtime).
        match shared.store.seq_of(&job.event.id) {
            Ok(None) => {}
            Ok(Some(_)) => {
                let _ = job.reply.send(Reply::duplicate());
                return;
            }
            Err(error) => {
                let _ = job.reply.send(Reply::refused(format!("error: {error}")));
                return;
            }
        }
        if self.sequencer.must_wait() {
            self.flush();
        }
        if let Some(refusal) =
            managed(shared, &job.event).or_else(|| late_publication(shared, &job.event))
        {
            let _ = job.reply.send(refusal);
            return;
        }
        let kind = job.event.kind.as_u16();
        if crate::nip43::is_request(kind) {
            self.relay_access(job);
            return;
        }
        let refusal = crate::nip43::relay_kind_refusal(shared, &job.event).or_else(|| {
            (kind == 9007)
                .then(|| {
                    crate::nip43::members_only_refusal(shared, &job.event.pubkey, "create groups")
                })
                .flatten()
        });
        if let Some(refusal) = refusal {
            let _ = job.reply.send(Reply::refused(refusal));
            return;
        }
        let policy = shared.policy.access();
        if kind == MANAGEMENT_KIND {
            // The relay's own NIP-86 record (`managed` refused anyone else's).
            self.queue_own(&policy, job.event, job.prepared, Some(job.reply));
            return;
        }
        // The relay's answer is signed before the decision, so an accepted request is
        // never queued without it.
        let answer = match answer(shared, &job.event) {
            Ok(answer) => answer,
            Err(message) => {
                tracing::error!(error = %message, "the relay could not sign its answer");
                let _ = job.reply.send(Reply::refused(format!("error: {message}")));
                return;
            }
        };
        match self.sequencer.decide(&policy, &job.event, &job.prepared) {
            Verdict::Accepted => {
                self.queued.push((job.prepared, job.event, Some(job.reply)));
                if let Some((event, prepared)) = answer {
                    self.queue_own(&policy, event, prepared, None);
                }
            }
            // A copy of an event still in flight: the store finds it at commit, and
            // its author gets `OK` once the first copy is durable.
            Verdict::Duplicate => self.queued.push((job.prepared, job.event, Some(job.reply))),
            Verdict::Refused(rejection) => {
                let _ = job.reply.send(Reply::refused(rejection.to_string()));
            }
        }
    }

    /// Queues one of the relay's own events (decided by the relay itself) in the batch
    /// being filled.
    fn queue_own(
        &mut self,
        policy: &AccessPolicy,
        event: Event,
        prepared: PreparedEvent,
        reply: Option<oneshot::Sender<Reply>>,
    ) {
        self.sequencer.record(policy, &event, &prepared);
        self.queued.push((prepared, event, reply));
    }

    /// Decides a NIP-43 join or leave request: the request itself is ephemeral and
    /// never stored; an accepted one is answered once the relay's 8000/8001 and its new
    /// 13534 list are durable, committed in the batch being filled.
    fn relay_access(&mut self, job: Job) {
        let shared = self.shared;
        let decision = crate::nip43::decide(shared, &job.event);
        let mut own = Vec::new();
        for event in decision.writes {
            match shared.store.prepare(&event) {
                Ok(Prepared::Ready(prepared)) => own.push((event, prepared)),
                Ok(Prepared::Duplicate(_)) => {}
                Err(error) => {
                    let _ = job.reply.send(Reply::refused(format!("error: {error}")));
                    return;
                }
            }
        }
        let reply = Reply {
            accepted: decision.accepted,
            message: decision.message,
        };
        if own.is_empty() {
            let _ = job.reply.send(reply);
            return;
        }
        let policy = shared.policy.access();
        for (event, prepared) in own {
            self.queue_own(&policy, event, prepared, None);
        }
        self.answers.push((job.reply, reply));
    }

    /// Hands what is queued to the store without waiting.
    fn submit(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let mut prepared = Vec::with_capacity(self.queued.len());
        let mut events = Vec::with_capacity(self.queued.len());
        let mut replies = Vec::with_capacity(self.queued.len());
        for (p, event, reply) in self.queued.drain(..) {
            prepared.push(p);
            events.push(event);
            replies.push(reply);
        }
        let number = self.sequencer.sealed();
        self.submitted = number;
        let batch = Submitted {
            number,
            at: std::time::Instant::now(),
            ticket: self.pipeline.submit(prepared),
            events,
            replies,
            answers: std::mem::take(&mut self.answers),
        };
        if let Err(crossbeam_channel::SendError(batch)) = self.acks.send(batch) {
            let number = batch.number;
            fail(batch, "error: the relay is shutting down");
            self.acknowledged.set(number);
        }
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

fn fail(batch: Submitted, message: &str) {
    for reply in batch.replies.into_iter().flatten() {
        let _ = reply.send(Reply::refused(message));
    }
    for (reply, _) in batch.answers {
        let _ = reply.send(Reply::refused(message));
    }
}

/// The relay's own event answering an accepted `event` (a 9000 for a 9021, a 9001 for a
/// 9022), ready to be committed with it.
fn answer(shared: &Shared, event: &Event) -> Result<Option<(Event, PreparedEvent)>, RelayError> {
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
    let h = Tag::parse(["h", group]).map_err(RelayError::sign)?;
    let p = Tag::parse(["p", event.pubkey.to_hex().as_str()]).map_err(RelayError::sign)?;
    // The request's id makes each answer its own event: a second join by the same key
    // within a second (after a leave) would otherwise sign the first answer again, a
    // duplicate the store would not append.
    let e = Tag::parse(["e", event.id.to_hex().as_str()]).map_err(RelayError::sign)?;
    let signed = EventBuilder::new(kind, "")
        .tags([h, p, e])
        .finalize(&shared.keys)
        .map_err(RelayError::sign)?;
    match shared.store.prepare(&signed)? {
        Prepared::Ready(prepared) => Ok(Some((signed, prepared))),
        Prepared::Duplicate(_) => Ok(None),
    }
}

fn acknowledge(shared: &Arc<Shared>, batches: &Receiver<Submitted>, acknowledged: &Acknowledged) {
    let _stop = StopGuard(acknowledged);
    for batch in batches {
        let result = match batch.ticket {
            Ok(ticket) => ticket.wait(),
            Err(error) => Err(error),
        };
        shared
            .metrics
            .observe_commit(batch.at.elapsed().as_secs_f64());
        let batch = Submitted {
            ticket: Err(StoreError::WriterGone),
            ..batch
        };
        let number = batch.number;
        match result {
            Ok(outcomes) => {
                // Decisions waiting for this batch may go on: the state they read is
                // committed.
                acknowledged.set(number);
                let fresh: Vec<(u64, Event)> = batch
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
                for (reply, outcome) in batch.replies.into_iter().zip(&outcomes) {
                    let answer = match outcome {
                        AppendOutcome::Appended(_) => Reply {
                            accepted: true,
                            message: String::new(),
                        },
                        AppendOutcome::Duplicate(_) => Reply::duplicate(),
                    };
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                }
                for (reply, answer) in batch.answers {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                if matches!(error, StoreError::WriterGone) {
                    shared
                        .writer_failed
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                tracing::error!(error = %error, "a batch could not be stored");
                fail(batch, &format!("error: could not store the event: {error}"));
                // Nothing of it (nor of any later batch of the pipeline) was written:
                // the sequencer drops the decisions made on top of it.
                acknowledged.set_failed(number);
                acknowledged.set(number);
            }
        }
    }
}
