//! `highwater upgrade`: converts a database of format 1, 2 or 3 to format 4 in one
//! LMDB write transaction.
//!
//! Format 4 keeps every layout of format 3 (format 2's, with holes allowed) and adds
//! the index watermark (`meta` `index_watermark`): the indexes hold the records up to
//! it. A format-2 or format-3 database has complete indexes, so its upgrade writes the
//! watermark at the log head and the version 4, in one transaction, and rewrites
//! nothing else. A format-1 database is converted as below, with the same two entries
//! written at the end.
//!
//! Format 2 changed two layouts (see `codec`): records gained a 24-byte header ahead
//! of their body (the body is format 1's archive, byte for byte), and the `ids` index
//! of full 32-byte ids became `id_prefix`, keyed by 8-byte prefixes. The upgrade
//! rewrites every record with its header (the group number from the `groups` table),
//! builds `id_prefix` in key order, deletes `ids`, and writes format version 2 — all in
//! one transaction. LMDB commits a transaction by writing its meta page last, so a
//! crash, a kill or a full disk at any point before that leaves the database exactly
//! as it was (format 1, every byte of its committed pages untouched), and running the
//! upgrade again starts over. Sequence numbers, group numbers, the group index, the
//! group table, settings and checkpoints keep their layouts and are kept as they are.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{Database, PutFlags, RwTxn};

use crate::codec::{self, GroupEntry};
use crate::env::{check_file_length, id_prefix_flags, open_env};
use crate::error::{StoreError, index_corrupted};
use crate::options::StoreOptions;
use crate::validate::group_tag_for_kind;

/// What [`upgrade`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// The database already has the current format version; nothing was written.
    AlreadyCurrent {
        /// Its format version.
        version: u32,
    },
    /// The database was converted, in one transaction.
    Upgraded {
        /// The format version it had.
        from: u32,
        /// The format version it has now.
        to: u32,
        /// Records rewritten.
        events: u64,
        /// Checkpoints kept (their layout did not change).
        checkpoints: u64,
    },
}

/// Records converted between two progress reports.
const CHUNK: usize = 4_096;

