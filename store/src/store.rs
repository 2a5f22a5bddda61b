//! The store handle: opening, the shared state of the handle and the writer thread,
//! validation and appends. Reads are in `reads`, checkpoints and settings in
//! `checkpoints`, the environment and its databases in `env`.

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use heed::types::Bytes;
use heed::{Database, Env, RoTxn, WithoutTls};
use nostr::prelude::Event;
use parking_lot::{Mutex, RwLock};

use crate::env::{
    check_file_length, create_databases, last_seq, load_groups, open_databases, open_env,
};
use crate::error::{Corruption, StoreError};
use crate::groups::{GroupInfo, GroupTable};
use crate::lockfile::LockFileTxn;
use crate::oneshot;
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
    /// Open without a writer: no thread is started and nothing is ever written, so a
    /// directory the process cannot write works (see [`Store::is_lockless`]). Appends,
    /// checkpoints and settings fail with [`StoreError::ReadOnly`].
    pub read_only: bool,
    /// Group commit: how long the writer may wait for more requests before it commits,
    /// when fewer are queued than it expects — the callers its previous commit answered
    /// (each may send again at once) and those that were already waiting behind it. So
    /// many callers that append one event at a time and wait share one fsync instead of
    /// splitting into cohorts that alternate. A lone caller is never delayed (its
    /// previous commit answered only it); no request waits longer than this for the
    /// linger, requests keep their order, and every caller is still acknowledged only
    /// after the durable commit. Zero disables the wait (the writer then commits what
    /// is queued as soon as it is free). Default: 250 µs.
    pub commit_wait: Duration,
    /// [`Store::append_batch`] commits a batch of up to this many events in one
    /// transaction (all or nothing); a larger batch is split into chunks of this size,
    /// validated one chunk ahead of the commit. At least 1. Default: 8,192.
    pub append_chunk: usize,
}

impl StoreOptions {
    /// Read-only options: see [`StoreOptions::read_only`].
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            ..Self::default()
        }
    }

    /// The first option that differs between two option sets, by name.
    fn first_difference(&self, other: &StoreOptions) -> Option<&'static str> {
        if self.read_only != other.read_only {
            Some("read_only")
        } else if self.trusted != other.trusted {
            Some("trusted")
        } else if self.limits != other.limits {
            Some("limits")
        } else if self.map_size != other.map_size {
            Some("map_size")
        } else if self.max_map_size != other.max_map_size {
            Some("max_map_size")
        } else if self.commit_wait != other.commit_wait {
            Some("commit_wait")
        } else if self.append_chunk != other.append_chunk {
            Some("append_chunk")
        } else {
            None
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            map_size: 1 << 30,
            max_map_size: 1 << 40,
            limits: Limits::default(),
            trusted: false,
            read_only: false,
            commit_wait: DEFAULT_COMMIT_WAIT,
            append_chunk: DEFAULT_APPEND_CHUNK,
        }
    }
}

/// The default [`StoreOptions::commit_wait`]: long enough for a caller woken by its
/// acknowledgement to hash and send its next event on a busy machine, short beside a
/// durable commit on most disks.
const DEFAULT_COMMIT_WAIT: Duration = Duration::from_micros(250);

/// The default [`StoreOptions::append_chunk`].
const DEFAULT_APPEND_CHUNK: usize = 8_192;

/// Events validated together on one thread: one read transaction looks their ids up.
/// Small enough that the threads of [`Store::prepare_all`] stay balanced while the
/// writer shares their cores.
const PREPARE_BLOCK: usize = 64;

/// An event after validation: ready for the writer, or already in the log.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Validated and encoded.
    Ready(PreparedEvent),
    /// Already stored at this sequence number.
    Duplicate(u64),
}

