//! NIP-29 timeline references in an import: a post whose `previous` names an event
//! decided earlier in the same file is accepted whatever the batch size — the
//! reference may name an event still waiting in the batch, which the import commits
//! first (deciding it against the committed log alone refused it) — and one that names
//! no event of the file or the log is refused.

#[allow(dead_code, reason = "this binary uses a few of the shared helpers")]
mod support;

use support::imports::{import, log_ids};
use support::{Sandbox, key, path_str, sign, write_events};

#[test]
fn a_reference_to_an_event_of_the_same_batch_is_accepted() {
    let sandbox = Sandbox::new();
    let alice = key(1);
    let create = sign(&alice, 9007, &[&["h", "chat"]], "", 1_700_000_000);
    let first = sign(&alice, 9, &[&["h", "chat"]], "first", 1_700_000_001);
    let prefix = first.id.to_hex()[..8].to_owned();
    let second = sign(
        &alice,
        9,
        &[&["h", "chat"], &["previous", &prefix]],
        "second",
        1_700_000_002,
    );
    let dangling = sign(
        &alice,
        9,
        &[&["h", "chat"], &["previous", "00000000"]],
        "dangling",
        1_700_000_003,
    );
    let file = sandbox.path("chat.jsonl");
    write_events(
        &file,
        &[create.clone(), first.clone(), second.clone(), dangling],
    );
    for batch in ["1", "16384"] {
        let db = sandbox.db(&format!("batch-{batch}"));
        let rejects = sandbox.path(&format!("rejects-{batch}.jsonl"));
        let (code, stdout, stderr) = import(
            &db,
            &file,
            &["--batch", batch, "--rejects", path_str(&rejects)],
        );
        assert_eq!(code, 1, "one refusal expected: {stdout}{stderr}");
        assert_eq!(
            log_ids(&sandbox, &db),
            [create.id.to_hex(), first.id.to_hex(), second.id.to_hex()],
            "batch {batch}"
        );
        let refused = support::read_lines(&rejects);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("names no event stored here"),
            "{refused:?}"
        );
    }
}
