//! `highwater import`: events from a file or stdin, in file order, through the same
//! write policy a relay applies, with every refusal accounted for.
//!
//! Records are read in batches bounded by count and by bytes (`input`); each batch is
//! parsed (`parse`) and validated (id hash, signature, limits, group tag, duplicate
//! index) on all cores, then decided in file order with the relay's `check_write`
//! against the state of everything accepted before (`order`), and submitted to the
//! store's writer while the next batch is validated. Every commit records, in its own
//! transaction, how many records of the input were decided (`resume`): re-running an
//! interrupted import skips those records and goes on where it stopped, so the log it
//! ends with is the one a single clean run would have written. Refusals go to the
//! summary and to `--rejects` (`rejects`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::EngineOptions;
use highwater_projections::AccessPolicy;
use highwater_store::{Limits, StoreOptions};

use super::{Global, db, progress};
pub(crate) use highwater_replay::import::{
    EXIT_ERROR, EXIT_UNREADABLE, KindFilter, Options, Progress, Records, Rejects, Resume, Summary,
    import, record_cap, recorded, skip_decided,
};

#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line flags, each independent of the others"
)]
pub(crate) struct ImportArgs {
    /// The relay's public key (hex or npub). Stored on first use; a different key later
    /// is refused. Relay state events (39000–39003) signed by it are the relay's own;
    /// without it, every 39000–39003 is refused.
    #[arg(long, value_name = "KEY")]
    relay_pubkey: Option<String>,
    #[command(flatten)]
    policy: db::PolicyArgs,
    /// Decide under the policy of this relay configuration file (its `[policy]`,
    /// `[groups]` and `[roles]`; README "Configuration") over the stored options, as
    /// `highwater relay --config FILE` does; flags given here win.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Keep signature and id checks but skip the write policy: for a relay's own log
    /// that it already accepted (its database export).
    #[arg(long)]
    no_policy: bool,
    /// Skip signature checks and the write policy (ids are still hashed): only for
    /// highwater's own exports (`highwater export`) of a database you trust.
    #[arg(long)]
    trusted: bool,
    /// Stop at the first refused record (reporting its line) instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Decide every record of the input, even when an earlier run of this import
    /// recorded that it decided the first ones (a re-run normally resumes after them).
    /// Records refused before are decided again against the log as it is now.
    #[arg(long)]
    from_start: bool,
    /// Which events to keep: `all`, or `nip29` (group events: NIP-29 kinds 9000–9030
    /// and 39000–39009, and any event with an `h` tag; the rest are skipped and counted).
    #[arg(long, value_enum, default_value_t = KindFilter::All, value_name = "WHICH")]
    kinds: KindFilter,
    /// Write every refused record as JSONL: {"line", "reason", "record"}.
    #[arg(long, value_name = "FILE")]
    rejects: Option<PathBuf>,
    /// Most records validated and committed together.
    #[arg(long, default_value_t = 16_384, value_name = "RECORDS")]
    batch: usize,
    /// Most bytes of input per batch, which bounds memory with large events.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    batch_bytes: usize,
    /// Largest event (encoded), except the relay's state events.
    #[arg(long, default_value_t = Limits::default().max_event_bytes, value_name = "BYTES")]
    max_event_bytes: usize,
    /// Most tags of an event, except the relay's state events.
    #[arg(long, default_value_t = Limits::default().max_tags, value_name = "N")]
    max_tags: usize,
    /// Largest relay state event (kinds 39000–39003, encoded): a 39002 lists every
    /// member of a group.
    #[arg(long, default_value_t = Limits::default().max_state_event_bytes, value_name = "BYTES")]
    max_state_event_bytes: usize,
    /// Most tags of a relay state event (kinds 39000–39003).
    #[arg(long, default_value_t = Limits::default().max_state_tags, value_name = "N")]
    max_state_tags: usize,
    /// Longest group id.
    #[arg(long, default_value_t = Limits::default().max_group_id_bytes, value_name = "BYTES")]
    max_group_id_bytes: usize,
    /// The input: JSONL, a JSON array, or `["EVENT", …]` lines, optionally gzipped;
    /// `-` for stdin.
    file: PathBuf,
}