/// A pending acknowledgement from the writer for a submitted batch.
///
/// Block on it with [`Ticket::wait`], or `.await` it: the writer thread completes it
/// after the batch's durable commit and wakes the waiting thread or task. Awaiting
/// needs no particular async runtime and never blocks the polling thread.
#[derive(Debug)]
#[must_use = "the batch is durable only once `wait` (or `.await`) returns Ok"]
pub struct Ticket(oneshot::Receiver<Result<Vec<AppendOutcome>, StoreError>>);

impl Ticket {
    /// Blocks until the batch is committed (or failed as a whole).
    ///
    /// # Errors
    ///
    /// The batch's failure, the same for every caller of its group commit (a full map
    /// or disk, an I/O or LMDB error); [`StoreError::WriterGone`] if the writer
    /// stopped first. On error nothing of the batch was written.
    pub fn wait(self) -> Result<Vec<AppendOutcome>, StoreError> {
        self.0.recv().ok_or(StoreError::WriterGone)?
    }
}

impl std::future::Future for Ticket {
    type Output = Result<Vec<AppendOutcome>, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|reply| reply.ok_or(StoreError::WriterGone)?)
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
    /// The group table and `head` as of LMDB transaction `seen_txn`: what this process
    /// knows of the log. Advanced by this process's writer and by tailing other
    /// processes' commits (`follow`), both under `sync`.
    pub(crate) groups: GroupTable,
    pub(crate) head: AtomicU64,
    /// `removed_records` as of `seen_txn`: when a snapshot holds another number, a
    /// compaction changed group counts and the group table is loaded again.
    pub(crate) removed: AtomicU64,
    /// Id of the last LMDB transaction whose events `groups` and `head` include.
    pub(crate) seen_txn: AtomicU64,
    /// Serializes changes of `groups`, `head` and `seen_txn`.
    pub(crate) sync: Mutex<()>,
    /// Held shared by every read transaction and exclusively while the map is resized:
    /// LMDB requires that no transaction of this process is active during a resize.
    pub(crate) resize: RwLock<()>,
    /// The last committed transaction id as LMDB's lock file holds it, readable without
    /// `resize` (`None`: read the meta pages instead; see `lockfile`).
    pub(crate) lock_txn: Option<LockFileTxn>,
    pub(crate) observers: RwLock<Vec<(u64, Arc<dyn CommitObserver>)>>,
    pub(crate) map_size: AtomicUsize,
    pub(crate) max_map_size: usize,
    /// Opened without LMDB's lock file (read-only on a directory this process cannot
    /// write): safe only while no other process writes.
    pub(crate) lockless: bool,
    /// [`StoreOptions::commit_wait`].
    pub(crate) commit_wait: Duration,
    /// How many times the log was tailed for commits this process did not publish
    /// itself (see `follow::tail_locked`).
    pub(crate) tails: AtomicU64,
}

impl Shared {
    /// Doubles the map, up to the limit. Returns false when it is already at the limit.
    pub(crate) fn grow_map(&self) -> Result<bool, StoreError> {
        // Exclusive before anything reads the meta pages: a resize remaps them.
        let _exclusive = self.resize.write();
        let current = self
            .env
            .info()
            .map_size
            .max(self.map_size.load(Ordering::Acquire));
        if current >= self.max_map_size {
            return Ok(false);
        }
        let page = 1 << 16;
        let next = current.saturating_mul(2).min(self.max_map_size) / page * page;
        if next <= current {
            return Ok(false);
        }
        #[expect(unsafe_code, reason = "LMDB map resize; see SAFETY")]
        // SAFETY: heed requires that no transaction of this process is active. Every
        // read transaction (and every read of the meta pages) holds `resize` shared, we
        // hold it exclusively, and write transactions only exist on this (the writer)
        // thread, between attempts.
        unsafe { self.env.resize(next) }.map_err(StoreError::lmdb("growing the map"))?;
        self.map_size.store(next, Ordering::Release);
        tracing::info!(from = current, to = next, "grew the LMDB map");
        Ok(true)
    }

