//! `highwater import`: JSONL in file order, parallel validation, group commit.
//!
//! Lines are read in chunks; each chunk is parsed and validated (id hash, signature,
//! limits, group tag, duplicate index) on all cores, then submitted to the store's
//! writer in file order while the next chunk is validated. Everything acknowledged is
//! durable, so a killed import loses nothing it reported, and re-running it only finds
//! duplicates before carrying on.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_store::{
    AppendOutcome, Prepared, PreparedEvent, Rejection, Store, StoreError, Ticket,
};
use nostr::prelude::Event;
use rayon::prelude::*;

use super::{Global, db, progress};

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The relay's public key (hex). Stored on first use; a different key later is an
    /// error.
    #[arg(long, value_name = "HEX")]
    relay_pubkey: Option<String>,
    /// Skip signature checks (ids are still hashed): for re-importing highwater's own
    /// exports only.
    #[arg(long)]
    trusted: bool,
    /// Stop at the first bad line (reporting its line number) instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Lines validated and committed together. Larger batches write fewer pages of the
    /// event-id index per event (its keys are random), so bulk imports get faster.
    #[arg(long, default_value_t = 16_384, value_name = "LINES")]
    batch: usize,
    /// JSONL file, or `-` for stdin.
    file: PathBuf,
}

/// Why a line was not imported.
fn cause(error: &StoreError) -> &'static str {
    match error {
        StoreError::Rejected(Rejection::BadId) => "bad id",
        StoreError::Rejected(Rejection::BadSignature) => "bad signature",
        StoreError::Rejected(Rejection::TooLarge { .. }) => "too large",
        StoreError::Rejected(Rejection::TooManyTags { .. }) => "too many tags",
        StoreError::Rejected(Rejection::MissingGroup { .. }) => "missing group tag",
        StoreError::Rejected(Rejection::BadGroupId { .. }) => "bad group id",
        _ => "storage error",
    }
}

enum Line {
    Ready(Box<PreparedEvent>),
    Duplicate,
    Bad {
        cause: &'static str,
        message: String,
    },
}

/// Parses one line into an event, or says why it is not one.
fn parse(line: &[u8], max_line: usize) -> Result<Event, Line> {
    if line.len() > max_line {
        return Err(Line::Bad {
            cause: "too large",
            message: format!("line of {} bytes", line.len()),
        });
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(Line::Bad {
            cause: "not JSON",
            message: "not UTF-8".into(),
        });
    };
    Event::from_json(text).map_err(|e| {
        let cause = if serde_json::from_str::<serde_json::Value>(text).is_ok() {
            "not an event"
        } else {
            "not JSON"
        };
        Line::Bad {
            cause,
            message: e.to_string(),
        }
    })
}

/// Parses a chunk on all cores, then validates its events as one batch (one read of
/// the duplicate index, signatures on all cores).
fn classify(store: &Store, chunk: &[(u64, Vec<u8>)], max_line: usize) -> Vec<Line> {
    let parsed: Vec<Result<Event, Line>> = chunk
        .par_iter()
        .map(|(_, line)| parse(line, max_line))
        .collect();
    let events: Vec<Event> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut prepared = store.prepare_all(&events).into_iter();
    parsed
        .into_iter()
        .map(|p| match p {
            Err(bad) => bad,
            Ok(_) => match prepared.next() {
                Some(Ok(Prepared::Ready(p))) => Line::Ready(Box::new(p)),
                Some(Ok(Prepared::Duplicate(_))) => Line::Duplicate,
                Some(Err(e)) => Line::Bad {
                    cause: cause(&e),
                    message: e.to_string(),
                },
                None => Line::Bad {
                    cause: "storage error",
                    message: "validation lost an event".into(),
                },
            },
        })
        .collect()
}

/// What an import did.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) accepted: u64,
    pub(crate) duplicate: u64,
    pub(crate) rejected: BTreeMap<&'static str, u64>,
}

impl Summary {
    fn count(&mut self, outcomes: &[AppendOutcome]) {
        for o in outcomes {
            match o {
                AppendOutcome::Appended(_) => self.accepted += 1,
                AppendOutcome::Duplicate(_) => self.duplicate += 1,
            }
        }
    }
}