pub(crate) fn run(global: &Global, args: &ImportArgs) -> Result<ExitCode> {
    // Arguments and input first: a mistyped key or file name must not create a
    // database or bind it to a relay key.
    let relay = args
        .relay_pubkey
        .as_deref()
        .map(|k| db::parse_pubkey(k).context("--relay-pubkey"))
        .transpose()?;
    let policy_options = args.policy.parse()?;
    let config = args
        .config
        .as_deref()
        .map(super::config::load)
        .transpose()?;
    let limits = Limits {
        max_event_bytes: args.max_event_bytes,
        max_tags: args.max_tags,
        max_group_id_bytes: args.max_group_id_bytes,
        max_state_event_bytes: args.max_state_event_bytes,
        max_state_tags: args.max_state_tags,
    };
    let (mut records, mut read_bytes, len) = open_input(&args.file, &limits)?;
    let mut rejects = args.rejects.as_deref().map(Rejects::create).transpose()?;

    let store = db::open_store_with(
        global,
        StoreOptions {
            trusted: args.trusted,
            limits,
            // Fewer, larger merges of the index tail: the import's throughput on a
            // large log. What it leaves in the tail is merged before it returns.
            index_tail_share: highwater_store::BULK_INDEX_TAIL_SHARE,
            ..StoreOptions::default()
        },
    )?;
    bind_relay_key(&store, relay.as_ref(), args)?;
    let mut run_policy = db::set_policy(&store, &policy_options)?;
    if let Some(config) = &config {
        let stored = db::stored_policy(&store)?.unwrap_or_default();
        run_policy = policy_options.over(&config.policy_options()?.over(&stored));
    }
    let opened = db::open_with(store.clone(), EngineOptions::default())?;
    let policy = access_policy(args, &run_policy, &opened.groups)?;
    let seed = seed(&store, args, &limits, &run_policy)?;
    let start = resume_point(&store, args, &limits, &seed, &mut records, &mut read_bytes)?;

    let bar = progress::import(len);
    bar.set_message("importing");
    let started = Instant::now();
    let before = store.head();
    let heads_before: std::collections::BTreeMap<u32, u64> =
        store.groups().iter().map(|g| (g.no, g.head)).collect();
    let options = Options {
        strict: args.strict,
        kinds: args.kinds,
        batch: args.batch,
        batch_bytes: args.batch_bytes,
        start,
    };
    let summary = import(
        &store,
        policy.as_ref(),
        &mut records,
        &options,
        rejects.as_mut(),
        &|tick| {
            if len.is_some() {
                bar.set_position(read_bytes.load(std::sync::atomic::Ordering::Relaxed));
            }
            bar.set_message(progress::import_message(
                tick.committed,
                tick.refused,
                started.elapsed(),
            ));
        },
    );
    bar.finish_and_clear();
    if let Some(rejects) = rejects {
        rejects.finish()?;
    }
    let summary = summary?;
    drop(policy);
    checkpoint_touched(&store, &opened, &heads_before);
    // The tail a bulk import may leave (up to a 64th of the log), merged now: every
    // later open reads no tail, and a relay's first commit does not merge it. The
    // events are committed either way; a failure here leaves the merge to the next
    // commit of any writer.
    if let Err(error) = store.merge_index_tail() {
        eprintln!("warning: the index tail the import left is not merged yet: {error}");
    }
    drop(opened);
    print_summary(
        &summary,
        started.elapsed().as_secs_f64(),
        before,
        store.head(),
    );
    print_resumed(&start, &summary);
    let status = summary.exit_status();
    if status == EXIT_UNREADABLE {
        eprintln!(
            "error: no event could be read from {} (expected JSONL, a JSON array of events, or [\"EVENT\", …] lines, optionally gzipped)",
            args.file.display()
        );
    }
    Ok(ExitCode::from(status))
}

/// Stores the relay key given, or warns that the database has none.
fn bind_relay_key(
    store: &highwater_store::Store,
    relay: Option<&nostr::prelude::PublicKey>,
    args: &ImportArgs,
) -> Result<()> {
    match relay {
        Some(key) => db::set_relay_key(store, key)?,
        None if db::relay_key(store)?.is_none() => eprintln!(
            "warning: no relay key for this database; relay state events (39000–39003) will be {} (pass --relay-pubkey)",
            if args.no_policy || args.trusted {
                "ignored by the projections"
            } else {
                "refused"
            }
        ),
        None => {}
    }
    Ok(())
}

/// Loads every group this import changed (its checkpoint, if any, and its tail), so the
/// engine's close writes their checkpoints: a cold read of any group then folds only
/// what came after. An import with the write policy has loaded them already (nothing
/// is folded twice); a trusted or `--no-policy` one folded none. The relay-wide
/// projections were folded as the events were committed. A group whose fold fails is
/// reported and left without a checkpoint (its reads report the failure).
fn checkpoint_touched(
    store: &highwater_store::Store,
    opened: &db::Db,
    heads_before: &std::collections::BTreeMap<u32, u64>,
) {
    use rayon::prelude::*;
    let touched: Vec<String> = store
        .groups()
        .into_iter()
        .filter(|g| heads_before.get(&g.no) != Some(&g.head))
        .map(|g| g.name.to_string())
        .collect();
    touched.par_iter().for_each(|group| {
        if let Err(error) = opened.engine.load_group(group) {
            tracing::warn!(group, %error, "loading a group for its checkpoint failed");
        }
    });
}

