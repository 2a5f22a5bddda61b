//! The batch loop of an import: reading and validating one batch ahead on another
//! thread, deciding each record in order through the [`Pipeline`], counting refusals
//! and writing them to `--rejects`.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use highwater_projections::AccessPolicy;
use highwater_store::{Prepared, Store, StoreError};
use nostr::prelude::{Event, PublicKey};
use rayon::prelude::*;

use super::input::{Item, Records};
use super::order::{self, Pipeline};
use super::parse::{self, Refusal};
use super::rejects::Rejects;
use super::resume::{PROGRESS_SETTING, Position};
use super::{LOOKAHEAD, Options, Summary};

/// One record of a batch, through parsing and validation.
enum Stage {
    /// An event, at this index of the batch's events.
    Event(usize),
    Refused(Refusal),
    Skipped,
}

/// A batch of records, parsed and validated (off the deciding thread).
struct Validated {
    items: Vec<Item>,
    /// Where the input is after each item.
    positions: Vec<Position>,
    stages: Vec<Stage>,
    events: Vec<Event>,
    prepared: Vec<Result<Prepared, StoreError>>,
    /// The last batch the writer had acknowledged before the duplicate index was read.
    acked: u64,
    input_error: Option<String>,
}

/// Reads the next batch of records (bounded by count and bytes), parses them and
/// validates the events together; `position` follows the records read. `None` at the
/// end of the input.
fn validate_next(
    store: &Store,
    records: &mut Records,
    options: &Options,
    acked: &AtomicU64,
    position: &mut Position,
) -> Option<Validated> {
    let limits = store.options().limits;
    let mut items: Vec<Item> = Vec::new();
    let mut bytes = 0usize;
    let mut input_error = None;
    while items.len() < options.batch.max(1) && bytes < options.batch_bytes.max(1) {
        match records.next_item() {
            Ok(Some(item)) => {
                if let Item::Record { bytes: b, .. } = &item {
                    bytes += b.len();
                }
                items.push(item);
            }
            Ok(None) => break,
            Err(error) => {
                input_error = Some(format!(
                    "after line {}: {error}",
                    items.last().map_or(0, Item::line)
                ));
                break;
            }
        }
    }
    if items.is_empty() && input_error.is_none() {
        return None;
    }
    let positions = items
        .iter()
        .map(|item| {
            *position = position.after(item);
            *position
        })
        .collect();
    let parsed: Vec<Result<Option<Event>, Refusal>> = items
        .par_iter()
        .map(|item| match item {
            Item::Record { bytes, .. } => {
                parse::event(bytes).map(|e| options.kinds.keeps(&e).then_some(e))
            }
            Item::Oversized { size, .. } => Err(parse::oversized(*size, &limits)),
            Item::Malformed { message, .. } => Err(Refusal::new("not JSON", message.clone())),
        })
        .collect();
    let mut events = Vec::new();
    let stages = parsed
        .into_iter()
        .map(|p| match p {
            Ok(Some(event)) => {
                events.push(event);
                Stage::Event(events.len() - 1)
            }
            Ok(None) => Stage::Skipped,
            Err(refusal) => Stage::Refused(refusal),
        })
        .collect();
    let acked = acked.load(Ordering::Acquire);
    let prepared = store.prepare_all(&events);
    Some(Validated {
        items,
        positions,
        stages,
        events,
        prepared,
        acked,
        input_error,
    })
}

/// Imports `records` in order. With `policy`, each event is decided by it against the
/// state of everything accepted before it; refusals are counted and, with `rejects`,
/// written out. `--strict` stops at the first refusal, with everything before it
/// committed.
///
/// `records` is read from `options.start` on (the first record, or where an earlier
/// run of the same import stopped: see [`super::skip_decided`]). Each batch records the
/// progress in its own transaction, and reaching the end of the input records it as
/// complete, so that a re-run after any interruption resumes where this run stopped.
///
/// Reading, parsing and validating (signatures) run one batch ahead on another thread,
/// so that the CPU keeps working while a decision waits for a commit.
pub fn import(
    store: &Store,
    policy: Option<&AccessPolicy>,
    records: &mut Records,
    options: &Options,
    mut rejects: Option<&mut Rejects>,
    progress: &dyn Fn(Tick),
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut pipeline = Pipeline::new(store, policy, 2).recording(options.start);
    let acked = pipeline.acked_batch();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded::<Validated>(LOOKAHEAD);
        let acked = &acked;
        scope.spawn(move || {
            let mut position = options.start.position;
            while let Some(validated) = validate_next(store, records, options, acked, &mut position)
            {
                let last = validated.input_error.is_some();
                if tx.send(validated).is_err() || last {
                    break;
                }
            }
        });
        for validated in rx {
            summary.records += validated.items.len() as u64;
            if let Some(error) = &validated.input_error {
                summary.input_error = Some(error.clone());
            }
            let last_line = validated.items.last().map_or(0, Item::line);
            let stop = decide(
                &mut pipeline,
                validated,
                options.strict,
                &mut summary,
                &mut rejects,
            )?;
            pipeline.submit()?;
            progress(Tick {
                line: last_line,
                committed: pipeline.acked.appended,
                refused: summary.refused_total(),
            });
            if let Some((line, message)) = stop {
                pipeline.flush()?;
                bail!(
                    "line {line}: {message} (--strict stops here; the {} events before it are committed)",
                    pipeline.acked.appended
                );
            }
        }
        Ok(())
    })?;
    pipeline.flush()?;
    // Records refused or already present after the last batch are decided again by a
    // re-run killed before this: against the same log, with the same answers.
    let mut progress = pipeline.progress();
    progress.complete = true;
    store.set_setting(PROGRESS_SETTING, &progress.encode())?;
    summary.progress = progress;
    summary.accepted = pipeline.acked.appended;
    summary.duplicate += pipeline.acked.duplicate;
    summary.flushes = pipeline.flushes;
    tracing::info!(
        flushes = summary.flushes,
        "commits forced so that a decision sees a state change before it"
    );
    Ok(summary)
}

