//! The store handle: opening the environment, reads, appends, checkpoints, settings.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, WithoutTls};
use nostr::prelude::Event;
use parking_lot::{Mutex, RwLock};

use crate::codec::{self, CheckpointRecord, GroupEntry};
use crate::error::{Corruption, StoreError};
use crate::event::EventRef;
use crate::groups::{GroupInfo, GroupTable};
use crate::validate::{self, Limits, PreparedEvent};
use crate::writer::{self, AnyBox, AppendOutcome, CommitObserver, Request};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Initial LMDB map size in bytes (sparse; it costs address space, not disk).
    pub map_size: usize,
    /// The map grows by doubling up to this size; past it, appends fail with
    /// [`StoreError::MapFull`].
    pub max_map_size: usize,
    /// Limits on incoming events.
    pub limits: Limits,
    /// Skip Schnorr verification (for re-importing the tool's own exports). Ids are
    /// still hashed and checked.
    pub trusted: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            map_size: 1 << 30,
            max_map_size: 1 << 40,
            limits: Limits::default(),
            trusted: false,
        }
    }
}

/// An event after validation: ready for the writer, or already in the log.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Validated and encoded.
    Ready(PreparedEvent),
    /// Already stored at this sequence number.
    Duplicate(u64),
}

/// A checkpoint as stored: which projection version wrote it, up to which sequence
/// number it folded the group, and the projection's encoded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Version of the projection that wrote it.
    pub version: u64,
    /// Last sequence number folded into `state`.
    pub watermark: u64,
    /// Number of the group's events (of any kind) up to and including `watermark`.
    pub events: u64,
    /// The projection's encoded state.
    pub state: Vec<u8>,
}

/// A checkpoint's (version, watermark, events), or why it failed validation.
pub type CheckpointHeader = Result<(u64, u64, u64), Corruption>;

/// One checkpoint to write.
#[derive(Debug, Clone)]
pub struct CheckpointWrite {
    /// The projection's name.
    pub projection: String,
    /// The group's number ([`GroupInfo::no`]).
    pub group: u32,
    /// The checkpoint itself.
    pub checkpoint: Checkpoint,
}

/// How far a [`Store::scan_group`] got. When the callback stops the scan, the event it
/// stopped on is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupScan {
    /// The last sequence number of the group the scan passed (or its `after`).
    pub last: u64,
    /// How many of the group's events the scan passed.
    pub events: u64,
}

/// A pending acknowledgement from the writer for a submitted batch.
#[derive(Debug)]
#[must_use = "the batch is durable only once `wait` returns Ok"]
pub struct Ticket(Receiver<Result<Vec<AppendOutcome>, StoreError>>);

