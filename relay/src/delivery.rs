//! The live feed's work (its position is `feed.rs`'s [`Feed`], held in the shared
//! state): [`Feed::deliver`] hands committed events, in log order and once, to the
//! live subscriptions and to replicas' live log streams, with the re-rendered state
//! events of every group they changed; [`Feed::follow`] is the follower thread that
//! delivers other processes' commits.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highwater_store::StoreError;
use nostr::prelude::Event;

use crate::feed::Feed;
use crate::shared::Shared;

/// Most events read back from the log and delivered under one hold of the lock.
const CHUNK: usize = 1_024;
/// How often the follower looks for other processes' commits.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

impl Feed {
    /// Delivers everything committed up to `to`: `own` (this relay's events, by
    /// sequence number) as they are, anything else read back from the log.
    pub(crate) fn deliver(
        &self,
        shared: &Shared,
        own: Vec<(u64, Event)>,
        to: u64,
    ) -> Result<(), StoreError> {
        let mut delivered = self.hold();
        if to <= *delivered {
            return Ok(());
        }
        let mut own: HashMap<u64, Event> = own.into_iter().collect();
        while *delivered < to {
            let from = *delivered + 1;
            let mut chunk: Vec<(u64, Event)> = Vec::new();
            let contiguous = (from..=to).take(CHUNK).all(|seq| own.contains_key(&seq));
            if contiguous {
                let last = to.min(from + CHUNK as u64 - 1);
                chunk.extend((from..=last).filter_map(|seq| own.remove(&seq).map(|e| (seq, e))));
            } else {
                let mut failed = None;
                shared.store.scan(from, |seq, event| {
                    if seq > to || chunk.len() == CHUNK {
                        return ControlFlow::Break(());
                    }
                    match own.remove(&seq).map_or_else(|| event.to_event(seq), Ok) {
                        Ok(event) => chunk.push((seq, event)),
                        Err(error) => {
                            failed = Some(error);
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                })?;
                if let Some(error) = failed {
                    return Err(error);
                }
            }
            // A chunk short of `CHUNK` read everything up to `to`: the sequence numbers
            // it lacks are holes a compaction left (records removed before the feed
            // reached them), never records still to come, since `to` is committed.
            let last = if chunk.len() < CHUNK {
                to
            } else {
                chunk.last().map_or(to, |&(seq, _)| seq)
            };
            if !chunk.is_empty() {
                shared.hub.broadcast(shared, &chunk);
                shared.log_streams.deliver(&chunk);
                republish(shared, &chunk);
            }
            *delivered = last;
        }
        Ok(())
    }

    /// Delivers whatever other processes committed, until the relay stops.
    pub(crate) fn follow(shared: &Arc<Shared>) {
        while !shared.stopping.load(Ordering::Acquire) {
            std::thread::sleep(FOLLOW_EVERY);
            let head = shared.store.head();
            if let Err(error) = shared.feed.deliver(shared, Vec::new(), head) {
                tracing::warn!(%error, "delivering other processes' commits failed");
            }
        }
    }
}

/// Renders the state events of the groups `events` changed — each event's group, and
/// the groups its old and new 39000 name as parent or children (a re-parented child's
/// old and new parent, a deleted parent's children) — and delivers those that changed.
fn republish(shared: &Shared, events: &[(u64, Event)]) {
    // A replica signs nothing: its renderings never change a signed event (it serves its
    // primary's, announced by the replica's follower when its own rendering says the
    // same), so rendering here would only cost it (most of its CPU while catching up).
    if shared.options.replica_of.is_some() {
        return;
    }
    let changed: BTreeSet<&str> = events
        .iter()
        .filter(|(_, e)| {
            shared
                .policy
                .groups()
                .kinds()
                .changes_group(e.kind.as_u16())
        })
        .filter_map(|(_, e)| crate::hub::group_of(e))
        .collect();
    if changed.is_empty() {
        return;
    }
    let mut linked = BTreeSet::new();
    let mut fresh = Vec::new();
    let groups = shared.policy.groups();
    for &group in &changed {
        linked.extend(shared.rendered.linked(group));
        match shared.rendered.current(groups, &shared.keys, group, &[]) {
            Ok(current) => {
                linked.extend(crate::state::links(&current.events));
                fresh.extend(current.changed);
            }
            Err(error) => tracing::warn!(group, %error, "rendering a group's state failed"),
        }
    }
    for group in linked.iter().filter(|g| !changed.contains(g.as_str())) {
        match shared.rendered.current(groups, &shared.keys, group, &[]) {
            Ok(current) => fresh.extend(current.changed),
            Err(error) => tracing::warn!(group, %error, "rendering a group's state failed"),
        }
    }
    if !fresh.is_empty() {
        let fresh: Vec<(u64, Event)> = fresh.into_iter().map(|e| (0, e)).collect();
        shared.hub.broadcast(shared, &fresh);
    }
}
