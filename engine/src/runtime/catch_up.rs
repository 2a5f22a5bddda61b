//! Catch-up: a group not loaded is loaded from its checkpoint (or from nothing) plus
//! its tail; a loaded group that fell behind folds its tail in place. One thread per
//! group does it (the slot's flight mutex); unusable checkpoints are ignored.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use highwater_store::StoreError;

use super::state::{Runtime, SlotState, Status};
use crate::error::EngineError;
use crate::fold::{Failure, apply_guarded};
use crate::projection::Projection;

impl<P: Projection> Runtime<P> {
    /// Folds the group's events after `after` into `value`. Returns the last sequence
    /// number passed and how many of the group's events were passed.
    pub(super) fn fold_tail(
        &self,
        no: u32,
        value: &mut P::State,
        after: u64,
    ) -> Result<(u64, u64), EngineError> {
        let mut failure = None;
        let scan = self.store.scan_group(
            no,
            after,
            |kind| self.kinds.contains(kind),
            |seq, event| match apply_guarded(&self.projection, value, seq, event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(f) => {
                    failure = Some(f);
                    ControlFlow::Break(())
                }
            },
        )?;
        match failure {
            Some(f) => Err(self.failed(no, &f)),
            None => Ok((scan.last, scan.events)),
        }
    }

    /// Brings group `no` to at least `target`. A group not loaded is loaded from its
    /// checkpoint (or from nothing) plus its tail, outside the slot's lock, then
    /// installed; a loaded group that fell behind (commits of other processes, or
    /// commits whose live fold found the slot busy) folds its tail in place under the
    /// slot's write lock, without copying its state. One thread per group does it.
    pub(super) fn catch_up(&self, no: u32, target: u64) -> Result<(), EngineError> {
        let slot = self.slot(no);
        let _flight = slot.flight.lock();
        let loaded = {
            let st = slot.state.read_recursive();
            match st.status(self.current_epoch()) {
                Status::Loaded if st.watermark >= target => return Ok(()),
                Status::Failed(failure) => return Err(self.failed(no, failure)),
                Status::Loaded => true,
                Status::NotLoaded => false,
            }
        };
        let started = Instant::now();
        let _span =
            tracing::debug_span!("catch_up", projection = %self.name, group = no, target).entered();
        if loaded {
            self.counters.tail_folds.fetch_add(1, Ordering::Relaxed);
            let mut st = slot.state.write();
            let from = st.watermark;
            let mut value = std::mem::replace(&mut st.value, self.projection.init());
            return match self.fold_tail(no, &mut value, from) {
                Ok((reached, events)) => {
                    st.value = value;
                    st.watermark = reached;
                    st.events += events;
                    tracing::debug!(projection = %self.name, group = no, from, to = reached,
                        events, micros = started.elapsed().as_micros() as u64, "caught up a loaded group");
                    Ok(())
                }
                Err(e) => {
                    // A store error leaves the slot as it was (the fold itself did not fail).
                    if !matches!(e, EngineError::Failed { .. }) {
                        st.value = value;
                    }
                    Err(self.mark_failed(&mut st, no, e))
                }
            };
        }
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let (mut value, watermark, events, checkpointed) = self.load_checkpoint(no, target)?;
        let folded = self.fold_tail(no, &mut value, watermark);
        let mut st = slot.state.write();
        let (reached, scanned) = match folded {
            Ok(r) => r,
            Err(e) => return Err(self.mark_failed(&mut st, no, e)),
        };
        st.value = value;
        st.watermark = reached;
        st.events = events + scanned;
        st.checkpointed_events = checkpointed;
        st.status = Status::Loaded;
        st.epoch = self.current_epoch();
        tracing::debug!(projection = %self.name, group = no, from_checkpoint = watermark > 0, from = watermark,
            to = reached, scanned, micros = started.elapsed().as_micros() as u64, "loaded");
        Ok(())
    }

    /// Marks a slot failed after a fold error; any other error leaves it as it was.
    fn mark_failed(
        &self,
        st: &mut SlotState<P::State>,
        no: u32,
        error: EngineError,
    ) -> EngineError {
        if let EngineError::Failed { seq, message, .. } = &error {
            tracing::error!(projection = %self.name, group = %self.group_name(no), seq,
                error = %message, "fold failed; the group serves errors until rebuilt");
            st.value = self.projection.init();
            st.status = Status::Failed(Arc::new(Failure {
                seq: *seq,
                message: message.clone(),
            }));
            st.epoch = self.current_epoch();
        }
        error
    }

    /// The checkpointed state of a group, or the initial state when there is no usable
    /// checkpoint. Unusable checkpoints are reported and ignored, never trusted.
    fn load_checkpoint(
        &self,
        no: u32,
        head: u64,
    ) -> Result<(P::State, u64, u64, u64), EngineError> {
        let fresh = || (self.projection.init(), 0, 0, 0);
        let checkpoint = match self.store.read_checkpoint(&self.name, no) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(fresh()),
            Err(StoreError::Corrupted(c)) => {
                tracing::warn!(projection = %self.name, group = no, error = %c, "ignoring a corrupted checkpoint; rebuilding from the log");
                return Ok(fresh());
            }
            Err(e) => return Err(e.into()),
        };
        if checkpoint.version != self.version {
            tracing::warn!(projection = %self.name, group = no, found = checkpoint.version, expected = self.version,
                "ignoring a checkpoint of another projection version; rebuilding from the log");
            return Ok(fresh());
        }
        if checkpoint.watermark > head.max(self.store.group_head(no)) {
            tracing::warn!(projection = %self.name, group = no, watermark = checkpoint.watermark,
                "ignoring a checkpoint beyond the group's head; rebuilding from the log");
            return Ok(fresh());
        }
        match self.projection.decode(&checkpoint.state) {
            Ok(state) => Ok((
                state,
                checkpoint.watermark,
                checkpoint.events,
                checkpoint.events,
            )),
            Err(e) => {
                tracing::warn!(projection = %self.name, group = no, error = %e, "ignoring an undecodable checkpoint; rebuilding from the log");
                Ok(fresh())
            }
        }
    }

    /// Loads group `no` (checkpoint plus tail) up to its head as committed by any
    /// process now, without reading it.
    pub(super) fn ensure_loaded(&self, no: u32) -> Result<(), EngineError> {
        self.store.refresh()?;
        self.catch_up(no, self.store.group_head(no))
    }
}