    /// Adopts the map size another process grew the file to (`MDB_MAP_RESIZED`).
    pub(crate) fn adopt_map_size(&self) -> Result<(), StoreError> {
        let _exclusive = self.resize.write();
        #[expect(unsafe_code, reason = "LMDB map resize; see SAFETY")]
        // SAFETY: as in `grow_map`: `resize` is held exclusively, so no read transaction
        // of this process is active, and the writer calls this only between attempts.
        // A size of zero makes LMDB adopt the size recorded in the file.
        unsafe { self.env.resize(0) }.map_err(StoreError::lmdb("adopting the map size"))?;
        let size = self.env.info().map_size;
        self.map_size.store(size, Ordering::Release);
        tracing::info!(
            size,
            "adopted the map size another process grew the database to"
        );
        Ok(())
    }
}

struct Inner {
    shared: Arc<Shared>,
    options: StoreOptions,
    path: PathBuf,
    tx: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    next_observer: AtomicU64,
    next_pipeline: AtomicU64,
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

/// An ordered submitter of batches: see [`Store::pipeline`].
#[derive(Debug, Clone)]
pub struct Pipeline {
    store: Store,
    id: u64,
}

impl Pipeline {
    /// Sends prepared events to the writer without waiting, after this pipeline's
    /// earlier batches. Fails with [`StoreError::Cancelled`] (through the ticket) when an
    /// earlier batch of this pipeline failed.
    ///
    /// # Errors
    ///
    /// [`StoreError::ReadOnly`] on a read-only store, [`StoreError::WriterGone`] when
    /// the writer has stopped.
    pub fn submit(&self, events: Vec<PreparedEvent>) -> Result<Ticket, StoreError> {
        self.store.submit_in(events, Some(self.id), None)
    }

    /// [`Pipeline::submit`], and sets the application setting `name` (as
    /// [`Store::set_setting`]) to `value` in the batch's own write transaction: the
    /// setting is durable exactly when the batch is, never without it. A submitter
    /// records how far it got this way, so that what it finds after a crash describes
    /// the log exactly. Of two batches committed together that set one name, the later
    /// one's value stays.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::submit`].
    pub fn submit_with_setting(
        &self,
        events: Vec<PreparedEvent>,
        name: &str,
        value: Vec<u8>,
    ) -> Result<Ticket, StoreError> {
        let key = crate::checkpoints::setting_key(name).into_bytes();
        self.store
            .submit_in(events, Some(self.id), Some((key, value)))
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

impl Store {
    /// Opens (creating if needed) the log in directory `dir`. Opening a path that is
    /// already open in this process returns the same store; asking for other options
    /// than the open one is [`StoreError::OptionsDiffer`]. A read-only open
    /// ([`StoreOptions::read_only`]) never creates anything.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`](crate::StoreError::Io) when the directory cannot be created,
    /// [`StoreError::Missing`] for a read-only open of a directory without a database,
    /// [`StoreError::Truncated`] for a partial copy,
    /// [`StoreError::OptionsDiffer`] for other options than the open handle's,
    /// [`StoreError::FormatVersion`](crate::StoreError::FormatVersion) for a database
    /// of another format, an LMDB error when the environment cannot be opened,
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) for a malformed group
    /// table.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        if options.read_only {
            if !dir.join("data.mdb").is_file() {
                return Err(StoreError::Missing {
                    path: dir.to_owned(),
                });
            }
        } else {
            std::fs::create_dir_all(dir)
                .map_err(StoreError::io("creating the database directory"))?;
        }
        let path = dir
            .canonicalize()
            .map_err(StoreError::io("resolving the database path"))?;
        let mut open = OPEN.lock();
        open.retain(|_, weak| weak.strong_count() > 0);
        if let Some(inner) = open.get(&path).and_then(std::sync::Weak::upgrade) {
            if let Some(option) = inner.options.first_difference(&options) {
                return Err(StoreError::OptionsDiffer { path, option });
            }
            return Ok(Store { inner });
        }
        let inner = Arc::new(Self::open_new(&path, options)?);
        open.insert(path, Arc::downgrade(&inner));
        Ok(Store { inner })
    }