impl Ticket {
    /// Blocks until the batch is committed (or failed as a whole).
    pub fn wait(self) -> Result<Vec<AppendOutcome>, StoreError> {
        self.0.recv().map_err(|_| StoreError::WriterGone)?
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Dbs {
    pub(crate) meta: Database<Bytes, Bytes>,
    pub(crate) events: Database<Bytes, Bytes>,
    pub(crate) ids: Database<Bytes, Bytes>,
    pub(crate) groups: Database<Bytes, Bytes>,
    pub(crate) group_index: Database<Bytes, Bytes>,
    pub(crate) checkpoints: Database<Bytes, Bytes>,
}

/// State shared by the handle and the writer thread.
pub(crate) struct Shared {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) dbs: Dbs,
    pub(crate) groups: RwLock<GroupTable>,
    pub(crate) head: AtomicU64,
    /// Held shared by every read transaction and exclusively while the map is resized:
    /// LMDB requires that no transaction of this process is active during a resize.
    pub(crate) resize: RwLock<()>,
    pub(crate) observers: RwLock<Vec<(u64, Arc<dyn CommitObserver>)>>,
    pub(crate) map_size: AtomicUsize,
    pub(crate) max_map_size: usize,
}

impl Shared {
    /// Doubles the map, up to the limit. Returns false when it is already at the limit.
    pub(crate) fn grow_map(&self) -> Result<bool, StoreError> {
        let current = self.map_size.load(Ordering::Acquire);
        if current >= self.max_map_size {
            return Ok(false);
        }
        let page = 1 << 16;
        let next = current.saturating_mul(2).min(self.max_map_size) / page * page;
        if next <= current {
            return Ok(false);
        }
        let _exclusive = self.resize.write();
        #[expect(unsafe_code, reason = "LMDB map resize; see SAFETY")]
        // SAFETY: heed requires that no transaction of this process is active. Every
        // read transaction holds `resize` shared, we hold it exclusively, and write
        // transactions only exist on this (the writer) thread, between attempts.
        unsafe { self.env.resize(next) }.map_err(StoreError::lmdb("growing the map"))?;
        self.map_size.store(next, Ordering::Release);
        tracing::info!(from = current, to = next, "grew the LMDB map");
        Ok(true)
    }
}

struct Inner {
    shared: Arc<Shared>,
    options: StoreOptions,
    path: PathBuf,
    tx: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    next_observer: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel stops the writer after it has drained what was sent.
        drop(self.tx.take());
        if let Some(handle) = self.writer.take() {
            // The last handle can be dropped on the writer thread itself (a commit
            // observer holding a store clone, released after a commit); that thread
            // exits on its own once the channel is closed, so only join from others.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// Environments open in this process, so a second `open` of a path shares the handle.
static OPEN: Mutex<BTreeMap<PathBuf, std::sync::Weak<Inner>>> = Mutex::new(BTreeMap::new());

/// The append-only event log. Cheap to clone; all clones share one LMDB environment
/// and one writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("head", &self.head())
            .finish()
    }
}

/// Events read per read transaction during long scans, so LMDB can reuse pages.
const SCAN_CHUNK: usize = 4_096;

impl Store {
    /// Opens (creating if needed) the log in directory `dir`. Opening a path that is
    /// already open in this process returns the same store (its options win).
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            context: "creating the database directory",
            source,
        })?;
        let path = dir.canonicalize().map_err(|source| StoreError::Io {
            context: "resolving the database path",
            source,
        })?;
        let mut open = OPEN.lock();
        open.retain(|_, weak| weak.strong_count() > 0);
        if let Some(inner) = open.get(&path).and_then(std::sync::Weak::upgrade) {
            return Ok(Store { inner });
        }
        let inner = Arc::new(Self::open_new(&path, options)?);
        open.insert(path, Arc::downgrade(&inner));
        Ok(Store { inner })
    }

    fn open_new(path: &Path, options: StoreOptions) -> Result<Inner, StoreError> {
        let env = open_env(path, &options)?;
        let dbs = create_databases(&env, path)?;
        let (groups, head) = {
            let txn = env
                .read_txn()
                .map_err(StoreError::lmdb("reading the group table"))?;
            (load_groups(&txn, &dbs)?, last_seq(&txn, &dbs)?)
        };
        let map_size = env.info().map_size;
        let shared = Arc::new(Shared {
            env,
            dbs,
            groups: RwLock::new(groups),
            head: AtomicU64::new(head),
            resize: RwLock::new(()),
            observers: RwLock::new(Vec::new()),
            map_size: AtomicUsize::new(map_size),
            max_map_size: options.max_map_size.max(map_size),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("highwater-writer".into())
            .spawn(move || writer::run(&writer_shared, &rx))
            .map_err(|source| StoreError::Io {
                context: "starting the writer thread",
                source,
            })?;
        tracing::debug!(path = %path.display(), head, "opened store");
        Ok(Inner {
            shared,
            options,
            path: path.to_owned(),
            tx: Some(tx),
            writer: Some(writer),
            next_observer: AtomicU64::new(0),
        })
    }

    /// The directory of the environment.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The current LMDB map size in bytes.
    pub fn map_size(&self) -> usize {
        self.inner.shared.map_size.load(Ordering::Acquire)
    }

    /// Sequence number of the last committed event (0 for an empty log). Sequence
    /// numbers are dense, so this is also the number of events.
    pub fn head(&self) -> u64 {
        self.inner.shared.head.load(Ordering::Acquire)
    }

    /// The group's number, head and count, if the log has any event of it.
    pub fn group(&self, name: &str) -> Option<GroupInfo> {
        let table = self.inner.shared.groups.read_recursive();
        table.no(name).and_then(|no| table.info(no))
    }

    /// The group by number.
    pub fn group_by_no(&self, no: u32) -> Option<GroupInfo> {
        self.inner.shared.groups.read_recursive().info(no)
    }

    /// The group's number and head: the hot-path lookup of every read.
    pub fn group_no_head(&self, name: &str) -> Option<(u32, u64)> {
        let table = self.inner.shared.groups.read_recursive();
        table.no(name).map(|no| (no, table.head(no)))
    }

    /// Head of group `no` (0 if unknown). This is the hot-path check of every read.
    pub fn group_head(&self, no: u32) -> u64 {
        self.inner.shared.groups.read_recursive().head(no)
    }

    /// Every group, by number.
    pub fn groups(&self) -> Vec<GroupInfo> {
        self.inner.shared.groups.read_recursive().all()
    }

    /// Number of groups in the log.
    pub fn group_count(&self) -> usize {
        self.inner.shared.groups.read_recursive().len()
    }

    /// Validates an event: limits, group id, id hash, the duplicate index, then the
    /// signature (unless trusted). Runs on the calling thread.
    pub fn prepare(&self, event: &Event) -> Result<Prepared, StoreError> {
        let prepared = validate::check_and_encode(event, &self.inner.options.limits)?;
        if let Some(seq) = self.seq_of(&prepared.id)? {
            return Ok(Prepared::Duplicate(seq));
        }
        if !self.inner.options.trusted {
            validate::check_signature(event)?;
        }
        Ok(Prepared::Ready(prepared))
    }

    /// Sends prepared events to the writer without waiting. They are committed in the
    /// order given, after everything submitted before them.
    pub fn submit(&self, events: Vec<PreparedEvent>) -> Result<Ticket, StoreError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.sender()?
            .send(Request::Append { events, reply })
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Ticket(rx))
    }

    /// Validates and appends one event, returning once it is durable.
    pub fn append(&self, event: &Event) -> Result<AppendOutcome, StoreError> {
        match self.prepare(event)? {
            Prepared::Duplicate(seq) => Ok(AppendOutcome::Duplicate(seq)),
            Prepared::Ready(prepared) => {
                let outcomes = self.submit(vec![prepared])?.wait()?;
                outcomes.into_iter().next().ok_or(StoreError::WriterGone)
            }
        }
    }

    /// Validates (on all cores) and appends a batch in one commit, in order. The outer
    /// error means nothing of the batch was written; inner errors are per-event
    /// rejections, which leave the rest of the batch unaffected.
    pub fn append_batch(
        &self,
        events: &[Event],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        let prepared = self.prepare_all(events);
        let ready: Vec<PreparedEvent> = prepared
            .iter()
            .filter_map(|p| match p {
                Ok(Prepared::Ready(e)) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let mut committed = self.submit(ready)?.wait()?.into_iter();
        Ok(prepared
            .into_iter()
            .map(|p| match p {
                Ok(Prepared::Ready(_)) => committed.next().ok_or(StoreError::WriterGone),
                Ok(Prepared::Duplicate(seq)) => Ok(AppendOutcome::Duplicate(seq)),
                Err(e) => Err(e),
            })
            .collect())
    }

    /// [`Store::prepare`] for each event: limits, group ids and id hashes on all
    /// cores, then the duplicate index for the whole batch in one read transaction,
    /// then signatures (on all cores) for the events that are new.
    pub fn prepare_all(&self, events: &[Event]) -> Vec<Result<Prepared, StoreError>> {
        let limits = self.inner.options.limits;
        let mut out: Vec<Result<Prepared, StoreError>> = par_map(events, |e| {
            validate::check_and_encode(e, &limits).map(Prepared::Ready)
        });
        let duplicates = self.read(|txn, dbs| {
            let mut found = Vec::new();
            for (i, p) in out.iter().enumerate() {
                if let Ok(Prepared::Ready(p)) = p
                    && let Some(v) = dbs
                        .ids
                        .get(txn, &p.id)
                        .map_err(StoreError::lmdb("reading the id index"))?
                {
                    found.push((
                        i,
                        codec::decode_seq(v).ok_or_else(|| index_corrupted("ids"))?,
                    ));
                }
            }
            Ok(found)
        });
        match duplicates {
            Ok(found) => {
                for (i, seq) in found {
                    out[i] = Ok(Prepared::Duplicate(seq));
                }
            }
            Err(e) => return events.iter().map(|_| Err(copy_of(&e))).collect(),
        }
        if !self.inner.options.trusted {
            let ready: Vec<usize> = (0..out.len())
                .filter(|&i| matches!(out[i], Ok(Prepared::Ready(_))))
                .collect();
            let checks = par_map(&ready, |&i| validate::check_signature(&events[i]));
            for (i, check) in ready.into_iter().zip(checks) {
                if let Err(rejection) = check {
                    out[i] = Err(rejection.into());
                }
            }
        }
        out
    }

    fn sender(&self) -> Result<&Sender<Request>, StoreError> {
        self.inner.tx.as_ref().ok_or(StoreError::WriterGone)
    }

    /// Runs one write job on the writer thread, in its own transaction.
    pub(crate) fn exec<R: Send + 'static>(
        &self,
        job: impl Fn(&mut heed::RwTxn<'_>, &Dbs) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let job: writer::Job =
            Box::new(move |txn, dbs| job(txn, dbs).map(|r| Box::new(r) as AnyBox));
        self.sender()?
            .send(Request::Exec { job, reply })
            .map_err(|_| StoreError::WriterGone)?;
        let any = rx.recv().map_err(|_| StoreError::WriterGone)??;
        any.downcast::<R>()
            .map(|b| *b)
            .map_err(|_| StoreError::WriterGone)
    }

    /// Runs `f` in a short read transaction.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithoutTls>, &Dbs) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let shared = &self.inner.shared;
        let _guard = shared.resize.read_recursive();
        let txn = shared
            .env
            .read_txn()
            .map_err(StoreError::lmdb("opening a read transaction"))?;
        f(&txn, &shared.dbs)
    }

    /// The sequence number of the event with this id, if stored.
    pub fn seq_of(&self, id: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        self.read(|txn, dbs| {
            let value = dbs
                .ids
                .get(txn, id)
                .map_err(StoreError::lmdb("reading the id index"))?;
            value
                .map(|v| codec::decode_seq(v).ok_or_else(|| index_corrupted("ids")))
                .transpose()
        })
    }

    /// The event at `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        self.with_event(seq, |e| e.to_event(seq))
            .map(Option::flatten_result)?
    }

    /// The event with this id, and its sequence number.
    pub fn get_by_id(&self, id: &[u8; 32]) -> Result<Option<(u64, Event)>, StoreError> {
        let Some(seq) = self.seq_of(id)? else {
            return Ok(None);
        };
        Ok(self.get(seq)?.map(|e| (seq, e)))
    }

    /// Calls `f` with a zero-copy view of the event at `seq`.
    pub fn with_event<R>(
        &self,
        seq: u64,
        f: impl FnOnce(EventRef<'_>) -> R,
    ) -> Result<Option<R>, StoreError> {
        self.read(|txn, dbs| {
            let Some(bytes) = dbs
                .events
                .get(txn, &codec::seq_key(seq))
                .map_err(StoreError::lmdb("reading a record"))?
            else {
                return Ok(None);
            };
            Ok(Some(f(EventRef::new(codec::access_record(bytes, seq)?))))
        })
    }

    /// Visits the log from `from` (inclusive) in sequence order, with zero-copy views,
    /// in chunks of short read transactions. `f` may stop the scan early.
    pub fn scan(
        &self,
        from: u64,
        mut f: impl FnMut(u64, EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let mut next = from.max(1);
        loop {
            let step = self.read(|txn, dbs| {
                let start = codec::seq_key(next);
                let range = (Bound::Included(&start[..]), Bound::Unbounded);
                let mut seen = 0;
                for item in dbs
                    .events
                    .range(txn, &range)
                    .map_err(StoreError::lmdb("scanning the log"))?
                {
                    let (key, value) = item.map_err(StoreError::lmdb("scanning the log"))?;
                    let seq = codec::decode_seq(key).ok_or_else(|| index_corrupted("events"))?;
                    if f(seq, EventRef::new(codec::access_record(value, seq)?)).is_break() {
                        return Ok(None);
                    }
                    seen += 1;
                    if seen == SCAN_CHUNK {
                        return Ok(Some(seq + 1));
                    }
                }
                Ok(None)
            })?;
            match step {
                Some(resume) => next = resume,
                None => return Ok(()),
            }
        }
    }

    /// Visits the events of group `no` after `after`, in sequence order, skipping
    /// (without reading them) events whose kind `want` refuses. Returns how far the scan
    /// got: the last sequence number of the group it saw (kept or skipped), and how many
    /// of the group's events it saw.
    pub fn scan_group(
        &self,
        no: u32,
        after: u64,
        want: impl Fn(u16) -> bool,
        mut f: impl FnMut(u64, EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<GroupScan, StoreError> {
        let mut scan = GroupScan {
            last: after,
            events: 0,
        };
        loop {
            let finished = self.read(|txn, dbs| {
                let start = codec::group_index_key(no, scan.last.saturating_add(1));
                let end = codec::group_index_key(no, u64::MAX);
                let range = (Bound::Included(&start[..]), Bound::Included(&end[..]));
                let mut seen = 0;
                let iter = dbs
                    .group_index
                    .range(txn, &range)
                    .map_err(StoreError::lmdb("scanning a group"))?;
                for item in iter {
                    let (key, value) = item.map_err(StoreError::lmdb("scanning a group"))?;
                    let (_, seq) = codec::decode_group_index_key(key)
                        .ok_or_else(|| index_corrupted("group_index"))?;
                    let kind =
                        codec::decode_kind(value).ok_or_else(|| index_corrupted("group_index"))?;
                    if want(kind) {
                        let bytes = dbs
                            .events
                            .get(txn, &codec::seq_key(seq))
                            .map_err(StoreError::lmdb("reading a record"))?
                            .ok_or_else(|| {
                                StoreError::Corrupted(Corruption::Record {
                                    seq,
                                    reason: "indexed but missing".into(),
                                })
                            })?;
                        if f(seq, EventRef::new(codec::access_record(bytes, seq)?)).is_break() {
                            return Ok(true);
                        }
                    }
                    scan.last = seq;
                    scan.events += 1;
                    seen += 1;
                    if seen == SCAN_CHUNK {
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            if finished {
                return Ok(scan);
            }
        }
    }

    /// Owned events from `from` (inclusive), read in chunks.
    pub fn iter_from(&self, from: u64) -> LogIter {
        LogIter {
            store: self.clone(),
            next: from.max(1),
            buffer: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// Registers a commit observer; returns its id for [`Store::remove_observer`].
    pub fn add_observer(&self, observer: Arc<dyn CommitObserver>) -> u64 {
        let id = self.inner.next_observer.fetch_add(1, Ordering::Relaxed);
        self.inner.shared.observers.write().push((id, observer));
        id
    }

    /// Unregisters a commit observer.
    pub fn remove_observer(&self, id: u64) {
        self.inner
            .shared
            .observers
            .write()
            .retain(|(i, _)| *i != id);
    }

    /// Reads the checkpoint of (projection, group no). A checkpoint that fails its
    /// checksum or validation is [`StoreError::Corrupted`].
    pub fn read_checkpoint(
        &self,
        projection: &str,
        group: u32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let name = self
            .group_by_no(group)
            .map_or_else(|| group.to_string(), |g| g.name.to_string());
        self.read(|txn, dbs| {
            let key = codec::checkpoint_key(projection, group);
            let Some(bytes) = dbs
                .checkpoints
                .get(txn, &key)
                .map_err(StoreError::lmdb("reading a checkpoint"))?
            else {
                return Ok(None);
            };
            let record = codec::decode_checkpoint(bytes, projection, &name)?;
            Ok(Some(Checkpoint {
                version: record.version,
                watermark: record.watermark,
                events: record.events,
                state: record.state,
            }))
        })
    }

    /// Group numbers that have a checkpoint of `projection`.
    pub fn checkpointed_groups(&self, projection: &str) -> Result<Vec<u32>, StoreError> {
        check_projection_name(projection)?;
        self.read(|txn, dbs| {
            let prefix = codec::checkpoint_prefix(projection);
            let mut out = Vec::new();
            for item in dbs
                .checkpoints
                .prefix_iter(txn, &prefix)
                .map_err(StoreError::lmdb("listing checkpoints"))?
            {
                let (key, _) = item.map_err(StoreError::lmdb("listing checkpoints"))?;
                out.push(
                    codec::decode_checkpoint_key_group(key)
                        .ok_or_else(|| index_corrupted("checkpoints"))?,
                );
            }
            Ok(out)
        })
    }

    /// Every checkpoint of `projection` without its state: (group no, version,
    /// watermark, events), or the corruption error of the first that fails validation.
    pub fn checkpoint_headers(
        &self,
        projection: &str,
    ) -> Result<Vec<(u32, CheckpointHeader)>, StoreError> {
        check_projection_name(projection)?;
        self.read(|txn, dbs| {
            let prefix = codec::checkpoint_prefix(projection);
            let mut out = Vec::new();
            let iter = dbs
                .checkpoints
                .prefix_iter(txn, &prefix)
                .map_err(StoreError::lmdb("listing checkpoints"))?;
            for item in iter {
                let (key, value) = item.map_err(StoreError::lmdb("listing checkpoints"))?;
                let no = codec::decode_checkpoint_key_group(key)
                    .ok_or_else(|| index_corrupted("checkpoints"))?;
                let header = match codec::decode_checkpoint(value, projection, &no.to_string()) {
                    Ok(r) => Ok((r.version, r.watermark, r.events)),
                    Err(StoreError::Corrupted(c)) => Err(c),
                    Err(e) => return Err(e),
                };
                out.push((no, header));
            }
            Ok(out)
        })
    }

    /// Writes checkpoints in one transaction. With `replace_all = Some(p)`, every other
    /// checkpoint of projection `p` is deleted in the same transaction.
    pub fn write_checkpoints(
        &self,
        writes: Vec<CheckpointWrite>,
        replace_all: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(writes.len());
        for w in writes {
            check_projection_name(&w.projection)?;
            let record = CheckpointRecord {
                version: w.checkpoint.version,
                watermark: w.checkpoint.watermark,
                events: w.checkpoint.events,
                state: w.checkpoint.state,
            };
            encoded.push((
                codec::checkpoint_key(&w.projection, w.group),
                codec::encode_checkpoint(&record)?,
            ));
        }
        if let Some(p) = replace_all {
            check_projection_name(p)?;
        }
        let prefix = replace_all.map(codec::checkpoint_prefix);
        self.exec(move |txn, dbs| {
            if let Some(prefix) = &prefix {
                delete_prefix(txn, dbs, prefix)?;
            }
            for (key, value) in &encoded {
                dbs.checkpoints
                    .put(txn, key, value)
                    .map_err(StoreError::lmdb("writing a checkpoint"))?;
            }
            Ok(())
        })
    }

    /// Deletes every checkpoint of `projection`, or of all projections. Returns how many.
    pub fn delete_checkpoints(&self, projection: Option<&str>) -> Result<usize, StoreError> {
        if let Some(p) = projection {
            check_projection_name(p)?;
        }
        let prefix = projection.map(codec::checkpoint_prefix).unwrap_or_default();
        self.exec(move |txn, dbs| delete_prefix(txn, dbs, &prefix))
    }

    /// Reads an application setting (stored in the `meta` table under `app.NAME`).
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("app.{name}");
        self.read(|txn, dbs| {
            Ok(dbs
                .meta
                .get(txn, key.as_bytes())
                .map_err(StoreError::lmdb("reading a setting"))?
                .map(<[u8]>::to_vec))
        })
    }

    /// Writes an application setting durably.
    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = format!("app.{name}");
        let value = value.to_vec();
        self.exec(move |txn, dbs| {
            dbs.meta
                .put(txn, key.as_bytes(), &value)
                .map_err(StoreError::lmdb("writing a setting"))
        })
    }

    /// Test support: the raw stored bytes of a checkpoint.
    #[doc(hidden)]
    pub fn raw_checkpoint(
        &self,
        projection: &str,
        group: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = codec::checkpoint_key(projection, group);
        self.read(|txn, dbs| {
            Ok(dbs
                .checkpoints
                .get(txn, &key)
                .map_err(StoreError::lmdb("reading a checkpoint"))?
                .map(<[u8]>::to_vec))
        })
    }

    /// Test support: overwrites the raw bytes of a checkpoint (to simulate corruption).
    #[doc(hidden)]
    pub fn put_raw_checkpoint(
        &self,
        projection: &str,
        group: u32,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let key = codec::checkpoint_key(projection, group);
        self.exec(move |txn, dbs| {
            dbs.checkpoints
                .put(txn, &key, &bytes)
                .map_err(StoreError::lmdb("writing a checkpoint"))
        })
    }

    /// Test support: the raw stored bytes of a log record.
    #[doc(hidden)]
    pub fn raw_record(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn, dbs| {
            Ok(dbs
                .events
                .get(txn, &codec::seq_key(seq))
                .map_err(StoreError::lmdb("reading a record"))?
                .map(<[u8]>::to_vec))
        })
    }

    /// Test support: overwrites the raw bytes of a log record (to simulate corruption).
    #[doc(hidden)]
    pub fn put_raw_record(&self, seq: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.exec(move |txn, dbs| {
            dbs.events
                .put(txn, &codec::seq_key(seq), &bytes)
                .map_err(StoreError::lmdb("writing a record"))
        })
    }

    /// Benchmark baseline: walks the log with a raw cursor, touching one byte of each
    /// value without validating or decoding it. Returns (records, bytes).
    pub fn raw_scan(&self) -> Result<(u64, u64), StoreError> {
        let mut bytes = 0u64;
        let records = self.raw_scan_with(|value| {
            bytes += u64::from(value.first().copied().unwrap_or(0)) + value.len() as u64;
        })?;
        Ok((records, bytes))
    }

    /// Benchmark baseline: walks the log with a raw cursor and hands every raw value
    /// to `f` (no checksum, no validation). Returns the number of records.
    pub fn raw_scan_with(&self, mut f: impl FnMut(&[u8])) -> Result<u64, StoreError> {
        let mut records = 0u64;
        let mut next = 1u64;
        loop {
            let more = self.read(|txn, dbs| {
                let start = codec::seq_key(next);
                let range = (Bound::Included(&start[..]), Bound::Unbounded);
                let mut seen = 0;
                for item in dbs
                    .events
                    .range(txn, &range)
                    .map_err(StoreError::lmdb("scanning the log"))?
                {
                    let (_, value) = item.map_err(StoreError::lmdb("scanning the log"))?;
                    f(value);
                    records += 1;
                    seen += 1;
                    if seen == SCAN_CHUNK {
                        next += SCAN_CHUNK as u64;
                        return Ok(true);
                    }
                }
                Ok(false)
            })?;
            if !more {
                return Ok(records);
            }
        }
    }
}

/// `f` over `items` in order, split over the machine's cores for large inputs.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if items.len() < 64 || threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        // A panicking worker is a bug in validation; re-raise it rather than return a
        // result vector that no longer lines up with the input.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The same error again, for every event of a batch that failed as a whole.
fn copy_of(error: &StoreError) -> StoreError {
    StoreError::Lmdb {
        context: "reading the id index",
        message: error.to_string(),
    }
}

/// Owned events in log order, read in chunks of short transactions.
#[derive(Debug)]
pub struct LogIter {
    store: Store,
    next: u64,
    /// Converted events, and at most one error, last: an error is yielded after the
    /// events before it, never ahead of them.
    buffer: std::collections::VecDeque<Result<(u64, Event), StoreError>>,
    done: bool,
}

impl Iterator for LogIter {
    type Item = Result<(u64, Event), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let mut taken = 0;
            let mut last = None;
            let buffer = &mut self.buffer;
            let result = self.store.scan(self.next, |seq, event| {
                match event.to_event(seq) {
                    Ok(e) => buffer.push_back(Ok((seq, e))),
                    Err(e) => {
                        buffer.push_back(Err(e));
                        return ControlFlow::Break(());
                    }
                }
                last = Some(seq);
                taken += 1;
                if taken == 1_024 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            match (result, last) {
                (Err(e), _) => {
                    self.buffer.push_back(Err(e));
                    self.done = true;
                }
                (Ok(()), Some(seq)) if taken == 1_024 => self.next = seq + 1,
                _ => self.done = true,
            }
        }
        self.buffer.pop_front()
    }
}

trait FlattenResult<T> {
    fn flatten_result(self) -> Result<Option<T>, StoreError>;
}

impl<T> FlattenResult<T> for Option<Result<T, StoreError>> {
    fn flatten_result(self) -> Result<Option<T>, StoreError> {
        self.transpose()
    }
}

fn delete_prefix(txn: &mut heed::RwTxn<'_>, dbs: &Dbs, prefix: &[u8]) -> Result<usize, StoreError> {
    if prefix.is_empty() {
        let count = dbs
            .checkpoints
            .len(txn)
            .map_err(StoreError::lmdb("counting checkpoints"))?;
        dbs.checkpoints
            .clear(txn)
            .map_err(StoreError::lmdb("deleting checkpoints"))?;
        return Ok(count as usize);
    }
    // LMDB refuses a zero-length key for a range start (MDB_BAD_VALSIZE), so "every
    // checkpoint" cannot go through `prefix_iter_mut`.
    if prefix.is_empty() {
        let deleted = dbs
            .checkpoints
            .len(txn)
            .map_err(StoreError::lmdb("deleting checkpoints"))?;
        dbs.checkpoints
            .clear(txn)
            .map_err(StoreError::lmdb("deleting checkpoints"))?;
        return Ok(deleted as usize);
    }
    let mut deleted = 0;
    let mut iter = dbs
        .checkpoints
        .prefix_iter_mut(txn, prefix)
        .map_err(StoreError::lmdb("deleting checkpoints"))?;
    while let Some(item) = iter.next() {
        item.map_err(StoreError::lmdb("deleting checkpoints"))?;
        #[expect(unsafe_code, reason = "heed's in-place cursor delete; see SAFETY")]
        // SAFETY: heed requires that no reference into the database outlives the
        // deletion; the key and value of this entry were dropped above.
        unsafe { iter.del_current() }.map_err(StoreError::lmdb("deleting checkpoints"))?;
        deleted += 1;
    }
    Ok(deleted)
}

fn check_projection_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > 64
        || name
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Err(StoreError::InvalidArgument(format!(
            "projection name {name:?}: use 1–64 of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

fn index_corrupted(table: &'static str) -> StoreError {
    StoreError::Corrupted(Corruption::Index {
        table,
        reason: "key or value has the wrong shape".into(),
    })
}

fn open_env(path: &Path, options: &StoreOptions) -> Result<Env<WithoutTls>, StoreError> {
    let page = 1 << 16;
    let map_size = options.map_size.max(page) / page * page;
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder.map_size(map_size).max_dbs(8).max_readers(1_024);
    // Another handle of this path may be closing on another thread; give it a moment.
    for attempt in 0..50 {
        #[expect(unsafe_code, reason = "opening the LMDB memory map; see SAFETY")]
        // SAFETY: heed's `# Safety` list for `EnvOpenOptions::open`, point by point:
        // - long-lived transactions: every read transaction of this crate is scoped to a
        //   call (`Store::read`), and long scans reopen one per chunk of events;
        // - aborting with an active transaction: LMDB's lock file recovers stale readers
        //   and the last committed meta page wins, which the crash tests exercise;
        // - remote filesystems: documented as unsupported in ARCHITECTURE.md;
        // - NO_LOCK: never set; no unsafe flags are set at all;
        // - breaking the lock file: we never touch `lock.mdb`;
        // - the same path opened twice in one process: `Store::open` keeps a registry
        //   and hands out the existing handle instead.
        let opened = unsafe { builder.open(path) };
        match opened {
            Err(heed::Error::EnvAlreadyOpened) if attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(StoreError::lmdb("opening the environment")),
        }
    }
    Err(StoreError::Lmdb {
        context: "opening the environment",
        message: "still open elsewhere in this process".into(),
    })
}

fn create_databases(env: &Env<WithoutTls>, path: &Path) -> Result<Dbs, StoreError> {
    let ctx = "creating the databases";
    let mut txn = env.write_txn().map_err(StoreError::lmdb(ctx))?;
    let mut create = |name| {
        env.create_database::<Bytes, Bytes>(&mut txn, Some(name))
            .map_err(StoreError::lmdb(ctx))
    };
    let dbs = Dbs {
        meta: create("meta")?,
        events: create("events")?,
        ids: create("ids")?,
        groups: create("groups")?,
        group_index: create("group_index")?,
        checkpoints: create("checkpoints")?,
    };
    let stored = dbs
        .meta
        .get(&txn, codec::META_FORMAT_VERSION.as_bytes())
        .map_err(StoreError::lmdb(ctx))?;
    if let Some(bytes) = stored {
        let found = bytes.try_into().map_or(0, u32::from_be_bytes);
        if found != codec::FORMAT_VERSION {
            return Err(StoreError::FormatVersion {
                path: path.to_owned(),
                found,
                expected: codec::FORMAT_VERSION,
            });
        }
    } else {
        if !dbs.events.is_empty(&txn).map_err(StoreError::lmdb(ctx))? {
            return Err(StoreError::FormatVersion {
                path: path.to_owned(),
                found: 0,
                expected: codec::FORMAT_VERSION,
            });
        }
        dbs.meta
            .put(
                &mut txn,
                codec::META_FORMAT_VERSION.as_bytes(),
                &codec::FORMAT_VERSION.to_be_bytes(),
            )
            .map_err(StoreError::lmdb(ctx))?;
    }
    txn.commit().map_err(StoreError::lmdb(ctx))?;
    Ok(dbs)
}

fn load_groups(txn: &RoTxn<'_, WithoutTls>, dbs: &Dbs) -> Result<GroupTable, StoreError> {
    let mut entries = Vec::new();
    for item in dbs
        .groups
        .iter(txn)
        .map_err(StoreError::lmdb("loading groups"))?
    {
        let (key, value) = item.map_err(StoreError::lmdb("loading groups"))?;
        let name = std::str::from_utf8(key).map_err(|_| index_corrupted("groups"))?;
        let entry = GroupEntry::decode(value).ok_or_else(|| index_corrupted("groups"))?;
        entries.push((name.to_owned(), entry));
    }
    entries.sort_by_key(|(_, e)| e.no);
    let mut table = GroupTable::default();
    for (expected, (name, entry)) in entries.iter().enumerate() {
        if entry.no as usize != expected {
            return Err(index_corrupted("groups"));
        }
        table.upsert(name, entry.no, entry.head, entry.count);
    }
    Ok(table)
}

fn last_seq(txn: &RoTxn<'_, WithoutTls>, dbs: &Dbs) -> Result<u64, StoreError> {
    match dbs
        .events
        .last(txn)
        .map_err(StoreError::lmdb("reading the log head"))?
    {
        Some((key, _)) => codec::decode_seq(key).ok_or_else(|| index_corrupted("events")),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::*;

    /// Rewrites (or removes) the stored format version, with the store closed.
    fn set_stored_version(path: &Path, version: Option<u32>) {
        let env = open_env(path, &StoreOptions::default()).unwrap();
        let mut txn = env.write_txn().unwrap();
        let meta: Database<Bytes, Bytes> = env
            .open_database(&txn, Some("meta"))
            .unwrap()
            .expect("the meta database exists");
        let key = codec::META_FORMAT_VERSION.as_bytes();
        match version {
            Some(v) => meta.put(&mut txn, key, &v.to_be_bytes()).unwrap(),
            None => assert!(meta.delete(&mut txn, key).unwrap()),
        }
        txn.commit().unwrap();
    }

    #[test]
    fn a_database_of_another_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::generate();
        let event = EventBuilder::new(Kind::GroupCreateGroup, "")
            .tag(Tag::parse(["h", "g"]).unwrap())
            .finalize(&keys)
            .unwrap();
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            assert_eq!(store.append(&event).unwrap(), AppendOutcome::Appended(1));
        }

        set_stored_version(dir.path(), Some(2));
        match Store::open(dir.path(), StoreOptions::default()) {
            Err(StoreError::FormatVersion {
                found: 2,
                expected,
                path,
            }) => {
                assert_eq!(expected, codec::FORMAT_VERSION);
                assert_eq!(path, dir.path().canonicalize().unwrap());
            }
            other => panic!("expected a format version error, got {other:?}"),
        }

        // A log with events but no version at all is not silently adopted either.
        set_stored_version(dir.path(), None);
        assert!(matches!(
            Store::open(dir.path(), StoreOptions::default()),
            Err(StoreError::FormatVersion { found: 0, .. })
        ));

        // The refused opens left nothing open: the right version opens and reads.
        set_stored_version(dir.path(), Some(codec::FORMAT_VERSION));
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.head(), 1);
        assert_eq!(store.get(1).unwrap(), Some(event));
    }
}