/// Upgrades the database in `dir` to the current format version, in one write
/// transaction: a crash or kill at any point leaves it as it was. `progress` is called
/// with (records converted, records in all) after each chunk of records of a format-1
/// database, and with (0, 2) and (1, 2) before and after the writes of a format-2 or
/// format-3 one, while the transaction is still open. No other process may have the database open: a process
/// of an older highwater would read records it cannot decode after the commit.
///
/// # Errors
///
/// [`StoreError::Missing`] when `dir` holds no database, [`StoreError::FormatVersion`]
/// for a version this build cannot upgrade, [`StoreError::Corrupted`] when a format-1
/// record or index entry fails validation (nothing is written), an LMDB or I/O error
/// (the map or the disk is full: nothing is written).
pub fn upgrade(
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UpgradeOutcome, StoreError> {
    let data = dir.join("data.mdb");
    if !data.is_file() {
        return Err(StoreError::Missing {
            path: dir.to_owned(),
        });
    }
    let size = std::fs::metadata(&data)
        .map_err(StoreError::io("reading the size of data.mdb"))?
        .len();
    // Room for the old pages and the new ones, which coexist until the commit (sparse:
    // it costs address space, not disk).
    let map_size = usize::try_from(size.saturating_mul(4))
        .unwrap_or(usize::MAX)
        .max(1 << 30);
    let options = StoreOptions {
        map_size,
        ..StoreOptions::default()
    };
    let (env, _) = open_env(dir, &options)?;
    check_file_length(&env, dir)?;
    let ctx = "upgrading the database";
    let mut txn = env.write_txn().map_err(StoreError::lmdb(ctx))?;
    let open = |txn: &RwTxn<'_>, name: &str| {
        env.open_database::<Bytes, Bytes>(txn, Some(name))
            .map_err(StoreError::lmdb(ctx))?
            .ok_or_else(|| StoreError::Missing {
                path: dir.to_owned(),
            })
    };
    let meta = open(&txn, "meta")?;
    let found = meta
        .get(&txn, codec::META_FORMAT_VERSION.as_bytes())
        .map_err(StoreError::lmdb(ctx))?
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u32::from_be_bytes);
    if codec::is_current(found) {
        return Ok(UpgradeOutcome::AlreadyCurrent { version: found });
    }
    if codec::is_upgradable(found) && found != codec::FORMAT_VERSION_V1 {
        let (events, checkpoints) = (open(&txn, "events")?, open(&txn, "checkpoints")?);
        let checkpoints = checkpoints.len(&txn).map_err(StoreError::lmdb(ctx))?;
        return from_indexed(txn, meta, events, found, checkpoints, progress);
    }
    if found != codec::FORMAT_VERSION_V1 {
        return Err(StoreError::FormatVersion {
            path: dir.to_owned(),
            found,
            expected: codec::FORMAT_VERSION,
        });
    }
    let events = open(&txn, "events")?;
    let old_ids = open(&txn, "ids")?;
    let groups = group_numbers(&txn, open(&txn, "groups")?)?;
    let checkpoints = open(&txn, "checkpoints")?
        .len(&txn)
        .map_err(StoreError::lmdb(ctx))?;
    let total = events.len(&txn).map_err(StoreError::lmdb(ctx))?;

    let mut keys: Vec<([u8; 8], u64)> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut next = 1u64;
    let mut done = 0u64;
    progress(0, total);
    loop {
        let chunk = read_chunk(&txn, events, next)?;
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        for (seq, old) in &chunk {
            let (archive, record) = codec::v1_archive(old, *seq)?;
            let (tag, _) = group_tag_for_kind(record.kind.to_native());
            let group = record
                .tags
                .iter()
                .find(|t| t.first().map(rkyv::string::ArchivedString::as_str) == Some(tag))
                .and_then(|t| t.get(1))
                .and_then(|name| groups.get(name.as_str()).copied());
            let new = codec::v2_from_v1(archive, record, group);
            keys.push((codec::id_prefix(&record.id), *seq));
            events
                .put(&mut txn, &codec::seq_key(*seq), &new)
                .map_err(StoreError::lmdb("rewriting a record"))?;
        }
        done += chunk.len() as u64;
        next = last + 1;
        progress(done, total);
    }
    if old_ids.len(&txn).map_err(StoreError::lmdb(ctx))? != done {
        return Err(index_corrupted("ids"));
    }
    write_id_prefix(&env, &mut txn, &mut keys)?;
    #[expect(unsafe_code, reason = "deleting a named LMDB database; see SAFETY")]
    // SAFETY: heed requires that no other handle of this database is used afterwards.
    // `old_ids` is this function's only handle of `ids` (the environment was opened
    // here, and no `Store` of this format opens `ids`), and it is consumed here.
    unsafe { old_ids.remove(&mut txn) }.map_err(StoreError::lmdb("deleting the old id index"))?;
    let head = last_key(&txn, events)?;
    finish(&mut txn, meta, head)?;
    txn.commit()
        .map_err(StoreError::lmdb("committing the upgrade"))?;
    Ok(UpgradeOutcome::Upgraded {
        from: found,
        to: codec::FORMAT_VERSION,
        events: done,
        checkpoints,
    })
}

