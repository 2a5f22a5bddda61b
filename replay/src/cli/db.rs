//! Opening the database: the store, the relay key it was created with, and the engine
//! with the four NIP-29 projections.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::PublicKey;

use super::Global;

/// The setting under which the relay's public key (hex) is stored.
const RELAY_KEY: &str = "relay_pubkey";

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The relay's public key (64 hex characters): its snapshot events (39000–39003)
    /// are the only ones trusted.
    #[arg(long, value_name = "HEX")]
    relay_pubkey: String,
}

pub(crate) fn init(global: &Global, args: &InitArgs) -> Result<ExitCode> {
    let store = open_store(global, false)?;
    let key = parse_pubkey(&args.relay_pubkey)?;
    set_relay_key(&store, &key)?;
    println!(
        "initialised {} with relay key {}",
        global.db.display(),
        key.to_hex()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn parse_pubkey(hex: &str) -> Result<PublicKey> {
    PublicKey::from_hex(hex.trim())
        .with_context(|| format!("{hex:?} is not a public key (64 hex characters)"))
}

pub(crate) fn open_store(global: &Global, trusted: bool) -> Result<Store> {
    Store::open(
        &global.db,
        StoreOptions {
            trusted,
            ..StoreOptions::default()
        },
    )
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
            "no highwater database at {} (create one with `highwater import` or `highwater init`, or pass --db)",
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
        relay_pubkey: relay.map_or([0; 32], PublicKey::to_bytes),
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