/// Where this import starts: after the records an earlier run of this same import
/// decided (read and skipped here), or at the first record. Opens the input again when
/// it turned out to be another one and the records read to find out were too many to
/// keep.
fn resume_point(
    store: &highwater_store::Store,
    args: &ImportArgs,
    limits: &Limits,
    seed: &[u8],
    records: &mut Records,
    read_bytes: &mut Arc<AtomicU64>,
) -> Result<Progress> {
    let start = Progress::start(seed);
    let recorded = if args.from_start {
        None
    } else {
        recorded(store)?
    };
    Ok(match skip_decided(records, recorded, start.position)? {
        Resume::Fresh => start,
        Resume::After(progress) => progress,
        Resume::Other { recorded, rewound } => {
            if !recorded.complete {
                eprintln!(
                    "warning: the database records an unfinished import of another input (or with other options), stopped after line {}; this import decides every record of {} from its first, and that one can no longer resume",
                    recorded.position.line,
                    args.file.display()
                );
            }
            if !rewound {
                if args.file.as_os_str() == "-" {
                    bail!(
                        "standard input begins like the import recorded in this database but differs before line {}, and it cannot be read again: give the file, or pass --from-start",
                        recorded.position.line
                    );
                }
                (*records, *read_bytes, _) = open_input(&args.file, limits)?;
            }
            start
        }
    })
}

/// Opens the input named `file` (`-`: stdin) for reading records; returns them, the
/// counter of bytes read, and the input's length when known.
fn open_input(file: &Path, limits: &Limits) -> Result<(Records, Arc<AtomicU64>, Option<u64>)> {
    let (input, len): (Box<dyn std::io::Read + Send>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let opened =
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let len = opened.metadata().map(|m| m.len()).ok();
        (Box::new(opened), len)
    };
    let named_gz = file.extension().is_some_and(|e| e == "gz");
    let (records, read_bytes) = Records::open(input, named_gz, record_cap(limits))
        .with_context(|| format!("reading {}", file.display()))?;
    Ok((records, read_bytes, len))
}

/// The write policy the import decides under (`None` with `--no-policy` or
/// `--trusted`).
fn access_policy(
    args: &ImportArgs,
    policy: &db::StoredPolicy,
    groups: &highwater_projections::Groups,
) -> Result<Option<AccessPolicy>> {
    if args.no_policy || args.trusted {
        return Ok(None);
    }
    Ok(Some(AccessPolicy::new(groups.clone(), policy.to_policy()?)))
}

/// What decides the records of an import besides the records themselves: the mode,
/// `--kinds`, the limits, the relay key stored in the database and the policy the run
/// decides under. The same input with another seed is another import.
fn seed(
    store: &highwater_store::Store,
    args: &ImportArgs,
    limits: &Limits,
    policy: &db::StoredPolicy,
) -> Result<Vec<u8>> {
    let mode = if args.trusted {
        "trusted"
    } else if args.no_policy {
        "no-policy"
    } else {
        "policy"
    };
    let Limits {
        max_event_bytes,
        max_tags,
        max_group_id_bytes,
        max_state_event_bytes,
        max_state_tags,
    } = *limits;
    let stored = |name| -> Result<String> {
        Ok(store
            .setting(name)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    };
    Ok(format!(
        "mode={mode}\nkinds={:?}\nlimits={max_event_bytes},{max_tags},{max_group_id_bytes},{max_state_event_bytes},{max_state_tags}\nrelay={}\npolicy={}",
        args.kinds,
        stored(db::RELAY_KEY)?,
        serde_json::to_string(policy)?,
    )
    .into_bytes())
}

/// Says where a resumed import started, or that there was nothing left to decide.
fn print_resumed(start: &Progress, summary: &Summary) {
    let earlier = start.position;
    if earlier.records == 0 {
        return;
    }
    if summary.records == 0 {
        println!(
            "nothing new: an earlier run of this import decided every record of it (through line {}); --from-start decides them again",
            earlier.line
        );
    } else {
        println!(
            "resumed after line {}: an earlier run of this import decided the {} records before it ({} refused); the counts above are this run's",
            earlier.line, earlier.records, start.refused
        );
    }
}

fn print_summary(summary: &Summary, secs: f64, before: u64, after: u64) {
    let refused = summary.refused_total();
    let skipped = if summary.skipped > 0 {
        format!(", {} skipped by --kinds", summary.skipped)
    } else {
        String::new()
    };
    println!(
        "imported {} events ({} already present, {refused} refused{skipped}) in {secs:.2} s — {:.0} events/s; log head {before} → {after}",
        summary.accepted,
        summary.duplicate,
        summary.accepted as f64 / secs.max(1e-9),
    );
    for (category, n) in &summary.refused {
        println!("  refused, {category}: {n}");
    }
    if !summary.first.is_empty() {
        println!("first refusals:");
        for (line, message) in &summary.first {
            println!("  line {line}: {message}");
        }
        if refused > summary.first.len() as u64 {
            println!("  … every refusal with its line: --rejects FILE");
        }
    }
    if let Some(error) = &summary.input_error {
        println!("reading stopped early: {error}");
    }
}
