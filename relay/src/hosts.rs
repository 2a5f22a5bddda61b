//! Virtual relays: several relays, each with its own database, key and policy, served
//! by one listener and chosen by the HTTP `Host` header of each request (zooid's
//! model: one configuration file per host).
//!
//! Each TCP connection is served by hyper; every request on it goes to the relay whose
//! host its `Host` header names (port and case ignored) — the WebSocket upgrade too, so
//! a Nostr connection belongs to one relay for its life. A request for a host no relay
//! serves is answered `421 Misdirected Request`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Relay;
use crate::error::RelayError;
use crate::service::{ClientAddr, RelayService};

/// One relay of [`serve_hosts`] and the host it answers for.
#[derive(Debug)]
pub struct VirtualRelay {
    /// The host name (as [`host_name`] normalises it).
    pub host: String,
    /// The relay.
    pub relay: Relay,
}

impl VirtualRelay {
    /// `relay`, answering requests for `host`.
    pub fn new(host: &str, relay: Relay) -> Self {
        Self {
            host: host_name(host),
            relay,
        }
    }
}

/// A `Host` header's value as virtual relays are chosen by: lower case, without the
/// port (`Groups.Example.com:443` → `groups.example.com`; `[::1]:7777` → `[::1]`).
pub fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty()
                && !name.ends_with(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name.to_owned()
        }
        _ => host,
    }
}

/// The relays by host.
#[derive(Debug)]
struct Routes(Vec<(String, RelayService)>);

impl Routes {
    fn find<B>(&self, request: &Request<B>) -> Result<&RelayService, String> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(ToOwned::to_owned)
            .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
            .map(|h| host_name(&h))
            .unwrap_or_default();
        self.0
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, service)| service)
            .ok_or(host)
    }
}

fn misdirected(host: &str) -> Response<Full<Bytes>> {
    let body = if host.is_empty() {
        "highwater: this server serves several relays; the request names none (no Host header)\n"
            .to_owned()
    } else {
        format!("highwater: no relay here serves host {host}\n")
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::MISDIRECTED_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves `relays` on `listener`, each request going to the relay its `Host` names,
/// until `shutdown` resolves; then stops every relay as [`Relay::serve`] stops one.
///
/// # Errors
///
/// [`RelayError::Thread`] when a relay's write path cannot be started or stopped, and
/// the engine's error when a relay's final checkpoints fail (the other relays are
/// still stopped).
pub async fn serve_hosts(
    relays: Vec<VirtualRelay>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let mut routes = Vec::with_capacity(relays.len());
    for VirtualRelay { host, relay } in relays {
        routes.push((host, relay.service()?));
    }
    let routes = Arc::new(Routes(routes));
    let (stop, stopped) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let routes = routes.clone();
                    let mut stopped = stopped.clone();
                    conns.spawn(async move {
                        let handler = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                            let routes = routes.clone();
                            request.extensions_mut().insert(ClientAddr(peer));
                            async move {
                                let response = match routes.find(&request) {
                                    Ok(service) => service.handle(request).await,
                                    Err(host) => misdirected(&host),
                                };
                                Ok::<_, Infallible>(response)
                            }
                        });
                        crate::conn::serve_http(stream, handler, &mut stopped)
                            .instrument(tracing::info_span!("tcp", %peer))
                            .await;
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    stop.send_replace(true);
    let mut result = Ok(());
    for (host, service) in &routes.0 {
        if let Err(e) = service.shutdown().await {
            tracing::error!(%host, error = %e, "stopping the relay failed");
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    while conns.join_next().await.is_some() {}
    result
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(host_name("Relay.Example.com:7777"), "relay.example.com");
        assert_eq!(host_name("a.test"), "a.test");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("::1"), "::1");
    }
}
