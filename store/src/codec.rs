//! Every byte layout of the store, in one place.
//!
//! Keys are big-endian so LMDB's byte order is numeric order. Log records are a fixed
//! header (kind, group number, `created_at`) with its own CRC-32C, then the rkyv
//! archive of the event behind a second CRC-32C (hardware-accelerated, `crc32c`), so a
//! scan can skip a record by its header without reading its body. Checkpoints are rkyv
//! archives behind a CRC-32 (`crc32fast`, IEEE polynomial), unchanged since format 1.
//! Nothing outside this module converts integers to bytes or reads archived bytes.
//!
//! | database      | key                                   | value                                  |
//! |---------------|---------------------------------------|----------------------------------------|
//! | `meta`        | UTF-8 name                            | raw bytes (format version: u32 BE; `removed_records`, `index_watermark`: u64 BE) |
//! | `events`      | seq u64 BE                            | record header (24 bytes) ‖ rkyv `Record` |
//! | `id_prefix`   | first 8 bytes of the event id (`DUP_SORT`, `DUP_FIXED`) | seq u64 BE (one per event up to the index watermark) |
//! | `groups`      | group id, UTF-8, 1..=255 bytes        | group no u32 BE ‖ head u64 BE ‖ count u64 BE |
//! | `group_index` | group no u32 BE ‖ seq u64 BE (up to the index watermark) | kind u16 BE         |
//! | `checkpoints` | projection name ‖ 0x00 ‖ group no u32 BE | crc32 LE ‖ rkyv `CheckpointRecord`  |
//!
//! The record header, little-endian:
//!
//! | bytes  | field                                                          |
//! |--------|----------------------------------------------------------------|
//! | 0..2   | kind u16                                                       |
//! | 2..4   | reserved, zero                                                 |
//! | 4..8   | group no u32 (`u32::MAX`: no group)                            |
//! | 8..16  | `created_at` u64                                               |
//! | 16..20 | CRC-32C of bytes 0..16 (the header check)                      |
//! | 20..24 | CRC-32C of bytes 24.. (the body check)                         |
//! | 24..   | rkyv `Record` (the body; the same archive as format 1's)       |
//!
//! Format 1 stored `crc32fast(archive) LE ‖ archive` under `events` and the full
//! 32-byte id under `ids`; `upgrade` reads that through [`v1_archive`].

use rkyv::rancor;

use crate::error::{Corruption, StoreError};

/// Version of every layout in this module. Bump it when any of them changes.
///
/// Format 4 is format 3 (format 2's layouts, holes allowed) whose indexes may lag the
/// log: `id_prefix` and `group_index` hold exactly the records up to `meta`
/// `index_watermark`, and the records above it are the index tail (see `tail`).
pub(crate) const FORMAT_VERSION: u32 = 4;

/// The format version of a database whose indexes hold every record and whose log is
/// dense: `upgrade` converts it by writing the index watermark.
pub(crate) const FORMAT_VERSION_V2: u32 = 2;

/// The format version `highwater upgrade` upgrades from.
pub(crate) const FORMAT_VERSION_V1: u32 = 1;

/// Format 2 whose log may have holes: the version a compaction of format 2 wrote in the
/// transaction that first removed a record. Every layout is format 2's; what differs is
/// that sequence numbers are no longer dense, which a highwater reading only format 2
/// (taking the log head for the number of events) must not see, so it refuses it.
/// Format 4 allows holes too; `upgrade` converts 3 as it converts 2.
pub(crate) const FORMAT_VERSION_HOLES: u32 = 3;

/// Whether this build reads and writes a database of this stored format version.
pub(crate) fn is_current(version: u32) -> bool {
    version == FORMAT_VERSION
}

/// Whether `highwater upgrade` converts a database of this stored format version.
pub(crate) fn is_upgradable(version: u32) -> bool {
    [FORMAT_VERSION_V1, FORMAT_VERSION_V2, FORMAT_VERSION_HOLES].contains(&version)
}

/// Bytes ahead of a record's rkyv body.
pub(crate) const HEADER_LEN: usize = 24;

/// Test support: bytes ahead of a record's rkyv body (the header and both checks).
#[cfg(feature = "test-support")]
pub const RECORD_HEADER_LEN: usize = HEADER_LEN;

