//! Every byte layout of the store, in one place.
//!
//! Keys are big-endian so LMDB's byte order is numeric order; values are rkyv archives
//! behind a CRC-32C-style checksum (`crc32fast`, IEEE polynomial). Nothing outside this
//! module converts integers to bytes or reads archived bytes.
//!
//! | database      | key                                   | value                                  |
//! |---------------|---------------------------------------|----------------------------------------|
//! | `meta`        | UTF-8 name                            | raw bytes (format version: u32 BE)     |
//! | `events`      | seq u64 BE                            | crc32 LE ‖ rkyv `Record`               |
//! | `ids`         | event id, 32 bytes                    | seq u64 BE                             |
//! | `groups`      | group id, UTF-8, 1..=255 bytes        | group no u32 BE ‖ head u64 BE ‖ count u64 BE |
//! | `group_index` | group no u32 BE ‖ seq u64 BE          | kind u16 BE                            |
//! | `checkpoints` | projection name ‖ 0x00 ‖ group no u32 BE | crc32 LE ‖ rkyv `CheckpointRecord`  |

use rkyv::rancor;

use crate::error::{Corruption, StoreError};

/// Version of every layout in this module. Bump it when any of them changes.
pub(crate) const FORMAT_VERSION: u32 = 1;

pub(crate) const META_FORMAT_VERSION: &str = "format_version";

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

pub(crate) fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    let archive =
        rkyv::to_bytes::<rancor::Error>(record).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(seal(&archive))
}

/// Validates a stored event value and returns a zero-copy view of it.
pub(crate) fn access_record(bytes: &[u8], seq: u64) -> Result<&ArchivedRecord, StoreError> {
    let corrupted = |reason: String| StoreError::Corrupted(Corruption::Record { seq, reason });
    let archive = unseal(bytes).map_err(|r| corrupted(r.to_owned()))?;
    rkyv::access::<ArchivedRecord, rancor::Error>(archive).map_err(|e| corrupted(e.to_string()))
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
