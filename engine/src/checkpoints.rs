//! The checkpoint policy's worker: the commit observer asks for checkpoints of groups
//! (and relay-wide states) that folded enough since their last one; a thread writes
//! them off the writer thread, batching what has queued. `write_checkpoints` is also
//! what `Engine::checkpoint`, the close of an engine and its build write through.

use crossbeam_channel::Receiver;
use highwater_store::Store;

use crate::error::EngineError;
use crate::registry::Projections;

/// A checkpoint the commit observer found due.
pub(crate) enum CheckpointRequest {
    /// Groups of per-group runtime `.0`.
    Due(usize, Vec<u32>),
    /// Relay-wide runtime `.0`.
    RelayWideDue(usize),
}

/// What a periodic checkpoint writes: groups per per-group runtime, and which
/// relay-wide runtimes.
pub(crate) struct DueCheckpoints {
    groups: Vec<Vec<u32>>,
    relay_wide: Vec<bool>,
}

/// Writes policy-due checkpoints off the writer thread, batching what has queued.
pub(crate) fn checkpoint_worker(
    store: &Store,
    projections: &Projections,
    rx: &Receiver<CheckpointRequest>,
) {
    while let Ok(first) = rx.recv() {
        let mut due = DueCheckpoints {
            groups: vec![Vec::new(); projections.per_group.len()],
            relay_wide: vec![false; projections.relay_wide.len()],
        };
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                CheckpointRequest::Due(index, groups) => due.groups[index].extend(groups),
                CheckpointRequest::RelayWideDue(index) => due.relay_wide[index] = true,
            }
        }
        for groups in &mut due.groups {
            groups.sort_unstable();
            groups.dedup();
        }
        if let Err(error) = write_checkpoints(store, projections, Some(&due)) {
            tracing::warn!(%error, "periodic checkpoint failed; groups stay correct and are retried later");
        }
    }
}

/// Collects changed groups (all, or `only.groups[i]` for runtime i) and relay-wide
/// states (all, or those `only` marks), writes them in one transaction, then records
/// what each checkpoint covers.
pub(crate) fn write_checkpoints(
    store: &Store,
    projections: &Projections,
    only: Option<&DueCheckpoints>,
) -> Result<usize, EngineError> {
    let started = std::time::Instant::now();
    let _span = tracing::debug_span!("checkpoint", periodic = only.is_some()).entered();
    let mut writes = Vec::new();
    let mut marks = Vec::new();
    for (index, runtime) in projections.per_group.iter().enumerate() {
        let filter = only.map(|o| o.groups[index].as_slice());
        if filter.is_some_and(<[u32]>::is_empty) {
            continue;
        }
        for (write, events) in runtime.collect_checkpoints(filter)? {
            marks.push((index, write.group, events));
            writes.push(write);
        }
    }
    let mut relay_wide_marks = Vec::new();
    for (index, runtime) in projections.relay_wide.iter().enumerate() {
        if only.is_some_and(|o| !o.relay_wide[index]) {
            continue;
        }
        if let Some((write, covered)) = runtime.collect_checkpoint()? {
            relay_wide_marks.push((index, covered));
            writes.push(write);
        }
    }
    let count = writes.len();
    if count == 0 {
        return Ok(0);
    }
    store.write_checkpoints(writes, None)?;
    for (index, no, events) in marks {
        projections.per_group[index].mark_checkpointed(no, events);
    }
    for (index, covered) in relay_wide_marks {
        projections.relay_wide[index].mark_checkpointed(covered);
    }
    tracing::debug!(
        count,
        micros = started.elapsed().as_micros() as u64,
        "checkpoints written"
    );
    Ok(count)
}
