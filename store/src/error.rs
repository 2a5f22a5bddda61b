//! Typed errors of the store.

use std::path::PathBuf;

/// Why an event was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The id is not the NIP-01 hash of the event.
    #[error("invalid: event id does not match its content (NIP-01 hash)")]
    BadId,
    /// The Schnorr signature does not verify against the pubkey.
    #[error("invalid: bad signature")]
    BadSignature,
    /// The encoded event is larger than the configured limit.
    #[error("invalid: event is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The event has more tags than the configured limit.
    #[error("invalid: event has {count} tags, the limit is {limit}")]
    TooManyTags { count: usize, limit: usize },
    /// A NIP-29 kind arrived without its group tag.
    #[error("invalid: kind {kind} needs a group id in its `{tag}` tag")]
    MissingGroup { kind: u16, tag: &'static str },
    /// More than one group tag: an event belongs to at most one group.
    #[error("invalid: {count} `{tag}` tags; an event belongs to one group")]
    ManyGroupTags { tag: &'static str, count: usize },
    /// The group id is empty or longer than the limit.
    #[error("invalid: group id of {len} bytes (allowed: 1..={limit})")]
    BadGroupId { len: usize, limit: usize },
}

/// Where stored bytes failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A log record failed its checksum or rkyv validation.
    #[error("log record at sequence {seq}: {reason}")]
    Record { seq: u64, reason: String },
    /// A checkpoint failed its checksum or rkyv validation.
    #[error("checkpoint {projection}/{group}: {reason}")]
    Checkpoint {
        projection: String,
        group: String,
        reason: String,
    },
    /// An index or metadata entry has the wrong shape.
    #[error("{table}: {reason}")]
    Index { table: &'static str, reason: String },
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The event was refused; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Bytes read back from LMDB failed validation.
    #[error("corrupted: {0}")]
    Corrupted(#[from] Corruption),
    /// The database was written by another format version of highwater.
    #[error("database at {path} has format version {found}, this build reads version {expected}")]
    FormatVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The LMDB map is full and may not grow further; the batch was not written.
    #[error(
        "the database map is full ({map_size} bytes, limit {max_map_size}); the batch was not written — raise the map size limit"
    )]
    MapFull {
        map_size: usize,
        max_map_size: usize,
    },
    /// The disk or filesystem refused a write; the batch was not written.
    #[error("storage I/O error while {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An LMDB call failed.
    #[error("LMDB error while {context}: {message}")]
    Lmdb {
        context: &'static str,
        message: String,
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
}

impl StoreError {
    /// Wraps an LMDB error with what the store was doing.
    pub(crate) fn lmdb(context: &'static str) -> impl FnOnce(heed::Error) -> StoreError {
        move |error| match error {
            heed::Error::Io(source) => StoreError::Io { context, source },
            // The writer fills in the sizes when it gives up growing the map.
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::MapFull {
                map_size: 0,
                max_map_size: 0,
            },
            heed::Error::Mdb(heed::MdbError::Other(code)) if code == libc_enospc() => {
                StoreError::Io {
                    context,
                    source: std::io::Error::from_raw_os_error(code),
                }
            }
            other => StoreError::Lmdb {
                context,
                message: other.to_string(),
            },
        }
    }

    /// Whether this error came from a refused write (disk full, I/O), after which the
    /// store keeps serving reads and a later batch may succeed.
    pub fn is_resource_error(&self) -> bool {
        matches!(self, StoreError::MapFull { .. } | StoreError::Io { .. })
    }
}

/// `ENOSPC` on the platforms LMDB supports.
const fn libc_enospc() -> i32 {
    28
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<StoreError>();
        check::<Rejection>();
        check::<Corruption>();
    }
}
