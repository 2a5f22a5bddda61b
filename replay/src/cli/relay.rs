//! `highwater relay`: serve the database as a NIP-29 relay over WebSocket.
//!
//! The relay's secret key comes from `--secret-key-file` (which must not be readable by
//! group or others) or `HIGHWATER_RELAY_SECRET_KEY` (hex or nsec); neither is ever
//! logged. Without either, a key is generated on the database's first start and kept in
//! `relay-secret.key` (mode 0600) beside the data. On first start the key becomes the
//! database's relay key; a different key later is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::EngineOptions;
use highwater_relay::{Limits, Relay, RelayOptions};
use nostr::prelude::{Keys, SecretKey, ToBech32};

use super::Global;
use super::db;

/// The environment variable holding the relay's secret key (hex or nsec).
const SECRET_ENV: &str = "HIGHWATER_RELAY_SECRET_KEY";
/// The key file created beside the data when no key is given on a fresh database.
pub(crate) const DEFAULT_KEY_FILE: &str = "relay-secret.key";

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Address to listen on (WebSocket and NIP-11 over HTTP).
    #[arg(long, default_value = "127.0.0.1:7777")]
    bind: SocketAddr,
    /// File holding the relay's secret key (hex or nsec); must be mode 0600 or stricter.
    /// Default: `$HIGHWATER_RELAY_SECRET_KEY`, else `DB/relay-secret.key` (created on first start).
    #[arg(long, value_name = "PATH")]
    secret_key_file: Option<PathBuf>,
    /// The write policy (relay admins and options): stored in the database on first
    /// use, like the relay key; a different value later is refused, naming the option.
    #[command(flatten)]
    policy: db::PolicyArgs,
    /// Create the database if there is none at `--db` (without it, a missing database
    /// is refused: a mistyped path must not start an empty relay).
    #[arg(long)]
    create: bool,
    /// Accept events that belong to no group (default: refused with `restricted:`).
    #[arg(long)]
    allow_ungrouped: bool,
    /// The relay's public URL (for example `wss://groups.example.com`); NIP-42 AUTH must name it.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Open subscriptions per connection.
    #[arg(long, default_value_t = Limits::default().max_subscriptions)]
    max_subscriptions: usize,
    /// Filters per REQ.
    #[arg(long, default_value_t = Limits::default().max_filters)]
    max_filters: usize,
    /// Largest client message in bytes.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Bytes queued per connection before a slow client is disconnected (a REQ's stored
    /// events use at most half and otherwise wait for the client to read).
    #[arg(long, default_value_t = Limits::default().max_queue_bytes)]
    max_queue_bytes: usize,
    /// Open connections; one more is answered HTTP 503.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Longest subscription id in bytes; a longer REQ is answered CLOSED `invalid:`.
    #[arg(long, default_value_t = Limits::default().max_subscription_id_bytes)]
    max_subscription_id_bytes: usize,
    /// Bytes of the REQs a connection's open subscriptions came from, together.
    #[arg(long, default_value_t = Limits::default().max_subscription_bytes)]
    max_subscription_bytes: usize,
    /// Refuse group events dated more than this many seconds ago (NIP-29 late
    /// publication); 0 accepts any date, for a group moved from another relay. Imports
    /// are never checked.
    #[arg(long, value_name = "SECS", default_value_t = RelayOptions::default().late_publication_secs.unwrap_or(0))]
    late_publication_secs: u64,
    /// Take clients' addresses from `X-Forwarded-For` (its last entry, added by the
    /// proxy in front of the relay); only for a relay reachable through that proxy alone.
    #[arg(long)]
    trust_proxy: bool,
    /// EVENTs, REQs and NIP-86 calls a second from one client address (all its
    /// connections together), bursts of 4×; over it, `rate-limited:`. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    rate_per_ip: u32,
    /// EVENTs a second signed by one pubkey, bursts of 4×; over it, `rate-limited:`.
    /// 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    rate_per_pubkey: u32,
}