pub(crate) fn run(global: &Global, args: &ImportArgs) -> Result<ExitCode> {
    // Arguments and input first: a mistyped key or file name must not create a
    // database or bind it to a relay key.
    let relay = args
        .relay_pubkey
        .as_deref()
        .map(db::parse_pubkey)
        .transpose()?;
    let (input, len): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        let len = file.metadata().map(|m| m.len()).ok();
        (Box::new(file), len)
    };
    let store = db::open_store(global, args.trusted)?;
    match &relay {
        Some(key) => db::set_relay_key(&store, key)?,
        None if db::relay_key(&store)?.is_none() => eprintln!(
            "warning: no relay key for this database; relay snapshot events (39000–39003) will be ignored (pass --relay-pubkey)"
        ),
        None => {}
    }
    let bar = match len {
        Some(len) => progress::bytes(len),
        None => progress::spinner("lines"),
    };
    bar.set_message("importing");
    let started = Instant::now();
    let before = store.head();
    let summary = import(
        &store,
        BufReader::with_capacity(1 << 20, input),
        args.strict,
        args.batch,
        &|bytes, lines| {
            if len.is_some() {
                bar.set_position(bytes);
            } else {
                bar.set_position(lines);
            }
        },
    )?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let rejected: u64 = summary.rejected.values().sum();
    println!(
        "imported {} events ({} duplicate, {} rejected) in {secs:.2} s — {:.0} events/s; log head {} → {}",
        summary.accepted,
        summary.duplicate,
        rejected,
        summary.accepted as f64 / secs.max(1e-9),
        before,
        store.head()
    );
    for (cause, n) in &summary.rejected {
        println!("  rejected, {cause}: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Imports JSONL from `input` in order; `strict` stops at the first bad line.
pub(crate) fn import(
    store: &Store,
    mut input: impl BufRead,
    strict: bool,
    batch: usize,
    progress: &dyn Fn(u64, u64),
) -> Result<Summary> {
    let max_line = store.options().limits.max_event_bytes * 2 + 4_096;
    let mut summary = Summary::default();
    let mut in_flight: VecDeque<Ticket> = VecDeque::new();
    let mut line_no = 0u64;
    let mut bytes_read = 0u64;
    let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch);
    loop {
        chunk.clear();
        while chunk.len() < batch.max(1) {
            let mut buf = Vec::new();
            let n = input
                .read_until(b'\n', &mut buf)
                .context("reading the input")?;
            if n == 0 {
                break;
            }
            bytes_read += n as u64;
            line_no += 1;
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if !buf.iter().all(u8::is_ascii_whitespace) {
                chunk.push((line_no, buf));
            }
        }
        if chunk.is_empty() {
            break;
        }
        let classified = classify(store, &chunk, max_line);
        let mut ready = Vec::with_capacity(classified.len());
        let mut stop = None;
        for ((number, _), line) in chunk.iter().zip(classified) {
            match line {
                Line::Ready(p) => ready.push(*p),
                Line::Duplicate => summary.duplicate += 1,
                Line::Bad { cause, message } => {
                    if strict {
                        stop = Some(format!("line {number}: {cause}: {message}"));
                        break;
                    }
                    *summary.rejected.entry(cause).or_default() += 1;
                }
            }
        }
        if !ready.is_empty() {
            in_flight.push_back(store.submit(ready)?);
        }
        // Keep up to two batches queued for the writer (which merges queued batches
        // into one commit) while the next is validated.
        while in_flight.len() > 2 || (stop.is_some() && !in_flight.is_empty()) {
            if let Some(ticket) = in_flight.pop_front() {
                summary.count(
                    &ticket
                        .wait()
                        .context("committing a batch (nothing of it was written)")?,
                );
            }
        }
        progress(bytes_read, line_no);
        if let Some(message) = stop {
            bail!(
                "{message} (the {} events before it are committed)",
                summary.accepted
            );
        }
    }
    for ticket in in_flight {
        summary.count(
            &ticket
                .wait()
                .context("committing a batch (nothing of it was written)")?,
        );
    }
    Ok(summary)
}
