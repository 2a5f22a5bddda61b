//! Read replicas from the command line: `highwater relay --replica-of URL
//! --primary-pubkey HEX` (what a replica database records), `--replica-key HEX` on the
//! primary (who may replicate it), `highwater promote` (a replica becomes a primary:
//! an operator's act), and the replica's lag for `highwater status`.
//!
//! A replica database records its primary (`replica.of`: URL and public key) and
//! belongs to the primary's relay key, so its state events fold as the primary's. Its
//! own key, for authenticating to the primary, is `replica-secret.key` beside the data
//! (made on first start, mode 0600); the primary lists its public key with
//! `--replica-key`. Started without `--replica-of`, a replica database is refused
//! unless the relay's secret key is the primary's: that start promotes it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_relay::{ReplicaOf, ReplicaStatus};
use highwater_store::Store;
use nostr::prelude::{Keys, PublicKey, Timestamp};

use super::Global;

/// The store setting naming a replica's primary: `URL PUBKEY`; empty once promoted.
const REPLICA_OF: &str = "replica.of";
/// The replica's own key file, beside the data.
const REPLICA_KEY_FILE: &str = "replica-secret.key";

/// `highwater relay`'s replication flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReplicaArgs {
    /// Run as a read replica of the relay at this URL (`ws://` or `wss://`): follow its log
    /// (NIP-77 negentropy to catch up, a live subscription), serve reads, refuse
    /// writes naming it. Needs `--primary-pubkey` on first start.
    #[arg(long, value_name = "URL")]
    replica_of: Option<String>,
    /// The primary's relay public key (hex); its state events and answers are signed
    /// with it. Never its secret key.
    #[arg(long, value_name = "HEX", requires = "replica_of")]
    primary_pubkey: Option<String>,
    /// On a primary: the public key (hex) of a replica allowed to follow it (repeat
    /// for several); a replica prints its key when it starts.
    #[arg(long = "replica-key", value_name = "HEX")]
    replica_keys: Vec<String>,
}

impl ReplicaArgs {
    /// The replicas' keys a primary admits.
    pub(crate) fn replicas(&self) -> Result<Vec<PublicKey>> {
        self.replica_keys
            .iter()
            .map(|k| PublicKey::parse(k).with_context(|| format!("--replica-key {k}")))
            .collect()
    }
}

/// The primary a database follows, if it is a replica.
pub(crate) fn replica_of(store: &Store) -> Result<Option<ReplicaOf>> {
    let Some(bytes) = store.setting(REPLICA_OF)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).context("the stored primary is not text")?;
    let Some((url, key)) = text.split_once(' ') else {
        return Ok(None);
    };
    Ok(Some(ReplicaOf {
        url: url.to_owned(),
        primary: PublicKey::parse(key).context("the stored primary key")?,
    }))
}

/// For a replica start (`--replica-of`): records the primary (checking it is the one
/// recorded before) and returns it with the replica's own key.
pub(crate) fn open_replica(
    store: &Store,
    db: &Path,
    args: &ReplicaArgs,
) -> Result<Option<(ReplicaOf, Keys)>> {
    let Some(url) = &args.replica_of else {
        return Ok(None);
    };
    let recorded = replica_of(store)?;
    let primary = match (&args.primary_pubkey, &recorded) {
        (Some(key), _) => PublicKey::parse(key).context("--primary-pubkey")?,
        (None, Some(recorded)) => recorded.primary,
        (None, None) => bail!(
            "--replica-of needs --primary-pubkey (the primary's relay public key) on first start"
        ),
    };
    if let Some(recorded) = &recorded
        && recorded.primary != primary
    {
        bail!(
            "this database replicates the relay {}, not {}",
            recorded.primary.to_hex(),
            primary.to_hex()
        );
    }
    if recorded.is_none() && store.head() > 0 && super::db::relay_key(store)? != Some(primary) {
        bail!(
            "this database holds another relay's log; a replica starts from an empty database or its own"
        );
    }
    super::db::set_relay_key(store, &primary)?;
    store.set_setting(REPLICA_OF, format!("{url} {}", primary.to_hex()).as_bytes())?;
    let path = db.join(REPLICA_KEY_FILE);
    let keys = if path.is_file() {
        super::relay::read_key_file(&path)?
    } else {
        let keys = Keys::generate();
        super::relay::write_key_file(&path, &keys)?;
        keys
    };
    eprintln!(
        "replica key {} (start the primary with --replica-key {})",
        keys.public_key().to_hex(),
        keys.public_key().to_hex()
    );
    Ok(Some((
        ReplicaOf {
            url: url.clone(),
            primary,
        },
        keys,
    )))
}

