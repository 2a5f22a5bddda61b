//! The commit observer: folds each commit into loaded groups and relay-wide states,
//! asks the checkpoint worker for the checkpoints that became due, and queues the
//! commit for subscribers. It runs on the store's writer thread and never waits.

use std::sync::Arc;

use crossbeam_channel::Sender;
use highwater_store::{CommitObserver, Committed};
use parking_lot::Mutex;

use crate::checkpoints::CheckpointRequest;
use crate::registry::Projections;
use crate::subscribe::Channel;

/// Folds commits into loaded groups and feeds subscribers; runs on the writer thread.
pub(crate) struct Observer {
    pub(crate) projections: Projections,
    pub(crate) subscribers: Arc<Mutex<Vec<Arc<Channel>>>>,
    pub(crate) checkpoint_tx: Sender<CheckpointRequest>,
    pub(crate) checkpoint_every: u64,
}

impl CommitObserver for Observer {
    fn on_commit(&self, batch: &[Committed<'_>]) {
        let mut due = Vec::new();
        for (index, runtime) in self.projections.per_group.iter().enumerate() {
            runtime.on_commit(batch, self.checkpoint_every, &mut due);
            if !due.is_empty() {
                let _ = self
                    .checkpoint_tx
                    .send(CheckpointRequest::Due(index, std::mem::take(&mut due)));
            }
        }
        for (index, runtime) in self.projections.relay_wide.iter().enumerate() {
            if runtime.on_commit(batch, self.checkpoint_every) {
                let _ = self
                    .checkpoint_tx
                    .send(CheckpointRequest::RelayWideDue(index));
            }
        }
        let mut subscribers = self.subscribers.lock();
        if subscribers.is_empty() {
            return;
        }
        // Only (sequence number, group) is queued here: the subscriber reads the event
        // back on its own thread, so nothing is converted (or lost) on the writer.
        for c in batch {
            let group: Option<Arc<str>> = c.group.map(|(name, _)| Arc::from(name));
            subscribers.retain(|s| s.push(c.seq, group.as_ref()));
        }
    }
}
