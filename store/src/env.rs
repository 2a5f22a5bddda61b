//! Opening the LMDB environment: its databases, the format-version check, and the
//! in-memory group table and head loaded at open.

use std::path::Path;

use heed::types::Bytes;
use heed::{Env, EnvOpenOptions, RoTxn, WithoutTls};

use crate::codec::{self, GroupEntry};
use crate::error::StoreError;
use crate::groups::GroupTable;
use crate::store::{Dbs, StoreOptions, index_corrupted};

pub(crate) fn open_env(path: &Path, options: &StoreOptions) -> Result<Env<WithoutTls>, StoreError> {
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
    Err(StoreError::lmdb("opening the environment")(
        heed::Error::EnvAlreadyOpened,
    ))
}

pub(crate) fn create_databases(env: &Env<WithoutTls>, path: &Path) -> Result<Dbs, StoreError> {
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

pub(crate) fn load_groups(
    txn: &RoTxn<'_, WithoutTls>,
    dbs: &Dbs,
) -> Result<GroupTable, StoreError> {
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
