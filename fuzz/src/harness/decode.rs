//! The targets that read hostile bytes back: [`record_decode`] (a log record, raw or
//! behind a correct checksum) and [`checkpoint_decode`] (each projection's checkpoint
//! state, and a raw checkpoint the engine then loads or ignores).

use std::ops::ControlFlow;

use highwater_store::{Corruption, StoreError};

use super::{Harness, SCRATCH_GROUP};

/// Bytes stored as a log record (first byte: 0 raw, else behind a correct header and
/// checks).
pub fn record_decode(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        body.to_vec()
    } else {
        highwater_store::seal_record(body)
    };
    // Far beyond the scratch log's head, so the real records stay intact.
    let seq = 1_000_000;
    h.scratch
        .put_raw_record(seq, bytes)
        .expect("write a raw record");
    let corrupted = |e: &StoreError| matches!(e, StoreError::Corrupted(Corruption::Record { seq: s, .. }) if *s == seq);
    match h.scratch.get(seq) {
        Ok(Some(event)) => {
            // A record that validates reads the same through the zero-copy view.
            let view = h
                .scratch
                .with_event(seq, |e| {
                    let tags: Vec<Vec<String>> = e
                        .tags()
                        .map(|t| t.iter().map(str::to_owned).collect())
                        .collect();
                    (
                        *e.id(),
                        e.kind(),
                        e.content().to_owned(),
                        tags,
                        e.group_id().map(str::to_owned),
                    )
                })
                .expect("a valid record reads")
                .expect("present");
            assert_eq!(view.0, event.id.to_bytes());
            assert_eq!(view.1, event.kind.as_u16());
            assert_eq!(view.2, event.content);
            let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.as_slice().to_vec()).collect();
            assert_eq!(view.3, tags);
        }
        Ok(None) => panic!("the raw record vanished"),
        Err(e) => assert!(corrupted(&e), "not a record corruption: {e}"),
    }
    let mut seen = 0;
    let scanned = h.scratch.scan(seq, |s, event| {
        assert_eq!(s, seq);
        let _ = (
            event.kind(),
            event.content(),
            event.tags().count(),
            event.group_id(),
        );
        seen += 1;
        ControlFlow::Continue(())
    });
    match scanned {
        Ok(()) => assert_eq!(seen, 1),
        Err(e) => assert!(corrupted(&e), "not a record corruption: {e}"),
    }
    for item in h.scratch.iter_from(seq) {
        if let Err(e) = item {
            assert!(corrupted(&e), "not a record corruption: {e}");
        }
    }
}

/// Bytes decoded as every projection's checkpoint state, then stored as a raw
/// checkpoint of the scratch group (first byte: 0 raw, else behind a correct checksum)
/// that the engine must load or ignore.
pub fn checkpoint_decode(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    decode_state(h.groups.membership_projection(), body);
    decode_state(h.groups.roles_projection(), body);
    decode_state(h.groups.metadata_projection(), body);
    decode_state(h.groups.creator_projection(), body);
    let bytes = if mode % 2 == 0 {
        body.to_vec()
    } else {
        seal(body)
    };
    let projections = h.scratch_engine.projections();
    let projection = &projections[usize::from(mode / 2) % projections.len()];
    let no = h
        .scratch
        .group(SCRATCH_GROUP)
        .expect("the scratch group")
        .no;
    h.scratch
        .put_raw_checkpoint(projection, no, bytes)
        .expect("write a raw checkpoint");
    match h.scratch.read_checkpoint(projection, no) {
        Ok(_) | Err(StoreError::Corrupted(Corruption::Checkpoint { .. })) => {}
        Err(e) => panic!("not a checkpoint corruption: {e}"),
    }
    h.scratch_engine.evict_all();
    // Loaded or ignored, never a panic; only a checksum-valid, decodable state with a
    // watermark within the log is trusted.
    let _ = h.scratch_groups.view(&h.scratch_engine, SCRATCH_GROUP);
}

fn decode_state<P: highwater_engine::Projection>(
    handle: &highwater_engine::Handle<P>,
    bytes: &[u8],
) {
    let projection = handle.projection();
    if let Ok(state) = projection.decode(bytes) {
        let again = projection
            .encode(&state)
            .expect("re-encode a decoded state");
        assert_eq!(projection.decode(&again).expect("decode again"), state);
        let _ = format!("{state:?}");
    }
}

/// Prefixes `body` with its CRC-32 (little-endian), as the store seals checkpoints.
fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(body).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}
