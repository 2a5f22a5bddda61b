//! What a first run reads: `highwater keygen` makes a key pair (printed, or the secret
//! in a file only its owner can read), `relay --help` names only flags that exist, and
//! `status` says in words whether the database is healthy and what its numbers mean.

#[allow(dead_code, reason = "this binary uses a few of the shared helpers")]
mod support;

use support::{Sandbox, highwater, path_str};

#[test]
fn keygen_prints_a_pair_or_writes_the_secret_to_a_private_file() {
    let printed = highwater(&["keygen"]).ok();
    let lines: Vec<&str> = printed.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("secret  nsec1")),
        "{printed}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("public  npub1")),
        "{printed}"
    );
    let nsec = lines[0].trim_start_matches("secret  ");
    let keys = nostr::prelude::Keys::parse(nsec).expect("the printed secret is a key");
    assert!(printed.contains(&keys.public_key().to_hex()), "{printed}");

    let sandbox = Sandbox::new();
    let file = sandbox.path("relay.key");
    let written = highwater(&["keygen", "--output", path_str(&file)]).ok();
    assert!(
        !written.contains("nsec1"),
        "the secret is not printed: {written}"
    );
    let secret = std::fs::read_to_string(&file).unwrap();
    let keys = nostr::prelude::Keys::parse(secret.trim()).unwrap();
    assert!(written.contains(&keys.public_key().to_hex()), "{written}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    // An existing key file is never overwritten.
    let again = highwater(&["keygen", "--output", path_str(&file)]).fails();
    assert!(again.stderr.contains("relay.key"), "{again}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret);
}

#[test]
fn relay_help_names_only_flags_that_exist() {
    let help = highwater(&["relay", "--help"]).ok();
    assert!(!help.contains("--admin "), "{help}");
    assert!(help.contains("--relay-admin"), "{help}");
    assert!(help.contains("--config "), "{help}");
    assert!(help.contains("--config-dir"), "{help}");
    // Every long flag the examples use is one the command takes.
    let (options, examples) = help.split_once("Examples:").expect("examples");
    let defined = |flag: &str| {
        options.match_indices(flag).any(|(at, _)| {
            let next = options[at + flag.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    for flag in examples
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w))
    {
        assert!(
            defined(flag),
            "the example's {flag} is not a flag of `relay`:\n{help}"
        );
    }
}

#[test]
fn status_says_healthy_and_what_is_not_folded_in_words() {
    let sandbox = Sandbox::new();
    let db = sandbox.db("db");
    let file = sandbox.path("events.jsonl");
    support::write_events(&file, &support::scripted_history());
    db.import(&file, &[]);
    let status = db.run(&["status"]).ok();
    let first = status.lines().next().unwrap();
    assert!(first.starts_with("healthy, "), "{status}");
    assert!(
        first.contains(" events not yet folded in memory (a group is folded on its first read)")
            || first.contains("every event folded in memory"),
        "{status}"
    );
    assert!(!first.contains("lag"), "{status}");
}
