//! The rows of the benchmark table, their goals, and how they are printed: a Markdown
//! table, or one JSON object per row. Public so that a benchmark measured elsewhere (the
//! relay's load example) prints its rows in the same table.

use std::fmt::Write as _;

/// What a row must reach, and how its ratio is computed.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// `value / baseline` at least this (both rates: higher is better).
    RatioAtLeast(f64),
    /// `baseline / value` at least this (both durations: lower is better).
    FasterBy(f64),
    /// `value / baseline` at most this (both costs).
    RatioAtMost(f64),
    /// `value` itself at most this (no baseline).
    AtMost(f64),
    /// No goal: the value is reported for what it says about the others.
    Reported,
}

impl Goal {
    fn describe(self, unit: &str) -> String {
        match self {
            Goal::RatioAtLeast(x) => format!("≥ {}×", trim(x)),
            Goal::FasterBy(x) => format!("≥ {}× faster", trim(x)),
            Goal::RatioAtMost(x) => format!("≤ {}×", trim(x)),
            Goal::AtMost(x) => format!("≤ {} {unit}", trim(x)),
            Goal::Reported => "-".to_owned(),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub(super) name: String,
    pub(super) value: Option<f64>,
    pub(super) unit: String,
    /// What the baseline is, in words (`-` for none).
    pub(super) baseline: String,
    pub(super) baseline_value: Option<f64>,
    pub(super) goal: Goal,
    /// Why the row has no value (a skipped measurement).
    pub(super) skipped: Option<String>,
}

impl Row {
    /// A measured row: `value` in `unit`, to meet `goal`.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>, goal: Goal) -> Self {
        Self {
            name: name.into(),
            value: Some(value),
            unit: unit.into(),
            baseline: "-".into(),
            baseline_value: None,
            goal,
            skipped: None,
        }
    }

    /// The baseline the row's ratio is taken against, in words and measured.
    #[must_use]
    pub fn against(mut self, baseline: impl Into<String>, value: f64) -> Self {
        self.baseline = baseline.into();
        self.baseline_value = Some(value);
        self
    }

    /// A row that could not be measured in this build or run, and why.
    pub fn skipped(
        name: impl Into<String>,
        unit: impl Into<String>,
        baseline: impl Into<String>,
        goal: Goal,
        why: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value: None,
            unit: unit.into(),
            baseline: baseline.into(),
            baseline_value: None,
            goal,
            skipped: Some(why.into()),
        }
    }

    /// The ratio the goal is about, oriented so that a goal "≥ x" reads as more is
    /// better (`None` without a value or baseline).
    pub fn ratio(&self) -> Option<f64> {
        let (value, baseline) = (self.value?, self.baseline_value?);
        let ratio = match self.goal {
            Goal::RatioAtLeast(_) | Goal::RatioAtMost(_) => value / baseline,
            Goal::FasterBy(_) => baseline / value,
            Goal::AtMost(_) | Goal::Reported => return None,
        };
        ratio.is_finite().then_some(ratio)
    }

    /// Whether the goal is met (`None` when the row has no value or no goal).
    pub fn met(&self) -> Option<bool> {
        let value = self.value?;
        Some(match self.goal {
            Goal::RatioAtLeast(x) | Goal::FasterBy(x) => self.ratio()? >= x,
            Goal::RatioAtMost(x) => self.ratio()? <= x,
            Goal::AtMost(x) => value <= x,
            Goal::Reported => return None,
        })
    }

    /// The goal as printed: `≥ 50×`, `≤ 60 ns`, `-`.
    pub fn goal_text(&self) -> String {
        self.goal.describe(&self.unit)
    }

