//! Progress bars on stderr, hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `len` units (`unit` names them, e.g. "events").
pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!(
        "{{spinner}} {{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A bar over bytes.
pub fn bytes(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A spinner with a counter, for input of unknown length.
pub fn spinner(unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{spinner}} {{msg}} {{human_pos}} {unit} ({{per_sec}})"
    )) {
        bar.set_style(style);
    }
    bar
}

/// The bar of an import: how far through the input (by bytes when its length is
/// known), with the events committed and refused and the rate in the message (see
/// [`import_message`]).
pub fn import(len: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = if len.is_some() {
        "{spinner} {msg} [{bar:30}] {percent}% (eta {eta})"
    } else {
        "{spinner} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `1,234,567 events committed, 12 refused (45,678 events/s)`.
pub fn import_message(committed: u64, refused: u64, elapsed: std::time::Duration) -> String {
    // Whole events per second, in integers: no float to round or truncate.
    let rate = (u128::from(committed) * 1_000_000)
        .checked_div(elapsed.as_micros())
        .map_or(0, |r| u64::try_from(r).unwrap_or(u64::MAX));
    format!(
        "{} events committed, {} refused ({} events/s)",
        thousands(committed),
        thousands(refused),
        thousands(rate)
    )
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{import_message, thousands};

    #[test]
    fn the_import_says_events_committed_and_refused_with_whole_rates() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(177_733), "177,733");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(
            import_message(120_000, 3, std::time::Duration::from_millis(2_500)),
            "120,000 events committed, 3 refused (48,000 events/s)"
        );
        assert_eq!(
            import_message(0, 0, std::time::Duration::ZERO),
            "0 events committed, 0 refused (0 events/s)"
        );
    }
}
