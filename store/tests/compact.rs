//! Compaction of the log against a model: which records go (a removable kind, in a
//! group, older than its group's bound, and neither its group's last record nor the
//! log's), what every reader sees afterwards (scans, group scans, id lookups, counts),
//! that sequence numbers are never reused, and that the chunk size changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::Path;

use highwater_store::{AppendOutcome, CompactReport, ExpiryRule, Store, StoreOptions};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};

fn event(keys: &Keys, kind: u16, group: Option<&str>, created_at: u64, n: usize) -> Event {
    let mut builder = EventBuilder::new(Kind::from(kind), format!("event {n}"))
        .custom_created_at(Timestamp::from(created_at));
    if let Some(group) = group {
        builder = builder.tag(Tag::parse(["h", group]).unwrap());
    }
    builder.finalize(keys).unwrap()
}

/// A deterministic mixed log: chat (9, 10, 11) and state kinds (9000, 9002) in four
/// groups, some events of no group, `created_at` spread over 100 to 1,100.
fn workload(keys: &Keys, n: usize) -> Vec<Event> {
    let groups = ["a", "b", "c", "d"];
    let kinds = [9, 9, 10, 9000, 11, 9, 9002, 1];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let kind = kinds[(state % kinds.len() as u64) as usize];
            let group = (kind != 1).then(|| groups[((state >> 8) % 4) as usize]);
            event(keys, kind, group, 100 + (state >> 20) % 1_000, i)
        })
        .collect()
}

/// Kinds 9 and 10 expire: 500 by default, 900 in group `b`, never in group `d`.
fn rule() -> ExpiryRule {
    let mut rule = ExpiryRule::new(|kind| kind == 9 || kind == 10);
    rule.default_before = Some(500);
    rule.groups.insert("b".into(), 900);
    rule.groups.insert("d".into(), 0);
    rule
}

/// The model: the sequence numbers a compaction under [`rule`] keeps.
fn model_kept(log: &[(u64, Event)]) -> BTreeSet<u64> {
    let bound = |group: &str| match group {
        "b" => 900,
        "d" => 0,
        _ => 500,
    };
    let mut last_of_group: BTreeMap<String, u64> = BTreeMap::new();
    for (seq, e) in log {
        if let Some(g) = group_id(e) {
            last_of_group.insert(g, *seq);
        }
    }
    let last = log.last().map_or(0, |(seq, _)| *seq);
    log.iter()
        .filter(|(seq, e)| {
            let group = group_id(e);
            let expired = matches!(e.kind.as_u16(), 9 | 10)
                && group
                    .as_deref()
                    .is_some_and(|g| e.created_at.as_secs() < bound(g));
            !expired || *seq == last || group.is_some_and(|g| last_of_group[&g] == *seq)
        })
        .map(|(seq, _)| *seq)
        .collect()
}

fn group_id(e: &Event) -> Option<String> {
    highwater_store::group_of(e, &highwater_store::Limits::default())
        .unwrap()
        .map(String::from)
}

