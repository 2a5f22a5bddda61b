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

/// The options of the relay's write policy, as `init`, `import` and `relay` take them.
/// On a database with no policy stored, the ones given are stored (the defaults for the
/// others); later, options given apply to that command's run only (`highwater config
/// set` changes what is stored).
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

/// The stored form of the policy options. Options added after a database was made
/// are absent from what it stored: NIP-29's default then.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent policy options, stored by name"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoredPolicy {
    pub(crate) relay_admins: Vec<String>,
    pub(crate) admins_manage_private: bool,
    pub(crate) open_reads: bool,
    pub(crate) auto_join: bool,
    pub(crate) private_needs_invite: bool,
    pub(crate) require_membership: bool,
    pub(crate) admin_create_only: bool,
    pub(crate) private_admin_only: bool,
    pub(crate) group_admin_roles: Vec<String>,
    pub(crate) answer_joins: bool,
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
            require_membership: nip29.require_membership,
            admin_create_only: nip29.admin_create_only,
            private_admin_only: nip29.private_admin_only,
            group_admin_roles: nip29.group_admin_roles.into_iter().collect(),
            answer_joins: nip29.answer_joins,
        }
    }
}

impl StoredPolicy {
    pub(crate) fn to_policy(&self) -> Result<Policy> {
        let relay_admins = self
            .relay_admins
            .iter()
            .map(|k| parse_pubkey(k))
            .collect::<Result<_>>()?;
        Ok(Policy {
            relay_admins,
            admins_manage_private: self.admins_manage_private,
            open_reads: self.open_reads,
            auto_join: self.auto_join,
            require_membership: self.require_membership,
            private_needs_invite: self.private_needs_invite,
            admin_create_only: self.admin_create_only,
            private_admin_only: self.private_admin_only,
            group_admin_roles: self.group_admin_roles.iter().cloned().collect(),
            answer_joins: self.answer_joins,
        })
    }

    /// Each option's name (as `highwater config set` and the configuration file's
    /// `[policy]`/`[groups]` keys name it) and value, for saying what changed.
    pub(crate) fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "policy.relay_admins",
                format!("[{}]", self.relay_admins.join(", ")),
            ),
            ("policy.open", self.open_reads.to_string()),
            (
                "policy.require_membership",
                self.require_membership.to_string(),
            ),
            ("policy.join_by_posting", self.auto_join.to_string()),
            (
                "policy.private_needs_invite",
                self.private_needs_invite.to_string(),
            ),
            ("groups.auto_join", self.answer_joins.to_string()),
            (
                "groups.admin_create_only",
                self.admin_create_only.to_string(),
            ),
            (
                "groups.private_admin_only",
                self.private_admin_only.to_string(),
            ),
            (
                "groups.private_relay_admin_access",
                self.admins_manage_private.to_string(),
            ),
            (
                "groups.admin_roles",
                format!("[{}]", self.group_admin_roles.join(", ")),
            ),
        ]
    }

    /// What differs from `before`, as `name: old → new`.
    pub(crate) fn changes_from(&self, before: &StoredPolicy) -> Vec<String> {
        before
            .entries()
            .into_iter()
            .zip(self.entries())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((name, old), (_, new))| format!("{name}: {old} → {new}"))
            .collect()
    }
}

/// Policy options from one source (the command line, a configuration file): only what
/// it gave.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyOptions {
    pub(crate) relay_admins: Option<Vec<String>>,
    pub(crate) admins_manage_private: Option<bool>,
    pub(crate) open_reads: Option<bool>,
    pub(crate) auto_join: Option<bool>,
    pub(crate) private_needs_invite: Option<bool>,
    pub(crate) require_membership: Option<bool>,
    pub(crate) admin_create_only: Option<bool>,
    pub(crate) private_admin_only: Option<bool>,
    pub(crate) group_admin_roles: Option<Vec<String>>,
    pub(crate) answer_joins: Option<bool>,
}

