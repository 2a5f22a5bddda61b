//! Opening the LMDB environment: its databases, the format-version check, and the
//! in-memory group table and head loaded at open.

use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{Database, DatabaseFlags, Env, EnvFlags, EnvOpenOptions, RoTxn, WithoutTls};

use crate::codec::{self, GroupEntry};
use crate::error::{StoreError, index_corrupted};
use crate::groups::GroupTable;
use crate::options::StoreOptions;

/// The databases of the environment.
#[derive(Clone, Copy)]
pub(crate) struct Dbs {
    pub(crate) meta: Database<Bytes, Bytes>,
    pub(crate) events: Database<Bytes, Bytes>,
    pub(crate) ids: Database<Bytes, Bytes>,
    pub(crate) groups: Database<Bytes, Bytes>,
    pub(crate) group_index: Database<Bytes, Bytes>,
    pub(crate) checkpoints: Database<Bytes, Bytes>,
}

/// Opens the environment. Returns it and whether it runs without the lock file: a
/// read-only open falls back to that when `lock.mdb` cannot be opened for writing (a
/// directory or file of another user), with a warning.
pub(crate) fn open_env(
    path: &Path,
    options: &StoreOptions,
) -> Result<(Env<WithoutTls>, bool), StoreError> {
    match open_env_with(path, options, false) {
        Err(StoreError::Io { source, .. })
            if options.read_only && source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            tracing::warn!(path = %path.display(),
                "lock.mdb is not writable by this user: reading without LMDB's lock file, which is safe only while no other process writes this database");
            open_env_with(path, options, true).map(|env| (env, true))
        }
        other => other.map(|env| (env, false)),
    }
}

