//! The id index: the first 8 bytes of each event id → its sequence number, with
//! duplicate keys allowed (`DUP_SORT | DUP_FIXED`). A prefix is a candidate, not an
//! answer: every candidate's record is read and its full 32-byte id compared, so
//! lookups stay exact when two ids share a prefix.
//!
//! The keys are a quarter of the full ids', so four times as many fit a page. The index
//! holds the records up to the index watermark; a lookup joins it with the snapshot's
//! tail (`tail`), whose memory holds full ids, so both halves are exact.

use heed::RoTxn;

use crate::codec;
use crate::env::Dbs;
use crate::error::{Corruption, StoreError, index_corrupted};
use crate::tail::TailView;

/// The sequence number of the event with this id, if stored in `txn`'s snapshot: each
/// candidate under the id's prefix is checked against its record, then `tail` (the
/// same snapshot's) is asked.
pub(crate) fn lookup(
    txn: &RoTxn<'_>,
    dbs: &Dbs,
    tail: &TailView<'_>,
    id: &[u8; 32],
) -> Result<Option<u64>, StoreError> {
    if let Some(seq) = indexed(txn, dbs, id)? {
        return Ok(Some(seq));
    }
    Ok(tail.seq_of(id))
}

/// The sequence number of the event with this id in the index alone.
fn indexed(txn: &RoTxn<'_>, dbs: &Dbs, id: &[u8; 32]) -> Result<Option<u64>, StoreError> {
    let prefix = codec::id_prefix(id);
    // The common answers — no candidate, or the first candidate is the event — take one
    // descent and no cursor of our own (`mdb_get`); every event appended asks this.
    let Some(first) = dbs
        .ids
        .get(txn, &prefix)
        .map_err(StoreError::lmdb("reading the id index"))?
    else {
        return Ok(None);
    };
    let first = codec::decode_seq(first).ok_or_else(|| index_corrupted("id_prefix"))?;
    if record_id_is(txn, dbs, first, id)? {
        return Ok(Some(first));
    }
    // Another id with the same prefix: the other candidates.
    let candidates = dbs
        .ids
        .get_duplicates(txn, &prefix)
        .map_err(StoreError::lmdb("reading the id index"))?
        .into_iter()
        .flatten();
    for item in candidates {
        let (_, value) = item.map_err(StoreError::lmdb("reading the id index"))?;
        let seq = codec::decode_seq(value).ok_or_else(|| index_corrupted("id_prefix"))?;
        if seq != first && record_id_is(txn, dbs, seq, id)? {
            return Ok(Some(seq));
        }
    }
    Ok(None)
}

/// Whether the id index holds an id that starts with `prefix` (at most 32 bytes; an
/// empty prefix names any stored event): candidates come from the index under the
/// prefix's first 8 bytes and are checked against their records, as [`lookup`] checks
/// a whole id; then `tail` (the same snapshot's) is asked.
pub(crate) fn has_prefix(
    txn: &RoTxn<'_>,
    dbs: &Dbs,
    tail: &TailView<'_>,
    prefix: &[u8],
) -> Result<bool, StoreError> {
    Ok(indexed_prefix(txn, dbs, prefix)? || tail.has_prefix(prefix))
}