impl PolicyOptions {
    /// `base` with the options given here replacing its own.
    pub(crate) fn over(&self, base: &StoredPolicy) -> StoredPolicy {
        StoredPolicy {
            relay_admins: self
                .relay_admins
                .clone()
                .unwrap_or_else(|| base.relay_admins.clone()),
            admins_manage_private: self
                .admins_manage_private
                .unwrap_or(base.admins_manage_private),
            open_reads: self.open_reads.unwrap_or(base.open_reads),
            auto_join: self.auto_join.unwrap_or(base.auto_join),
            private_needs_invite: self
                .private_needs_invite
                .unwrap_or(base.private_needs_invite),
            require_membership: self.require_membership.unwrap_or(base.require_membership),
            admin_create_only: self.admin_create_only.unwrap_or(base.admin_create_only),
            private_admin_only: self.private_admin_only.unwrap_or(base.private_admin_only),
            group_admin_roles: self
                .group_admin_roles
                .clone()
                .unwrap_or_else(|| base.group_admin_roles.clone()),
            answer_joins: self.answer_joins.unwrap_or(base.answer_joins),
        }
    }
}

/// Keys as the policy stores them: hex, sorted, without repeats.
pub(crate) fn canonical_keys(keys: &[String], what: &str) -> Result<Vec<String>> {
    let mut keys = keys
        .iter()
        .map(|k| parse_pubkey(k).map(|k| k.to_hex()).context(what.to_owned()))
        .collect::<Result<Vec<_>>>()?;
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

impl PolicyArgs {
    /// Checks the keys; nothing is stored yet.
    pub(crate) fn parse(&self) -> Result<PolicyOptions> {
        let relay_admins = if self.relay_admins.is_empty() {
            None
        } else {
            Some(canonical_keys(&self.relay_admins, "--relay-admin")?)
        };
        Ok(PolicyOptions {
            relay_admins,
            admins_manage_private: self.admins_manage_private,
            open_reads: self.open_reads,
            auto_join: self.auto_join,
            private_needs_invite: self.private_needs_invite,
            ..PolicyOptions::default()
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
        // `init` stores what it is given, over what an earlier one stored.
        let before = stored_policy(&store)?;
        let after = options.over(&before.clone().unwrap_or_default());
        store_policy(&store, &after)?;
        if let Some(before) = before {
            let changes = after.changes_from(&before);
            if !changes.is_empty() {
                eprintln!("policy changed: {}", changes.join("; "));
            }
        }
        Ok(())
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

pub(crate) fn stored_policy(store: &Store) -> Result<Option<StoredPolicy>> {
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

/// Replaces the stored policy options.
pub(crate) fn store_policy(store: &Store, policy: &StoredPolicy) -> Result<()> {
    policy.to_policy()?;
    Ok(store.set_setting(POLICY, &serde_json::to_vec(policy)?)?)
}

/// The policy a command runs under: the stored options (stored first, with the
/// options given and the defaults for the rest, when the database has none), with the
/// options given replacing them for this run. The options are configuration, not
/// history: the folds never read them, and a change affects only later decisions.
pub(crate) fn set_policy(store: &Store, options: &PolicyOptions) -> Result<StoredPolicy> {
    let Some(stored) = stored_policy(store)? else {
        let first = options.over(&StoredPolicy::default());
        store_policy(store, &first)?;
        return Ok(first);
    };
    let run = options.over(&stored);
    let changes = run.changes_from(&stored);
    if !changes.is_empty() {
        eprintln!(
            "note: this run's policy differs from the stored one ({}); `highwater config set` changes what is stored",
            changes.join("; ")
        );
    }
    Ok(run)
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

/// The store of an existing database, opened for writing.
pub(crate) fn open_writable_store(global: &Global) -> Result<Store> {
    ensure_exists(global)?;
    open_store(global, false)
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
