//! One record of the input to an event: a bare event object, or a relay message
//! `["EVENT", {…}]` / `["EVENT", "<subscription>", {…}]`. And the words for why a
//! record is refused, naming the limit (and its `import` flag) it exceeded.

use highwater_store::{InvalidEvent, Limits, StoreError, is_state_kind};
use nostr::prelude::Event;
use serde_json::Value;

/// Why a record was refused: a short category to count by, and the full message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The category it is counted under.
    pub category: String,
    /// The full message, as printed and written to `--rejects`.
    pub message: String,
}

impl Refusal {
    /// A refusal counted under `category`, with `message`.
    pub fn new(category: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            category: category.into(),
            message: message.into(),
        }
    }

    /// A refusal whose message is its category (the policy's NIP-01 `OK` messages).
    pub fn plain(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            category: message.clone(),
            message,
        }
    }
}

/// Parses one record into an event.
pub(crate) fn event(bytes: &[u8]) -> Result<Event, Refusal> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(Refusal::new("not JSON", "not JSON: not UTF-8 text"));
    };
    if text.trim_start().starts_with('[') {
        return wrapped(text);
    }
    Event::from_json(text).map_err(|e| {
        if serde_json::from_str::<Value>(text).is_ok() {
            Refusal::new("not an event", format!("not an event: {e}"))
        } else {
            Refusal::new("not JSON", format!("not JSON: {e}"))
        }
    })
}

/// `["EVENT", {…}]` or `["EVENT", "<subscription>", {…}]`.
fn wrapped(text: &str) -> Result<Event, Refusal> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new("not JSON", format!("not JSON: {e}")))?;
    let not_event = || {
        Refusal::new(
            "not an event",
            "not an event: a JSON array other than [\"EVENT\", {…}] or [\"EVENT\", \"<sub>\", {…}]",
        )
    };
    let Value::Array(mut items) = value else {
        return Err(not_event());
    };
    let object = match items.as_slice() {
        [Value::String(verb), Value::Object(_)] if verb == "EVENT" => items.swap_remove(1),
        [Value::String(verb), Value::String(_), Value::Object(_)] if verb == "EVENT" => {
            items.swap_remove(2)
        }
        _ => return Err(not_event()),
    };
    serde_json::from_value::<Event>(object)
        .map_err(|e| Refusal::new("not an event", format!("not an event: {e}")))
}

/// Bytes for people: `812 bytes`, `128 KiB`, `1.8 MiB`.
pub fn human(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes < KIB {
        format!("{bytes} bytes")
    } else if bytes < MIB {
        if bytes.is_multiple_of(KIB) {
            format!("{} KiB", bytes / KIB)
        } else {
            format!("{:.1} KiB", bytes as f64 / KIB as f64)
        }
    } else if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// A record longer than any event may be, refused before it was read.
pub(crate) fn oversized(size: u64, limits: &Limits) -> Refusal {
    Refusal::new(
        "too large",
        format!(
            "a record of {} exceeds the largest event allowed ({}: --max-event-bytes {}, --max-state-event-bytes {} for kinds 39000–39003); it was skipped unread",
            human(size),
            human(limits.max_any_event_bytes() as u64),
            human(limits.max_event_bytes as u64),
            human(limits.max_state_event_bytes as u64),
        ),
    )
}

/// Why the store refused an event of `kind`, naming the limit and its flag.
pub(crate) fn store_refusal(error: &StoreError, kind: u16) -> Refusal {
    let state = is_state_kind(kind);
    match error {
        StoreError::Invalid(InvalidEvent::TooLarge { size, limit }) => {
            let flag = if state {
                "--max-state-event-bytes"
            } else {
                "--max-event-bytes"
            };
            Refusal::new(
                "too large",
                format!(
                    "invalid: event of {} exceeds {flag} {} (kind {kind})",
                    human(*size as u64),
                    human(*limit as u64)
                ),
            )
        }
        StoreError::Invalid(InvalidEvent::TooManyTags { count, limit }) => {
            let flag = if state {
                "--max-state-tags"
            } else {
                "--max-tags"
            };
            Refusal::new(
                "too many tags",
                format!("invalid: event has {count} tags, more than {flag} {limit} (kind {kind})"),
            )
        }
        StoreError::Invalid(InvalidEvent::BadGroupId { len, limit }) => Refusal::new(
            "bad group id",
            format!("invalid: group id of {len} bytes (allowed 1 to --max-group-id-bytes {limit})"),
        ),
        StoreError::Invalid(rejection) => {
            let category = match rejection {
                InvalidEvent::BadId => "bad id",
                InvalidEvent::BadSignature => "bad signature",
                InvalidEvent::MissingGroup { .. } => "missing group tag",
                InvalidEvent::ManyGroupTags { .. } => "more than one group tag",
                _ => "invalid",
            };
            Refusal::new(category, rejection.to_string())
        }
        other => Refusal::new("storage error", format!("error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_like_the_flags_take_them() {
        assert_eq!(human(812), "812 bytes");
        assert_eq!(human(128 * 1024), "128 KiB");
        assert_eq!(human(1_887_437), "1.8 MiB");
        assert_eq!(human(16 * 1024 * 1024), "16 MiB");
    }
}