/// The header's group number of an event that belongs to no group.
pub(crate) const NO_GROUP: u32 = u32::MAX;

pub(crate) const META_FORMAT_VERSION: &str = "format_version";

/// `meta` key: how many records compactions have removed from the log, ever (u64 BE;
/// absent means 0). Written in each compaction transaction, so the number of records
/// is always the log's entries and other processes learn from it that their cached
/// group counts are stale.
pub(crate) const META_REMOVED_RECORDS: &str = "removed_records";

/// `meta` key: the index watermark (u64 BE; absent means 0). `id_prefix` and
/// `group_index` hold the entries of exactly the records up to it; it is written in
/// the transaction that merges the records above it into both.
pub(crate) const META_INDEX_WATERMARK: &str = "index_watermark";

pub(crate) fn count_value(count: u64) -> [u8; 8] {
    count.to_be_bytes()
}

/// A `removed_records` value; anything but 8 bytes is a corrupted entry.
pub(crate) fn decode_count(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The archived form of one event in the `events` database.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct Record {
    pub(crate) id: [u8; 32],
    pub(crate) pubkey: [u8; 32],
    pub(crate) sig: [u8; 64],
    pub(crate) created_at: u64,
    pub(crate) kind: u16,
    pub(crate) tags: Vec<Vec<String>>,
    pub(crate) content: String,
}

/// The archived form of one checkpoint in the `checkpoints` database.
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct CheckpointRecord {
    pub(crate) version: u64,
    pub(crate) watermark: u64,
    pub(crate) events: u64,
    pub(crate) state: Vec<u8>,
}

pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn decode_seq(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn group_index_key(group_no: u32, seq: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&group_no.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a `group_index` key into (group no, seq).
pub(crate) fn decode_group_index_key(key: &[u8]) -> Option<(u32, u64)> {
    let no = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    (key.len() == 12).then_some((no, seq))
}

pub(crate) fn kind_value(kind: u16) -> [u8; 2] {
    kind.to_be_bytes()
}

pub(crate) fn decode_kind(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.try_into().ok()?))
}

/// The value of a `groups` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub(crate) no: u32,
    pub(crate) head: u64,
    pub(crate) count: u64,
}

impl GroupEntry {
    pub(crate) fn encode(self) -> [u8; 20] {
        let mut out = [0; 20];
        out[..4].copy_from_slice(&self.no.to_be_bytes());
        out[4..12].copy_from_slice(&self.head.to_be_bytes());
        out[12..].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 20 {
            return None;
        }
        Some(Self {
            no: u32::from_be_bytes(bytes[..4].try_into().ok()?),
            head: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            count: u64::from_be_bytes(bytes[12..].try_into().ok()?),
        })
    }
}

/// `projection ‖ 0x00` — the prefix of every checkpoint of one projection.
pub(crate) fn checkpoint_prefix(projection: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(projection.len() + 5);
    key.extend_from_slice(projection.as_bytes());
    key.push(0);
    key
}

pub(crate) fn checkpoint_key(projection: &str, group_no: u32) -> Vec<u8> {
    let mut key = checkpoint_prefix(projection);
    key.extend_from_slice(&group_no.to_be_bytes());
    key
}

/// The group no at the end of a checkpoint key.
pub(crate) fn decode_checkpoint_key_group(key: &[u8]) -> Option<u32> {
    let tail = key.len().checked_sub(4)?;
    Some(u32::from_be_bytes(key[tail..].try_into().ok()?))
}

/// Prefixes the archive with its checksum.
fn seal(archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(archive.len() + 4);
    out.extend_from_slice(&crc32fast::hash(archive).to_le_bytes());
    out.extend_from_slice(archive);
    out
}

/// Checks the checksum and returns the archive behind it.
fn unseal(bytes: &[u8]) -> Result<&[u8], &'static str> {
    if bytes.len() < 4 {
        return Err("value shorter than its checksum");
    }
    let (sum, archive) = bytes.split_at(4);
    let expected = u32::from_le_bytes(sum.try_into().map_err(|_| "checksum")?);
    if crc32fast::hash(archive) != expected {
        return Err("checksum mismatch");
    }
    Ok(archive)
}

