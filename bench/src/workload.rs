//! The benchmark's inputs: the generated workload (written once as JSONL, then streamed
//! back in windows as often as a row needs it, so memory stays bounded at any size),
//! the 1,000 events of the target group of the cold-read row, and the synthetic roster
//! of the memory row.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use highwater_workload::{self as generate, WorkloadSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nostr::prelude::{
    Event, EventBuilder, FinalizeEvent, Keys, Kind, PublicKey, SecretKey, Tag, Timestamp,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::progress::say;

/// Events parsed and handed over together (one raw-baseline commit). About 1 KB each in
/// memory, so a window is tens of megabytes whatever the size of the workload.
pub(super) const WINDOW: usize = 65_536;

/// The group whose cold first read is measured. Generated group ids are 8 characters,
/// so it cannot collide with one.
pub(super) const TARGET: &str = "highwater-bench-target";

/// Events of the target group in all; the last [`TARGET_TAIL`] are appended after the
/// checkpoint, so the cold read folds a checkpoint plus a tail.
pub(super) const TARGET_EVENTS: usize = 1_000;
pub(super) const TARGET_TAIL: usize = 100;

/// A progress bar over `len` events on stderr (hidden when stderr is not a terminal).
fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} events ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The generated workload on disk.
#[derive(Debug)]
pub(super) struct Workload {
    pub(super) path: PathBuf,
    pub(super) events: u64,
    pub(super) relay: PublicKey,
}

impl Workload {
    /// Generates the workload into `path`, or reuses the file already there (which
    /// must have been generated with the same `spec`: its relay key comes from it).
    pub(super) fn prepare(spec: &WorkloadSpec, path: &Path) -> Result<Workload> {
        let relay = spec
            .relay_keys()
            .context("deriving the relay key")?
            .public_key();
        if path.exists() {
            let events = count_lines(path)?;
            say(format_args!(
                "reusing the workload {} ({events} events)",
                path.display()
            ));
            return Ok(Workload {
                path: path.to_owned(),
                events,
                relay,
            });
        }
        // Written under another name first: an interrupted run leaves nothing to reuse.
        let partial = path.with_extension("partial");
        let file =
            File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let bar = bar(spec.events as u64);
        bar.set_message("generating the workload");
        let summary = generate::write_jsonl(
            spec,
            &|n| bar.set_position(n as u64),
            BufWriter::with_capacity(1 << 20, file),
        )
        .context("writing the workload")?;
        std::fs::rename(&partial, path)
            .with_context(|| format!("renaming {}", partial.display()))?;
        bar.finish_and_clear();
        Ok(Workload {
            path: path.to_owned(),
            events: summary.events as u64,
            relay,
        })
    }

    /// The first `limit` events in windows of up to [`WINDOW`], parsed on all cores.
    pub(super) fn windows(&self, limit: u64) -> Result<Windows> {
        let file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        Ok(Windows {
            lines: BufReader::with_capacity(1 << 20, file),
            left: limit,
        })
    }

    /// The first `limit` events with the target group's first events spread evenly
    /// among them (in the same windows).
    pub(super) fn with_target<'a>(
        &self,
        limit: u64,
        target: &'a [Event],
    ) -> Result<Interleaved<'a>> {
        Ok(Interleaved {
            windows: self.windows(limit)?,
            total: limit,
            seen: 0,
            target,
            placed: 0,
        })
    }
}

fn count_lines(path: &Path) -> Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut lines = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += count_newlines(buf);
        let n = buf.len();
        reader.consume(n);
    }
}

fn count_newlines(buf: &[u8]) -> u64 {
    buf.split(|&b| b == b'\n').count() as u64 - 1
}

/// Windows of parsed events from the workload file.
#[derive(Debug)]
pub(super) struct Windows {
    lines: BufReader<File>,
    left: u64,
}

impl Iterator for Windows {
    type Item = Result<Vec<Event>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut lines = Vec::with_capacity(WINDOW);
        while self.left > 0 && lines.len() < WINDOW {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    self.left -= 1;
                    lines.push(line);
                }
                Err(e) => return Some(Err(e).context("reading the workload")),
            }
        }
        if lines.is_empty() {
            return None;
        }
        Some(
            lines
                .par_iter()
                .map(|line| Event::from_json(line.trim_end()).context("parsing the workload"))
                .collect(),
        )
    }
}

/// Workload windows with target events placed evenly among them.
#[derive(Debug)]
pub(super) struct Interleaved<'a> {
    windows: Windows,
    total: u64,
    seen: u64,
    target: &'a [Event],
    placed: usize,
}

