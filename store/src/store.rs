//! The store handle: opening (one handle per environment in a process), what the
//! handle knows of the log, and the doors to the writer thread (`exec`) and to read
//! transactions (`read`). Appends are in `submit`, reads in `reads`, checkpoints and
//! settings in `checkpoints`, the shared state below the handle and the writer in
//! `shared`, the environment and its databases in `env`.

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use heed::{RoTxn, WithoutTls};
use parking_lot::{Mutex, RwLock};

use crate::commit::CommitObserver;
use crate::env::{
    Dbs, check_file_length, create_databases, last_seq, load_groups, open_databases, open_env,
};
use crate::error::StoreError;
use crate::groups::{GroupInfo, GroupTable};
use crate::lockfile::LockFileTxn;
use crate::options::StoreOptions;
use crate::request::{AnyBox, Job, Request};
use crate::shared::Shared;
use crate::tail::Tail;
use crate::writer;

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
        let tail = Arc::new(Tail::default());
        let (head, removed, txn_id) = {
            let txn = env
                .read_txn()
                .map_err(StoreError::lmdb("reading the group table"))?;
            load_groups(&txn, &dbs, &groups)?;
            // The index tail, recovered from the log: fewer records than the largest
            // `index_tail` of the database's writers.
            drop(tail.view(&txn, &dbs)?);
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
            tail,
            sync: Mutex::new(()),
            resize,
            lock_txn,
            observers: RwLock::new(Vec::new()),
            map_size: AtomicUsize::new(map_size),
            max_map_size: options.max_map_size.max(map_size),
            lockless,
            commit_wait: options.commit_wait,
            index_tail: options.index_tail.max(1),
            index_tail_share: options.index_tail_share,
            tails: AtomicU64::new(0),
            behind_views: AtomicU64::new(0),
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

    /// Test support: how many snapshots were found holding fewer records than one this
    /// process had seen before (each then retried; see `follow::CATCH_UP_BOUND`).
    #[cfg(feature = "test-support")]
    pub fn behind_views(&self) -> u64 {
        self.inner.shared.behind_views.load(Ordering::Relaxed)
    }

    /// Test support: makes this process believe it has seen the log reach `head`, as a
    /// snapshot taken during another process's commit can make it (see
    /// `store/tests/snapshot_order.rs`); the next look at the log then finds it behind.
    #[cfg(feature = "test-support")]
    pub fn pretend_seen_head(&self, head: u64) {
        let shared = &self.inner.shared;
        let _sync = shared.sync.lock();
        shared.head.store(head, Ordering::Release);
        shared.seen_txn.store(0, Ordering::Release);
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

    pub(crate) fn sender(&self) -> Result<&Sender<Request>, StoreError> {
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
        let job: Job = Box::new(move |txn, dbs| job(txn, dbs).map(|r| Box::new(r) as AnyBox));
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

    /// The state shared with the writer thread.
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// A new pipeline number: the writer cancels the later batches of a pipeline
    /// once one of its batches failed (see `submit`).
    pub(crate) fn next_pipeline_id(&self) -> u64 {
        self.inner.next_pipeline.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use heed::Database;
    use heed::types::Bytes;
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::*;
    use crate::codec;
    use crate::commit::AppendOutcome;

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
                expected: 4,
                ..
            }
        );
        assert!(upgrade, "{error:?}");
        let read_only = Store::open(dir.path(), StoreOptions::read_only()).unwrap_err();
        let upgrade = matches!(read_only, StoreError::UpgradeNeeded { found: 1, .. });
        assert!(upgrade, "{read_only:?}");

        // Formats 2 and 3 (complete indexes, no index watermark) are upgraded too: this
        // build would otherwise leave records out of their indexes, which a build of
        // format 2 or 3 takes to be complete.
        for old in [codec::FORMAT_VERSION_V2, codec::FORMAT_VERSION_HOLES] {
            set_stored_version(dir.path(), Some(old));
            let error = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
            let upgrade = matches!(error, StoreError::UpgradeNeeded { found, expected: 4, .. } if found == old);
            assert!(upgrade, "{error:?}");
        }

        set_stored_version(dir.path(), Some(5));
        match Store::open(dir.path(), StoreOptions::default()) {
            Err(StoreError::FormatVersion {
                found: 5,
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
