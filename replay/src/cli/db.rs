//! Opening the database: the store, the configuration stored in it (the relay key and
//! the write policy's options), and the engine with the four NIP-29 projections.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config, Policy};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};

use super::Global;

/// The setting under which the relay's public key (hex) is stored.
pub(crate) const RELAY_KEY: &str = "relay_pubkey";

/// The setting under which the write policy's options are stored (JSON, see
/// [`StoredPolicy`]).
pub(crate) const POLICY: &str = "policy";

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The relay's public key (hex or npub): its snapshot events (39000–39003) are the
    /// only ones trusted.
    #[arg(long, value_name = "KEY")]
    relay_pubkey: String,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// The options of the relay's write policy, as `init` and `import` take them. Each one
/// given is stored on first use; a later command giving a different value is refused.
#[derive(Debug, Default, Args)]
pub(crate) struct PolicyArgs {
    /// A relay admin besides the relay key (hex or npub; repeat for several). All of
    /// them are stored as one list.
    #[arg(long = "relay-admin", value_name = "KEY")]
    relay_admins: Vec<String>,
    /// Relay admins keep their powers in private groups.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    admins_manage_private: Option<bool>,
    /// Anyone may read groups that are neither private nor hidden (NIP-29; the
    /// default). `--open-reads false`: only members and relay admins read (zooid).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    open_reads: Option<bool>,
    /// Non-members may post to open, public, unrestricted groups.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    auto_join: Option<bool>,
    /// Joining a private or hidden group needs an invite code, as a closed one does
    /// (zooid). Default false: NIP-29 honours joins unless the group is closed.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    private_needs_invite: Option<bool>,
}

/// The stored form of the policy options.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent policy options, stored by name"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPolicy {
    relay_admins: Vec<String>,
    admins_manage_private: bool,
    open_reads: bool,
    auto_join: bool,
    /// Absent from what earlier versions stored: NIP-29's default then.
    #[serde(default)]
    private_needs_invite: bool,
}

/// NIP-29's text, as [`Policy::default`] has it.
impl Default for StoredPolicy {
    fn default() -> Self {
        let nip29 = Policy::default();
        Self {
            relay_admins: Vec::new(),
            admins_manage_private: nip29.admins_manage_private,
            open_reads: nip29.open_reads,
            auto_join: nip29.auto_join,
            private_needs_invite: nip29.private_needs_invite,
        }
    }
}

impl StoredPolicy {
    #[expect(
        clippy::field_reassign_with_default,
        reason = "options added to `Policy` later keep their defaults"
    )]
    fn to_policy(&self) -> Result<Policy> {
        let relay_admins = self
            .relay_admins
            .iter()
            .map(|k| parse_pubkey(k))
            .collect::<Result<_>>()?;
        // Field by field, so that options added to `Policy` later keep their defaults.
        let mut policy = Policy::default();
        policy.relay_admins = relay_admins;
        policy.admins_manage_private = self.admins_manage_private;
        policy.open_reads = self.open_reads;
        policy.auto_join = self.auto_join;
        policy.private_needs_invite = self.private_needs_invite;
        Ok(policy)
    }
}

/// Policy options parsed from the command line: only what was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyOptions {
    relay_admins: Option<Vec<String>>,
    admins_manage_private: Option<bool>,
    open_reads: Option<bool>,
    auto_join: Option<bool>,
    private_needs_invite: Option<bool>,
}

impl PolicyArgs {
    /// Checks the keys; nothing is stored yet.
    pub(crate) fn parse(&self) -> Result<PolicyOptions> {
        let relay_admins = if self.relay_admins.is_empty() {
            None
        } else {
            let mut keys = self
                .relay_admins
                .iter()
                .map(|k| parse_pubkey(k).map(|k| k.to_hex()).context("--relay-admin"))
                .collect::<Result<Vec<_>>>()?;
            keys.sort_unstable();
            keys.dedup();
            Some(keys)
        };
        Ok(PolicyOptions {
            relay_admins,
            admins_manage_private: self.admins_manage_private,
            open_reads: self.open_reads,
            auto_join: self.auto_join,
            private_needs_invite: self.private_needs_invite,
        })
    }
}