/// How far an import has got, after each batch is submitted.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// The input line of the last record decided.
    pub line: u64,
    /// Events committed to the log (acknowledged) by this run.
    pub committed: u64,
    /// Records refused by this run.
    pub refused: u64,
}

/// Validates `events` in chunks of `batch` (all cores, one chunk ahead on another
/// thread) and decides each in order through `pipeline`, then waits until everything
/// accepted is durable: the import without reading a file, for the bench. Returns how
/// many were refused.
pub fn import_events(
    store: &Store,
    pipeline: &mut Pipeline<'_>,
    events: &[Event],
    batch: usize,
) -> Result<u64> {
    let acked = pipeline.acked_batch();
    let mut refused = 0;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(LOOKAHEAD);
        let acked = &acked;
        scope.spawn(move || {
            for chunk in events.chunks(batch.max(1)) {
                let seen = acked.load(Ordering::Acquire);
                if tx.send((chunk, seen, store.prepare_all(chunk))).is_err() {
                    break;
                }
            }
        });
        for (chunk, seen, prepared) in rx {
            pipeline.begin_validation(seen);
            for (event, prepared) in chunk.iter().zip(prepared) {
                match prepared {
                    Ok(Prepared::Ready(p)) => {
                        if let order::Decision::Refused(_) = pipeline.decide(event, p)? {
                            refused += 1;
                        }
                    }
                    Ok(Prepared::Duplicate(_)) => {}
                    Err(_) => refused += 1,
                }
            }
            pipeline.submit()?;
        }
        Ok(())
    })?;
    pipeline.flush()?;
    Ok(refused)
}

/// Decides a validated batch in order. Returns the refusal that stops a strict import.
fn decide(
    pipeline: &mut Pipeline<'_>,
    validated: Validated,
    strict: bool,
    summary: &mut Summary,
    rejects: &mut Option<&mut Rejects>,
) -> Result<Option<(u64, String)>> {
    let Validated {
        items,
        positions,
        stages,
        events,
        prepared,
        acked,
        ..
    } = validated;
    summary.events += events.len() as u64;
    pipeline.begin_validation(acked);
    let mut prepared = prepared.into_iter();
    for ((item, stage), position) in items.iter().zip(stages).zip(positions) {
        let line = item.line();
        let event = matches!(stage, Stage::Event(_));
        let refusal = match stage {
            Stage::Skipped => {
                summary.skipped += 1;
                None
            }
            Stage::Refused(refusal) => Some(refusal),
            Stage::Event(index) => {
                let (Some(event), Some(p)) = (events.get(index), prepared.next()) else {
                    bail!("validation lost an event at line {line}");
                };
                match p {
                    Ok(Prepared::Duplicate(_)) => {
                        summary.duplicate += 1;
                        None
                    }
                    Err(error) => Some(parse::store_refusal(&error, event.kind.as_u16())),
                    Ok(Prepared::Ready(p)) => match pipeline.decide(event, p)? {
                        order::Decision::Queued => {
                            warn_malformed_p(line, event);
                            None
                        }
                        order::Decision::Duplicate => {
                            summary.duplicate += 1;
                            None
                        }
                        order::Decision::Refused(refusal) => Some(refusal),
                    },
                }
            }
        };
        if let Some(refusal) = &refusal {
            summary.refuse(line, refusal);
            if let Some(rejects) = rejects.as_deref_mut() {
                rejects.write(line, refusal, item)?;
            }
            if strict {
                // Not counted as decided: a re-run stops here again.
                return Ok(Some((line, refusal.message.clone())));
            }
        }
        pipeline.decided(position, event, refusal.is_some());
    }
    Ok(None)
}

/// Warns, once per imported event, about `p` tags the projections will ignore (the
/// folds themselves stay quiet: they run again on every catch-up, rebuild and verify).
fn warn_malformed_p(line: u64, event: &Event) {
    let kind = event.kind.as_u16();
    if !matches!(kind, 9_000 | 9_001 | 39_001 | 39_002) {
        return;
    }
    for tag in event.tags.iter().filter(|t| t.kind() == "p") {
        let value = tag.content();
        if value.and_then(|v| PublicKey::from_hex(v).ok()).is_none() {
            tracing::warn!(
                line,
                kind,
                ?value,
                "a `p` tag without a valid pubkey; the projections ignore it"
            );
        }
    }
}
