//! The targets that send events through validation, the log and the folds:
//! [`import_line`] (a JSONL line, the import path), [`validate_event`] (structured
//! hostile events, trusted and not) and [`fold_tags`] (batches of hostile tag shapes,
//! appended trusted and folded).

use arbitrary::Unstructured;
use nostr::prelude::Event;

use super::Harness;
use super::checks::{append_checked, fold_checks, hashed_event, prepare_checked, signed_event};
use super::hostile::{hostile_event, pick_group};

/// One JSONL import line.
pub fn import_line(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = Event::from_json(text) else {
        return;
    };
    if let Some(prepared) = prepare_checked(&h.untrusted, &event) {
        append_checked(&h.untrusted, &[(event.clone(), prepared)]);
    }
    // The same shape with a correct id, into the folds.
    let rehashed = hashed_event(
        event.pubkey.to_bytes(),
        event.created_at.as_secs(),
        event.kind.as_u16(),
        event.tags.clone().to_vec(),
        event.content.clone(),
        event.sig.to_bytes(),
    );
    let store = h.engine.store().clone();
    if let Some(prepared) = prepare_checked(&store, &rehashed) {
        let group = prepared.group().map(str::to_owned);
        append_checked(&store, &[(rehashed.clone(), prepared)]);
        if let Some(group) = group {
            fold_checks(h, &group, &[rehashed]);
        }
    }
}

/// One structured hostile event through validation, trusted and not.
pub fn validate_event(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let mut u = Unstructured::new(data);
    let Ok(event) = hostile_event(&mut u, &h.keys, "v") else {
        return;
    };
    // Sometimes a real signature, so the untrusted path accepts too.
    let event = if u.ratio(1, 4).unwrap_or(false) {
        let keys = &h.keys[usize::from(u.arbitrary::<u8>().unwrap_or(0)) % h.keys.len()];
        let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        signed_event(keys, event.kind.as_u16(), tags, &event.content)
    } else {
        event
    };
    let _ = prepare_checked(&h.untrusted, &event);
    let _ = prepare_checked(h.engine.store(), &event);
}

/// Batches of events with hostile tags, appended trusted and folded.
pub fn fold_tags(h: &mut Harness, data: &[u8]) {
    h.runs += 1;
    let mut u = Unstructured::new(data);
    let Ok(group) = pick_group(&mut u) else {
        return;
    };
    let count = u.int_in_range(1..=12u8).unwrap_or(1);
    let mut events = Vec::new();
    for _ in 0..count {
        match hostile_event(&mut u, &h.keys, &group) {
            Ok(event) => events.push(event),
            Err(_) => break,
        }
    }
    let store = h.engine.store().clone();
    let mut ready = Vec::new();
    let mut touched = std::collections::BTreeSet::new();
    for event in &events {
        if let Some(prepared) = prepare_checked(&store, event) {
            if let Some(g) = prepared.group() {
                touched.insert(g.to_owned());
            }
            ready.push((event.clone(), prepared));
        }
    }
    append_checked(&store, &ready);
    for group in touched {
        fold_checks(h, &group, &events);
    }
}
