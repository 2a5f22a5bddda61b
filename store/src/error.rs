//! Typed errors of the store.

use std::path::PathBuf;
use std::sync::Arc;

/// Why an event was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// The id is not the NIP-01 hash of the event.
    #[error("invalid: event id does not match its content (NIP-01 hash)")]
    BadId,
    /// The Schnorr signature does not verify against the pubkey.
    #[error("invalid: bad signature")]
    BadSignature,
    /// The encoded event is larger than the configured limit.
    #[error("invalid: event is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// The encoded size in bytes.
        size: usize,
        /// The limit ([`Limits::max_event_bytes`](crate::Limits::max_event_bytes)).
        limit: usize,
    },
    /// The event has more tags than the configured limit.
    #[error("invalid: event has {count} tags, the limit is {limit}")]
    TooManyTags {
        /// The number of tags.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A NIP-29 kind arrived without its group tag.
    #[error("invalid: kind {kind} needs a group id in its `{tag}` tag")]
    MissingGroup {
        /// The event's kind.
        kind: u16,
        /// The tag that must carry the group id (`h`, or `d` for 39000–39003).
        tag: &'static str,
    },
    /// More than one group tag: an event belongs to at most one group.
    #[error("invalid: {count} `{tag}` tags; an event belongs to one group")]
    ManyGroupTags {
        /// The group tag (`h`, or `d` for 39000–39003).
        tag: &'static str,
        /// How many the event carries.
        count: usize,
    },
    /// The group id is empty or longer than the limit.
    #[error("invalid: group id of {len} bytes (allowed: 1..={limit})")]
    BadGroupId {
        /// The group id's length in bytes.
        len: usize,
        /// The longest allowed.
        limit: usize,
    },
}

/// Where stored bytes failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A log record failed its checksum or rkyv validation.
    #[error("log record at sequence {seq}: {reason}")]
    Record {
        /// The record's sequence number.
        seq: u64,
        /// What failed.
        reason: String,
    },
    /// A checkpoint failed its checksum or rkyv validation.
    #[error("checkpoint {projection}/{group}: {reason}")]
    Checkpoint {
        /// The projection's name.
        projection: String,
        /// The group's id (or number, when its name is unknown).
        group: String,
        /// What failed.
        reason: String,
    },
    /// An index or metadata entry has the wrong shape.
    #[error("{table}: {reason}")]
    Index {
        /// The database.
        table: &'static str,
        /// What failed.
        reason: String,
    },
}

