//! `highwater bench --plot FILE.svg`: one horizontal bar per row, its measured ratio
//! (or value, for a row without baseline) against a line at its goal, green when the
//! goal is met. Written by hand: one chart, no fonts needed to write it (the viewer
//! lays the text out).

use std::fmt::Write as _;

use super::report::{Goal, Row, number};

const WIDTH: f64 = 1_000.0;
/// Where the bars start (the row names are to the left).
const BARS_X: f64 = 420.0;
/// Room on the right for the measured value.
const BARS_WIDTH: f64 = 440.0;
const ROW_HEIGHT: f64 = 30.0;
const TOP: f64 = 40.0;

/// What a row's bar shows: the measured quantity and the goal on the same scale.
struct Bar {
    measured: f64,
    goal: f64,
    met: bool,
    label: String,
}

fn bar(row: &Row) -> Option<Bar> {
    let (measured, goal, unit) = match row.goal {
        Goal::RatioAtLeast(x) | Goal::FasterBy(x) | Goal::RatioAtMost(x) => {
            (row.ratio()?, x, "×".to_owned())
        }
        Goal::AtMost(x) => (row.value?, x, format!(" {}", row.unit)),
        Goal::Reported => return None,
    };
    Some(Bar {
        measured,
        goal,
        met: row.met()?,
        label: format!("{}{unit} (goal {})", number(measured), row.goal_text()),
    })
}

/// The chart as an SVG document.
pub(super) fn svg(rows: &[Row], title: &str) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a few dozen rows")]
    let height = TOP + ROW_HEIGHT * rows.len() as f64 + 20.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (i, row) in rows.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "a few dozen rows")]
        let y = TOP + ROW_HEIGHT * i as f64;
        let middle = y + ROW_HEIGHT / 2.0 + 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{middle:.1}" text-anchor="end">{}</text>"#,
            BARS_X - 8.0,
            escape(&row.name)
        );
        let Some(bar) = bar(row) else {
            if let (Goal::Reported, Some(value)) = (row.goal, row.value) {
                let _ = writeln!(
                    out,
                    r#"<text x="{BARS_X}" y="{middle:.1}">{} {} (no goal)</text>"#,
                    number(value),
                    escape(&row.unit)
                );
                continue;
            }
            let why = row.skipped.as_deref().unwrap_or("no value");
            let _ = writeln!(
                out,
                r##"<text x="{BARS_X}" y="{middle:.1}" fill="#888">skipped: {}</text>"##,
                escape(why)
            );
            continue;
        };
        // Each row has its own scale: the larger of the two fills four fifths of it.
        let scale = BARS_WIDTH * 0.8 / bar.measured.max(bar.goal).max(f64::MIN_POSITIVE);
        let length = (bar.measured.max(0.0) * scale).min(BARS_WIDTH);
        let goal_x = BARS_X + bar.goal * scale;
        let colour = if bar.met { "#3a9a4a" } else { "#c8453a" };
        let _ = writeln!(
            out,
            r#"<rect x="{BARS_X}" y="{:.1}" width="{length:.1}" height="{:.1}" fill="{colour}"><title>{}</title></rect>"#,
            y + 6.0,
            ROW_HEIGHT - 12.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            out,
            r#"<line x1="{goal_x:.1}" x2="{goal_x:.1}" y1="{:.1}" y2="{:.1}" stroke="black" stroke-width="2" stroke-dasharray="4 2"/>"#,
            y + 2.0,
            y + ROW_HEIGHT - 2.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{middle:.1}">{}</text>"#,
            BARS_X + length.max(goal_x - BARS_X) + 6.0,
            escape(&bar.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_a_bar_against_its_goal_or_says_why_not() {
        let rows = [
            Row::new("import <fast>", 200.0, "ev/s", Goal::RatioAtLeast(2.0)).against("peer", 50.0),
            Row::new("memory", 300.0, "MB", Goal::AtMost(200.0)),
            Row::skipped("peer row", "ms", "peer", Goal::FasterBy(2.0), "no peer"),
        ];
        let svg = svg(&rows, "bench & co");
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("bench &amp; co"));
        assert!(svg.contains("import &lt;fast&gt;"));
        // Met (4× ≥ 2×) in green, missed (300 > 200 MB) in red, one goal line each.
        assert!(svg.contains("#3a9a4a"));
        assert!(svg.contains("#c8453a"));
        assert_eq!(svg.matches("<line ").count(), 2);
        assert!(svg.contains("skipped: no peer"));
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }
}