pub(crate) fn init(global: &Global, args: &InitArgs) -> Result<ExitCode> {
    // Everything is checked before the directory is created, and a failure after that
    // removes what this command created: a failed `init` leaves nothing behind.
    let key = parse_pubkey(&args.relay_pubkey).context("--relay-pubkey")?;
    let options = args.policy.parse()?;
    let created = !global.db.exists();
    let result = (|| {
        let store = open_store(global, false)?;
        set_relay_key(&store, &key)?;
        set_policy(&store, &options)
    })();
    if let Err(error) = result {
        if created {
            let _ = std::fs::remove_dir_all(&global.db);
        }
        return Err(error);
    }
    println!(
        "initialised {} with relay key {}",
        global.db.display(),
        key.to_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// A public key given as 64 hex characters or as an `npub`.
pub(crate) fn parse_pubkey(text: &str) -> Result<PublicKey> {
    let text = text.trim();
    if text.starts_with("nsec") {
        bail!(
            "{text:?} is a secret key (nsec); a public key is expected here (64 hex characters or npub1…)"
        );
    }
    PublicKey::parse(text).map_err(|e| {
        anyhow!("{text:?} is not a public key: expected 64 hex characters or an npub1… key ({e})")
    })
}

/// A secret key given as 64 hex characters or as an `nsec`.
pub(crate) fn parse_secret_key(text: &str) -> Result<SecretKey> {
    let text = text.trim();
    if text.starts_with("npub") {
        bail!(
            "{text:?} is a public key (npub); a secret key is expected here (64 hex characters or nsec1…)"
        );
    }
    SecretKey::parse(text)
        .map_err(|_| anyhow!("not a secret key: expected 64 hex characters or an nsec1… key"))
}

pub(crate) fn open_store(global: &Global, trusted: bool) -> Result<Store> {
    open_store_with(
        global,
        StoreOptions {
            trusted,
            ..StoreOptions::default()
        },
    )
}

pub(crate) fn open_store_with(global: &Global, options: StoreOptions) -> Result<Store> {
    Store::open(&global.db, options)
        .with_context(|| format!("opening the database at {}", global.db.display()))
}

/// The store of an existing database, opened read-only: no writer thread, nothing
/// written, and it works on a directory this user cannot write.
pub(crate) fn open_existing(global: &Global) -> Result<Store> {
    ensure_exists(global)?;
    let store = Store::open(&global.db, StoreOptions::read_only())
        .with_context(|| format!("opening the database at {} read-only", global.db.display()))?;
    if store.is_lockless() {
        eprintln!(
            "note: {} is not writable by this user; reading without LMDB's lock file, which is safe only while no other process writes this database",
            global.db.join("lock.mdb").display()
        );
    }
    Ok(store)
}

fn ensure_exists(global: &Global) -> Result<()> {
    if !global.db.join("data.mdb").is_file() {
        bail!(
            "no highwater database at {} (create one with `highwater demo`, `highwater import` or `highwater init`, or pass --db)",
            global.db.display()
        );
    }
    Ok(())
}

/// The relay key stored in the database, if any.
pub(crate) fn relay_key(store: &Store) -> Result<Option<PublicKey>> {
    let Some(bytes) = store.setting(RELAY_KEY)? else {
        return Ok(None);
    };
    let hex = String::from_utf8(bytes).context("the stored relay key is not text")?;
    Ok(Some(parse_pubkey(&hex).context("the stored relay key")?))
}

/// Stores the relay key on first use; a different key later is an error, because every
/// relay snapshot event already folded was judged against the first. The check and the
/// write are one transaction, so two processes racing with different keys cannot both
/// succeed.
pub(crate) fn set_relay_key(store: &Store, key: &PublicKey) -> Result<()> {
    match store.set_setting_once(RELAY_KEY, key.to_hex().as_bytes())? {
        None => Ok(()),
        Some(existing) => bail!(
            "this database belongs to relay key {}, not {}; use another --db for another relay",
            String::from_utf8_lossy(&existing),
            key.to_hex()
        ),
    }
}

fn stored_policy(store: &Store) -> Result<Option<StoredPolicy>> {
    let Some(bytes) = store.setting(POLICY)? else {
        return Ok(None);
    };
    Ok(Some(
        serde_json::from_slice(&bytes).context("the stored policy options are not readable")?,
    ))
}

/// The write policy stored in the database (the defaults when none is stored).
pub(crate) fn policy(store: &Store) -> Result<Policy> {
    stored_policy(store)?.unwrap_or_default().to_policy()
}

/// Stores the policy options on first use (the defaults for those not given). Later,
/// an option given with a value other than the stored one is refused, naming it: the
/// events already imported were judged under the stored options.
pub(crate) fn set_policy(store: &Store, options: &PolicyOptions) -> Result<()> {
    let Some(stored) = stored_policy(store)? else {
        let d = StoredPolicy::default();
        let first = StoredPolicy {
            relay_admins: options.relay_admins.clone().unwrap_or_default(),
            admins_manage_private: options
                .admins_manage_private
                .unwrap_or(d.admins_manage_private),
            open_reads: options.open_reads.unwrap_or(d.open_reads),
            auto_join: options.auto_join.unwrap_or(d.auto_join),
            private_needs_invite: options
                .private_needs_invite
                .unwrap_or(d.private_needs_invite),
        };
        first.to_policy()?;
        return Ok(store.set_setting(POLICY, &serde_json::to_vec(&first)?)?);
    };
    let mut differ = Vec::new();
    if let Some(admins) = &options.relay_admins
        && *admins != stored.relay_admins
    {
        differ.push(format!(
            "--relay-admin: stored [{}], given [{}]",
            stored.relay_admins.join(", "),
            admins.join(", ")
        ));
    }
    let flags = [
        (
            "--admins-manage-private",
            options.admins_manage_private,
            stored.admins_manage_private,
        ),
        ("--open-reads", options.open_reads, stored.open_reads),
        ("--auto-join", options.auto_join, stored.auto_join),
        (
            "--private-needs-invite",
            options.private_needs_invite,
            stored.private_needs_invite,
        ),
    ];
    for (flag, given, stored) in flags {
        if let Some(given) = given
            && given != stored
        {
            differ.push(format!("{flag}: stored {stored}, given {given}"));
        }
    }
    if differ.is_empty() {
        Ok(())
    } else {
        bail!(
            "this database was set up with other policy options ({}); the events in it were judged under the stored ones — use another --db, or leave the option out to use the stored value",
            differ.join("; ")
        )
    }
}

/// The store, the engine and the NIP-29 query API over it.
pub(crate) struct Db {
    pub(crate) store: Store,
    pub(crate) engine: Engine,
    pub(crate) groups: Groups,
}

/// Opens an existing database read-only for reading commands: a mistyped `--db` is an
/// error, not a new empty database, and nothing is written (no checkpoints).
pub(crate) fn open(global: &Global) -> Result<Db> {
    let store = open_existing(global)?;
    open_with(store, EngineOptions::default())
}

/// Opens an existing database for a command that writes (checkpoints).
pub(crate) fn open_writable(global: &Global) -> Result<Db> {
    ensure_exists(global)?;
    open_with(open_store(global, false)?, EngineOptions::default())
}

pub(crate) fn open_with(store: Store, options: EngineOptions) -> Result<Db> {
    let relay = relay_key(&store)?;
    if relay.is_none() && store.head() > 0 {
        tracing::warn!(
            "no relay key stored: relay snapshot events are ignored (set one with `highwater init --relay-pubkey`)"
        );
    }
    let config = Nip29Config {
        relay_pubkey: relay.unwrap_or(PublicKey::from_byte_array([0; 32])),
    };
    let mut builder = Engine::builder(store.clone(), options);
    let groups = Groups::register(&mut builder, config)?;
    let engine = builder.build()?;
    Ok(Db {
        store,
        engine,
        groups,
    })
}