/// A rate of `per_second` with bursts of four seconds' worth; `None` for 0.
fn rate(per_second: u32) -> Option<highwater_relay::Rate> {
    let per_second = std::num::NonZeroU32::new(per_second)?;
    Some(highwater_relay::Rate {
        per_second,
        burst: per_second.saturating_mul(std::num::NonZeroU32::new(4)?),
    })
}

pub(crate) fn run(global: &Global, args: &RelayArgs) -> Result<ExitCode> {
    if !args.create && !global.db.join("data.mdb").is_file() {
        bail!(
            "no highwater database at {} (make one with `highwater demo`, `highwater import` or `highwater init`; pass --db to name another, or --create to start a relay on a new one)",
            global.db.display()
        );
    }
    let store = db::open_store(global, false)?;
    let stored = db::relay_key(&store)?;
    let keys = load_keys(&global.db, args, stored.is_none())?;
    db::set_relay_key(&store, &keys.public_key())?;
    let opened = db::open_with(store, EngineOptions::default())?;
    db::set_policy(&opened.store, &args.policy.parse()?)?;
    let options = RelayOptions {
        policy: db::policy(&opened.store)?,
        allow_ungrouped: args.allow_ungrouped,
        public_url: args.public_url.clone(),
        limits: Limits {
            max_subscriptions: args.max_subscriptions,
            max_filters: args.max_filters,
            max_message_bytes: args.max_message_bytes,
            max_queue_bytes: args.max_queue_bytes,
            max_connections: args.max_connections,
            max_subscription_id_bytes: args.max_subscription_id_bytes,
            max_subscription_bytes: args.max_subscription_bytes,
            ..Limits::default()
        },
        late_publication_secs: (args.late_publication_secs > 0)
            .then_some(args.late_publication_secs),
        rate_limits: highwater_relay::RateLimits {
            per_ip: rate(args.rate_per_ip),
            per_pubkey: rate(args.rate_per_pubkey),
        },
        trust_proxy: args.trust_proxy,
        ..RelayOptions::default()
    };
    let relay = Relay::new(opened.engine, opened.groups, keys, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        eprintln!(
            "highwater relay {} listening on ws://{} (database {})",
            relay.public_key().to_hex(),
            listener.local_addr().unwrap_or(args.bind),
            global.db.display()
        );
        relay.serve(listener, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called, before the relay
/// says it listens: a signal that arrives in between stops the relay cleanly instead of
/// killing it by the signal's default action.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn load_keys(db: &Path, args: &RelayArgs, fresh: bool) -> Result<Keys> {
    if let Some(path) = &args.secret_key_file {
        return read_key_file(path);
    }
    if let Ok(value) = std::env::var(SECRET_ENV) {
        return parse_secret(&value).with_context(|| format!("${SECRET_ENV}"));
    }
    let default = db.join(DEFAULT_KEY_FILE);
    if default.is_file() {
        return read_key_file(&default);
    }
    if !fresh {
        bail!(
            "this database already has a relay key; give its secret with --secret-key-file or ${SECRET_ENV}"
        );
    }
    let keys = Keys::generate();
    write_key_file(&default, &keys)?;
    eprintln!(
        "generated a relay key; its secret is in {} (keep it private)",
        default.display()
    );
    Ok(keys)
}

fn parse_secret(text: &str) -> Result<Keys> {
    let secret = SecretKey::parse(text.trim())
        .map_err(|_| anyhow::anyhow!("not a secret key (64 hex characters or nsec…)"))?;
    Ok(Keys::new(secret))
}

fn read_key_file(path: &Path) -> Result<Keys> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_secret(&text).with_context(|| format!("the key in {}", path.display()))
}

pub(crate) fn write_key_file(path: &Path, keys: &Keys) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let nsec = keys
        .secret_key()
        .to_bech32()
        .context("encoding the secret key")?;
    writeln!(file, "{nsec}").with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", path.display()))
}
