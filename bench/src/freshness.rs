//! The cross-process freshness row: another process (this binary, `bench
//! --freshness-writer DIR`) appends events one at a time and acknowledges each after its
//! durable commit; this process keeps an engine open on the same database and, as soon
//! as it reads an acknowledgement, asks whether the new member is a member. The row is
//! the time from reading the acknowledgement to the first answer that includes the
//! event. Reads never poll: the first read after the acknowledgement must already see
//! the commit (the number of reads it took is reported and must be one).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, PublicKey, Tag};

use super::progress::say;

/// Events the writer appends after the group's creation.
pub(super) const EVENTS: usize = 300;

const GROUP: &str = "freshness";

/// What the row measured.
#[derive(Debug)]
pub(super) struct Freshness {
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    /// The most reads one answer took (1: the first read after the ack saw the event).
    pub(super) max_reads: u64,
    pub(super) events: usize,
}

fn sign(keys: &Keys, kind: u16, tags: &[[&str; 2]]) -> Result<Event> {
    let tags = tags
        .iter()
        .map(|t| Tag::parse(t.iter().copied()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventBuilder::new(Kind::from(kind), "")
        .tags(tags)
        .finalize(keys)?)
}

/// Runs the writer child against a fresh database in `dir` and measures.
pub(super) fn measure(dir: &Path) -> Result<Freshness> {
    let creator = Keys::generate();
    let members: Vec<Keys> = (0..EVENTS).map(|_| Keys::generate()).collect();
    let create = sign(&creator, 9007, &[["h", GROUP]])?;
    let puts = members
        .iter()
        .map(|m| {
            sign(
                &creator,
                9000,
                &[["h", GROUP], ["p", &m.public_key().to_hex()]],
            )
        })
        .collect::<Result<Vec<_>>>()?;

    let store = Store::open(dir, StoreOptions::default())?;
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(
        &mut builder,
        Nip29Config::new(PublicKey::from_byte_array([0; 32])),
    )?;
    let _engine = builder.build()?;

    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Command::new(exe)
        .arg("bench")
        .arg("--freshness-writer")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the writer process")?;
    let mut to_child = child.stdin.take().context("the writer's stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().context("the writer's stdout")?);
    let mut send = move |event: &Event| -> Result<()> {
        writeln!(to_child, "{}", event.as_json())?;
        to_child.flush()?;
        let mut line = String::new();
        if from_child.read_line(&mut line)? == 0 || !line.starts_with("ack ") {
            bail!("the writer process stopped: {line:?}");
        }
        Ok(())
    };

    send(&create)?;
    if !groups.group_exists(GROUP)? {
        bail!("the group created by the other process is not visible");
    }
    let mut times = Vec::with_capacity(EVENTS);
    let mut max_reads = 0;
    for (event, member) in puts.iter().zip(&members) {
        send(event)?;
        let started = Instant::now();
        let pk = member.public_key();
        let mut reads = 0u64;
        loop {
            reads += 1;
            if groups.is_member(GROUP, &pk)? {
                break;
            }
            if reads == 1_000_000 {
                bail!("the other process's acknowledged event never became visible");
            }
        }
        times.push(started.elapsed());
        max_reads = max_reads.max(reads);
    }
    // Closing its stdin ends the writer.
    drop(send);
    let status = child.wait()?;
    if !status.success() {
        bail!("the writer process failed: {status}");
    }
    times.sort_unstable();
    // The q-quantile by rank: index ⌊(n − 1)·q⌉, computed in integers.
    let at = |percent: usize| times[((times.len() - 1) * percent + 50) / 100];
    say(format_args!(
        "  {} events: p50 {:?}, p99 {:?}, at most {max_reads} read(s) per answer",
        times.len(),
        at(50),
        at(99)
    ));
    Ok(Freshness {
        p50: at(50),
        p99: at(99),
        max_reads,
        events: times.len(),
    })
}

/// The writer child: appends each event read from stdin (one JSON per line) and
/// prints `ack SEQ` once it is durable.
///
/// # Errors
///
/// When the database cannot be opened or an event cannot be parsed or appended.
pub(super) fn writer(dir: &Path) -> Result<()> {
    let store = Store::open(dir, StoreOptions::default())?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let event = Event::from_json(line?)?;
        let seq = store.append(&event)?.seq();
        writeln!(out, "ack {seq}")?;
        out.flush()?;
    }
    Ok(())
}