/// The fixed header of a log record, readable without its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The event kind.
    pub kind: u16,
    /// The number of the group the event is indexed under, if any.
    pub group: Option<u32>,
    /// The event's `created_at`, in seconds.
    pub created_at: u64,
}

fn header_bytes(kind: u16, group: u32, created_at: u64) -> [u8; 16] {
    let mut out = [0; 16];
    out[..2].copy_from_slice(&kind.to_le_bytes());
    out[4..8].copy_from_slice(&group.to_le_bytes());
    out[8..16].copy_from_slice(&created_at.to_le_bytes());
    out
}

/// A record from an archive: header (no group yet), both checks, the archive.
fn record_from_archive(kind: u16, group: u32, created_at: u64, archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + archive.len());
    let header = header_bytes(kind, group, created_at);
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32c::crc32c(&header).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(archive).to_le_bytes());
    out.extend_from_slice(archive);
    out
}

/// Encodes an event as a record with no group number yet ([`set_record_group`] writes
/// it in the writer's transaction, where group numbers are assigned).
pub(crate) fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    let archive =
        rkyv::to_bytes::<rancor::Error>(record).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(record_from_archive(
        record.kind,
        NO_GROUP,
        record.created_at,
        &archive,
    ))
}

/// Writes the group number into an encoded record's header and renews the header check.
/// The body and its check are untouched.
pub(crate) fn set_record_group(bytes: &mut [u8], group: Option<u32>) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    bytes[4..8].copy_from_slice(&group.unwrap_or(NO_GROUP).to_le_bytes());
    let check = crc32c::crc32c(&bytes[..16]);
    bytes[16..20].copy_from_slice(&check.to_le_bytes());
}

fn record_corrupted(seq: u64) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupted(Corruption::Record { seq, reason })
}

/// Checks a record's header (its own check only: the body is not read) and decodes it.
pub(crate) fn read_header(bytes: &[u8], seq: u64) -> Result<RecordHeader, StoreError> {
    let corrupted = record_corrupted(seq);
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| corrupted("value shorter than the record header".into()))?;
    let le16 = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let le32 = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
    if crc32c::crc32c(&header[..16]) != le32(16) {
        return Err(corrupted("record header check mismatch".into()));
    }
    if le16(2) != 0 {
        return Err(corrupted("reserved header bytes are not zero".into()));
    }
    let group = le32(4);
    Ok(RecordHeader {
        kind: le16(0),
        group: (group != NO_GROUP).then_some(group),
        created_at: u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8])),
    })
}

/// Validates a stored record — header check, body check, rkyv validation, and that the
/// header's kind and `created_at` are the body's — and returns a zero-copy view of it.
pub(crate) fn access_record(bytes: &[u8], seq: u64) -> Result<&ArchivedRecord, StoreError> {
    let header = read_header(bytes, seq)?;
    access_body(bytes, &header, seq)
}

/// [`access_record`] for a record whose header [`read_header`] already checked.
pub(crate) fn access_body<'a>(
    bytes: &'a [u8],
    header: &RecordHeader,
    seq: u64,
) -> Result<&'a ArchivedRecord, StoreError> {
    let corrupted = record_corrupted(seq);
    let (head, body) = bytes.split_at(HEADER_LEN.min(bytes.len()));
    let expected = u32::from_le_bytes(head[20..24].try_into().unwrap_or([0; 4]));
    if crc32c::crc32c(body) != expected {
        return Err(corrupted("record body check mismatch".into()));
    }
    let record = rkyv::access::<ArchivedRecord, rancor::Error>(body)
        .map_err(|e| corrupted(e.to_string()))?;
    if record.kind.to_native() != header.kind || record.created_at.to_native() != header.created_at
    {
        return Err(corrupted("record header disagrees with its body".into()));
    }
    Ok(record)
}

/// The first 8 bytes of an event id: the key of the `id_prefix` index.
pub(crate) fn id_prefix(id: &[u8; 32]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&id[..8]);
    out
}