    fn open_new(path: &Path, options: StoreOptions) -> Result<Inner, StoreError> {
        let (env, lockless) = open_env(path, &options)?;
        check_file_length(&env, path)?;
        if !lockless {
            match env.clear_stale_readers() {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(cleared = n, "cleared stale reader slots of dead processes");
                }
                Err(error) => tracing::warn!(%error, "could not check the reader table"),
            }
        }
        let dbs = if options.read_only {
            open_databases(&env, path)?
        } else {
            create_databases(&env, path)?
        };
        let groups = GroupTable::default();
        let (head, removed, txn_id) = {
            let txn = env
                .read_txn()
                .map_err(StoreError::lmdb("reading the group table"))?;
            load_groups(&txn, &dbs, &groups)?;
            (
                last_seq(&txn, &dbs)?,
                crate::env::removed_records(&txn, &dbs)?,
                txn.id() as u64,
            )
        };
        let map_size = env.info().map_size;
        let resize = RwLock::new(());
        let lock_txn = if lockless {
            None
        } else {
            LockFileTxn::open(path, &env, &resize)
        };
        let shared = Arc::new(Shared {
            env,
            dbs,
            groups,
            head: AtomicU64::new(head),
            removed: AtomicU64::new(removed),
            seen_txn: AtomicU64::new(txn_id),
            sync: Mutex::new(()),
            resize,
            lock_txn,
            observers: RwLock::new(Vec::new()),
            map_size: AtomicUsize::new(map_size),
            max_map_size: options.max_map_size.max(map_size),
            lockless,
            commit_wait: options.commit_wait,
            tails: AtomicU64::new(0),
        });
        let (tx, writer) = if options.read_only {
            (None, None)
        } else {
            let (tx, rx) = crossbeam_channel::unbounded();
            let writer_shared = shared.clone();
            let writer = std::thread::Builder::new()
                .name("highwater-writer".into())
                .spawn(move || writer::run(&writer_shared, &rx))
                .map_err(StoreError::io("starting the writer thread"))?;
            (Some(tx), Some(writer))
        };
        tracing::debug!(path = %path.display(), head, read_only = options.read_only, lockless, "opened store");
        Ok(Inner {
            shared,
            options,
            path: path.to_owned(),
            tx,
            writer,
            next_observer: AtomicU64::new(0),
            next_pipeline: AtomicU64::new(1),
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

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.options.read_only
    }

    /// Whether the store runs without LMDB's lock file: a read-only open of a
    /// directory whose `lock.mdb` this process cannot write. Reads are then safe only
    /// while no other process writes the database.
    pub fn is_lockless(&self) -> bool {
        self.inner.shared.lockless
    }

    /// Sequence number of the last committed event (0 for an empty log), as committed
    /// by any process. A compaction leaves holes in the log (and never removes its
    /// last record), so this is a position, not a count: [`Store::event_count`]
    /// counts the records.
    pub fn head(&self) -> u64 {
        // A failed refresh leaves the last known head: a lower bound, never a lie about
        // an event that is not there. Reads that must be exact use `group_no_head`.
        let _ = self.refresh();
        self.inner.shared.head.load(Ordering::Acquire)
    }

    /// Learns of other processes' commits: compares LMDB's last committed transaction
    /// id (read from the memory map, no system call) with the last one this process
    /// has taken in, and tails the log when they differ.
    ///
    /// # Errors
    ///
    /// When the other processes' events cannot be read.
    pub fn refresh(&self) -> Result<(), StoreError> {
        crate::follow::refresh(&self.inner.shared)
    }

    /// The group's number, head and count, if the log has any event of it: the one way
    /// to look a group up by name.
    pub fn group(&self, name: &str) -> Option<GroupInfo> {
        let _ = self.refresh();
        self.inner.shared.groups.info_by_name(name)
    }

    /// The group by number.
    ///
    /// Internal fast path of the engine (group numbers are a storage detail); not part
    /// of the supported surface — use [`Store::group`].
    #[doc(hidden)]
    pub fn group_by_no(&self, no: u32) -> Option<GroupInfo> {
        self.inner.shared.groups.info(no)
    }

    /// The group's number and its head as committed by any process: the hot-path
    /// lookup of every read.
    ///
    /// Internal fast path of the engine; not part of the supported surface — use
    /// [`Store::group`].
    ///
    /// # Errors
    ///
    /// When other processes' events cannot be read.
    #[doc(hidden)]
    pub fn group_no_head(&self, name: &str) -> Result<Option<(u32, u64)>, StoreError> {
        self.refresh()?;
        Ok(self.inner.shared.groups.no_head(name))
    }

    /// Test support: clears the reader slots of dead processes now, returning how many
    /// were cleared (the writer does this every 1,024 commits, and every open).
    ///
    /// # Errors
    ///
    /// [`StoreError::Lmdb`](crate::StoreError::Lmdb) when LMDB cannot check the
    /// reader table.
    #[cfg(feature = "test-support")]
    pub fn clear_stale_readers(&self) -> Result<usize, StoreError> {
        self.inner
            .shared
            .env
            .clear_stale_readers()
            .map_err(StoreError::lmdb("clearing stale readers"))
    }

    /// Test support: how many times this store tailed the log for commits it had not
    /// published itself (another process's, or its own when their publication was
    /// skipped): its own commits never need one.
    #[cfg(feature = "test-support")]
    pub fn tails_taken(&self) -> u64 {
        self.inner.shared.tails.load(Ordering::Relaxed)
    }

    /// Test support: whether this store reads the last committed transaction id from
    /// LMDB's lock file, without a lock (see `lockfile`), rather than from the meta pages.
    #[cfg(feature = "test-support")]
    pub fn reads_txn_from_lock_file(&self) -> bool {
        self.inner.shared.lock_txn.is_some()
    }

    /// Whether `other` is a handle of this same open store (the same environment in
    /// this process).
    pub fn same_store(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The group's number as this process last took the log in (no look for other
    /// processes' commits: for loops that [`Store::refresh`] once before).
    ///
    /// Internal fast path of the engine; not part of the supported surface — use
    /// [`Store::group`].
    #[doc(hidden)]
    pub fn group_no(&self, name: &str) -> Option<u32> {
        self.inner.shared.groups.no(name)
    }

    /// Head of group `no` (0 if unknown) as this process last took it in; call
    /// [`Store::refresh`] first for other processes' commits.
    ///
    /// Internal fast path of the engine; not part of the supported surface — use
    /// [`Store::group`].
    #[doc(hidden)]
    pub fn group_head(&self, no: u32) -> u64 {
        self.inner.shared.groups.head(no)
    }

    /// Every group, by number.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let _ = self.refresh();
        self.inner.shared.groups.all()
    }

    /// Number of groups in the log.
    pub fn group_count(&self) -> usize {
        let _ = self.refresh();
        self.inner.shared.groups.len()
    }

    /// Validates an event: limits, group id, id hash, the duplicate index, then the
    /// signature (unless trusted). Runs on the calling thread.
    ///
    /// # Errors
    ///
    /// [`StoreError::Rejected`](crate::StoreError::Rejected) for an invalid event
    /// (nothing is written); a failed LMDB read
    /// ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    pub fn prepare(&self, event: &Event) -> Result<Prepared, StoreError> {
        let prepared = validate::check_and_encode(event, &self.inner.options.limits)?;
        if let Some(seq) = self.seq_of(&event.id)? {
            return Ok(Prepared::Duplicate(seq));
        }
        if !self.inner.options.trusted {
            validate::check_signature(event)?;
        }
        Ok(Prepared::Ready(prepared))
    }