/// Upgrades a database of format 2 or 3, whose indexes hold every record: the index
/// watermark at the log head and the version, in `txn`, which it commits.
fn from_indexed(
    mut txn: RwTxn<'_>,
    meta: Database<Bytes, Bytes>,
    events: Database<Bytes, Bytes>,
    found: u32,
    checkpoints: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UpgradeOutcome, StoreError> {
    let head = last_key(&txn, events)?;
    // Two steps, reported as (step, 2): before the writes and after them.
    progress(0, 2);
    finish(&mut txn, meta, head)?;
    progress(1, 2);
    txn.commit()
        .map_err(StoreError::lmdb("committing the upgrade"))?;
    Ok(UpgradeOutcome::Upgraded {
        from: found,
        to: codec::FORMAT_VERSION,
        events: 0,
        checkpoints,
    })
}

/// Writes the index watermark at `head` (every record is indexed) and the current
/// format version.
fn finish(txn: &mut RwTxn<'_>, meta: Database<Bytes, Bytes>, head: u64) -> Result<(), StoreError> {
    let ctx = "upgrading the database";
    meta.put(
        txn,
        codec::META_INDEX_WATERMARK.as_bytes(),
        &codec::count_value(head),
    )
    .map_err(StoreError::lmdb(ctx))?;
    meta.put(
        txn,
        codec::META_FORMAT_VERSION.as_bytes(),
        &codec::FORMAT_VERSION.to_be_bytes(),
    )
    .map_err(StoreError::lmdb(ctx))
}

/// The last sequence number of the log (0 when empty).
fn last_key(txn: &RwTxn<'_>, events: Database<Bytes, Bytes>) -> Result<u64, StoreError> {
    match events
        .last(txn)
        .map_err(StoreError::lmdb("reading the log head"))?
    {
        Some((key, _)) => codec::decode_seq(key).ok_or_else(|| index_corrupted("events")),
        None => Ok(0),
    }
}

/// Group id → group number, from the `groups` table.
fn group_numbers(
    txn: &RwTxn<'_>,
    groups: Database<Bytes, Bytes>,
) -> Result<HashMap<String, u32>, StoreError> {
    let mut out = HashMap::new();
    for item in groups
        .iter(txn)
        .map_err(StoreError::lmdb("loading groups"))?
    {
        let (key, value) = item.map_err(StoreError::lmdb("loading groups"))?;
        let name = std::str::from_utf8(key).map_err(|_| index_corrupted("groups"))?;
        let entry = GroupEntry::decode(value).ok_or_else(|| index_corrupted("groups"))?;
        out.insert(name.to_owned(), entry.no);
    }
    Ok(out)
}

/// Up to [`CHUNK`] records from `from`, copied out of the transaction.
fn read_chunk(
    txn: &RwTxn<'_>,
    events: Database<Bytes, Bytes>,
    from: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let start = codec::seq_key(from);
    let range = (Bound::Included(&start[..]), Bound::Unbounded);
    let mut out = Vec::with_capacity(CHUNK);
    for item in events
        .range(txn, &range)
        .map_err(StoreError::lmdb("reading the log"))?
        .take(CHUNK)
    {
        let (key, value) = item.map_err(StoreError::lmdb("reading the log"))?;
        let seq = codec::decode_seq(key).ok_or_else(|| index_corrupted("events"))?;
        out.push((seq, value.to_vec()));
    }
    Ok(out)
}

/// Creates `id_prefix` and fills it in key order.
fn write_id_prefix(
    env: &heed::Env<heed::WithoutTls>,
    txn: &mut RwTxn<'_>,
    keys: &mut [([u8; 8], u64)],
) -> Result<(), StoreError> {
    let ctx = "writing the id index";
    let ids = env
        .database_options()
        .types::<Bytes, Bytes>()
        .name("id_prefix")
        .flags(id_prefix_flags())
        .create(txn)
        .map_err(StoreError::lmdb(ctx))?;
    ids.clear(txn).map_err(StoreError::lmdb(ctx))?;
    keys.sort_unstable();
    let mut previous: Option<[u8; 8]> = None;
    for (prefix, seq) in keys.iter() {
        // A new key goes at the end of the tree (full pages); a shared prefix adds a
        // duplicate to the key just written.
        let flags = if previous == Some(*prefix) {
            PutFlags::APPEND_DUP
        } else {
            PutFlags::APPEND
        };
        ids.put_with_flags(txn, flags, prefix, &codec::seq_key(*seq))
            .map_err(StoreError::lmdb(ctx))?;
        previous = Some(*prefix);
    }
    Ok(())
}

/// Test support: converts a current database back to format 1 in one transaction (the
/// inverse of [`upgrade`]), so tests can make format-1 databases of any size.
///
/// # Errors
///
/// When the database is missing, not of the current format, or a write fails.
#[cfg(feature = "test-support")]
pub fn downgrade_to_v1(dir: &Path) -> Result<(), StoreError> {
    let (env, _) = open_env(dir, &StoreOptions::default())?;
    let ctx = "writing a format-1 database";
    let mut txn = env.write_txn().map_err(StoreError::lmdb(ctx))?;
    let dbs = crate::env::open_databases_in(&env, &txn, dir)?;
    complete_indexes(&mut txn, &dbs)?;
    let mut next = 1u64;
    let mut ids = Vec::new();
    loop {
        let chunk = read_chunk(&txn, dbs.events, next)?;
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        for (seq, bytes) in &chunk {
            let old = codec::v1_from_v2(bytes, *seq)?;
            ids.push((codec::access_record(bytes, *seq)?.id, *seq));
            dbs.events
                .put(&mut txn, &codec::seq_key(*seq), &old)
                .map_err(StoreError::lmdb(ctx))?;
        }
        next = last + 1;
    }
    let full = env
        .create_database::<Bytes, Bytes>(&mut txn, Some("ids"))
        .map_err(StoreError::lmdb(ctx))?;
    ids.sort_unstable();
    for (id, seq) in ids {
        full.put_with_flags(&mut txn, PutFlags::APPEND, &id, &codec::seq_key(seq))
            .map_err(StoreError::lmdb(ctx))?;
    }
    #[expect(unsafe_code, reason = "deleting a named LMDB database; see SAFETY")]
    // SAFETY: `dbs.ids` is the only handle of `id_prefix` in this environment, opened
    // here; it is consumed and never used again.
    unsafe { dbs.ids.remove(&mut txn) }.map_err(StoreError::lmdb(ctx))?;
    dbs.meta
        .put(
            &mut txn,
            codec::META_FORMAT_VERSION.as_bytes(),
            &codec::FORMAT_VERSION_V1.to_be_bytes(),
        )
        .map_err(StoreError::lmdb(ctx))?;
    txn.commit().map_err(StoreError::lmdb(ctx))
}

/// Test support: converts a current database back to format 2 (or 3, when compactions
/// removed records) in one transaction: the index tail is written into both indexes and
/// the index watermark deleted, so tests can make format-2 databases of any size.
///
/// # Errors
///
/// When the database is missing, not of the current format, or a write fails.
#[cfg(feature = "test-support")]
pub fn downgrade_to_v2(dir: &Path) -> Result<(), StoreError> {
    let (env, _) = open_env(dir, &StoreOptions::default())?;
    let ctx = "writing a format-2 database";
    let mut txn = env.write_txn().map_err(StoreError::lmdb(ctx))?;
    let dbs = crate::env::open_databases_in(&env, &txn, dir)?;
    complete_indexes(&mut txn, &dbs)?;
    let version = if crate::env::removed_records(&txn, &dbs)? > 0 {
        codec::FORMAT_VERSION_HOLES
    } else {
        codec::FORMAT_VERSION_V2
    };
    dbs.meta
        .put(
            &mut txn,
            codec::META_FORMAT_VERSION.as_bytes(),
            &version.to_be_bytes(),
        )
        .map_err(StoreError::lmdb(ctx))?;
    txn.commit().map_err(StoreError::lmdb(ctx))
}

/// Writes the index entries of the records above the index watermark into both
/// indexes and deletes the watermark: the indexes of formats 1 to 3 hold every record.
#[cfg(feature = "test-support")]
fn complete_indexes(txn: &mut RwTxn<'_>, dbs: &crate::env::Dbs) -> Result<(), StoreError> {
    let watermark = crate::tail::index_watermark(txn, dbs)?;
    let mut entries = crate::merge::IndexEntries::default();
    let mut next = watermark + 1;
    loop {
        let chunk = read_chunk(txn, dbs.events, next)?;
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        for (seq, bytes) in &chunk {
            let header = codec::read_header(bytes, *seq)?;
            let id = codec::access_body(bytes, &header, *seq)?.id;
            entries.push(*seq, &id, header.group, header.kind);
        }
        next = last + 1;
    }
    entries.write(txn, dbs, 0)?;
    dbs.meta
        .delete(txn, codec::META_INDEX_WATERMARK.as_bytes())
        .map_err(StoreError::lmdb("deleting the index watermark"))?;
    Ok(())
}

/// Test support: the stored format version and a digest of every entry of every
/// database (names, keys and values, in order), read in one read transaction. Two
/// databases with the same digest hold the same content whatever their page layout.
///
/// The digest is `SipHash` (the standard library's, with its fixed keys), not a CRC: a
/// record header ends with the CRC-32C of its first 16 bytes, and a CRC-32C digest run
/// over such a header comes out the same whatever those bytes are (CRC's residue),
/// which made a header's kind, group and time invisible to it.
///
/// # Errors
///
/// When the database is missing or cannot be read.
#[cfg(feature = "test-support")]
pub fn content_digest(dir: &Path) -> Result<(u32, u64, u64), StoreError> {
    use std::hash::Hasher;
    let (env, _) = open_env(dir, &StoreOptions::read_only())?;
    let ctx = "reading the database";
    let txn = env.read_txn().map_err(StoreError::lmdb(ctx))?;
    let mut entries = 0u64;
    let mut digest = std::hash::DefaultHasher::new();
    let mut version = 0;
    let names = [
        "meta",
        "events",
        "ids",
        "id_prefix",
        "groups",
        "group_index",
        "checkpoints",
    ];
    for name in names {
        let flags = if name == "id_prefix" {
            id_prefix_flags()
        } else {
            heed::DatabaseFlags::empty()
        };
        let Some(db) = env
            .database_options()
            .types::<Bytes, Bytes>()
            .name(name)
            .flags(flags)
            .open(&txn)
            .map_err(StoreError::lmdb(ctx))?
        else {
            continue;
        };
        digest.write(name.as_bytes());
        for item in db.iter(&txn).map_err(StoreError::lmdb(ctx))? {
            let (key, value) = item.map_err(StoreError::lmdb(ctx))?;
            if name == "meta" && key == codec::META_FORMAT_VERSION.as_bytes() {
                version = value.try_into().map_or(0, u32::from_be_bytes);
            }
            for part in [key, value] {
                digest.write_u64(part.len() as u64);
                digest.write(part);
            }
            entries += 1;
        }
    }
    Ok((version, entries, digest.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The new id index takes ids that share their first 8 bytes as duplicates of one
    /// key, in sequence order, whatever order they were collected in.
    #[test]
    fn the_id_index_is_written_in_key_order_with_shared_prefixes_as_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let (env, _) = open_env(dir.path(), &StoreOptions::default()).unwrap();
        let mut txn = env.write_txn().unwrap();
        let (p, q) = ([7u8; 8], [3u8; 8]);
        let mut keys = vec![(p, 9), (q, 4), (p, 2), (p, 5), ([9u8; 8], 1)];
        write_id_prefix(&env, &mut txn, &mut keys).unwrap();
        txn.commit().unwrap();
        let txn = env.read_txn().unwrap();
        let ids = crate::env::open_id_prefix(&env, &txn).unwrap().unwrap();
        let entries: Vec<(Vec<u8>, u64)> = ids
            .iter(&txn)
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.to_vec(), codec::decode_seq(v).unwrap())
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (q.to_vec(), 4),
                (p.to_vec(), 2),
                (p.to_vec(), 5),
                (p.to_vec(), 9),
                ([9u8; 8].to_vec(), 1),
            ]
        );
    }
}