impl Iterator for Interleaved<'_> {
    type Item = Result<Vec<Event>>;

    fn next(&mut self) -> Option<Self::Item> {
        let window = match self.windows.next()? {
            Ok(window) => window,
            Err(e) => return Some(Err(e)),
        };
        let slots = self.target.len() as u64 + 1;
        let mut out = Vec::with_capacity(window.len() + 8);
        for event in window {
            out.push(event);
            self.seen += 1;
            // Target event j goes after workload event (j + 1) · total / (len + 1).
            while self.placed < self.target.len()
                && (self.placed as u64 + 1) * self.total / slots <= self.seen
            {
                out.push(self.target[self.placed].clone());
                self.placed += 1;
            }
        }
        if self.seen >= self.total {
            out.extend(self.target[self.placed..].iter().cloned());
            self.placed = self.target.len();
        }
        Some(Ok(out))
    }
}

/// Keys derived from the seed, so reruns sign with the same keys.
fn keys(rng: &mut ChaCha8Rng) -> Keys {
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            return Keys::new(secret);
        }
    }
}

fn random_pubkey_hex(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn tag(values: &[&str]) -> Result<Tag> {
    Tag::parse(values.iter().copied()).context("building a tag")
}

/// The target group's [`TARGET_EVENTS`] signed events, in log order: a creation, then a
/// moderated life (puts with and without roles, removals, metadata edits) among chat.
pub(super) fn target_events(seed: u64) -> Result<Vec<Event>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x007a_29e7);
    let admins: Vec<Keys> = (0..3).map(|_| keys(&mut rng)).collect();
    let chatters: Vec<Keys> = (0..16).map(|_| keys(&mut rng)).collect();
    let roster: Vec<String> = (0..400).map(|_| random_pubkey_hex(&mut rng)).collect();
    let h = tag(&["h", TARGET])?;
    let mut plans = Vec::with_capacity(TARGET_EVENTS);
    for i in 0..TARGET_EVENTS {
        let created_at = Timestamp::from_secs(generate::EPOCH + i as u64);
        let (author, builder) = if i == 0 {
            let name = tag(&["name", "Bench target"])?;
            (
                &admins[0],
                EventBuilder::new(Kind::Custom(9007), "").tags([h.clone(), name]),
            )
        } else if i % 3 == 0 {
            let member = &roster[rng.random_range(0..roster.len())];
            let p = if i % 9 == 0 {
                tag(&["p", member, "moderator"])?
            } else {
                tag(&["p", member])?
            };
            (
                &admins[i % 3],
                EventBuilder::new(Kind::Custom(9000), "").tags([h.clone(), p]),
            )
        } else if i % 10 == 1 {
            let p = tag(&["p", &roster[rng.random_range(0..roster.len())]])?;
            (
                &admins[i % 3],
                EventBuilder::new(Kind::Custom(9001), "").tags([h.clone(), p]),
            )
        } else if i % 50 == 7 {
            let name = tag(&["name", &format!("Bench target, edit {i}")])?;
            let flag = tag(&[if i % 100 == 7 { "private" } else { "public" }])?;
            (
                &admins[0],
                EventBuilder::new(Kind::Custom(9002), "").tags([h.clone(), name, flag]),
            )
        } else {
            let who = &chatters[i % chatters.len()];
            (
                who,
                EventBuilder::new(Kind::Custom(9), format!("message {i} in the target group"))
                    .tag(h.clone()),
            )
        };
        plans.push((author.clone(), builder.custom_created_at(created_at)));
    }
    plans
        .into_par_iter()
        .map(|(author, builder)| builder.finalize(&author).context("signing a target event"))
        .collect()
}

/// A synthetic roster: `groups` groups, each created and then given `per_group`
/// members by 9000 events of 100 `p` tags each. Returns the events and the group ids.
pub(super) fn roster_events(
    seed: u64,
    groups: usize,
    per_group: usize,
) -> Result<(Vec<Event>, Vec<String>)> {
    const PER_EVENT: usize = 100;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x003e_3be2);
    let admins: Vec<Keys> = (0..8).map(|_| keys(&mut rng)).collect();
    let names: Vec<String> = (0..groups)
        .map(|g| format!("highwater-bench-roster-{g}"))
        .collect();
    let mut plans = Vec::new();
    let mut clock = generate::EPOCH;
    for (g, name) in names.iter().enumerate() {
        let admin = &admins[g % admins.len()];
        let h = tag(&["h", name])?;
        clock += 1;
        let create = EventBuilder::new(Kind::Custom(9007), "").tag(h.clone());
        plans.push((
            admin.clone(),
            create.custom_created_at(Timestamp::from_secs(clock)),
        ));
        let mut left = per_group.saturating_sub(1);
        while left > 0 {
            let n = left.min(PER_EVENT);
            left -= n;
            let mut tags = vec![h.clone()];
            for _ in 0..n {
                tags.push(tag(&["p", &random_pubkey_hex(&mut rng)])?);
            }
            clock += 1;
            let put = EventBuilder::new(Kind::Custom(9000), "").tags(tags);
            plans.push((
                admin.clone(),
                put.custom_created_at(Timestamp::from_secs(clock)),
            ));
        }
    }
    let events = plans
        .into_par_iter()
        .map(|(author, builder)| builder.finalize(&author).context("signing a roster event"))
        .collect::<Result<Vec<_>>>()?;
    Ok((events, names))
}
