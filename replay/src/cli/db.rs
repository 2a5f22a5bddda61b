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

/// The store of an existing database.
pub(crate) fn open_existing(global: &Global) -> Result<Store> {
    if !global.db.join("data.mdb").is_file() {
        bail!(
            "no highwater database at {} (create one with `highwater import` or `highwater init`, or pass --db)",
            global.db.display()
        );
    }
    open_store(global, false)
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
/// relay snapshot event already folded was judged against the first.
pub(crate) fn set_relay_key(store: &Store, key: &PublicKey) -> Result<()> {
    match relay_key(store)? {
        Some(existing) if existing == *key => Ok(()),
        Some(existing) => bail!(
            "this database belongs to relay key {}, not {}; use another --db for another relay",
            existing.to_hex(),
            key.to_hex()
        ),
        None => Ok(store.set_setting(RELAY_KEY, key.to_hex().as_bytes())?),
    }
}

/// The store, the engine and the NIP-29 query API over it.
pub(crate) struct Db {
    pub(crate) store: Store,
    pub(crate) engine: Engine,
    pub(crate) groups: Groups,
}

/// Opens an existing database for reading commands: a mistyped `--db` is an error,
/// not a new empty database.
pub(crate) fn open(global: &Global) -> Result<Db> {
    let store = open_existing(global)?;
    open_with(store, EngineOptions::default())
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
