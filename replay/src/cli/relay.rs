//! `highwater relay`: serve the database as a NIP-29 relay over WebSocket — or, with
//! `--config-dir`, one virtual relay per configuration file, chosen by the HTTP `Host`
//! header, each with its own database, key and policy.
//!
//! The relay's secret key comes from `--secret-key-file` (which must not be readable by
//! group or others), the configuration file's `secret`, or `HIGHWATER_RELAY_SECRET_KEY`
//! (hex or nsec); none is ever logged. Without any, a key is generated on the
//! database's first start and kept in `relay-secret.key` (mode 0600) beside the data.
//! On first start the key becomes the database's relay key; a different key later is
//! refused.
//!
//! The policy and the information document come from the options stored in the
//! database, the configuration file and the flags (see `config.rs`); SIGHUP reads the
//! file and the stored options again and applies them to later writes, and the file's
//! `[groups.retention]` to the compactions from then on, keeping every connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::EngineOptions;
use highwater_relay::{
    ConnectionLimits, Relay, RelayControl, RelayInfo, RelayOptions, RetentionSchedule, VirtualRelay,
};
use highwater_store::Store;
use nostr::prelude::{Keys, SecretKey, ToBech32};

use super::config::{self, Config};
use super::db::{self, PolicyOptions, StoredPolicy};
use super::{Global, one_line};

/// The environment variable holding the relay's secret key (hex or nsec).
const SECRET_ENV: &str = "HIGHWATER_RELAY_SECRET_KEY";
/// The key file created beside the data when no key is given on a fresh database.
pub(crate) const DEFAULT_KEY_FILE: &str = "relay-secret.key";

/// Where the relay listens when neither `--bind` nor the configuration file says.
const DEFAULT_BIND: &str = "127.0.0.1:7777";

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Address to listen on (WebSocket and NIP-11 over HTTP). Default: the
    /// configuration file's `bind`, else 127.0.0.1:7777.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// A configuration file (TOML, zooid's sections and names; README "Configuration"):
    /// database, key, NIP-11 texts, policy. Flags given here override it; SIGHUP reads
    /// it again.
    #[arg(long, value_name = "FILE", conflicts_with = "config_dir")]
    config: Option<PathBuf>,
    /// A directory of configuration files, one per virtual relay: one listener, each
    /// request going to the relay whose `host` its HTTP Host header names; each relay
    /// has its own database (`db`, else `<schema or host>.lmdb` beside its file), key
    /// and policy.
    #[arg(long, value_name = "DIR", conflicts_with = "secret_key_file")]
    config_dir: Option<PathBuf>,
    /// File holding the relay's secret key (hex or nsec); must be mode 0600 or stricter.
    /// Default: the configuration file's `secret`, else `$HIGHWATER_RELAY_SECRET_KEY`,
    /// else `DB/relay-secret.key` (created on first start).
    #[arg(long, value_name = "PATH")]
    secret_key_file: Option<PathBuf>,
    /// The write policy (relay admins and options), for this run: over the
    /// configuration file and the options stored in the database (a database without
    /// any stores these; `highwater config set` changes them).
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
    #[arg(long, default_value_t = ConnectionLimits::default().max_subscriptions)]
    max_subscriptions: usize,
    /// Filters per REQ.
    #[arg(long, default_value_t = ConnectionLimits::default().max_filters)]
    max_filters: usize,
    /// Largest client message in bytes.
    #[arg(long, default_value_t = ConnectionLimits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Bytes queued per connection before a slow client is disconnected (a REQ's stored
    /// events use at most half and otherwise wait for the client to read).
    #[arg(long, default_value_t = ConnectionLimits::default().max_queue_bytes)]
    max_queue_bytes: usize,
    /// Open connections; one more is answered HTTP 503.
    #[arg(long, default_value_t = ConnectionLimits::default().max_connections)]
    max_connections: usize,
    /// Longest subscription id in bytes; a longer REQ is answered CLOSED `invalid:`.
    #[arg(long, default_value_t = ConnectionLimits::default().max_subscription_id_bytes)]
    max_subscription_id_bytes: usize,
    /// Bytes of the REQs a connection's open subscriptions came from, together.
    #[arg(long, default_value_t = ConnectionLimits::default().max_subscription_bytes)]
    max_subscription_bytes: usize,
    /// Refuse group events dated more than this many seconds ago (NIP-29 late
    /// publication); 0 accepts any date, for a group moved from another relay. Imports
    /// are never checked.
    #[arg(long, value_name = "SECS", default_value_t = RelayOptions::default().late_publication_secs.unwrap_or(0))]
    late_publication_secs: u64,
    /// Read replicas (`--replica-of`, `--primary-pubkey`, `--replica-key`).
    #[command(flatten)]
    replica: super::promote::ReplicaArgs,
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
    /// Retention: compact the log this often while serving (`10m`, `1h`, `1d`), with
    /// the durations of the configuration file's `[groups.retention]` and the flags
    /// below (as `highwater compact`); without any duration the relay removes nothing.
    #[arg(long, value_name = "DURATION", value_parser = super::compact::parse_duration, default_value = "1h")]
    retention_every: std::time::Duration,
    /// What expires (`--older-than`, `--group G=D`, `--kind`), over the file's
    /// `[groups.retention]`.
    #[command(flatten)]
    retention: super::compact::RetentionArgs,
}

