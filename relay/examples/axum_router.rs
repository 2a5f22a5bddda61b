//! The relay sharing one port with other routes: an axum router serves `GET /hello`
//! itself and hands everything else (WebSocket upgrades, NIP-11, NIP-86, `/metrics`,
//! `/health`) to the relay's service.
//!
//! ```sh
//! cargo run -p highwater-relay --example axum_router -- /tmp/axum-relay.lmdb 127.0.0.1:7777
//! curl http://127.0.0.1:7777/hello
//! curl -H 'Accept: application/nostr+json' http://127.0.0.1:7777/
//! ```
//!
//! The relay's tests include this file and run [`router`] (relay/tests/operations.rs).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use highwater_relay::{ClientAddr, Relay, RelayService};

/// The application's router: its own route, then the relay for everything else. The
/// client's address (axum's `ConnectInfo`) is passed on as the relay's [`ClientAddr`]
/// so per-IP limits apply.
pub fn router(relay: Relay) -> Result<(Router, RelayService), highwater_relay::RelayError> {
    let service = relay.service()?;
    let router = Router::new()
        .route("/hello", get(|| async { "hello from the application\n" }))
        .fallback_service(service.clone())
        .layer(middleware::from_fn(client_addr));
    Ok((router, service))
}

async fn client_addr(request: Request, next: Next) -> Response {
    let mut request = request;
    if let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let addr = *addr;
        request.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(request).await
}

/// Opens (or creates) the database at `dir` with a relay key made for this run.
#[allow(dead_code, reason = "the tests build their relay themselves")]
fn open(dir: &str) -> Result<Relay, Box<dyn std::error::Error>> {
    use highwater_engine::{Engine, EngineOptions};
    use highwater_projections::{Groups, Nip29Config};
    use highwater_relay::RelayOptions;
    use highwater_store::{Store, StoreOptions};

    let keys = nostr::prelude::Keys::generate();
    let store = Store::open(dir, StoreOptions::default())?;
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(keys.public_key()))?;
    let engine = builder.build()?;
    Ok(Relay::new(engine, groups, keys, RelayOptions::default())?)
}

#[allow(dead_code, reason = "the tests call `router` instead")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "axum-relay.lmdb".into());
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:7777".into());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (router, service) = router(open(&dir)?)?;
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        service.shutdown().await?;
        Ok(())
    })
}
