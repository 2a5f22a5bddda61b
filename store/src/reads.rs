//! Reading the log: events by sequence number or id, scans of the whole log and of
//! one group in chunks of short read transactions (so LMDB can reuse pages during long
//! scans), and the raw-cursor baselines the benchmarks compare against.

use std::ops::{Bound, ControlFlow};

use nostr::prelude::{Event, EventId};

use crate::codec::{self, RecordHeader};
use crate::error::{Corruption, StoreError, index_corrupted};
use crate::event::EventRef;
use crate::store::Store;

/// How far a [`Store::scan_group`] got. When the callback stops the scan, the event it
/// stopped on is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupScan {
    /// The last sequence number of the group the scan passed (or its `after`).
    pub last: u64,
    /// How many of the group's events the scan passed.
    pub events: u64,
}

/// Events read per read transaction during long scans, so LMDB can reuse pages.
const SCAN_CHUNK: usize = 4_096;

/// Owned events in log order, read in chunks of short transactions.
#[derive(Debug)]
pub struct LogIter {
    store: Store,
    next: u64,
    /// Converted events, and at most one error, last: an error is yielded after the
    /// events before it, never ahead of them.
    buffer: std::collections::VecDeque<Result<(u64, Event), StoreError>>,
    done: bool,
}

impl Iterator for LogIter {
    type Item = Result<(u64, Event), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let mut taken = 0;
            let mut last = None;
            let buffer = &mut self.buffer;
            let result = self.store.scan(self.next, |seq, event| {
                match event.to_event(seq) {
                    Ok(e) => buffer.push_back(Ok((seq, e))),
                    Err(e) => {
                        buffer.push_back(Err(e));
                        return ControlFlow::Break(());
                    }
                }
                last = Some(seq);
                taken += 1;
                if taken == 1_024 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            match (result, last) {
                (Err(e), _) => {
                    self.buffer.push_back(Err(e));
                    self.done = true;
                }
                (Ok(()), Some(seq)) if taken == 1_024 => self.next = seq + 1,
                _ => self.done = true,
            }
        }
        self.buffer.pop_front()
    }
}

trait FlattenResult<T> {
    fn flatten_result(self) -> Result<Option<T>, StoreError>;
}

impl<T> FlattenResult<T> for Option<Result<T, StoreError>> {
    fn flatten_result(self) -> Result<Option<T>, StoreError> {
        self.transpose()
    }
}

impl Store {
    /// The sequence number of the event with this id, if stored.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) for a malformed index
    /// entry.
    pub fn seq_of(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        self.read(|txn, dbs| {
            let tail = self.shared().tail.view(txn, dbs)?;
            crate::ids::lookup(txn, dbs, &tail, id.as_bytes())
        })
    }

    /// Whether the log holds an event whose id starts with `prefix` (at most 32 bytes;
    /// an empty prefix names any stored event). Candidates come from the id index under
    /// the prefix's first 8 bytes and are checked against their records, as
    /// [`Store::seq_of`](crate::Store::seq_of) checks a whole id.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`], [`StoreError::ReadersFull`], …);
    /// [`StoreError::Corrupted`] when a candidate's record is missing or fails its
    /// checksum or validation.
    pub fn has_id_prefix(&self, prefix: &[u8]) -> Result<bool, StoreError> {
        if prefix.len() > 32 {
            return Ok(false);
        }
        self.read(|txn, dbs| {
            let tail = self.shared().tail.view(txn, dbs)?;
            crate::ids::has_prefix(txn, dbs, &tail, prefix)
        })
    }

    /// The event at `seq`.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) when the record fails
    /// its checksum or validation.
    pub fn get(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        self.with_event(seq, |e| e.to_event(seq))
            .map(Option::flatten_result)?
    }

    /// The event with this id, and its sequence number.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) when the record or the
    /// index entry is malformed.
    pub fn get_by_id(&self, id: &EventId) -> Result<Option<(u64, Event)>, StoreError> {
        let Some(seq) = self.seq_of(id)? else {
            return Ok(None);
        };
        Ok(self.get(seq)?.map(|e| (seq, e)))
    }