    /// Sends prepared events to the writer without waiting. They are committed in the
    /// order given, after everything submitted before them.
    ///
    /// # Errors
    ///
    /// [`StoreError::WriterGone`](crate::StoreError::WriterGone) when the writer has
    /// stopped.
    pub fn submit(&self, events: Vec<PreparedEvent>) -> Result<Ticket, StoreError> {
        self.submit_in(events, None, None)
    }

    /// A new ordered pipeline: batches submitted through it commit in order, and once
    /// one fails, every later batch of the same pipeline fails with
    /// [`StoreError::Cancelled`] instead of committing after the hole. So the log
    /// always holds a prefix of what the pipeline submitted.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline {
            store: self.clone(),
            id: self.inner.next_pipeline.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn submit_in(
        &self,
        events: Vec<PreparedEvent>,
        pipeline: Option<u64>,
        setting: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Ticket, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(Request::Append(writer::Append {
                events,
                pipeline,
                setting,
                reply,
            }))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Ticket(rx))
    }

    /// Validates and appends one event, returning once it is durable.
    ///
    /// # Errors
    ///
    /// [`StoreError::Rejected`](crate::StoreError::Rejected) for an invalid event, or a
    /// failed write transaction: the map or the disk is full, an I/O or LMDB error, or
    /// the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    pub fn append(&self, event: &Event) -> Result<AppendOutcome, StoreError> {
        match self.prepare(event)? {
            Prepared::Duplicate(seq) => Ok(AppendOutcome::Duplicate(seq)),
            Prepared::Ready(prepared) => {
                let outcomes = self.submit(vec![prepared])?.wait()?;
                outcomes.into_iter().next().ok_or(StoreError::WriterGone)
            }
        }
    }

    /// Validates (on all cores) and appends a batch, in order: in one commit when it
    /// has at most [`StoreOptions::append_chunk`] events, otherwise in chunks of that
    /// size through one ordered pipeline ([`Store::pipeline`]), validating chunk *k+1*
    /// while chunk *k* commits. Inner errors are per-event rejections, which leave the
    /// rest of the batch unaffected.
    ///
    /// # Errors
    ///
    /// The outer error is a failed write transaction: the map or the disk is full, an
    /// I/O or LMDB error, or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)). Nothing of the
    /// failing chunk nor of any later one was written; the chunks before it are durable
    /// (a retry of the batch reports their events as duplicates). A batch of one chunk
    /// is all or nothing.
    pub fn append_batch(
        &self,
        events: &[Event],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        // A read-only store or a stopped writer fails the batch even when every event
        // turns out to be a duplicate or rejected.
        self.sender()?;
        let pipeline = self.inner.next_pipeline.fetch_add(1, Ordering::Relaxed);
        let mut results = Vec::with_capacity(events.len());
        // The chunk being committed: its prepared events and the writer's ticket.
        let mut in_flight: Option<(PreparedChunk, Option<Ticket>)> = None;
        for chunk in events.chunks(self.inner.options.append_chunk.max(1)) {
            let mut ready = Vec::new();
            let prepared: PreparedChunk = self
                .prepare_all(chunk)
                .into_iter()
                .map(|p| match p {
                    Ok(Prepared::Ready(e)) => {
                        ready.push(e);
                        Ok(None)
                    }
                    Ok(Prepared::Duplicate(seq)) => Ok(Some(seq)),
                    Err(e) => Err(e),
                })
                .collect();
            let ticket = if ready.is_empty() {
                None
            } else {
                Some(self.submit_in(ready, Some(pipeline), None)?)
            };
            if let Some((prepared, ticket)) = in_flight.replace((prepared, ticket)) {
                merge_outcomes(prepared, ticket, &mut results)?;
            }
        }
        if let Some((prepared, ticket)) = in_flight {
            merge_outcomes(prepared, ticket, &mut results)?;
        }
        Ok(results)
    }

    /// [`Store::prepare`] for each event, on all cores: each thread takes blocks of
    /// events in turn and, per block, checks limits, group ids and id hashes, looks the
    /// ids up in one read transaction, then verifies the signatures of the events that
    /// are new (unless trusted). A failed read transaction fails every event.
    pub fn prepare_all(&self, events: &[Event]) -> Vec<Result<Prepared, StoreError>> {
        let blocks = par_blocks(events, PREPARE_BLOCK, |block| self.prepare_block(block));
        let mut out = Vec::with_capacity(events.len());
        for block in blocks {
            match block {
                Ok(block) => out.extend(block),
                Err(e) => return events.iter().map(|_| Err(e.clone())).collect(),
            }
        }
        out
    }

    /// One block of [`Store::prepare_all`]; the error is a failed read transaction.
    fn prepare_block(
        &self,
        events: &[Event],
    ) -> Result<Vec<Result<Prepared, StoreError>>, StoreError> {
        let limits = self.inner.options.limits;
        let mut out: Vec<Result<Prepared, StoreError>> = events
            .iter()
            .map(|e| validate::check_and_encode(e, &limits).map(Prepared::Ready))
            .collect();
        self.read(|txn, dbs| {
            for p in &mut out {
                if let Ok(Prepared::Ready(ready)) = p
                    && let Some(seq) = crate::ids::lookup(txn, dbs, &ready.id)?
                {
                    *p = Ok(Prepared::Duplicate(seq));
                }
            }
            Ok(())
        })?;
        if !self.inner.options.trusted {
            for (p, event) in out.iter_mut().zip(events) {
                if let Ok(Prepared::Ready(_)) = p
                    && let Err(rejection) = validate::check_signature(event)
                {
                    *p = Err(rejection.into());
                }
            }
        }
        Ok(out)
    }

    fn sender(&self) -> Result<&Sender<Request>, StoreError> {
        if self.inner.options.read_only {
            return Err(StoreError::ReadOnly);
        }
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
        crate::follow::with_read(&self.inner.shared, f)
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
}

