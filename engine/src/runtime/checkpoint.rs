//! Checkpoints of loaded groups: each group whose state changed since its last
//! checkpoint is encoded with its watermark under one read lock, and what a written
//! checkpoint covers is recorded afterwards.

use std::sync::Arc;

use highwater_store::{Checkpoint, CheckpointWrite};

use super::state::{Runtime, Slot, Status};
use crate::error::EngineError;
use crate::projection::Projection;

impl<P: Projection> Runtime<P> {
    /// Encodes a checkpoint of every loaded group (or of those in `only`) that folded
    /// events since its last one; each with the event count it covers.
    pub(super) fn collect_checkpoints(
        &self,
        only: Option<&[u32]>,
    ) -> Result<Vec<(CheckpointWrite, u64)>, EngineError> {
        let slots: Vec<(u32, &Arc<Slot<P::State>>)> = match only {
            Some(list) => list
                .iter()
                .filter_map(|&no| self.slots.get(no).map(|s| (no, s)))
                .collect(),
            None => self.slots.iter().collect(),
        };
        let epoch = self.current_epoch();
        let mut out = Vec::new();
        for (no, slot) in slots {
            let st = slot.state.read();
            if !matches!(st.status(epoch), Status::Loaded) || st.events <= st.checkpointed_events {
                continue;
            }
            // State and watermark are read under one lock: a checkpoint never claims a
            // watermark beyond what was folded into its state.
            let state = self
                .projection
                .encode(&st.value)
                .map_err(|e| EngineError::Codec {
                    projection: self.name.clone(),
                    message: e.0,
                })?;
            let checkpoint = Checkpoint {
                version: self.version,
                watermark: st.watermark,
                events: st.events,
                state,
            };
            out.push((
                CheckpointWrite {
                    projection: self.name.clone(),
                    group: no,
                    checkpoint,
                },
                st.events,
            ));
        }
        Ok(out)
    }

    pub(super) fn mark_checkpointed(&self, no: u32, events: u64) {
        if let Some(slot) = self.slots.get(no) {
            let mut st = slot.state.write();
            st.checkpointed_events = st.checkpointed_events.max(events);
        }
    }
}
