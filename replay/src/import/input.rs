//! Reading an import's input: plain or gzip-compressed (by magic bytes), with or without
//! a UTF-8 BOM, as JSONL (one record a line, LF or CRLF, blank lines skipped) or as one
//! JSON array of events (detected by its opening `[` followed by `{`), cut into records
//! of at most a fixed number of bytes. A longer record is reported as oversized after
//! reading no more than that cap into memory: the rest of it is skipped unbuffered.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use flate2::read::MultiGzDecoder;

/// One record of the input, with the line it starts on (1-based).
#[derive(Debug)]
pub enum Item {
    /// The bytes of one record (a line, or an element of the array).
    Record {
        /// The line the record starts on.
        line: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A record longer than the cap; `size` is its full length in bytes.
    Oversized {
        /// The line the record starts on.
        line: u64,
        /// Its full length in bytes.
        size: u64,
    },
    /// Something that is not a record: an array that ends early, data after the array.
    Malformed {
        /// The line where reading failed.
        line: u64,
        /// What was wrong.
        message: String,
    },
}

impl Item {
    /// The line the item starts on (1-based).
    pub fn line(&self) -> u64 {
        match self {
            Item::Record { line, .. }
            | Item::Oversized { line, .. }
            | Item::Malformed { line, .. } => *line,
        }
    }
}

/// How the input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One record a line.
    Lines,
    /// One JSON array of events.
    Array,
}