/// Errors of the store.
///
/// Cheap to clone: the library errors it wraps are shared behind an [`Arc`], so that
/// one failed group commit answers every caller of the batch with the same error and
/// its [`source`](std::error::Error::source) chain.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The event itself is invalid (id, signature, limits, group tag); nothing was written.
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// Bytes read back from LMDB failed validation.
    #[error("corrupted: {0}")]
    Corrupted(#[from] Corruption),
    /// The database was written by another format version of highwater.
    #[error("database at {path} has format version {found}, this build reads version {expected}")]
    FormatVersion {
        /// The database directory.
        path: PathBuf,
        /// The version stored in the database.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The database was written by an older format version that `highwater upgrade`
    /// converts; nothing was changed.
    #[error(
        "database at {path} has format version {found}, this build reads version {expected}: run `highwater upgrade --db {path}` to upgrade it (one atomic transaction; a crash leaves it as it was)"
    )]
    UpgradeNeeded {
        /// The database directory.
        path: PathBuf,
        /// The version stored in the database.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The LMDB map is full and may not grow further; the batch was not written.
    #[error(
        "the database map is full ({map_size} bytes, limit {max_map_size}); the batch was not written — raise the map size limit"
    )]
    MapFull {
        /// The map size in bytes when the write failed.
        map_size: usize,
        /// The configured limit ([`StoreOptions::max_map_size`](crate::StoreOptions::max_map_size)).
        max_map_size: usize,
    },
    /// The disk or filesystem is full (`ENOSPC`, `EDQUOT`); the batch was not written.
    /// The store keeps serving reads, and a later batch succeeds once space is freed.
    #[error("the disk is full while {context}: {source}")]
    DiskFull {
        /// What the store was doing.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Another I/O error of the disk or filesystem; the batch was not written. LMDB
    /// reports a write cut short by a full disk as `EIO`, not always as `ENOSPC`.
    #[error("storage I/O error while {context}: {source}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// LMDB's reader table is full (`MDB_READERS_FULL`): too many processes and
    /// threads hold read transactions at once. Retry once some have finished.
    #[error("too many concurrent readers while {context}: {source}")]
    ReadersFull {
        /// What the store was doing.
        context: &'static str,
        /// LMDB's error.
        #[source]
        source: Arc<heed::Error>,
    },
    /// Another process grew the map beyond this process's view of it
    /// (`MDB_MAP_RESIZED`). Retrying after the store adopts the new size succeeds.
    #[error("the map was resized by another process while {context}: {source}")]
    MapResized {
        /// What the store was doing.
        context: &'static str,
        /// LMDB's error.
        #[source]
        source: Arc<heed::Error>,
    },
    /// A key that must be new already exists (`MDB_KEYEXIST`), such as a sequence
    /// number written by another process: nothing of the batch was written.
    #[error("key already exists while {context}: {source}")]
    KeyExists {
        /// What the store was doing.
        context: &'static str,
        /// LMDB's error.
        #[source]
        source: Arc<heed::Error>,
    },
    /// Another LMDB call failed.
    #[error("LMDB error while {context}: {source}")]
    Lmdb {
        /// What the store was doing.
        context: &'static str,
        /// LMDB's error.
        #[source]
        source: Arc<heed::Error>,
    },
    /// A value could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// An invalid argument, such as a projection name with a NUL byte.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The writer thread has stopped (the store is shutting down or it hit a fatal error).
    #[error("the store's writer thread has stopped")]
    WriterGone,
    /// The store was opened read-only; nothing can be written through it.
    #[error("the database is open read-only; nothing can be written through this handle")]
    ReadOnly,
    /// A read-only open of a directory that holds no highwater database.
    #[error("no highwater database at {path}")]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// `data.mdb` is shorter than its committed pages (a partial copy).
    #[error(
        "{path} is truncated: {length} bytes, but its last committed page ends at byte {needed}; restore a complete copy"
    )]
    Truncated {
        /// The `data.mdb` file.
        path: PathBuf,
        /// Its length in bytes.
        length: u64,
        /// The length its committed pages need.
        needed: u64,
    },
    /// The path is already open in this process with other options.
    #[error(
        "{path} is already open in this process with a different `{option}` option; open it with the same options or close it first"
    )]
    OptionsDiffer {
        /// The directory.
        path: PathBuf,
        /// The first option that differs, by its field name in `StoreOptions`.
        option: &'static str,
    },
    /// An earlier batch of the same pipeline failed; this one was not written, so the
    /// log stays a prefix of what the pipeline submitted.
    #[error("not written: an earlier batch of the same import failed")]
    Cancelled,
}

impl StoreError {
    /// Wraps an LMDB error with what the store was doing, as the variant a caller can
    /// match: a full map, a full disk, too many readers, another process's resize, an
    /// existing key, another I/O error, or any other LMDB error.
    pub(crate) fn lmdb(context: &'static str) -> impl FnOnce(heed::Error) -> StoreError {
        move |error| match error {
            heed::Error::Io(source) => StoreError::io(context)(source),
            // The writer fills in the sizes when it gives up growing the map.
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::MapFull {
                map_size: 0,
                max_map_size: 0,
            },
            // heed turns unknown codes into `Io`; this arm keeps an OS code that
            // arrives as `Other` an I/O error all the same.
            heed::Error::Mdb(heed::MdbError::Other(code)) => {
                StoreError::io(context)(std::io::Error::from_raw_os_error(code))
            }
            heed::Error::Mdb(heed::MdbError::ReadersFull) => StoreError::ReadersFull {
                context,
                source: Arc::new(error),
            },
            heed::Error::Mdb(heed::MdbError::MapResized) => StoreError::MapResized {
                context,
                source: Arc::new(error),
            },
            heed::Error::Mdb(heed::MdbError::KeyExist) => StoreError::KeyExists {
                context,
                source: Arc::new(error),
            },
            other => StoreError::Lmdb {
                context,
                source: Arc::new(other),
            },
        }
    }

