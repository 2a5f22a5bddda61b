//! Benchmark baseline: the bare LMDB work of an append, without the store.
//!
//! [`RawLog`] writes already encoded records with `APPEND` puts into a single database
//! of a fresh environment, one durable commit per call: no id index, no group index, no
//! validation, no writer thread. Benchmarks compare the store against it to show what
//! the store's bookkeeping costs. It lives here because only this crate may use heed.

use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, PutFlags, WithoutTls};

use crate::codec;
use crate::error::StoreError;
use crate::validate::PreparedEvent;

/// A bare append-only LMDB table of encoded records. For benchmarks only.
pub struct RawLog {
    env: Env<WithoutTls>,
    events: Database<Bytes, Bytes>,
    next: u64,
}

impl std::fmt::Debug for RawLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawLog")
            .field("path", &self.env.path())
            .field("records", &(self.next - 1))
            .finish_non_exhaustive()
    }
}

impl RawLog {
    /// Creates the table in `dir`, which must be a fresh directory that no [`Store`]
    /// of this process has open.
    ///
    /// [`Store`]: crate::Store
    ///
    /// # Errors
    ///
    /// When the directory or the environment cannot be created.
    pub fn create(dir: &Path, map_size: usize) -> Result<RawLog, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io("creating the baseline directory"))?;
        let page = 1 << 16;
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder
            .map_size(map_size.max(page) / page * page)
            .max_dbs(1);
        #[expect(unsafe_code, reason = "opening the LMDB memory map; see SAFETY")]
        // SAFETY: heed's `# Safety` list for `EnvOpenOptions::open`: the benchmark owns
        // the directory (documented above, so no other handle of this process or any
        // other maps it); transactions are scoped to `append`; no unsafe flags are set;
        // the lock file is left alone.
        let env = unsafe { builder.open(dir) }.map_err(StoreError::lmdb("opening the baseline"))?;
        let mut txn = env
            .write_txn()
            .map_err(StoreError::lmdb("creating the baseline"))?;
        let events = env
            .create_database(&mut txn, Some("events"))
            .map_err(StoreError::lmdb("creating the baseline"))?;
        txn.commit()
            .map_err(StoreError::lmdb("creating the baseline"))?;
        Ok(RawLog {
            env,
            events,
            next: 1,
        })
    }

    /// Writes the encoded records of `events` under the next sequence numbers, with
    /// `APPEND` puts, in one durable commit.
    ///
    /// # Errors
    ///
    /// When the write transaction fails.
    pub fn append(&mut self, events: &[PreparedEvent]) -> Result<(), StoreError> {
        let mut txn = self
            .env
            .write_txn()
            .map_err(StoreError::lmdb("opening a write transaction"))?;
        let mut next = self.next;
        for event in events {
            self.events
                .put_with_flags(
                    &mut txn,
                    PutFlags::APPEND,
                    &codec::seq_key(next),
                    &event.bytes,
                )
                .map_err(StoreError::lmdb("appending a record"))?;
            next += 1;
        }
        txn.commit().map_err(StoreError::lmdb("committing"))?;
        self.next = next;
        Ok(())
    }

    /// Number of records written.
    pub fn len(&self) -> u64 {
        self.next - 1
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.next == 1
    }
}