/// Counts the bytes read through it (the compressed bytes, for gzip input).
#[derive(Debug)]
pub(crate) struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The records of an input, in order.
pub struct Records {
    inner: Box<dyn BufRead + Send>,
    layout: Layout,
    gzip: bool,
    cap: usize,
    /// The line the next unread byte is on.
    line: u64,
    done: bool,
    /// Items read and put back ([`Records::put_back`]), handed out again first, and
    /// the error that ended reading then, handed out after them.
    put_back: VecDeque<Item>,
    deferred: Option<io::Error>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("layout", &self.layout)
            .field("gzip", &self.gzip)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BOM: [u8; 3] = [0xef, 0xbb, 0xbf];
/// How much of the start of the text is read to decide its layout.
const DETECT_BYTES: usize = 64 * 1024;

impl Records {
    /// Opens `input`: decompresses gzip (by its magic bytes; `named_gz` insists on it),
    /// skips a BOM and decides the layout. `cap` is the longest record kept in memory.
    /// The returned counter follows the raw bytes read.
    pub fn open(
        input: impl Read + Send + 'static,
        named_gz: bool,
        cap: usize,
    ) -> Result<(Self, Arc<AtomicU64>)> {
        let count = Arc::new(AtomicU64::new(0));
        let mut raw = Counting {
            inner: input,
            count: count.clone(),
        };
        let magic = read_prefix(&mut raw, 2)?;
        let gzip = magic.starts_with(&GZIP_MAGIC);
        if named_gz && !gzip {
            bail!("the file is named .gz but is not gzip-compressed (no gzip magic bytes)");
        }
        let raw = io::Cursor::new(magic).chain(raw);
        let mut plain: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(BufReader::with_capacity(1 << 20, raw)))
        } else {
            Box::new(raw)
        };
        // The start of the text decides the layout; it is read whole (a pipe may hand
        // over a few bytes at a time) and put back in front of the rest.
        let mut start = read_prefix(&mut plain, DETECT_BYTES)?;
        if start.starts_with(&BOM) {
            start.drain(..BOM.len());
        }
        let (layout, consumed, lines) = detect(&start);
        start.drain(..consumed);
        let inner: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(
            1 << 20,
            io::Cursor::new(start).chain(plain),
        ));
        Ok((
            Self {
                inner,
                layout,
                gzip,
                cap,
                line: 1 + lines,
                done: false,
                put_back: VecDeque::new(),
                deferred: None,
            },
            count,
        ))
    }

    /// The next record, `None` at the end. An I/O error (a truncated gzip stream, a
    /// failing disk) ends the input; the records before it stand.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        if let Some(item) = self.put_back.pop_front() {
            return Ok(Some(item));
        }
        if let Some(error) = self.deferred.take() {
            self.done = true;
            return Err(error);
        }
        if self.done {
            return Ok(None);
        }
        let item = match self.layout {
            Layout::Lines => self.next_line(),
            Layout::Array => self.next_element(),
        };
        if !matches!(item, Ok(Some(_))) {
            self.done = true;
        }
        item
    }

    /// Puts `items`, the first ones read, back in front of the rest, and `error`, the
    /// error that ended reading while they were read, after them: they are read again.
    pub(crate) fn put_back(&mut self, items: VecDeque<Item>, error: Option<io::Error>) {
        debug_assert!(self.put_back.is_empty() && self.deferred.is_none());
        self.put_back = items;
        self.deferred = error;
    }

    fn next_line(&mut self) -> io::Result<Option<Item>> {
        loop {
            let line = self.line;
            let mut buf = Vec::new();
            let Some(size) = read_line_capped(&mut self.inner, &mut buf, self.cap)? else {
                return Ok(None);
            };
            self.line += 1;
            if size > buf.len() as u64 {
                return Ok(Some(Item::Oversized { line, size }));
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if !buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(Item::Record { line, bytes: buf }));
            }
        }
    }

    /// The next element of the array (the opening `[` was consumed by `detect`).
    fn next_element(&mut self) -> io::Result<Option<Item>> {
        // Skip separators up to the element.
        let first = loop {
            let Some(b) = self.peek()? else {
                return Ok(Some(Item::Malformed {
                    line: self.line,
                    message: "the JSON array ends without its closing `]` (truncated input?)"
                        .into(),
                }));
            };
            if b.is_ascii_whitespace() || b == b',' {
                self.bump(b);
                continue;
            }
            break b;
        };
        if first == b']' {
            self.bump(first);
            return self.after_array();
        }
        let line = self.line;
        let mut buf = Vec::new();
        let mut size = 0u64;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escape = false;
        loop {
            let Some(b) = self.peek()? else {
                return Ok(Some(Item::Malformed {
                    line,
                    message: "the JSON array ends in the middle of an element (truncated input?)"
                        .into(),
                }));
            };
            if depth == 0 && !in_string && (b == b',' || b == b']') {
                break;
            }
            self.bump(b);
            size += 1;
            if buf.len() < self.cap {
                buf.push(b);
            }
            if in_string {
                if escape {
                    escape = false;
                } else if b == b'\\' {
                    escape = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        if size > self.cap as u64 {
            return Ok(Some(Item::Oversized { line, size }));
        }
        while buf.last().is_some_and(u8::is_ascii_whitespace) {
            buf.pop();
        }
        Ok(Some(Item::Record { line, bytes: buf }))
    }

    /// After the closing `]`: only whitespace may follow.
    fn after_array(&mut self) -> io::Result<Option<Item>> {
        loop {
            let Some(b) = self.peek()? else {
                return Ok(None);
            };
            if !b.is_ascii_whitespace() {
                return Ok(Some(Item::Malformed {
                    line: self.line,
                    message: "data after the closing `]` of the JSON array".into(),
                }));
            }
            self.bump(b);
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.inner.fill_buf()?.first().copied())
    }

    fn bump(&mut self, b: u8) {
        if b == b'\n' {
            self.line += 1;
        }
        self.inner.consume(1);
    }
}

/// Reads up to `n` bytes (fewer only at the end of the input).
fn read_prefix(reader: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut prefix)?;
    Ok(prefix)
}

/// Decides the layout from the start of the text: an array when the first non-blank
/// byte is `[` and the next one is `{` or `]` (an `["EVENT", …]` line has `"` there).
/// Returns the layout, the bytes to skip (through the array's `[`) and the line breaks
/// among them.
fn detect(start: &[u8]) -> (Layout, usize, u64) {
    let mut bytes = start
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_whitespace());
    let Some((at, b'[')) = bytes.next() else {
        return (Layout::Lines, 0, 0);
    };
    match bytes.next() {
        Some((_, b'{' | b']')) => {
            #[expect(clippy::naive_bytecount, reason = "a few blank lines at most")]
            let lines = start[..at].iter().filter(|&&b| b == b'\n').count() as u64;
            (Layout::Array, at + 1, lines)
        }
        _ => (Layout::Lines, 0, 0),
    }
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `cap` bytes; returns
/// the line's full length, or `None` at the end of the input.
fn read_line_capped(
    reader: &mut Box<dyn BufRead + Send>,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<u64>> {
    let mut size = 0u64;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(size));
        }
        any = true;
        let (take, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (available.len(), false),
        };
        let room = cap.saturating_sub(buf.len()).min(take);
        buf.extend_from_slice(&available[..room]);
        size += take as u64;
        reader.consume(take + usize::from(newline));
        if newline {
            return Ok(Some(size));
        }
    }
}
