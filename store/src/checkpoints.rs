//! The checkpoint table the engine keeps its per-group states in, application
//! settings in the `meta` table, and raw access for corruption tests.

use crate::codec::{self, CheckpointRecord};
use crate::env::Dbs;
use crate::error::{Corruption, StoreError, index_corrupted};
use crate::store::Store;

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
    /// The group's number ([`GroupInfo::no`](crate::GroupInfo::no)).
    pub group: u32,
    /// The checkpoint itself.
    pub checkpoint: Checkpoint,
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

/// The `meta` key of the application setting `name`: `app.NAME`, apart from the
/// store's own entries.
pub(crate) fn setting_key(name: &str) -> String {
    format!("app.{name}")
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

impl Store {
    /// Reads the checkpoint of (projection, group no). A checkpoint that fails its
    /// checksum or validation is [`StoreError::Corrupted`].
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) when the stored
    /// checkpoint fails its checksum or validation.
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
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::InvalidArgument`](crate::StoreError::InvalidArgument) for a name
    /// with a NUL byte.
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
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) when a header fails
    /// validation.
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
    ///
    /// # Errors
    ///
    /// a failed write transaction: the map or the disk is full, an I/O or LMDB error,
    /// or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    pub fn write_checkpoints(
        &self,
        writes: Vec<CheckpointWrite>,
        replace_all: Option<&str>,
    ) -> Result<(), StoreError> {
        self.replace_checkpoints(writes, replace_all.as_slice())
    }

    /// Writes checkpoints in one transaction, deleting in the same transaction every
    /// other checkpoint of each projection in `replace_all` (a full rebuild of several
    /// projections replaces all of theirs with one commit).
    ///
    /// # Errors
    ///
    /// As [`Store::write_checkpoints`]; nothing was written or deleted.
    pub fn replace_checkpoints(
        &self,
        writes: Vec<CheckpointWrite>,
        replace_all: &[&str],
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
        let mut prefixes = Vec::with_capacity(replace_all.len());
        for p in replace_all {
            check_projection_name(p)?;
            prefixes.push(codec::checkpoint_prefix(p));
        }
        self.exec(move |txn, dbs| {
            for prefix in &prefixes {
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
    ///
    /// # Errors
    ///
    /// a failed write transaction: the map or the disk is full, an I/O or LMDB error,
    /// or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    pub fn delete_checkpoints(&self, projection: Option<&str>) -> Result<usize, StoreError> {
        if let Some(p) = projection {
            check_projection_name(p)?;
        }
        let prefix = projection.map(codec::checkpoint_prefix).unwrap_or_default();
        self.exec(move |txn, dbs| delete_prefix(txn, dbs, &prefix))
    }

    /// Reads an application setting (stored in the `meta` table under `app.NAME`).
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = setting_key(name);
        self.read(|txn, dbs| {
            Ok(dbs
                .meta
                .get(txn, key.as_bytes())
                .map_err(StoreError::lmdb("reading a setting"))?
                .map(<[u8]>::to_vec))
        })
    }

    /// Writes an application setting durably.
    ///
    /// # Errors
    ///
    /// a failed write transaction: the map or the disk is full, an I/O or LMDB error,
    /// or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = setting_key(name);
        let value = value.to_vec();
        self.exec(move |txn, dbs| {
            dbs.meta
                .put(txn, key.as_bytes(), &value)
                .map_err(StoreError::lmdb("writing a setting"))
        })
    }

    /// Writes an application setting unless it is already set: checked and written in
    /// one write transaction, so two processes racing cannot both set different values.
    /// Returns the value already stored when it differs from `value` (nothing written).
    ///
    /// # Errors
    ///
    /// [`StoreError::ReadOnly`] on a read-only store, or a failed write transaction.
    pub fn set_setting_once(
        &self,
        name: &str,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = setting_key(name);
        let value = value.to_vec();
        self.exec(move |txn, dbs| {
            let existing = dbs
                .meta
                .get(txn, key.as_bytes())
                .map_err(StoreError::lmdb("reading a setting"))?
                .map(<[u8]>::to_vec);
            match existing {
                Some(found) if found == value => Ok(None),
                Some(found) => Ok(Some(found)),
                None => {
                    dbs.meta
                        .put(txn, key.as_bytes(), &value)
                        .map_err(StoreError::lmdb("writing a setting"))?;
                    Ok(None)
                }
            }
        })
    }

    /// Test support: the raw stored bytes of a checkpoint.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    #[cfg(feature = "test-support")]
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
    ///
    /// # Errors
    ///
    /// a failed write transaction: the map or the disk is full, an I/O or LMDB error,
    /// or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    #[cfg(feature = "test-support")]
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
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    #[cfg(feature = "test-support")]
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
    ///
    /// # Errors
    ///
    /// a failed write transaction: the map or the disk is full, an I/O or LMDB error,
    /// or the writer has stopped
    /// ([`StoreError::WriterGone`](crate::StoreError::WriterGone)); nothing was
    /// written.
    #[cfg(feature = "test-support")]
    pub fn put_raw_record(&self, seq: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.exec(move |txn, dbs| {
            dbs.events
                .put(txn, &codec::seq_key(seq), &bytes)
                .map_err(StoreError::lmdb("writing a record"))
        })
    }
}