/// One chunk of a batch after [`Store::prepare_all`]: per event, `None` when it went to
/// the writer, the sequence number of a duplicate, or its rejection.
type PreparedChunk = Vec<Result<Option<u64>, StoreError>>;

/// Adds one chunk's results to `results`: its prepared events, with the writer's
/// outcomes (through `ticket`) for those that were ready.
fn merge_outcomes(
    prepared: PreparedChunk,
    ticket: Option<Ticket>,
    results: &mut Vec<Result<AppendOutcome, StoreError>>,
) -> Result<(), StoreError> {
    let mut committed = match ticket {
        Some(ticket) => ticket.wait()?.into_iter(),
        None => Vec::new().into_iter(),
    };
    results.extend(prepared.into_iter().map(|p| match p {
        Ok(None) => committed.next().ok_or(StoreError::WriterGone),
        Ok(Some(seq)) => Ok(AppendOutcome::Duplicate(seq)),
        Err(e) => Err(e),
    }));
    Ok(())
}

/// `f` over consecutive blocks of `block` items, in order, on the machine's cores: the
/// calling thread and one helper per further core take the next block in turn, so a
/// thread slowed by another (the writer shares these cores) takes fewer blocks
/// instead of holding the others up at the end.
fn par_blocks<T: Sync, R: Send>(items: &[T], block: usize, f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let blocks: Vec<&[T]> = items.chunks(block.max(1)).collect();
    if blocks.len() < 2 || threads == 1 {
        return blocks.into_iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = blocks.get(i) else { break };
            done.push((i, f(part)));
        }
        done
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        // Named, so that a profile tells validation from the writer and the caller.
        let helpers: Vec<_> = (1..threads.min(blocks.len()))
            .filter_map(|_| {
                let helper = std::thread::Builder::new()
                    .name("highwater-prepare".into())
                    .spawn_scoped(scope, work);
                // Without a thread to spare, the calling thread takes its blocks.
                helper
                    .map_err(|error| tracing::warn!(%error, "could not start a validation thread"))
                    .ok()
            })
            .collect();
        let mut done = work();
        // A panicking helper is a bug in validation; re-raise it rather than return a
        // result vector that no longer lines up with the input.
        for helper in helpers {
            done.extend(
                helper
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The same error again, for every event of a batch that failed as a whole.
pub(crate) fn index_corrupted(table: &'static str) -> StoreError {
    StoreError::Corrupted(Corruption::Index {
        table,
        reason: "key or value has the wrong shape".into(),
    })
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::*;
    use crate::codec;

    /// Rewrites (or removes) the stored format version, with the store closed.
    fn set_stored_version(path: &Path, version: Option<u32>) {
        let (env, _) = open_env(path, &StoreOptions::default()).unwrap();
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

        // Format 1 is upgraded by `highwater upgrade`, and the error says so.
        set_stored_version(dir.path(), Some(1));
        let error = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(error.to_string().contains("highwater upgrade"), "{error}");
        let upgrade = matches!(
            error,
            StoreError::UpgradeNeeded {
                found: 1,
                expected: 2,
                ..
            }
        );
        assert!(upgrade, "{error:?}");
        let read_only = Store::open(dir.path(), StoreOptions::read_only()).unwrap_err();
        let upgrade = matches!(read_only, StoreError::UpgradeNeeded { found: 1, .. });
        assert!(upgrade, "{read_only:?}");

        // Format 3 (format 2 with holes, written by a compaction) is read like 2.
        set_stored_version(dir.path(), Some(codec::FORMAT_VERSION_HOLES));
        assert_eq!(
            Store::open(dir.path(), StoreOptions::default())
                .unwrap()
                .get(1)
                .unwrap()
                .as_ref(),
            Some(&event)
        );

        set_stored_version(dir.path(), Some(4));
        match Store::open(dir.path(), StoreOptions::default()) {
            Err(StoreError::FormatVersion {
                found: 4,
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

    /// Runs `par_blocks` over `blocks` one-item blocks with a closure that, on its
    /// first call on each thread, waits (up to 10 s, once) for a second thread to
    /// call it too. Returns the results and the names of the threads that ran blocks.
    fn threads_of(blocks: usize) -> (Vec<usize>, Vec<String>) {
        use std::sync::{Condvar, Mutex};
        let seen: (Mutex<(Vec<String>, bool)>, Condvar) =
            (Mutex::new((Vec::new(), false)), Condvar::new());
        let items: Vec<usize> = (0..blocks).collect();
        let out = par_blocks(&items, 1, |block| {
            let name = std::thread::current().name().unwrap_or("caller").to_owned();
            let (lock, met) = &seen;
            let mut s = lock.lock().unwrap();
            if !s.0.contains(&name) {
                s.0.push(name);
                met.notify_all();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while s.0.len() < 2 && !s.1 {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let (next, waited) = met.wait_timeout(s, left).unwrap();
                s = next;
                s.1 |= waited.timed_out();
            }
            block[0] * 10
        });
        let names = seen.0.into_inner().unwrap().0;
        (out, names)
    }

    #[test]
    fn blocks_are_spread_over_the_cores_and_answered_in_order() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for blocks in [2, 5] {
            let (out, names) = threads_of(blocks);
            assert_eq!(out, (0..blocks).map(|b| b * 10).collect::<Vec<_>>());
            if cores > 1 {
                assert_eq!(names.len(), 2, "{blocks} blocks ran on {names:?}");
                assert!(names.iter().any(|n| n == "highwater-prepare"), "{names:?}");
            } else {
                assert_eq!(names.len(), 1, "{names:?}");
            }
        }
        // One block: the calling thread alone, without waiting for a helper.
        let items = [7];
        let out = par_blocks(&items, 64, |_| {
            std::thread::current().name().map(str::to_owned)
        });
        assert_ne!(out[0].as_deref(), Some("highwater-prepare"));
        assert_eq!(
            par_blocks(&[] as &[u8], 4, <[u8]>::len),
            Vec::<usize>::new()
        );
    }
}
