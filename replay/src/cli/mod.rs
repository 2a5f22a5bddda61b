//! Argument parsing and dispatch. Every command takes `--db DIR`.

mod bench;
mod compact;
mod config;
mod db;
mod demo;
mod export;
mod generate;
mod groups;
mod import;
mod inspect;
mod keygen;
mod promote;
mod relay;
mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use highwater_replay::progress;

/// The state engine for NIP-29 group relays: import events into an append-only LMDB
/// log, fold them into per-group membership, roles, metadata and creator, and verify
/// that what is served equals a full replay.
///
/// Start with `highwater demo`: it generates a realistic workload, imports it,
/// replays, verifies and shows the largest group.
#[derive(Debug, Parser)]
#[command(
    name = "highwater",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Examples:\n  highwater demo\n  highwater import --relay-pubkey <HEX> events.jsonl\n  highwater show --group pizza --json\n  highwater verify"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    /// Log lines as text, or as one JSON object a line (for a log collector).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// Where the database is when neither `--db` nor `HIGHWATER_DB` says.
pub(crate) const DEFAULT_DB: &str = "./highwater.lmdb";

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The database directory (`init` and `import` create it; other commands need it).
    #[arg(
        long,
        global = true,
        env = "HIGHWATER_DB",
        default_value = DEFAULT_DB
    )]
    pub(crate) db: PathBuf,
    /// More logging (-v info, -vv debug, -vvv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a database and store the relay's public key and write-policy options.
    #[command(
        after_help = "Example:\n  highwater init --relay-pubkey 3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
    )]
    Init(db::InitArgs),
    /// Import events in file order through the relay's write policy.
    ///
    /// Each event is decided as a relay decides it (`AccessPolicy::check_write` with the
    /// stored relay key and policy options), against the state left by every event
    /// accepted before it; a refused event is not written and is counted by its NIP-01
    /// `OK` message. Relay state events (39000–39003) signed by the relay key are the
    /// relay's own. Join requests (9021) get no synthesized answer: the relay's 9000s
    /// are in the dump. --no-policy keeps signature checks but skips the policy (a
    /// relay's own export); --trusted skips signatures and the policy (highwater's own
    /// exports only).
    ///
    /// Input: JSONL, a JSON array of events, or `["EVENT", {…}]` / `["EVENT", "<sub>",
    /// {…}]` lines; BOM, CRLF and blank lines accepted; gzip detected by magic bytes.
    #[command(
        after_help = "Exit status:\n  0  every event imported or already present\n  1  some records refused (the rest imported), or the input ended early\n  2  nothing in the input could be read as an event, or bad usage\n  3  the import could not run or stopped (database, options, file, --strict)\n\nExamples:\n  highwater import --relay-pubkey <KEY> --rejects rejects.jsonl export.jsonl\n  nak req -k 9000 wss://relay | highwater import -\n  highwater import --kinds nip29 strfry-export.jsonl.gz\n  highwater import --strict --trusted highwater-export.jsonl"
    )]
    Import(import::ImportArgs),
    /// List every group: id, state, members, events, head.
    #[command(after_help = "Examples:\n  highwater groups\n  highwater groups --json")]
    Groups(groups::GroupsArgs),
    /// Show one group's state (fully loaded), as a table or JSON. A group with no
    /// events in the database exits 1 with "no such group".
    #[command(after_help = "Example:\n  highwater show --group pizza --json")]
    Show(inspect::ShowArgs),
    /// Rebuild projections from sequence 1 and write fresh checkpoints.
    #[command(
        after_help = "Examples:\n  highwater replay\n  highwater replay --projection membership --group pizza"
    )]
    Replay(inspect::ReplayArgs),
    /// Compare the state served (checkpoint + tail) with a full replay, for every group.
    #[command(after_help = "Example:\n  highwater verify && echo consistent")]
    Verify(inspect::VerifyArgs),
    /// Log head, groups, and per projection: loaded, checkpointed, failed, lag.
    #[command(after_help = "Example:\n  highwater status --json")]
    Status(inspect::StatusArgs),
    /// Export events as JSONL in log order (all, or one group).
    #[command(
        after_help = "Examples:\n  highwater export backup.jsonl\n  highwater export --group pizza -"
    )]
    Export(export::ExportArgs),
    /// Generate a realistic, deterministic NIP-29 workload of signed events as JSONL.
    #[command(
        after_help = "Example:\n  highwater generate --groups 1000 --events 1000000 --seed 7 workload.jsonl"
    )]
    Generate(generate::GenerateArgs),
    /// The end-to-end run: generate, import, replay, verify, show, status — with timings.
    #[command(after_help = "Example:\n  highwater demo --events 200000")]
    Demo(demo::DemoArgs),
    /// Measure speed against this machine's physical limits and against nostr-lmdb,
    /// side by side in one run.
    #[command(after_help = "Example:\n  highwater bench --events 1000000 --json")]
    Bench(bench::BenchArgs),
    /// Serve the database as a NIP-29 relay over WebSocket (NIP-01, NIP-11, NIP-29, NIP-42).
    #[command(
        after_help = "Examples:\n  highwater relay\n  highwater relay --bind 0.0.0.0:7777 --secret-key-file relay.key --relay-admin <HEX>\n  highwater relay --config relay.toml\n  highwater relay --config-dir /etc/highwater --create   (one relay per file, by Host)\n  HIGHWATER_RELAY_SECRET_KEY=nsec1... highwater relay --public-url wss://groups.example.com\n\nSIGHUP reloads the configuration file and the stored policy without dropping connections."
    )]
    Relay(relay::RelayArgs),
    /// Show or change the policy options stored in the database (what `init`, the
    /// first `import` and `config set` stored; a configuration file or a flag wins). A
    /// running relay takes a change on SIGHUP.
    #[command(
        after_help = "Examples:\n  highwater config show\n  highwater config set groups.admin_create_only true && kill -HUP <relay pid>"
    )]
    Config(config::ConfigArgs),
    /// Generate a relay key pair: print it, or write the secret to a new file only its
    /// owner can read (mode 0600) for `highwater relay --secret-key-file`.
    #[command(after_help = "Examples:\n  highwater keygen\n  highwater keygen --output relay.key")]
    Keygen(keygen::KeygenArgs),
    /// Promote a read replica to a primary (an operator's act; stop the replica, and
    /// make sure the old primary takes no more writes, first): it stops following, and
    /// with the primary's secret key `highwater relay` serves it as the primary.
    #[command(
        after_help = "Example:\n  highwater promote --db replica.lmdb --secret-key-file primary.key"
    )]
    Promote(promote::PromoteArgs),
    /// Upgrade a database written by an older storage format to the current one, in
    /// one atomic transaction: a crash or kill midway leaves it as it was. Stop every
    /// other process using the database first. A current database is left alone.
    #[command(after_help = "Example:\n  highwater upgrade --db ./highwater.lmdb")]
    Upgrade(upgrade::UpgradeArgs),
    /// Remove expired records (retention): records of kinds no projection folds, older
    /// than their group's duration, leave the log in bounded transactions; no group's
    /// state changes. A kill midway leaves whole transactions; run it again to finish.
    #[command(
        after_help = "Examples:\n  highwater compact --older-than 30d\n  highwater compact --older-than 30d --group pizza=7d --group archive=never"
    )]
    Compact(compact::CompactArgs),
}