    /// Calls `f` with a zero-copy view of the event at `seq`.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) when the record fails
    /// its checksum or validation.
    pub fn with_event<R>(
        &self,
        seq: u64,
        f: impl FnOnce(EventRef<'_>) -> R,
    ) -> Result<Option<R>, StoreError> {
        self.read(|txn, dbs| {
            let Some(bytes) = dbs
                .events
                .get(txn, &codec::seq_key(seq))
                .map_err(StoreError::lmdb("reading a record"))?
            else {
                return Ok(None);
            };
            Ok(Some(f(EventRef::new(codec::access_record(bytes, seq)?))))
        })
    }

    /// Visits the log from `from` (inclusive) in sequence order, with zero-copy views,
    /// in chunks of short read transactions. `f` may stop the scan early.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) at the first record that
    /// fails its checksum or validation.
    pub fn scan(
        &self,
        from: u64,
        mut f: impl FnMut(u64, EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.walk(from, |seq, value| {
            Ok(f(seq, EventRef::new(codec::access_record(value, seq)?)))
        })
    }

    /// Visits the log from `from` to `to` (both inclusive) in sequence order, reading
    /// only the header of each record (kind, group number, `created_at`; checked by its
    /// own CRC-32C) and the body only of those `wanted` accepts (it sees every record's
    /// sequence number and header, in order): the rest are skipped without checksumming
    /// or decoding them. `f` gets each wanted record's sequence
    /// number, header and zero-copy view, and may stop the scan early. A full rebuild
    /// scans with the union of its projections' kinds (or, per thread, with the groups
    /// that thread folds).
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) at the first header that
    /// fails its check, or the first wanted record that fails its body check or
    /// validation.
    pub fn scan_where(
        &self,
        from: u64,
        to: u64,
        mut wanted: impl FnMut(u64, &RecordHeader) -> bool,
        mut f: impl FnMut(u64, &RecordHeader, EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.walk(from, |seq, value| {
            if seq > to {
                return Ok(ControlFlow::Break(()));
            }
            let header = codec::read_header(value, seq)?;
            if !wanted(seq, &header) {
                return Ok(ControlFlow::Continue(()));
            }
            let record = codec::access_body(value, &header, seq)?;
            Ok(f(seq, &header, EventRef::new(record)))
        })
    }

    /// [`Store::scan_where`] by kind: visits the records from `from` to `to` (both
    /// inclusive) whose kind `wanted` accepts, with their group number (`None` for an
    /// event of no group); the others are skipped by their header alone.
    ///
    /// # Errors
    ///
    /// As [`Store::scan_where`].
    pub fn scan_kinds(
        &self,
        from: u64,
        to: u64,
        wanted: impl Fn(u16) -> bool,
        mut f: impl FnMut(Option<u32>, u64, EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.scan_where(
            from,
            to,
            |_, header| wanted(header.kind),
            |seq, header, event| f(header.group, seq, event),
        )
    }

    /// The cursor walk under [`Store::scan`] and the raw baselines: every (seq, raw
    /// value) from `from`, in chunks of [`SCAN_CHUNK`] per read transaction.
    pub(crate) fn walk(
        &self,
        from: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        let mut next = from.max(1);
        loop {
            let resume = self.read(|txn, dbs| {
                let mut seen = 0;
                for item in crate::env::log_range(txn, dbs, next, None, "scanning the log")? {
                    let (seq, value) = item?;
                    if f(seq, value)?.is_break() {
                        return Ok(None);
                    }
                    seen += 1;
                    if seen == SCAN_CHUNK {
                        return Ok(Some(seq + 1));
                    }
                }
                Ok(None)
            })?;
            match resume {
                Some(seq) => next = seq,
                None => return Ok(()),
            }
        }
    }

    /// Visits the events of group `no` after `after`, in sequence order, skipping
    /// (without reading them) events whose kind `want` refuses. Returns how far the scan
    /// got: the last sequence number of the group it saw (kept or skipped), and how many
    /// of the group's events it saw. Each read transaction takes the group index up to
    /// its snapshot's index watermark, then the snapshot's tail.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …);
    /// [`StoreError::Corrupted`](crate::StoreError::Corrupted) at the first index entry
    /// or record that fails validation.
    pub fn scan_group(
        &self,
        no: u32,
        after: u64,
        want: impl Fn(u16) -> bool,
        mut f: impl FnMut(u64, EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<GroupScan, StoreError> {
        let mut scan = GroupScan {
            last: after,
            events: 0,
        };
        loop {
            let finished = self.read(|txn, dbs| {
                // Taken before the callback runs, which may read the store itself.
                let (tail, watermark) = {
                    let view = self.shared().tail.view(txn, dbs)?;
                    (view.group_after(no, scan.last), view.window().watermark)
                };
                let start = codec::group_index_key(no, scan.last.saturating_add(1));
                let end = codec::group_index_key(no, u64::MAX);
                let range = (Bound::Included(&start[..]), Bound::Included(&end[..]));
                let mut seen = 0;
                let iter = dbs
                    .group_index
                    .range(txn, &range)
                    .map_err(StoreError::lmdb("scanning a group"))?;
                let indexed = iter.map(|item| {
                    let (key, value) = item.map_err(StoreError::lmdb("scanning a group"))?;
                    let (_, seq) = codec::decode_group_index_key(key)
                        .ok_or_else(|| index_corrupted("group_index"))?;
                    let kind =
                        codec::decode_kind(value).ok_or_else(|| index_corrupted("group_index"))?;
                    if seq > watermark {
                        return Err(StoreError::Corrupted(Corruption::Index {
                            table: "group_index",
                            reason: format!(
                                "record {seq} is indexed above the index watermark {watermark}"
                            ),
                        }));
                    }
                    Ok((seq, kind))
                });
                for item in indexed.chain(tail.into_iter().map(Ok)) {
                    let (seq, kind) = item?;
                    if want(kind) {
                        let bytes = dbs
                            .events
                            .get(txn, &codec::seq_key(seq))
                            .map_err(StoreError::lmdb("reading a record"))?
                            .ok_or_else(|| {
                                StoreError::Corrupted(Corruption::Record {
                                    seq,
                                    reason: "indexed but missing".into(),
                                })
                            })?;
                        if f(seq, EventRef::new(codec::access_record(bytes, seq)?)).is_break() {
                            return Ok(true);
                        }
                    }
                    scan.last = seq;
                    scan.events += 1;
                    seen += 1;
                    if seen == SCAN_CHUNK {
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            if finished {
                return Ok(scan);
            }
        }
    }

    /// Owned events from `from` (inclusive), read in chunks.
    pub fn iter_from(&self, from: u64) -> LogIter {
        LogIter {
            store: self.clone(),
            next: from.max(1),
            buffer: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// Benchmark baseline: walks the log with a raw cursor, touching one byte of each
    /// value without validating or decoding it. Returns (records, bytes).
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    #[cfg(feature = "test-support")]
    pub fn raw_scan(&self) -> Result<(u64, u64), StoreError> {
        let mut bytes = 0u64;
        let records = self.raw_scan_with(|value| {
            bytes += u64::from(value.first().copied().unwrap_or(0)) + value.len() as u64;
        })?;
        Ok((records, bytes))
    }

    /// Benchmark diagnostic: the time to checksum every record body of the log with
    /// this format's CRC-32C and with format 1's CRC-32 (`crc32fast`), over the same
    /// bytes, after one untimed walk that brings them into memory. Returns (bytes,
    /// CRC-32C time, CRC-32 time).
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    #[cfg(feature = "test-support")]
    pub fn checksum_times(
        &self,
    ) -> Result<(u64, std::time::Duration, std::time::Duration), StoreError> {
        let mut bytes = 0u64;
        self.raw_scan_with(|value| bytes += value.len() as u64)?;
        let mut sink = 0u32;
        let started = std::time::Instant::now();
        self.raw_scan_with(|value| {
            sink ^= crc32c::crc32c(value.get(codec::HEADER_LEN..).unwrap_or_default());
        })?;
        let fast = started.elapsed();
        let started = std::time::Instant::now();
        self.raw_scan_with(|value| {
            sink ^= crc32fast::hash(value.get(codec::HEADER_LEN..).unwrap_or_default());
        })?;
        let ieee = started.elapsed();
        std::hint::black_box(sink);
        Ok((bytes, fast, ieee))
    }

    /// Benchmark baseline: walks the log with a raw cursor and hands every raw value
    /// to `f` (no checksum, no validation). Returns the number of records.
    ///
    /// # Errors
    ///
    /// a failed LMDB read ([`StoreError::Lmdb`](crate::StoreError::Lmdb),
    /// [`StoreError::ReadersFull`](crate::StoreError::ReadersFull), …).
    #[cfg(feature = "test-support")]
    pub fn raw_scan_with(&self, mut f: impl FnMut(&[u8])) -> Result<u64, StoreError> {
        let mut records = 0u64;
        self.walk(1, |_, value| {
            f(value);
            records += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use crate::{Store, StoreOptions};

    fn chats(n: usize) -> Vec<Event> {
        let keys = Keys::generate();
        (0..n)
            .map(|i| {
                EventBuilder::new(Kind::from(9u16), format!("{i}"))
                    .tags([Tag::parse(["h", "g"]).unwrap()])
                    .finalize(&keys)
                    .unwrap()
            })
            .collect()
    }

    /// A long scan reads 4,096 events per read transaction (no reader holds a snapshot
    /// for a whole scan) and so also sees what was committed while it ran.
    #[cfg(feature = "test-support")]
    #[test]
    fn a_scan_takes_one_read_transaction_per_chunk_and_sees_later_commits() {
        use std::ops::ControlFlow;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store.append_batch(&chats(super::SCAN_CHUNK + 100)).unwrap();
        let late = chats(3);
        let before = crate::read_transactions_on_this_thread();
        let mut seen = Vec::new();
        store
            .scan(1, |seq, _| {
                if seq == 1 {
                    // Committed while the first chunk's transaction is open.
                    std::thread::scope(|s| {
                        s.spawn(|| store.append_batch(&late).unwrap());
                    });
                }
                seen.push(seq);
                ControlFlow::Continue(())
            })
            .unwrap();
        let n = super::SCAN_CHUNK as u64 + 103;
        assert_eq!(seen, (1..=n).collect::<Vec<_>>());
        assert_eq!(crate::read_transactions_on_this_thread() - before, 2);

        // The same for a group's scan: 4,096 index entries per read transaction.
        let later = chats(2);
        let before = crate::read_transactions_on_this_thread();
        let mut seen = Vec::new();
        let scan = store
            .scan_group(
                0,
                0,
                |_| true,
                |seq, _| {
                    if seq == 1 {
                        std::thread::scope(|s| {
                            s.spawn(|| store.append_batch(&later).unwrap());
                        });
                    }
                    seen.push(seq);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(seen, (1..=n + 2).collect::<Vec<_>>());
        assert_eq!((scan.last, scan.events), (n + 2, n + 2));
        assert_eq!(crate::read_transactions_on_this_thread() - before, 2);
    }

    /// The benchmark baselines walk every stored record: the raw scan counts records
    /// and bytes (each value's length plus its first byte), the checksum diagnostic
    /// the bytes.
    #[cfg(feature = "test-support")]
    #[test]
    fn the_raw_baselines_walk_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.raw_scan().unwrap(), (0, 0));
        store.append_batch(&chats(10)).unwrap();
        let mut values = Vec::new();
        let records = store.raw_scan_with(|v| values.push(v.to_vec())).unwrap();
        assert_eq!(records, 10);
        for (i, value) in values.iter().enumerate() {
            assert_eq!(*value, store.raw_record(i as u64 + 1).unwrap().unwrap());
        }
        let bytes: u64 = values.iter().map(|v| v.len() as u64).sum();
        let firsts: u64 = values.iter().map(|v| u64::from(v[0])).sum();
        assert_eq!(store.raw_scan().unwrap(), (10, bytes + firsts));
        assert_eq!(store.checksum_times().unwrap().0, bytes);
    }

    /// The iterator converts the log 1,024 events at a time (its memory stays bounded
    /// on a log of any length), and yields every event once, in order, across chunks.
    #[test]
    fn the_log_iterator_converts_at_most_1024_events_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let events = chats(1_500);
        store.append_batch(&events).unwrap();
        let mut iter = store.iter_from(1);
        let (seq, first) = iter.next().unwrap().unwrap();
        assert_eq!((seq, first.id), (1, events[0].id));
        assert_eq!(iter.buffer.len(), 1_023, "one chunk converted, one yielded");
        assert_eq!(iter.next, 1_025);
        let chunk: Vec<u64> = iter.by_ref().take(1_023).map(|r| r.unwrap().0).collect();
        assert_eq!(chunk, (2..=1_024).collect::<Vec<_>>());
        assert!(!iter.done && iter.buffer.is_empty());
        // The second chunk is short: the scan reached the end and the iterator knows it.
        assert_eq!(iter.next().unwrap().unwrap().0, 1_025);
        assert!(iter.done, "a chunk of fewer than 1,024 events is the last");
        assert_eq!(iter.buffer.len(), 475);
        let rest: Vec<u64> = iter.by_ref().map(|r| r.unwrap().0).collect();
        assert_eq!(rest, (1_026..=1_500).collect::<Vec<_>>());
        assert!(iter.next().is_none());
        // Starting in the middle, and past the end.
        assert_eq!(store.iter_from(1_400).count(), 101);
        assert_eq!(store.iter_from(1_501).count(), 0);
    }
}