/// For a primary start: a replica database is refused unless `keys` are its primary's,
/// in which case the start promotes it.
pub(crate) fn check_primary(store: &Store, keys: &Keys) -> Result<()> {
    let Some(of) = replica_of(store)? else {
        return Ok(());
    };
    if keys.public_key() != of.primary {
        bail!(
            "this database is a replica of {} (relay key {}); start it with --replica-of, or promote it with the primary's secret key",
            of.url,
            of.primary.to_hex()
        );
    }
    store.set_setting(REPLICA_OF, b"")?;
    eprintln!(
        "promoted: this database no longer follows {}; it takes writes and applies the policy itself",
        of.url
    );
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    /// The primary's secret key (hex or nsec; mode 0600 or stricter): it becomes this
    /// database's `relay-secret.key`, so `highwater relay` serves it as the primary.
    #[arg(long, value_name = "PATH")]
    secret_key_file: PathBuf,
}

/// `highwater promote`: the replica stops following its primary and becomes one. Stop
/// the replica (and make sure the old primary takes no more writes) first.
pub(crate) fn run(global: &Global, args: &PromoteArgs) -> Result<ExitCode> {
    let store = super::db::open_writable(global)?.store;
    let Some(of) = replica_of(&store)? else {
        bail!("{} is not a replica", global.db.display());
    };
    let keys = super::relay::read_key_file(&args.secret_key_file)?;
    if keys.public_key() != of.primary {
        bail!(
            "that key is {}, not the primary's relay key {}",
            keys.public_key().to_hex(),
            of.primary.to_hex()
        );
    }
    let key_file = global.db.join(super::relay::DEFAULT_KEY_FILE);
    if key_file.exists() {
        bail!("{} exists; move it away first", key_file.display());
    }
    super::relay::write_key_file(&key_file, &keys)?;
    store.set_setting(REPLICA_OF, b"")?;
    println!(
        "promoted {}: it no longer follows {}; `highwater relay` serves it as relay {}",
        global.db.display(),
        of.url,
        of.primary.to_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// The replica's lag, for `highwater status` (`None`: not a replica).
pub(crate) fn lag(store: &Store) -> Result<Option<serde_json::Value>> {
    let Some(of) = replica_of(store)? else {
        return Ok(None);
    };
    let status = ReplicaStatus::read(store)?.unwrap_or_default();
    let now = Timestamp::now().as_secs();
    Ok(Some(serde_json::json!({
        "primary": of.url,
        "primary_pubkey": of.primary.to_hex(),
        "connected": status.connected,
        "events_behind": status.behind,
        "seconds_behind": status.seconds_behind(now),
        "last_contact_secs_ago": (status.last_contact > 0).then(|| now.saturating_sub(status.last_contact)),
        "recorded_secs_ago": (status.recorded_at > 0).then(|| now.saturating_sub(status.recorded_at)),
    })))
}

/// One line of `highwater status` for a replica.
pub(crate) fn lag_line(lag: &serde_json::Value) -> String {
    let secs = |k: &str| {
        lag[k].as_u64().map_or_else(
            || "? s (not caught up yet)".to_owned(),
            |s| format!("{s} s"),
        )
    };
    format!(
        "replica of {} ({}): {} events and {} behind its head; last contact {}",
        lag["primary"].as_str().unwrap_or("?"),
        if lag["connected"].as_bool() == Some(true) {
            "following"
        } else {
            "not connected"
        },
        lag["events_behind"],
        secs("seconds_behind"),
        lag["last_contact_secs_ago"]
            .as_u64()
            .map_or_else(|| "never".to_owned(), |s| format!("{s} s ago")),
    )
}
