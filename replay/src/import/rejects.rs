//! `--rejects FILE`: every refused record as one JSON line — its line number, the
//! reason, and the record itself (as text; an oversized record by its size only).

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::input::Item;
use super::parse::Refusal;

/// The rejects file, written as refusals happen.
#[derive(Debug)]
pub struct Rejects {
    out: BufWriter<std::fs::File>,
    path: std::path::PathBuf,
}

#[derive(Serialize)]
struct Entry<'a> {
    line: u64,
    reason: &'a str,
    /// The record as text (invalid UTF-8 replaced); absent for an oversized record.
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<std::borrow::Cow<'a, str>>,
    /// The record's size in bytes.
    bytes: u64,
}

impl Rejects {
    /// Creates (or truncates) the rejects file at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be created.
    pub fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("creating the rejects file {}", path.display()))?;
        Ok(Self {
            out: BufWriter::new(file),
            path: path.to_owned(),
        })
    }

    /// Writes one refused record as a JSON line: its line, the reason, the record (when it
    /// was read whole) and its size.
    ///
    /// # Errors
    ///
    /// When writing fails.
    pub fn write(&mut self, line: u64, refusal: &Refusal, item: &Item) -> Result<()> {
        let (record, bytes) = match item {
            Item::Record { bytes, .. } => {
                (Some(String::from_utf8_lossy(bytes)), bytes.len() as u64)
            }
            Item::Oversized { size, .. } => (None, *size),
            Item::Malformed { .. } => (None, 0),
        };
        serde_json::to_writer(
            &mut self.out,
            &Entry {
                line,
                reason: &refusal.message,
                record,
                bytes,
            },
        )?;
        self.out
            .write_all(b"\n")
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Flushes the file.
    ///
    /// # Errors
    ///
    /// When flushing fails.
    pub fn finish(mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