    /// Wraps an I/O error with what the store was doing: [`StoreError::DiskFull`] when
    /// the operating system says the disk or quota is full, [`StoreError::Io`] otherwise.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        move |source| {
            if matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                StoreError::DiskFull {
                    context,
                    source: Arc::new(source),
                }
            } else {
                StoreError::Io {
                    context,
                    source: Arc::new(source),
                }
            }
        }
    }

    /// The LMDB error behind this one, if it wraps one (the [`source`] of
    /// [`ReadersFull`](Self::ReadersFull), [`MapResized`](Self::MapResized),
    /// [`KeyExists`](Self::KeyExists) and [`Lmdb`](Self::Lmdb), shared behind an `Arc`).
    ///
    /// [`source`]: std::error::Error::source
    pub fn lmdb_error(&self) -> Option<&heed::Error> {
        match self {
            StoreError::ReadersFull { source, .. }
            | StoreError::MapResized { source, .. }
            | StoreError::KeyExists { source, .. }
            | StoreError::Lmdb { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The operating system's error behind this one, if it wraps one (the source of
    /// [`DiskFull`](Self::DiskFull) and [`Io`](Self::Io)).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            StoreError::DiskFull { source, .. } | StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether this error came from a refused write (map or disk full, I/O), after
    /// which the store keeps serving reads and a later batch may succeed.
    pub fn is_resource_error(&self) -> bool {
        let full = matches!(
            self,
            StoreError::MapFull { .. } | StoreError::DiskFull { .. }
        );
        full || matches!(self, StoreError::Io { .. })
    }
}

/// A malformed entry of an index table: a key or value of the wrong shape.
pub(crate) fn index_corrupted(table: &'static str) -> StoreError {
    StoreError::Corrupted(Corruption::Index {
        table,
        reason: "key or value has the wrong shape".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<StoreError>();
        check::<InvalidEvent>();
        check::<Corruption>();
    }

    #[test]
    fn lmdb_errors_map_to_matchable_variants_with_their_source() {
        use std::error::Error as _;
        let map = |e: heed::MdbError| StoreError::lmdb("testing")(heed::Error::Mdb(e));
        let readers = map(heed::MdbError::ReadersFull);
        let is_readers_full = matches!(readers, StoreError::ReadersFull { .. });
        assert!(is_readers_full, "{readers:?}");
        let resized = map(heed::MdbError::MapResized);
        let is_map_resized = matches!(resized, StoreError::MapResized { .. });
        assert!(is_map_resized, "{resized:?}");
        let exists = map(heed::MdbError::KeyExist);
        assert!(matches!(exists, StoreError::KeyExists { .. }), "{exists:?}");
        let full = map(heed::MdbError::MapFull);
        assert!(matches!(full, StoreError::MapFull { .. }), "{full:?}");
        let other = map(heed::MdbError::Corrupted);
        assert!(matches!(other, StoreError::Lmdb { .. }), "{other:?}");
        // The source is LMDB's own error, shared.
        let source = resized.source().expect("a source");
        let shared = source
            .downcast_ref::<Arc<heed::Error>>()
            .expect("an Arc<heed::Error>");
        assert!(matches!(
            **shared,
            heed::Error::Mdb(heed::MdbError::MapResized)
        ));
        assert!(matches!(
            resized.lmdb_error(),
            Some(heed::Error::Mdb(heed::MdbError::MapResized))
        ));
        assert!(readers.io_error().is_none());
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_io_errors() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let error = StoreError::lmdb("testing")(heed::Error::Io(full));
        assert!(matches!(error, StoreError::DiskFull { .. }), "{error:?}");
        assert!(error.is_resource_error());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let error = StoreError::lmdb("testing")(heed::Error::Io(denied));
        assert!(matches!(error, StoreError::Io { .. }), "{error:?}");
    }

    #[test]
    fn a_shared_error_keeps_its_source_in_every_copy() {
        use std::error::Error as _;
        let error = StoreError::lmdb("testing")(heed::Error::Mdb(heed::MdbError::ReadersFull));
        let copy = error.clone();
        let (StoreError::ReadersFull { source: a, .. }, StoreError::ReadersFull { source: b, .. }) =
            (&error, &copy)
        else {
            panic!("both copies are ReadersFull: {error:?} {copy:?}");
        };
        assert!(Arc::ptr_eq(a, b));
        assert!(copy.source().is_some());
    }
}