/// A format-1 record (`crc32fast LE ‖ archive`): its checked archive and view.
pub(crate) fn v1_archive(bytes: &[u8], seq: u64) -> Result<(&[u8], &ArchivedRecord), StoreError> {
    let corrupted = record_corrupted(seq);
    let archive = unseal(bytes).map_err(|r| corrupted(r.to_owned()))?;
    let record = rkyv::access::<ArchivedRecord, rancor::Error>(archive)
        .map_err(|e| corrupted(e.to_string()))?;
    Ok((archive, record))
}

/// The format-2 record of a format-1 record's archive, with its group number.
pub(crate) fn v2_from_v1(archive: &[u8], record: &ArchivedRecord, group: Option<u32>) -> Vec<u8> {
    record_from_archive(
        record.kind.to_native(),
        group.unwrap_or(NO_GROUP),
        record.created_at.to_native(),
        archive,
    )
}

/// Test support: a record around raw body bytes, with both checks correct and a
/// header that agrees with the body when the body is a valid archive (kind and
/// `created_at` 0 otherwise), so fuzzers reach the body's validation.
#[cfg(feature = "test-support")]
pub fn seal_record(body: &[u8]) -> Vec<u8> {
    let (kind, created_at) = rkyv::access::<ArchivedRecord, rancor::Error>(body)
        .map_or((0, 0), |r| (r.kind.to_native(), r.created_at.to_native()));
    record_from_archive(kind, NO_GROUP, created_at, body)
}

/// The format-1 record of a format-2 record (tests write format-1 databases this way).
#[cfg(feature = "test-support")]
pub(crate) fn v1_from_v2(bytes: &[u8], seq: u64) -> Result<Vec<u8>, StoreError> {
    access_record(bytes, seq)?;
    Ok(seal(&bytes[HEADER_LEN..]))
}

pub(crate) fn encode_checkpoint(record: &CheckpointRecord) -> Result<Vec<u8>, StoreError> {
    let archive =
        rkyv::to_bytes::<rancor::Error>(record).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(seal(&archive))
}