fn open_env_with(
    path: &Path,
    options: &StoreOptions,
    lockless: bool,
) -> Result<Env<WithoutTls>, StoreError> {
    let page = 1 << 16;
    let map_size = options.map_size.max(page) / page * page;
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder.map_size(map_size).max_dbs(10).max_readers(1_024);
    if options.read_only {
        let mut flags = EnvFlags::READ_ONLY;
        if lockless {
            flags |= EnvFlags::NO_LOCK;
        }
        #[expect(unsafe_code, reason = "LMDB environment flags; see SAFETY")]
        // SAFETY: READ_ONLY is safe. NO_LOCK is set only for a read-only open whose
        // lock file cannot be written: this process then takes no reader slot, so a
        // writer in another process could reuse pages under it; that mode is documented
        // (and warned about) as valid only while no other process writes, and every
        // record read back is still checksummed and validated, never trusted blindly.
        unsafe {
            builder.flags(flags);
        }
    }
    // Another handle of this path may be closing on another thread; give it a moment.
    for attempt in 0..50 {
        #[expect(unsafe_code, reason = "opening the LMDB memory map; see SAFETY")]
        // SAFETY: heed's `# Safety` list for `EnvOpenOptions::open`, point by point:
        // - long-lived transactions: every read transaction of this crate is scoped to a
        //   call (`Store::read`), and long scans reopen one per chunk of events;
        // - aborting with an active transaction: LMDB's lock file recovers stale readers
        //   and the last committed meta page wins, which the crash tests exercise;
        // - remote filesystems: documented as unsupported in ARCHITECTURE.md;
        // - NO_LOCK: only for read-only opens without a writable lock file (see above);
        // - breaking the lock file: nothing in this workspace writes `lock.mdb`, and the
        //   one descriptor of it this process opens besides LMDB's (`lockfile`, to map
        //   it read-only) is never closed — closing any descriptor of the file would
        //   drop LMDB's POSIX record locks for the whole process, and the next process
        //   to open the database would re-initialise the lock file under live
        //   readers and writers (`store/tests/lock_file.rs`). `data.mdb` is never
        //   opened outside LMDB either (its length is read with `stat`);
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
    Err(StoreError::lmdb("opening the environment")(
        heed::Error::EnvAlreadyOpened,
    ))
}

/// Refuses a `data.mdb` shorter than the pages its meta page says were committed (a
/// partial copy): reading past the end of a memory-mapped file kills the process with
/// SIGBUS instead of failing.
pub(crate) fn check_file_length(env: &Env<WithoutTls>, path: &Path) -> Result<(), StoreError> {
    let info = env.info();
    let page = u64::from(env.stat().page_size);
    let needed = (info.last_page_number as u64 + 1) * page;
    let file = path.join("data.mdb");
    let length = std::fs::metadata(&file)
        .map_err(StoreError::io("reading the size of data.mdb"))?
        .len();
    if length < needed {
        return Err(StoreError::Truncated {
            path: file,
            length,
            needed,
        });
    }
    Ok(())
}

/// The stored format version (0 when none is stored), and refusal of anything but the
/// current one: a database of format 1, 2 or 3 gets [`StoreError::UpgradeNeeded`].
fn check_version(
    meta: heed::Database<Bytes, Bytes>,
    txn: &RoTxn<'_, WithoutTls>,
    path: &Path,
    ctx: &'static str,
) -> Result<Option<u32>, StoreError> {
    let stored = meta
        .get(txn, codec::META_FORMAT_VERSION.as_bytes())
        .map_err(StoreError::lmdb(ctx))?
        .map(|bytes| bytes.try_into().map_or(0, u32::from_be_bytes));
    match stored {
        None => Ok(stored),
        Some(version) if codec::is_current(version) => Ok(stored),
        Some(found) if codec::is_upgradable(found) => Err(StoreError::UpgradeNeeded {
            path: path.to_owned(),
            found,
            expected: codec::FORMAT_VERSION,
        }),
        Some(found) => Err(StoreError::FormatVersion {
            path: path.to_owned(),
            found,
            expected: codec::FORMAT_VERSION,
        }),
    }
}

/// The flags of the `id_prefix` index: several events may share an 8-byte prefix.
pub(crate) fn id_prefix_flags() -> DatabaseFlags {
    DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED
}

/// The existing `id_prefix` database, if there is one.
pub(crate) fn open_id_prefix(
    env: &Env<WithoutTls>,
    txn: &heed::RoTxn<'_, WithoutTls>,
) -> heed::Result<Option<heed::Database<Bytes, Bytes>>> {
    env.database_options()
        .types::<Bytes, Bytes>()
        .name("id_prefix")
        .flags(id_prefix_flags())
        .open(txn)
}

/// The databases of an existing environment, without writing (read-only opens).
pub(crate) fn open_databases(env: &Env<WithoutTls>, path: &Path) -> Result<Dbs, StoreError> {
    let ctx = "opening the databases";
    let txn = env.read_txn().map_err(StoreError::lmdb(ctx))?;
    let open = |name| {
        env.open_database::<Bytes, Bytes>(&txn, Some(name))
            .map_err(StoreError::lmdb(ctx))?
            .ok_or_else(|| StoreError::Missing {
                path: path.to_owned(),
            })
    };
    let meta = open("meta")?;
    if !check_version(meta, &txn, path, ctx)?.is_some_and(codec::is_current) {
        return Err(StoreError::FormatVersion {
            path: path.to_owned(),
            found: 0,
            expected: codec::FORMAT_VERSION,
        });
    }
    let ids = open_id_prefix(env, &txn)
        .map_err(StoreError::lmdb(ctx))?
        .ok_or_else(|| StoreError::Missing {
            path: path.to_owned(),
        })?;
    let dbs = Dbs {
        meta,
        events: open("events")?,
        ids,
        groups: open("groups")?,
        group_index: open("group_index")?,
        checkpoints: open("checkpoints")?,
    };
    // Database handles opened in a transaction live on only if it commits.
    txn.commit().map_err(StoreError::lmdb(ctx))?;
    Ok(dbs)
}

/// Every database of a current-format environment, opened in `txn` (test support).
#[cfg(feature = "test-support")]
pub(crate) fn open_databases_in(
    env: &Env<WithoutTls>,
    txn: &RoTxn<'_, WithoutTls>,
    path: &Path,
) -> Result<Dbs, StoreError> {
    let ctx = "opening the databases";
    let open = |name, flags| {
        env.database_options()
            .types::<Bytes, Bytes>()
            .name(name)
            .flags(flags)
            .open(txn)
            .map_err(StoreError::lmdb(ctx))?
            .ok_or_else(|| StoreError::Missing {
                path: path.to_owned(),
            })
    };
    let none = DatabaseFlags::empty();
    let meta = open("meta", none)?;
    if !check_version(meta, txn, path, ctx)?.is_some_and(codec::is_current) {
        return Err(StoreError::Missing {
            path: path.to_owned(),
        });
    }
    Ok(Dbs {
        meta,
        events: open("events", none)?,
        ids: open("id_prefix", id_prefix_flags())?,
        groups: open("groups", none)?,
        group_index: open("group_index", none)?,
        checkpoints: open("checkpoints", none)?,
    })
}

pub(crate) fn create_databases(env: &Env<WithoutTls>, path: &Path) -> Result<Dbs, StoreError> {
    let ctx = "creating the databases";
    let mut txn = env.write_txn().map_err(StoreError::lmdb(ctx))?;
    let meta = env
        .create_database::<Bytes, Bytes>(&mut txn, Some("meta"))
        .map_err(StoreError::lmdb(ctx))?;
    // The version first: a database of another format is refused before any of its
    // databases is opened with this format's flags (the transaction is then aborted).
    let stored = check_version(meta, &txn, path, ctx)?;
    let mut create = |name| {
        env.create_database::<Bytes, Bytes>(&mut txn, Some(name))
            .map_err(StoreError::lmdb(ctx))
    };
    let events = create("events")?;
    let groups = create("groups")?;
    let group_index = create("group_index")?;
    let checkpoints = create("checkpoints")?;
    let ids = env
        .database_options()
        .types::<Bytes, Bytes>()
        .name("id_prefix")
        .flags(id_prefix_flags())
        .create(&mut txn)
        .map_err(StoreError::lmdb(ctx))?;
    let dbs = Dbs {
        meta,
        events,
        ids,
        groups,
        group_index,
        checkpoints,
    };
    if stored.is_none() {
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

/// Takes every entry of the `groups` database into `table`, in number order: known
/// groups advance, new ones are added. Numbers must be dense from 0 and agree with what
/// `table` already holds; anything else is a corrupted index (or another database put
/// in this one's place).
pub(crate) fn load_groups(
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
    table: &GroupTable,
) -> Result<(), StoreError> {
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
    if table.take_in(entries.iter().map(|(name, e)| (name.as_str(), *e))) {
        Ok(())
    } else {
        Err(index_corrupted("groups"))
    }
}

pub(crate) fn last_seq(txn: &RoTxn<'_, WithoutTls>, dbs: &Dbs) -> Result<u64, StoreError> {
    match dbs
        .events
        .last(txn)
        .map_err(StoreError::lmdb("reading the log head"))?
    {
        Some((key, _)) => codec::decode_seq(key).ok_or_else(|| index_corrupted("events")),
        None => Ok(0),
    }
}

/// How many records compactions have removed from the log (`meta` `removed_records`).
pub(crate) fn removed_records(txn: &RoTxn<'_, WithoutTls>, dbs: &Dbs) -> Result<u64, StoreError> {
    meta_count(
        txn,
        dbs,
        codec::META_REMOVED_RECORDS,
        "reading the removed-records count",
    )
}

/// A count kept in `meta` under `key` (absent: 0).
pub(crate) fn meta_count(
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
    key: &str,
    what: &'static str,
) -> Result<u64, StoreError> {
    match dbs
        .meta
        .get(txn, key.as_bytes())
        .map_err(StoreError::lmdb(what))?
    {
        Some(bytes) => codec::decode_count(bytes).ok_or_else(|| index_corrupted("meta")),
        None => Ok(0),
    }
}

/// The records of `txn`'s log from sequence number `from` through `to` (`None`: to the
/// end), in order, as (sequence number, raw value); `what` names the read in errors.
pub(crate) fn log_range<'txn>(
    txn: &'txn RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
    from: u64,
    to: Option<u64>,
    what: &'static str,
) -> Result<impl Iterator<Item = Result<(u64, &'txn [u8]), StoreError>> + 'txn, StoreError> {
    let start = codec::seq_key(from);
    let stop = to.map(codec::seq_key);
    let end = stop
        .as_ref()
        .map_or(Bound::Unbounded, |stop| Bound::Included(&stop[..]));
    let records = dbs
        .events
        .range(txn, &(Bound::Included(&start[..]), end))
        .map_err(StoreError::lmdb(what))?;
    Ok(records.map(move |item| {
        let (key, value) = item.map_err(StoreError::lmdb(what))?;
        let seq = codec::decode_seq(key).ok_or_else(|| index_corrupted("events"))?;
        Ok((seq, value))
    }))
}