fn indexed_prefix(txn: &RoTxn<'_>, dbs: &Dbs, prefix: &[u8]) -> Result<bool, StoreError> {
    if prefix.is_empty() {
        // LMDB takes no empty key: any entry will do.
        let first = dbs.ids.first(txn);
        return Ok(first
            .map_err(StoreError::lmdb("reading the id index"))?
            .is_some());
    }
    let key = &prefix[..prefix.len().min(8)];
    let candidates = dbs
        .ids
        .prefix_iter(txn, key)
        .map_err(StoreError::lmdb("reading the id index"))?;
    for item in candidates {
        let (_, value) = item.map_err(StoreError::lmdb("reading the id index"))?;
        let seq = codec::decode_seq(value).ok_or_else(|| index_corrupted("id_prefix"))?;
        if record_id(txn, dbs, seq)?.starts_with(prefix) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the record at `seq` has this id (the record is validated).
fn record_id_is(txn: &RoTxn<'_>, dbs: &Dbs, seq: u64, id: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(&record_id(txn, dbs, seq)? == id)
}

/// The id of the record at `seq` (the record is validated).
fn record_id(txn: &RoTxn<'_>, dbs: &Dbs, seq: u64) -> Result<[u8; 32], StoreError> {
    let bytes = dbs
        .events
        .get(txn, &codec::seq_key(seq))
        .map_err(StoreError::lmdb("reading a record"))?
        .ok_or_else(|| {
            StoreError::Corrupted(Corruption::Record {
                seq,
                reason: "in the id index but missing from the log".into(),
            })
        })?;
    Ok(codec::access_record(bytes, seq)?.id)
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use crate::{AppendOutcome, Prepared, Store, StoreOptions, codec};

    fn chat(keys: &Keys, text: &str) -> Event {
        EventBuilder::new(Kind::from(9u16), text)
            .tag(Tag::parse(["h", "g"]).unwrap())
            .finalize(keys)
            .unwrap()
    }

    #[test]
    fn an_id_prefix_is_found_only_when_a_stored_id_starts_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let keys = Keys::generate();
        let (a, b) = (chat(&keys, "a"), chat(&keys, "b"));
        let id = a.id.to_bytes();
        assert!(!store.has_id_prefix(&id[..4]).unwrap(), "an empty log");
        assert_eq!(store.append(&a).unwrap(), AppendOutcome::Appended(1));
        for len in [0, 1, 4, 8, 9, 20, 32] {
            assert!(store.has_id_prefix(&id[..len]).unwrap(), "{len} bytes");
        }
        let mut other = id;
        other[3] ^= 1;
        assert!(!store.has_id_prefix(&other[..4]).unwrap());
        // Past the index's 8 bytes the record decides.
        let mut tail = id;
        tail[31] ^= 1;
        assert!(!store.has_id_prefix(&tail).unwrap());
        assert!(
            !store
                .has_id_prefix(&[id.as_slice(), &[0]].concat())
                .unwrap()
        );
        // An index entry pointing at another record is not taken for the prefix.
        let b_prefix = codec::id_prefix(&b.id.to_bytes());
        store
            .exec(move |txn, dbs| {
                dbs.ids
                    .put(txn, &b_prefix, &codec::seq_key(1))
                    .map_err(crate::StoreError::lmdb("test"))
            })
            .unwrap();
        assert!(!store.has_id_prefix(&b.id.to_bytes()[..4]).unwrap());
    }

    /// Two ids with the same 8-byte prefix cannot be found by hashing in a test, so
    /// the index is given an entry under the second event's prefix that points at the
    /// first event: every lookup and the writer's duplicate check must see through it.
    #[test]
    fn lookups_stay_exact_when_two_ids_share_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let keys = Keys::generate();
        let (a, b) = (chat(&keys, "a"), chat(&keys, "b"));
        assert_eq!(store.append(&a).unwrap(), AppendOutcome::Appended(1));
        let b_prefix = codec::id_prefix(&b.id.to_bytes());
        store
            .exec(move |txn, dbs| {
                dbs.ids
                    .put(txn, &b_prefix, &codec::seq_key(1))
                    .map_err(crate::StoreError::lmdb("test"))
            })
            .unwrap();

        // The candidate under b's prefix is a, so b is not found, nor a duplicate.
        assert_eq!(store.seq_of(&b.id).unwrap(), None);
        assert_eq!(store.get_by_id(&b.id).unwrap(), None);
        let ready = matches!(store.prepare(&b).unwrap(), Prepared::Ready(_));
        assert!(ready);
        assert_eq!(store.append(&b).unwrap(), AppendOutcome::Appended(2));

        // Now the prefix has two candidates (1 and 2): each id finds its own.
        assert_eq!(store.seq_of(&b.id).unwrap(), Some(2));
        assert_eq!(store.seq_of(&a.id).unwrap(), Some(1));
        assert_eq!(store.get_by_id(&b.id).unwrap(), Some((2, b.clone())));
        assert_eq!(store.append(&b).unwrap(), AppendOutcome::Duplicate(2));
        // In one batch too, past the prepare step's check (straight to the writer).
        let prepared = crate::validate::check_and_encode(&b, &store.options().limits).unwrap();
        let outcomes = store
            .submit(vec![prepared.clone(), prepared])
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            outcomes,
            vec![AppendOutcome::Duplicate(2), AppendOutcome::Duplicate(2)]
        );
        // A third event, new, with a repeat of itself in the same commit.
        let c = chat(&keys, "c");
        let prepared = crate::validate::check_and_encode(&c, &store.options().limits).unwrap();
        let outcomes = store
            .submit(vec![prepared.clone(), prepared])
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            outcomes,
            vec![AppendOutcome::Appended(3), AppendOutcome::Duplicate(3)]
        );
        assert_eq!(store.seq_of(&c.id).unwrap(), Some(3));
        assert_eq!(store.head(), 3);

        // An id that is not stored, under a prefix with two candidates of other ids:
        // neither is taken for it.
        let d = chat(&keys, "d");
        let d_prefix = codec::id_prefix(&d.id.to_bytes());
        store
            .exec(move |txn, dbs| {
                for seq in [1, 3] {
                    dbs.ids
                        .put(txn, &d_prefix, &codec::seq_key(seq))
                        .map_err(crate::StoreError::lmdb("test"))?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(store.seq_of(&d.id).unwrap(), None);
        assert_eq!(store.append(&d).unwrap(), AppendOutcome::Appended(4));
        assert_eq!(store.seq_of(&d.id).unwrap(), Some(4));
    }
}
