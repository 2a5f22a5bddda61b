//! What the tool prints: the exact shape of `show --json`, the import summary, a
//! one-line-per-group table, and the one insta helper that writes to `snapshots/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::{Db, groups_of};

/// Checks the exact shape of `show --json`: key sets and their order (from the raw
/// text, since `serde_json::Value` sorts keys), types, sorted members, a member count
/// that matches, and watermarks at the group's head.
#[track_caller]
pub fn check_show_shape(text: &str, group: &str) {
    let keys_at = |indent: usize, within: Option<&str>| -> Vec<String> {
        let mut parent = None;
        let mut out = Vec::new();
        for line in text.lines() {
            let depth = line.len() - line.trim_start().len();
            let key = line
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once("\":"))
                .map(|(k, _)| k.to_owned());
            if depth == 2 {
                parent.clone_from(&key);
            }
            if depth == indent && parent.as_deref() == within.or(parent.as_deref()) {
                out.extend(key);
            }
        }
        out
    };
    assert_eq!(
        keys_at(2, None),
        [
            "group",
            "state",
            "creator",
            "metadata",
            "children",
            "pinned",
            "members",
            "member_count",
            "head",
            "watermarks"
        ],
        "top-level keys of:\n{text}"
    );
    assert_eq!(
        keys_at(4, Some("metadata")),
        [
            "name",
            "about",
            "picture",
            "banner",
            "private",
            "closed",
            "hidden",
            "restricted",
            "write_restricted",
            "livekit",
            "supported_kinds",
            "parent"
        ],
        "metadata keys of:\n{text}"
    );
    assert_eq!(
        keys_at(4, Some("watermarks")),
        ["creator", "membership", "metadata", "roles"],
        "watermark keys of:\n{text}"
    );
    let v: Value = serde_json::from_str(text).expect("show --json is JSON");
    assert_eq!(v["group"], group);
    let state_known = matches!(v["state"].as_str(), Some("unknown" | "active" | "deleted"));
    assert!(state_known, "state of:\n{text}");
    assert!(v["creator"].is_null() || is_pubkey(&v["creator"]), "{text}");
    check_fields(&v, text);
    let members = v["members"].as_array().expect("members is an array");
    let mut previous: Option<&str> = None;
    for member in members {
        let object = member.as_object().expect("a member is an object");
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["pubkey", "roles"],
            "{text}"
        );
        assert!(is_pubkey(&member["pubkey"]), "{text}");
        let pubkey = member["pubkey"].as_str();
        assert!(previous < pubkey, "members sorted and unique:\n{text}");
        previous = pubkey;
        let roles: Vec<&str> = member["roles"]
            .as_array()
            .expect("roles is an array")
            .iter()
            .map(|r| r.as_str().expect("a role is a string"))
            .collect();
        assert!(roles.is_sorted(), "roles sorted:\n{text}");
    }
    assert_eq!(v["member_count"].as_u64(), Some(members.len() as u64));
    let head = v["head"].as_u64().expect("head is a number");
    for (name, watermark) in v["watermarks"].as_object().expect("watermarks") {
        assert_eq!(
            watermark.as_u64(),
            Some(head),
            "watermark of {name}:\n{text}"
        );
    }
}

fn is_pubkey(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The summary `import` prints on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub accepted: u64,
    pub duplicate: u64,
    /// Records refused (by validation or by the write policy).
    pub rejected: u64,
    /// Records left out by `--kinds`.
    pub skipped: u64,
    pub head_before: u64,
    pub head_after: u64,
    /// Refusals per category.
    pub causes: BTreeMap<String, u64>,
    /// The first refusals the summary lists: (line, message).
    pub first: Vec<(u64, String)>,
}