    /// The row as one line of JSON, keys in the documented order.
    pub fn to_json(&self) -> String {
        let json = Json {
            name: &self.name,
            value: self.value,
            unit: &self.unit,
            baseline: &self.baseline,
            baseline_value: self.baseline_value,
            ratio: self.ratio(),
            goal: self.goal_text(),
            met: self.met(),
            skipped: self.skipped.as_deref(),
        };
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// The JSON form of a [`Row`].
#[derive(Debug, serde::Serialize)]
struct Json<'a> {
    name: &'a str,
    value: Option<f64>,
    unit: &'a str,
    baseline: &'a str,
    baseline_value: Option<f64>,
    ratio: Option<f64>,
    goal: String,
    met: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'a str>,
}

/// A number with three significant digits, thousands grouped (`1,234,567`, `12.3`,
/// `0.0123`).
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs();
    if magnitude >= 999.5 {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "rounded, and far below i64::MAX"
        )]
        let whole = x.round() as i64;
        group_thousands(whole)
    } else if magnitude >= 100.0 {
        format!("{x:.0}")
    } else if magnitude >= 10.0 {
        format!("{x:.1}")
    } else if magnitude >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `0.5` → `0.5`, `20.0` → `20`.
fn trim(x: f64) -> String {
    let text = format!("{x}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "benchmark",
        "value",
        "unit",
        "baseline (same run)",
        "baseline value",
        "ratio",
        "goal",
        "met",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            let value = match (&row.skipped, row.value) {
                (Some(why), _) => why.clone(),
                (None, Some(v)) => number(v),
                (None, None) => "-".into(),
            };
            let met = match row.met() {
                Some(true) => "yes".to_owned(),
                Some(false) => "**NO**".to_owned(),
                None => "-".to_owned(),
            };
            [
                row.name.clone(),
                value,
                row.unit.clone(),
                row.baseline.clone(),
                row.baseline_value.map_or_else(|| "-".into(), number),
                row.ratio()
                    .map_or_else(|| "-".into(), |r| format!("{}×", number(r))),
                row.goal_text(),
                met,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width - cell.chars().count();
            // Numbers (columns 1, 4, 5) are right-aligned.
            if matches!(i, 1 | 4 | 5) {
                let _ = write!(out, " {}{cell} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, &header.map(str::to_owned));
    out.push('|');
    for (i, width) in widths.iter().enumerate() {
        let dashes = "-".repeat(*width);
        if matches!(i, 1 | 4 | 5) {
            let _ = write!(out, "-{dashes}:|");
        } else {
            let _ = write!(out, "-{dashes}-|");
        }
    }
    out.push('\n');
    for row in &cells {
        line(&mut out, row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(999.6), "1,000");
        assert_eq!(number(123.4), "123");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1.234), "1.23");
        assert_eq!(number(0.012_34), "0.012");
    }

    #[test]
    fn ratios_follow_the_direction_of_the_goal() {
        let rate = Row::new("r", 50.0, "events/s", Goal::RatioAtLeast(0.5)).against("b", 100.0);
        assert_eq!((rate.ratio(), rate.met()), (Some(0.5), Some(true)));
        let time = Row::new("t", 2.0, "s", Goal::FasterBy(10.0)).against("b", 10.0);
        assert_eq!((time.ratio(), time.met()), (Some(5.0), Some(false)));
        let cost = Row::new("c", 3.0, "µs", Goal::RatioAtMost(1.5)).against("b", 2.0);
        assert_eq!((cost.ratio(), cost.met()), (Some(1.5), Some(true)));
        let absolute = Row::new("a", 201.0, "ns", Goal::AtMost(200.0));
        assert_eq!((absolute.ratio(), absolute.met()), (None, Some(false)));
        assert_eq!(absolute.goal_text(), "≤ 200 ns");
        let reported = Row::new("p", 12.0, "pages", Goal::Reported);
        assert_eq!((reported.ratio(), reported.met()), (None, None));
        assert_eq!(reported.goal_text(), "-");
        let skipped = Row::skipped("s", "s", "b", Goal::FasterBy(10.0), "skipped");
        assert_eq!(skipped.met(), None);
        let json: serde_json::Value = serde_json::from_str(&skipped.to_json()).unwrap();
        assert_eq!(json["skipped"], "skipped");
        assert_eq!(json["met"], serde_json::Value::Null);
    }

    #[test]
    fn the_table_has_one_line_per_row() {
        let rows = [
            Row::new("a", 1.0, "x", Goal::AtMost(2.0)),
            Row::new("b", 3.0, "x", Goal::AtMost(2.0)),
        ];
        let text = table(&rows);
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("**NO**"));
    }
}