fn all(store: &Store) -> Vec<(u64, Event)> {
    let mut out = Vec::new();
    store
        .scan(1, |seq, e| {
            out.push((seq, e.to_event(seq).unwrap()));
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn filled(dir: &Path, events: &[Event]) -> (Store, Vec<(u64, Event)>) {
    let n = events.len();
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    for batch in events.chunks(97) {
        store.append_batch(batch).unwrap();
    }
    let log = all(&store);
    assert_eq!(log.len(), n);
    (store, log)
}

#[test]
fn compaction_removes_exactly_the_expired_records_and_every_reader_skips_the_holes() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let (store, before) = filled(dir.path(), &workload(&keys, 2_000));
    let groups_before: BTreeMap<String, (u64, u64)> = store
        .groups()
        .into_iter()
        .map(|g| (g.name.to_string(), (g.no.into(), g.head)))
        .collect();
    let kept = model_kept(&before);
    let expected_removed = before.len() as u64 - kept.len() as u64;
    assert!(expected_removed > 300, "the workload expires too little");

    let mut chunks = 0;
    let report = store
        .compact(&rule(), 64, |_| {
            chunks += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(report.removed, expected_removed);
    assert_eq!(report.transactions, chunks);
    assert!(report.transactions >= expected_removed / 64);

    // The log: exactly the kept records, at their old sequence numbers.
    let after = all(&store);
    let after_seqs: BTreeSet<u64> = after.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(after_seqs, kept);
    for (seq, e) in &before {
        let present = kept.contains(seq);
        assert_eq!(store.get(*seq).unwrap().is_some(), present, "seq {seq}");
        assert_eq!(
            store.get_by_id(&e.id).unwrap().map(|(s, _)| s),
            present.then_some(*seq),
            "id of seq {seq}"
        );
        assert_eq!(store.has_id_prefix(e.id.as_bytes()).unwrap(), present);
    }
    // Heads are positions of records that exist; counts are the records left.
    assert_eq!(store.head(), before.last().unwrap().0);
    assert_eq!(store.event_count().unwrap(), kept.len() as u64);
    assert_eq!(store.removed_records().unwrap(), expected_removed);
    for group in store.groups() {
        assert_eq!(
            groups_before[&*group.name],
            (group.no.into(), group.head),
            "a compaction moved group {}'s head",
            group.name
        );
        let mut seen = Vec::new();
        let scan = store
            .scan_group(
                group.no,
                0,
                |_| true,
                |seq, _| {
                    seen.push(seq);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        let model: Vec<u64> = after
            .iter()
            .filter(|(_, e)| group_id(e).as_deref() == Some(&*group.name))
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(seen, model);
        assert_eq!((scan.last, scan.events), (group.head, group.count));
        assert_eq!(group.count, model.len() as u64);
    }
    // The iterator over owned events and a header scan agree with the log.
    let iterated: Vec<u64> = store.iter_from(1).map(|r| r.unwrap().0).collect();
    assert_eq!(iterated, after_seqs.iter().copied().collect::<Vec<_>>());

    // A second run finds nothing; the next append takes the next number, never a hole.
    let again = store
        .compact(&rule(), 64, |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!((again.removed, again.transactions), (0, 0));
    let next = event(&keys, 9, Some("a"), 50, 99_999);
    assert_eq!(
        store.append(&next).unwrap(),
        AppendOutcome::Appended(before.last().unwrap().0 + 1)
    );
    // The former last record of group `a` can go now that `a` has a newer one.
    let third = store
        .compact(&rule(), 64, |_| ControlFlow::Continue(()))
        .unwrap();
    assert!(third.removed <= 1);
}

#[test]
fn the_chunk_size_changes_nothing_but_the_number_of_transactions() {
    let events = workload(&Keys::generate(), 600);
    let digest = |chunk: usize| {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = filled(dir.path(), &events);
        let mut stopped = CompactReport::default();
        // A run stopped after its first transaction, then finished by a second run.
        store
            .compact(&rule(), chunk, |r| {
                stopped = *r;
                ControlFlow::Break(())
            })
            .unwrap();
        let rest = store
            .compact(&rule(), chunk, |_| ControlFlow::Continue(()))
            .unwrap();
        let removed = stopped.removed + rest.removed;
        drop(store);
        let (version, _, digest) = highwater_store::content_digest(dir.path()).unwrap();
        (version, removed, digest)
    };
    let one = digest(1);
    assert_eq!(
        one.0, 4,
        "a compacted database keeps format 4 (holes allowed)"
    );
    assert!(one.1 > 0);
    assert_eq!(digest(7), one);
    assert_eq!(digest(100_000), one);
}

#[test]
fn nothing_expires_without_a_bound_or_a_removable_kind() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let (store, before) = filled(dir.path(), &workload(&keys, 300));
    let no_bound = ExpiryRule::new(|kind| kind == 9);
    let none = ExpiryRule::new(|_| false);
    let mut far = none.clone();
    far.default_before = Some(u64::MAX);
    for rule in [no_bound, far] {
        let report = store
            .compact(&rule, 10, |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(report.removed, 0);
    }
    assert_eq!(all(&store), before);
    drop(store);
    let (version, _, _) = highwater_store::content_digest(dir.path()).unwrap();
    assert_eq!(
        version, 4,
        "a database nothing was removed from keeps its format"
    );
}

/// Set in the child: the directory to compact under [`rule`].
const COMPACT_CHILD: &str = "HIGHWATER_COMPACT_CHILD";

#[test]
fn another_process_sees_the_counts_a_compaction_left() {
    const TEST: &str = "another_process_sees_the_counts_a_compaction_left";
    if let Ok(dir) = std::env::var(COMPACT_CHILD) {
        let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
        let report = store
            .compact(&rule(), 50, |_| ControlFlow::Continue(()))
            .unwrap();
        println!("child removed {}", report.removed);
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let (store, log) = filled(dir.path(), &workload(&keys, 400));
    let kept = model_kept(&log);
    let before: BTreeMap<String, u64> = store
        .groups()
        .into_iter()
        .map(|g| (g.name.to_string(), g.count))
        .collect();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(COMPACT_CHILD, dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the compacting process failed: {status}");
    // Nothing was appended: only the removed-records count tells this process that
    // its group counts are stale.
    store.refresh().unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (seq, e) in &log {
        if let Some(g) = group_id(e)
            && kept.contains(seq)
        {
            *expected.entry(g).or_default() += 1;
        }
    }
    let after: BTreeMap<String, u64> = store
        .groups()
        .into_iter()
        .map(|g| (g.name.to_string(), g.count))
        .collect();
    assert_ne!(before, after, "the compaction removed nothing of any group");
    assert_eq!(after, expected);
    assert_eq!(all(&store).len(), kept.len());
}
