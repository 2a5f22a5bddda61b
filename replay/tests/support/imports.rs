//! `highwater import` with the test relay key, and reading back what it did: the
//! helpers the import test binaries share.

use std::path::Path;

use serde_json::Value;

use super::{Db, RELAY_PUBKEY, Sandbox, Summary, path_str};

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// `import --relay-pubkey RELAY [EXTRA] FILE` on `db`: (exit status, stdout, stderr).
pub fn import(db: &Db, file: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["import", "--relay-pubkey", RELAY_PUBKEY];
    args.extend_from_slice(extra);
    args.push(path_str(file));
    let run = db.run(&args);
    (run.status.code().expect("exited"), run.stdout, run.stderr)
}

pub fn summary(stdout: &str) -> Summary {
    Summary::parse(stdout)
}

/// The ids of the exported log, in log order.
pub fn log_ids(sandbox: &Sandbox, db: &Db) -> Vec<String> {
    let file = sandbox.path("export.jsonl");
    db.export(&file)
        .iter()
        .map(|l| json(l)["id"].as_str().expect("an id").to_owned())
        .collect()
}