pub(crate) fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.log_format);
    let result = match cli.command {
        Command::Init(args) => db::init(&cli.global, &args),
        Command::Import(args) => {
            return import::run(&cli.global, &args).unwrap_or_else(|error| {
                eprintln!("error: {}", one_line(&error));
                ExitCode::from(import::EXIT_ERROR)
            });
        }
        Command::Groups(args) => groups::run(&cli.global, &args),
        Command::Show(args) => inspect::show(&cli.global, &args),
        Command::Replay(args) => inspect::replay(&cli.global, &args),
        Command::Verify(args) => inspect::verify(&cli.global, &args),
        Command::Status(args) => inspect::status(&cli.global, &args),
        Command::Export(args) => export::run(&cli.global, &args),
        Command::Generate(args) => generate::run(&args),
        Command::Demo(args) => demo::run(&cli.global, &args),
        Command::Bench(args) => bench::run(&args),
        Command::Relay(args) => relay::run(&cli.global, &args),
        Command::Config(args) => config::run(&cli.global, &args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Promote(args) => promote::run(&cli.global, &args),
        Command::Upgrade(args) => upgrade::run(&cli.global, &args),
        Command::Compact(args) => compact::run(&cli.global, &args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// `highwater show … | head` closes stdout early; `println!` then panics. A closed
/// reader is not an error of ours: exit quietly, as other Unix tools do.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// The error and its causes on one line. A cause whose text the message before it
/// already ends with (an error that prints its source and also returns it from
/// `source()`) is said once.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|last| last.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

fn init_tracing(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Colour codes only on a terminal: in a log file or a pipe they are noise.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_the_message_already_ends_with_is_said_once() {
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        // An error that prints its source and also returns it from `source()`, as the
        // store's errors do.
        let error = anyhow::Error::new(denied())
            .context(format!(
                "storage I/O error while opening the environment: {}",
                denied()
            ))
            .context("opening the database at /srv/db");
        assert_eq!(
            one_line(&error),
            format!(
                "opening the database at /srv/db: storage I/O error while opening the environment: {}",
                denied()
            )
        );
    }
}