/// A rate of `per_second` with bursts of four seconds' worth; `None` for 0.
fn rate(per_second: u32) -> Option<highwater_relay::Rate> {
    let per_second = std::num::NonZeroU32::new(per_second)?;
    Some(highwater_relay::Rate {
        per_second,
        burst: per_second.saturating_mul(std::num::NonZeroU32::new(4)?),
    })
}

/// One relay this process serves, and what a reload needs.
struct Served {
    /// The host, or the database, for log lines.
    name: String,
    host: Option<String>,
    db: PathBuf,
    store: Store,
    config: Option<PathBuf>,
    control: RelayControl,
    /// The policy in force, for saying what a reload changed.
    applied: StoredPolicy,
    /// How retention is set besides the file: the flags.
    retention_flags: RetentionFlags,
    /// The retention schedule in force, for saying what a reload changed.
    retention: Option<RetentionSchedule>,
}

/// The retention flags, kept for recomputing the schedule when the file is read again.
#[derive(Debug, Clone)]
struct RetentionFlags {
    every: std::time::Duration,
    durations: super::compact::RetentionArgs,
}

pub(crate) fn run(global: &Global, args: &RelayArgs) -> Result<ExitCode> {
    let flags = args.policy.parse()?;
    let configs: Vec<(PathBuf, Option<Config>)> = if let Some(dir) = &args.config_dir {
        config::load_dir(dir)?
            .into_iter()
            .map(|c| (c.virtual_db(), Some(c)))
            .collect()
    } else if let Some(file) = &args.config {
        let c = config::load(file)?;
        vec![(c.db().unwrap_or_else(|| global.db.clone()), Some(c))]
    } else {
        vec![(global.db.clone(), None)]
    };
    let bind = args
        .bind
        .or_else(|| {
            configs
                .iter()
                .find_map(|(_, c)| c.as_ref().and_then(|c| c.file.bind))
                .filter(|_| args.config_dir.is_none())
        })
        .unwrap_or_else(|| DEFAULT_BIND.parse().expect("a socket address"));
    let mut relays = Vec::new();
    let mut served = Vec::new();
    for (db_path, config) in configs {
        let (relay, one) = open_relay(args, &flags, db_path, config)?;
        relays.push(relay);
        served.push(one);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        reload_on_hangup(served.iter().map(Served::reloader).collect(), flags)?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        let addr = listener.local_addr().unwrap_or(bind);
        if args.config_dir.is_some() {
            for (relay, one) in relays.iter().zip(&served) {
                eprintln!(
                    "virtual relay {} → relay {} (database {})",
                    one.host.as_deref().unwrap_or("?"),
                    relay.public_key().to_hex(),
                    one.db.display()
                );
            }
            eprintln!(
                "highwater relay listening on ws://{addr} for {} virtual relays (chosen by the Host header)",
                relays.len()
            );
            let virtuals = relays
                .into_iter()
                .zip(&served)
                .map(|(relay, one)| VirtualRelay::new(one.host.as_deref().unwrap_or_default(), relay))
                .collect();
            highwater_relay::serve_hosts(virtuals, listener, shutdown).await?;
        } else {
            let relay = relays.pop().expect("one relay");
            eprintln!(
                "highwater relay {} listening on ws://{addr} (database {})",
                relay.public_key().to_hex(),
                served[0].db.display()
            );
            relay.serve(listener, shutdown).await?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the database of one relay and makes the relay.
fn open_relay(
    args: &RelayArgs,
    flags: &PolicyOptions,
    db_path: PathBuf,
    config: Option<Config>,
) -> Result<(Relay, Served)> {
    let global = Global {
        db: db_path,
        verbose: 0,
    };
    if !args.create && !global.db.join("data.mdb").is_file() {
        bail!(
            "no highwater database at {} (make one with `highwater demo`, `highwater import` or `highwater init`; pass --db to name another, or --create to start a relay on a new one)",
            global.db.display()
        );
    }
    if let Some(config) = &config {
        for note in config.notes() {
            eprintln!("note: {}: {note}", config.path.display());
        }
    }
    let store = db::open_store(&global, false)?;
    let stored = db::relay_key(&store)?;
    let replica = super::promote::open_replica(&store, &global.db, &args.replica)?;
    let keys = match &replica {
        Some((_, keys)) => keys.clone(),
        None => load_keys(&global.db, args, config.as_ref(), stored.is_none())?,
    };
    if replica.is_none() {
        if let Some(config) = &config {
            config.check_self(&keys.public_key())?;
        }
        db::set_relay_key(&store, &keys.public_key())?;
        super::promote::check_primary(&store, &keys)?;
    }
    let opened = db::open_with(store, EngineOptions::default())?;
    // A database without stored options stores the flags' (and the defaults).
    if db::stored_policy(&opened.store)?.is_none() {
        db::set_policy(&opened.store, flags)?;
    }
    let (policy, info) = effective(&opened.store, config.as_ref(), flags)?;
    let retention_flags = RetentionFlags {
        every: args.retention_every,
        durations: args.retention.clone(),
    };
    let retention = retention_flags.schedule(config.as_ref())?;
    if let Some(schedule) = &retention {
        eprintln!(
            "retention: compacting every {}s ({})",
            schedule.every.as_secs(),
            describe(&schedule.policy)
        );
    }
    let file = config.as_ref().map(|c| &c.file);
    let options = RelayOptions {
        policy: policy.to_policy()?,
        info,
        allow_ungrouped: args.allow_ungrouped
            || file.and_then(|f| f.policy.allow_ungrouped).unwrap_or(false),
        public_url: args
            .public_url
            .clone()
            .or_else(|| file.and_then(|f| f.public_url.clone())),
        limits: ConnectionLimits {
            max_subscriptions: args.max_subscriptions,
            max_filters: args.max_filters,
            max_message_bytes: args.max_message_bytes,
            max_queue_bytes: args.max_queue_bytes,
            max_connections: args.max_connections,
            max_subscription_id_bytes: args.max_subscription_id_bytes,
            max_subscription_bytes: args.max_subscription_bytes,
            ..ConnectionLimits::default()
        },
        late_publication_secs: (args.late_publication_secs > 0)
            .then_some(args.late_publication_secs),
        replicas: args.replica.replicas()?,
        replica_of: replica.map(|(of, _)| of),
        rate_limits: highwater_relay::RateLimits {
            per_ip: rate(args.rate_per_ip),
            per_pubkey: rate(args.rate_per_pubkey),
        },
        trust_proxy: args.trust_proxy,
        membership: membership(config.as_ref())?,
        retention: retention.clone(),
    };
    let relay = Relay::new(opened.engine, opened.groups, keys, options)?;
    let host = config.as_ref().and_then(Config::host);
    let served = Served {
        name: host
            .clone()
            .unwrap_or_else(|| global.db.display().to_string()),
        host,
        db: global.db,
        store: opened.store,
        config: config.map(|c| c.path),
        control: relay.control(),
        applied: policy,
        retention_flags,
        retention,
    };
    Ok((relay, served))
}

impl RetentionFlags {
    /// Compaction while serving: the file's `[groups.retention]`, then the flags;
    /// `None` when nothing expires.
    fn schedule(&self, config: Option<&Config>) -> Result<Option<RetentionSchedule>> {
        let base = config
            .map(Config::retention)
            .transpose()?
            .unwrap_or_default();
        let policy = self.durations.policy_over(base);
        if policy.is_empty() {
            return Ok(None);
        }
        if self.every.is_zero() {
            bail!("--retention-every must be longer than 0s");
        }
        Ok(Some(RetentionSchedule {
            every: self.every,
            policy,
        }))
    }
}

/// A retention schedule in one line, for the reload message.
fn describe_schedule(schedule: Option<&RetentionSchedule>) -> String {
    match schedule {
        Some(s) => format!("every {}s, {}", s.every.as_secs(), describe(&s.policy)),
        None => "nothing expires".to_owned(),
    }
}

/// A retention policy in one line, for the start-up message.
fn describe(policy: &highwater_engine::RetentionPolicy) -> String {
    let secs = |d: &std::time::Duration| {
        if *d == std::time::Duration::MAX {
            "never".to_owned()
        } else {
            format!("{}s", d.as_secs())
        }
    };
    let mut parts = Vec::new();
    if let Some(default) = &policy.default {
        parts.push(format!("older than {}", secs(default)));
    }
    for (group, duration) in &policy.per_group {
        parts.push(format!("{group}: {}", secs(duration)));
    }
    parts.join(", ")
}

/// The policy and the NIP-11 texts: the stored options, then the file, then the flags.
fn effective(
    store: &Store,
    config: Option<&Config>,
    flags: &PolicyOptions,
) -> Result<(StoredPolicy, RelayInfo)> {
    let stored = db::stored_policy(store)?.unwrap_or_default();
    let mut policy = stored.clone();
    let mut info = RelayInfo::default();
    if let Some(config) = config {
        policy = config.policy_options()?.over(&policy);
        info = config.info(info)?;
    }
    Ok((flags.over(&policy), info))
}

/// What a reload of one relay needs, movable to the reloading task.
struct Reloader {
    name: String,
    store: Store,
    config: Option<PathBuf>,
    control: RelayControl,
    applied: StoredPolicy,
    retention_flags: RetentionFlags,
    retention: Option<RetentionSchedule>,
}

impl Served {
    fn reloader(&self) -> Reloader {
        Reloader {
            name: self.name.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            control: self.control.clone(),
            applied: self.applied.clone(),
            retention_flags: self.retention_flags.clone(),
            retention: self.retention.clone(),
        }
    }
}

impl Reloader {
    /// Reads the file and the stored options again and applies them (all of them, or
    /// none when any does not read); says what changed.
    fn reload(&mut self, flags: &PolicyOptions) -> Result<()> {
        let config = self.config.as_deref().map(config::load).transpose()?;
        let (policy, info) = effective(&self.store, config.as_ref(), flags)?;
        let access = policy.to_policy()?;
        let retention = self.retention_flags.schedule(config.as_ref())?;
        self.control.set_policy(access);
        self.control.set_info(info);
        self.control.set_retention(retention.clone());
        let changes = policy.changes_from(&self.applied);
        self.applied = policy;
        let mut said = if changes.is_empty() {
            "the policy is unchanged".to_owned()
        } else {
            format!("policy changed for later writes: {}", changes.join("; "))
        };
        if retention != self.retention {
            said = format!(
                "{said}; retention changed: {} → {}",
                describe_schedule(self.retention.as_ref()),
                describe_schedule(retention.as_ref())
            );
            self.retention = retention;
        }
        eprintln!("{}: configuration reloaded; {said}", self.name);
        Ok(())
    }
}

/// On SIGHUP, reloads every relay's configuration; a file that does not read keeps the
/// configuration in force, and says why.
fn reload_on_hangup(mut relays: Vec<Reloader>, mut flags: PolicyOptions) -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let (back, flags_back) = tokio::task::spawn_blocking(move || {
                    for relay in &mut relays {
                        if let Err(error) = relay.reload(&flags) {
                            eprintln!(
                                "{}: configuration not reloaded (the one in force stays): {}",
                                relay.name,
                                one_line(&error)
                            );
                        }
                    }
                    (relays, flags)
                })
                .await
                .expect("reloading does not panic");
                relays = back;
                flags = flags_back;
            }
        });
    }
    #[cfg(not(unix))]
    drop((relays, flags));
    Ok(())
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

