//! Shared helpers for the relay's tests: an in-process relay on a loopback port over a
//! temporary database, and a client from rust-nostr's `nostr-sdk` (not written here).

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

pub mod transcript;

use std::path::Path;
use std::time::Duration;

use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_relay::{Relay, RelayError, RelayOptions};
use highwater_store::{Store, StoreOptions};
use nostr_sdk::prelude as sdk;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for an answer before it fails (never a pause: a bound).
pub const WAIT: Duration = Duration::from_secs(20);

/// The relay's secret key in every test (fixed, so restarts use the same key).
pub const RELAY_SECRET: &str = "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a";

/// A relay running in this process.
pub struct Running {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

pub fn relay_keys() -> nostr::prelude::Keys {
    nostr::prelude::Keys::parse(RELAY_SECRET).expect("a valid secret key")
}

/// The relay's public key in the client library's type.
pub fn relay_pubkey() -> sdk::PublicKey {
    sdk::PublicKey::from_hex(&relay_keys().public_key().to_hex()).expect("same key")
}

/// Opens (or reopens) the database in `dir` and serves it on a free loopback port.
pub async fn start(dir: &Path, options: RelayOptions) -> Running {
    serve(relay_over(dir, relay_keys(), options), "127.0.0.1:0").await
}

/// A relay over the database in `dir` (its projections configured with the test relay
/// key), signing with `keys` — the relay key, or a replica's own.
pub fn relay_over(dir: &Path, keys: nostr::prelude::Keys, options: RelayOptions) -> Relay {
    let store = Store::open(dir, StoreOptions::default()).expect("open the store");
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(relay_keys().public_key()))
        .expect("register the projections");
    let engine = builder.build().expect("start the engine");
    Relay::new(engine, groups, keys, options).expect("start the relay")
}

/// Serves `relay` on `addr` (a free port with `127.0.0.1:0`) until [`Running::stop`].
pub async fn serve(relay: Relay, addr: &str) -> Running {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind a loopback port");
    let url = format!("ws://{}", listener.local_addr().expect("local address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Running {
    /// Graceful shutdown: returns once the relay has stopped and released the database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the relay stops in time")
                .expect("the relay task did not panic")
                .expect("the relay stopped cleanly");
        }
    }
}

/// A connected nostr-sdk client signing with `keys`.
pub async fn client(url: &str, keys: &sdk::Keys, auto_auth: bool) -> sdk::Client {
    let opts = sdk::ClientOptions::new().automatic_authentication(auto_auth);
    let client = sdk::Client::builder()
        .signer(keys.clone())
        .opts(opts)
        .build();
    client.add_relay(url).await.expect("add the relay");
    client.connect().await;
    client.wait_for_connection(WAIT).await;
    client
}

/// A signed event of `kind` in `group` with extra tags.
pub fn group_event(
    keys: &sdk::Keys,
    kind: u16,
    group: &str,
    content: &str,
    tags: &[&[&str]],
) -> sdk::Event {
    let mut all = vec![sdk::Tag::parse(["h", group]).expect("h tag")];
    all.extend(
        tags.iter()
            .map(|t| sdk::Tag::parse(t.iter().copied()).expect("tag")),
    );
    sdk::EventBuilder::new(sdk::Kind::Custom(kind), content)
        .tags(all)
        .sign_with_keys(keys)
        .expect("sign")
}

/// Sends an event and returns the relay's answer: Ok(()) or the `OK` false message.
pub async fn send(client: &sdk::Client, event: &sdk::Event) -> Result<(), String> {
    let output = client.send_event(event).await.map_err(|e| e.to_string())?;
    match output.failed.values().next() {
        Some(message) => Err(message.clone()),
        None => Ok(()),
    }
}

/// Stored events matching `filter`.
pub async fn fetch(client: &sdk::Client, filter: sdk::Filter) -> Vec<sdk::Event> {
    client
        .fetch_events(filter, WAIT)
        .await
        .expect("fetch")
        .into_iter()
        .collect()
}

/// A filter for kinds in one group.
pub fn in_group(kinds: &[u16], group: &str) -> sdk::Filter {
    sdk::Filter::new()
        .kinds(kinds.iter().map(|&k| sdk::Kind::Custom(k)))
        .custom_tag(sdk::SingleLetterTag::lowercase(sdk::Alphabet::H), group)
}

/// The value of the first `name` tag.
pub fn tag<'a>(event: &'a sdk::Event, name: &str) -> Option<&'a str> {
    event
        .tags
        .iter()
        .find(|t| t.kind().to_string() == name)
        .and_then(|t| t.content())
}

/// The pubkeys of an event's `p` tags.
pub fn p_tags(event: &sdk::Event) -> Vec<String> {
    event
        .tags
        .iter()
        .filter(|t| t.kind().to_string() == "p")
        .filter_map(|t| t.content().map(str::to_owned))
        .collect()
}