impl Summary {
    /// Parses `imported A events (D already present, R refused[, S skipped by --kinds])
    /// in … — …; log head B → H`, the `  refused, CATEGORY: N` lines after it and the
    /// `first refusals:` list.
    #[track_caller]
    pub fn parse(stdout: &str) -> Self {
        let mut lines = stdout.lines();
        let first = lines.next().expect("a summary line");
        let number = |text: &str| -> u64 {
            text.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{text:?} in {first:?} is not a number"))
        };
        let rest = first.strip_prefix("imported ").expect(first);
        let (accepted, rest) = rest.split_once(" events (").expect(first);
        let (duplicate, rest) = rest.split_once(" already present, ").expect(first);
        let (counts, rest) = rest.split_once(") in ").expect(first);
        let (rejected, skipped) = match counts.split_once(" refused, ") {
            Some((r, s)) => (r, s.strip_suffix(" skipped by --kinds").expect(first)),
            None => (counts.strip_suffix(" refused").expect(first), "0"),
        };
        let (_, heads) = rest.split_once("; log head ").expect(first);
        let (before, after) = heads.split_once(" → ").expect(first);
        let mut causes = BTreeMap::new();
        let mut refusals = Vec::new();
        for line in lines {
            if let Some(l) = line.strip_prefix("  refused, ") {
                let (cause, n) = l
                    .rsplit_once(": ")
                    .unwrap_or_else(|| panic!("unexpected summary line {line:?}"));
                causes.insert(cause.to_owned(), number(n));
            } else if let Some(l) = line.strip_prefix("  line ") {
                let (n, message) = l
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("unexpected summary line {line:?}"));
                refusals.push((number(n), message.to_owned()));
            }
        }
        Self {
            accepted: number(accepted),
            duplicate: number(duplicate),
            rejected: number(rejected),
            skipped: number(skipped),
            head_before: number(before),
            head_after: number(after),
            causes,
            first: refusals,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots

/// The one insta helper: snapshots `text` under `snapshots/cli__<name>.snap` at the
/// workspace root.
#[track_caller]
pub fn assert_snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(format!("cli__{name}"), text);
    });
}

/// The types of the metadata flags and fields, and of `children` and `pinned`.
#[track_caller]
fn check_fields(v: &Value, text: &str) {
    let m = &v["metadata"];
    for text_field in ["name", "about", "picture", "banner", "parent"] {
        assert!(
            m[text_field].is_null() || m[text_field].is_string(),
            "{text}"
        );
    }
    for flag in [
        "private",
        "closed",
        "hidden",
        "restricted",
        "write_restricted",
        "livekit",
    ] {
        assert!(m[flag].is_boolean(), "{text}");
    }
    let kinds = &m["supported_kinds"];
    let kinds_ok = kinds.is_null()
        || kinds
            .as_array()
            .is_some_and(|k| k.iter().all(Value::is_u64));
    assert!(kinds_ok, "{text}");
    for list in ["children", "pinned"] {
        let strings = v[list]
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string));
        assert!(
            strings,
            "{list} of:
{text}"
        );
    }
}

/// Every group of `file` as `show --json` sees it, one line each.
pub fn one_line_per_group(db: &Db, file: &Path) -> String {
    let mut table = String::new();
    for group in groups_of(file) {
        let v: Value = serde_json::from_str(&db.show(&group)).expect("JSON");
        let m = &v["metadata"];
        let flags: Vec<&str> = [
            "private",
            "closed",
            "hidden",
            "restricted",
            "write_restricted",
        ]
        .into_iter()
        .filter(|f| m[*f] == true)
        .collect();
        writeln!(
            table,
            "{group:<9} {:<8} head {:>4}  members {:>3}  creator {:<8}  name {}  flags [{}]",
            v["state"].as_str().expect("state"),
            v["head"].as_u64().expect("head"),
            v["member_count"].as_u64().expect("member count"),
            v["creator"].as_str().map_or("-", |c| &c[..8]),
            m["name"]
                .as_str()
                .map_or("-".to_owned(), |n| format!("{n:?}")),
            flags.join(" "),
        )
        .expect("writing to a string");
    }
    table
}