fn load_keys(db: &Path, args: &RelayArgs, config: Option<&Config>, fresh: bool) -> Result<Keys> {
    if let Some(path) = &args.secret_key_file {
        return read_key_file(path);
    }
    if let Some(config) = config
        && let Some(secret) = &config.file.secret
    {
        return parse_secret(secret)
            .with_context(|| format!("secret in {}", config.path.display()));
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

pub(crate) fn read_key_file(path: &Path) -> Result<Keys> {
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

/// Relay membership (NIP-43) from a configuration file: zooid's `public_join`, the keys
/// of `[roles]` with `can_invite`; a zooid file's relay is members-only (zooid asks
/// membership of every writer). Without a file: anyone joins, membership asks nothing.
fn membership(config: Option<&Config>) -> Result<highwater_relay::RelayMembership> {
    let mut membership = highwater_relay::RelayMembership::default();
    let Some(config) = config else {
        return Ok(membership);
    };
    let f = &config.file;
    membership.public_join = f.policy.public_join.unwrap_or(true);
    membership.members_only = config.defaults == config::Defaults::Zooid;
    for role in f.roles.values().filter(|r| r.can_invite == Some(true)) {
        for key in &role.pubkeys {
            membership.inviters.push(
                db::parse_pubkey(key)
                    .with_context(|| format!("roles in {}", config.path.display()))?,
            );
        }
    }
    Ok(membership)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's TOML block whose first line starts with `first`, its
    /// placeholders filled in.
    fn readme_block(first: &str) -> String {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let block = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .find(|b| b.starts_with(first))
            .unwrap_or_else(|| panic!("no README toml block starting {first:?}"));
        block
            .replace(
                "<hex private key>",
                "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a",
            )
            .replace(
                "<hex or nsec>",
                "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a",
            )
            .replace(
                "<hex public key>",
                "87d3561f19b74adbe8bf840682992466068830a9d8c36b4a0c99d36f826cb6cb",
            )
    }

    #[test]
    fn the_readmes_zooid_file_and_the_highwater_file_beside_it_behave_the_same() {
        let zooid = config::parse(
            Path::new("config/my-relay.example.com"),
            &readme_block("# zooid:"),
        )
        .unwrap();
        let ours = config::parse(
            Path::new("/etc/highwater/my-relay.toml"),
            &readme_block("# highwater:"),
        )
        .unwrap();
        let stored = StoredPolicy::default();
        assert_eq!(
            zooid.policy_options().unwrap().over(&stored),
            ours.policy_options().unwrap().over(&stored)
        );
        assert_eq!(
            zooid.info(RelayInfo::default()).unwrap(),
            ours.info(RelayInfo::default()).unwrap()
        );
        assert_eq!(zooid.host(), ours.host());
        assert_eq!(zooid.file.secret, ours.file.secret);
        assert_eq!(
            membership(Some(&zooid)).unwrap(),
            membership(Some(&ours)).unwrap()
        );
        assert_eq!(zooid.retention().unwrap(), ours.retention().unwrap());
    }
}