pub(crate) fn decode_checkpoint(
    bytes: &[u8],
    projection: &str,
    group: &str,
) -> Result<CheckpointRecord, StoreError> {
    let corrupted = |reason: String| {
        StoreError::Corrupted(Corruption::Checkpoint {
            projection: projection.to_owned(),
            group: group.to_owned(),
            reason,
        })
    };
    let archive = unseal(bytes).map_err(|r| corrupted(r.to_owned()))?;
    let archived = rkyv::access::<ArchivedCheckpointRecord, rancor::Error>(archive)
        .map_err(|e| corrupted(e.to_string()))?;
    Ok(CheckpointRecord {
        version: archived.version.to_native(),
        watermark: archived.watermark.to_native(),
        events: archived.events.to_native(),
        state: archived.state.as_slice().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_bit_flip_detected() {
        let record = Record {
            id: [1; 32],
            pubkey: [2; 32],
            sig: [3; 64],
            created_at: 1_700_000_000,
            kind: 9000,
            tags: vec![
                vec!["h".into(), "g".into()],
                vec!["p".into(), "ab".into(), "admin".into()],
            ],
            content: "héllo 👋".into(),
        };
        let bytes = encode_record(&record).unwrap();
        let view = access_record(&bytes, 7).unwrap();
        assert_eq!(view.kind.to_native(), 9000);
        assert_eq!(view.content.as_str(), "héllo 👋");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let Err(err) = access_record(&bad, 7) else {
                panic!("flipping byte {i} went undetected");
            };
            let matched = matches!(
                err,
                StoreError::Corrupted(Corruption::Record { seq: 7, .. })
            );
            assert!(matched, "{err}");
        }
    }

    #[test]
    fn a_sealed_value_needs_its_four_byte_checksum() {
        assert_eq!(unseal(&[]), Err("value shorter than its checksum"));
        assert_eq!(unseal(&[1, 2, 3]), Err("value shorter than its checksum"));
        // Exactly the checksum: the empty archive behind it.
        let empty = seal(&[]);
        assert_eq!(empty.len(), 4);
        assert_eq!(unseal(&empty), Ok(&[][..]));
        assert_eq!(unseal(&seal(b"abc")), Ok(&b"abc"[..]));
        let mut bad = seal(b"abc");
        bad[5] ^= 1;
        assert_eq!(unseal(&bad), Err("checksum mismatch"));
    }

    /// The fuzzers' record builder: both checks right, the header agreeing with a
    /// valid body (so such a record reads back whole) and zero for any other body (so
    /// only the body's own validation refuses it).
    #[cfg(feature = "test-support")]
    #[test]
    fn seal_record_frames_any_body_with_correct_checks() {
        let real = encode_record(&sample()).unwrap();
        let sealed = seal_record(&real[HEADER_LEN..]);
        assert_eq!(sealed, real);
        let header = read_header(&sealed, 3).unwrap();
        assert_eq!((header.kind, header.created_at), (9001, 1_700_000_123));
        assert_eq!(access_record(&sealed, 3).unwrap().kind.to_native(), 9001);

        let garbage = seal_record(b"not an archive");
        assert_eq!(garbage.len(), HEADER_LEN + 14);
        let header = read_header(&garbage, 3).unwrap();
        assert_eq!((header.kind, header.group, header.created_at), (0, None, 0));
        let Err(StoreError::Corrupted(Corruption::Record { seq: 3, reason })) =
            access_record(&garbage, 3)
        else {
            panic!("a body that is not an archive was accepted")
        };
        assert!(!reason.contains("check"), "{reason}");
    }

    fn sample() -> Record {
        Record {
            id: [9; 32],
            pubkey: [2; 32],
            sig: [3; 64],
            created_at: 1_700_000_123,
            kind: 9001,
            tags: vec![vec!["h".into(), "g".into()]],
            content: String::new(),
        }
    }

    #[test]
    fn the_header_carries_kind_group_and_time_and_the_writer_can_set_the_group() {
        let mut bytes = encode_record(&sample()).unwrap();
        let header = read_header(&bytes, 1).unwrap();
        assert_eq!(
            header,
            RecordHeader {
                kind: 9001,
                group: None,
                created_at: 1_700_000_123
            }
        );
        set_record_group(&mut bytes, Some(42));
        assert_eq!(read_header(&bytes, 1).unwrap().group, Some(42));
        assert_eq!(access_record(&bytes, 1).unwrap().kind.to_native(), 9001);
        // The header is checked on its own: a reader that skips the body still sees a
        // flipped group number.
        let mut bad = bytes.clone();
        bad[5] ^= 1;
        assert!(read_header(&bad, 1).is_err());
        // A consistent header that disagrees with the body is caught with the body.
        let mut lying = bytes.clone();
        lying[..2].copy_from_slice(&9u16.to_le_bytes());
        let check = crc32c::crc32c(&lying[..16]);
        lying[16..20].copy_from_slice(&check.to_le_bytes());
        assert_eq!(read_header(&lying, 1).unwrap().kind, 9);
        let Err(err) = access_record(&lying, 1) else {
            panic!("a header that disagrees with its body went unnoticed");
        };
        assert!(err.to_string().contains("disagrees"), "{err}");
        assert!(read_header(&bytes[..10], 1).is_err());
    }

    #[test]
    fn a_format_1_record_converts_to_format_2_with_the_same_body() {
        let archive = rkyv::to_bytes::<rancor::Error>(&sample()).unwrap();
        let v1 = seal(&archive);
        let (body, view) = v1_archive(&v1, 3).unwrap();
        let v2 = v2_from_v1(body, view, Some(7));
        assert_eq!(&v2[HEADER_LEN..], &archive[..]);
        let header = read_header(&v2, 3).unwrap();
        assert_eq!((header.kind, header.group), (9001, Some(7)));
        assert_eq!(access_record(&v2, 3).unwrap().id, [9; 32]);
        let mut bad = v1.clone();
        bad[6] ^= 1;
        assert!(v1_archive(&bad, 3).is_err());
        assert_eq!(id_prefix(&[5; 32]), [5; 8]);
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(seq_key(255) < seq_key(256));
        assert!(group_index_key(1, u64::MAX) < group_index_key(2, 0));
        assert_eq!(decode_group_index_key(&group_index_key(3, 9)), Some((3, 9)));
        let entry = GroupEntry {
            no: 4,
            head: 10,
            count: 3,
        };
        assert_eq!(GroupEntry::decode(&entry.encode()), Some(entry));
        assert_eq!(
            decode_checkpoint_key_group(&checkpoint_key("roles", 77)),
            Some(77)
        );
    }
}
