//! The peer: nostr-lmdb, the LMDB event store of the rust-nostr project, used the way
//! a relay built on it would be — verify each event's signature, `save_event` it, and
//! at start-up query each group's moderation events and fold them. Only built with the
//! `peer` cargo feature; without it the peer rows are reported as skipped.

/// Why a peer row has no value in a build without the feature.
pub(super) const SKIPPED: &str = "skipped: built without --features peer";

/// Saves in flight in the concurrent peer import.
pub(super) const CONCURRENCY: usize = 256;

/// Saves in flight while filling the peer (untimed) with the rest of what the
/// membership row queries.
pub(super) const FILL: usize = 4_096;

/// Events the sequential peer import saves (each one is a durable commit).
pub(super) const SEQUENTIAL: usize = 500;

/// Events of the concurrent peer import that are timed: the first ones of the log.
/// nostr-lmdb writes eight indexes per event and slows down as they grow, so the full
/// log would take most of the run; the later events it gets are only those the
/// membership row queries, untimed.
pub(super) const TIMED: u64 = 100_000;

/// The moderation kinds a membership fold needs.
pub(super) const MEMBERSHIP_KINDS: [u16; 5] = [9000, 9001, 9002, 9007, 9008];

#[cfg(feature = "peer")]
pub(super) use imp::Peer;

/// Stand-in for the peer in a build without the `peer` feature: it cannot be made.
#[cfg(not(feature = "peer"))]
#[derive(Debug)]
pub(super) enum Peer {}

#[cfg(not(feature = "peer"))]
impl Peer {
    pub(super) fn import_concurrent(
        &mut self,
        _: Vec<nostr::prelude::Event>,
        _: usize,
    ) -> anyhow::Result<()> {
        match *self {}
    }
}

#[cfg(feature = "peer")]
mod imp {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result, bail};
    use nostr::prelude::{Event, Kind};
    use nostr_lmdb::NostrLmdb;
    use nostr_lmdb::prelude::{Filter, NostrDatabase, SingleLetterTag};
    use tokio::runtime::Runtime;
    use tokio::task::JoinSet;

    use super::{CONCURRENCY, MEMBERSHIP_KINDS};

    /// A nostr-lmdb database and the runtime that drives its async API.
    pub(in super::super) struct Peer {
        runtime: Runtime,
        db: Arc<NostrLmdb>,
    }

    impl std::fmt::Debug for Peer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Peer").finish_non_exhaustive()
        }
    }

    fn runtime() -> Result<Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime for nostr-lmdb")
    }

    async fn save(db: &NostrLmdb, event: &Event, verify: bool) -> Result<()> {
        if verify && !event.verify_signature() {
            bail!("bad signature on {}", event.id);
        }
        // Rejections (an older replaceable event, say) are answers, not failures.
        db.save_event(event)
            .await
            .context("nostr-lmdb save_event")?;
        Ok(())
    }

    impl Peer {
        pub(in super::super) fn open(dir: &Path) -> Result<Peer> {
            let runtime = runtime()?;
            let db = runtime
                .block_on(NostrLmdb::open(dir))
                .context("opening nostr-lmdb")?;
            Ok(Peer {
                runtime,
                db: Arc::new(db),
            })
        }

        /// Saves `events` with up to `in_flight` saves at a time (the store batches
        /// whatever is queued into one transaction); returns when all are saved. With
        /// [`CONCURRENCY`] it verifies each event first, as a relay does; with more it
        /// is only filling the database for the membership row, unverified.
        pub(in super::super) fn import_concurrent(
            &mut self,
            events: Vec<Event>,
            in_flight: usize,
        ) -> Result<()> {
            let db = self.db.clone();
            let verify = in_flight <= CONCURRENCY;
            self.runtime.block_on(async move {
                let mut saves = JoinSet::new();
                for event in events {
                    while saves.len() >= in_flight {
                        if let Some(done) = saves.join_next().await {
                            done.context("a save task")??;
                        }
                    }
                    let db = db.clone();
                    saves.spawn(async move { save(&db, &event, verify).await });
                }
                while let Some(done) = saves.join_next().await {
                    done.context("a save task")??;
                }
                Ok(())
            })
        }

        /// Verifies and saves `events` one after the other into a fresh database in
        /// `dir`. Returns the time it took.
        pub(in super::super) fn import_sequential(
            dir: &Path,
            events: &[Event],
        ) -> Result<Duration> {
            let runtime = runtime()?;
            runtime.block_on(async {
                let db = NostrLmdb::open(dir).await.context("opening nostr-lmdb")?;
                let started = Instant::now();
                for event in events {
                    save(&db, event, true).await?;
                }
                Ok(started.elapsed())
            })
        }

        /// The start-up of a relay on nostr-lmdb: for every group, query its moderation
        /// events by `h` tag and fold them into a member set (oldest first, as such relays
        /// do). Returns the time, the members in all, and the events folded.
        pub(in super::super) fn membership_rebuild(
            &self,
            groups: &[Arc<str>],
        ) -> Result<(Duration, u64, u64)> {
            let db = self.db.clone();
            self.runtime.block_on(async move {
                let started = Instant::now();
                let (mut members, mut folded) = (0u64, 0u64);
                for group in groups {
                    let filter = Filter::new()
                        .kinds(MEMBERSHIP_KINDS.map(Kind::from))
                        .custom_tag(SingleLetterTag::LOWERCASE_H, group.as_ref());
                    let events: BTreeSet<Event> =
                        db.query(filter).await.context("nostr-lmdb query")?;
                    folded += events.len() as u64;
                    members += fold_members(&events) as u64;
                }
                Ok((started.elapsed(), members, folded))
            })
        }
    }

    /// The member set of a group from its moderation events. `BTreeSet<Event>` is
    /// ordered newest first, so it is walked backwards.
    fn fold_members(events: &BTreeSet<Event>) -> usize {
        let mut members: BTreeSet<[u8; 32]> = BTreeSet::new();
        for event in events.iter().rev() {
            match event.kind.as_u16() {
                9007 => {
                    members.clear();
                    members.insert(event.pubkey.to_bytes());
                }
                9008 => members.clear(),
                kind @ (9000 | 9001) => {
                    for tag in event.tags.iter().map(nostr::prelude::Tag::as_slice) {
                        let mut key = [0u8; 32];
                        let parsed = match tag {
                            [name, value, ..] if name == "p" => {
                                hex::decode_to_slice(value, &mut key).is_ok()
                            }
                            _ => false,
                        };
                        match (parsed, kind) {
                            (false, _) => {}
                            (true, 9000) => {
                                members.insert(key);
                            }
                            (true, _) => {
                                members.remove(&key);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        members.len()
    }
}
