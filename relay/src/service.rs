//! The relay as an HTTP service (hyper's `Request`/`Response`, tower's `Service`): what
//! `Relay::serve` runs on its own listener, and what another server (an axum router, a
//! hyper server) routes to so the relay shares a port with other routes.
//!
//! One request is one of: a WebSocket upgrade (the Nostr connection), a CORS preflight,
//! a NIP-86 management call (`POST`, `Content-Type: application/nostr+json+rpc`), the
//! NIP-11 document (`Accept: application/nostr+json`), `GET /metrics`, `GET /health`,
//! or a short text at `/`; anything else is 404. Every answer allows any origin, so a
//! browser client (Flotilla) can read NIP-11 and call NIP-86.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::conn;
use crate::error::RelayError;
use crate::handoff::{Ctx, Writes};
use crate::hub::Slot;
use crate::shared::Shared;
use crate::{http, nip86};

/// What a connection reads from its socket at a time. tungstenite zero-fills this much
/// of its read buffer before every read (`FrameCodec::read_in`), and keeps it allocated
/// for the life of the connection; its default, 128 KiB, made that fill about 4 % of the
/// relay's CPU under the write load (BENCHMARKS.md, "The relay rows"), and 128 MiB for a
/// thousand idle subscribers. An event is a few hundred bytes to a few KiB; a frame
/// larger than this is still read whole (the buffer grows to the frame's length, up to
/// `max_message_bytes`).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// The client's address, as a request extension. [`Relay::serve`](crate::Relay::serve)
/// sets it; a server that routes to a [`RelayService`] sets it from its own connection
/// information (axum's `ConnectInfo`), else per-IP limits do not apply to its clients
/// (unless `trust_proxy` takes the address from `X-Forwarded-For`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A request on a connection `Relay::serve` already counted under `max_connections`:
/// its place, handed to the WebSocket connection if the request upgrades.
#[derive(Debug, Clone)]
pub(crate) struct Admitted(pub(crate) Arc<Mutex<Option<Slot>>>);

/// Serves one accepted socket (HTTP/1.1: NIP-11, NIP-86, `/metrics`, `/health`, or a
/// WebSocket upgrade) until it closes, the client is too slow, or shutdown. The socket
/// holds one place under `max_connections` from the start; past it, it is answered
/// `503` without reading the request.
pub(crate) async fn serve_tcp(service: RelayService, mut stream: TcpStream, peer: SocketAddr) {
    let span = tracing::info_span!("tcp", %peer);
    async move {
        let shared = &service.ctx().shared;
        let limit = shared.options.limits.max_connections;
        let Some(slot) = shared.hub.meter.admit(limit) else {
            tracing::warn!(limit, "too many connections: answering 503");
            if let Err(e) = http::busy_raw(&mut stream).await {
                tracing::debug!(error = %e, "answering 503 failed");
            }
            return;
        };
        let admitted = Admitted(Arc::new(parking_lot::Mutex::new(Some(slot))));
        let mut shutdown = service.ctx().shutdown.clone();
        let handler = {
            let service = service.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                let service = service.clone();
                request.extensions_mut().insert(ClientAddr(peer));
                request.extensions_mut().insert(admitted.clone());
                async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
            })
        };
        conn::serve_http(stream, handler, &mut shutdown).await;
    }
    .instrument(span)
    .await;
}

/// A running relay as an HTTP service. Clones share the relay.
///
/// Route every request for the relay's URL to it (in axum:
/// `Router::new().route("/other", …).fallback_service(service)`); it answers WebSocket
/// upgrades itself (hyper's upgrade mechanism), so the server must keep upgrades
/// enabled (axum and hyper-util's `serve_connection_with_upgrades` do). Stop it with
/// [`RelayService::shutdown`]: the write path is drained and checkpoints are written.
/// See `relay/examples/axum_router.rs`.
#[derive(Clone)]
pub struct RelayService {
    running: Arc<Running>,
}

impl std::fmt::Debug for RelayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayService")
            .field("relay", &self.running.ctx.shared.keys.public_key())
            .finish_non_exhaustive()
    }
}

struct Running {
    ctx: Ctx,
    writes: Writes,
    stop: watch::Sender<bool>,
    tasks: TaskTracker,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
}

impl RelayService {
    /// Starts the write path's threads for `shared`.
    pub(crate) fn start(shared: Arc<Shared>) -> Result<Self, RelayError> {
        let (sender, threads) =
            crate::writes::start(&shared).map_err(|e| RelayError::Thread(e.to_string()))?;
        let (stop, stopped) = watch::channel(false);
        let writes = Writes(Arc::new(RwLock::new(Some(sender))));
        Ok(Self {
            running: Arc::new(Running {
                ctx: Ctx {
                    shared,
                    writes: writes.clone(),
                    shutdown: stopped,
                },
                writes,
                stop,
                tasks: TaskTracker::new(),
                threads: Mutex::new(threads),
                next_id: AtomicU64::new(0),
            }),
        })
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.running.ctx
    }

    /// Runs `task` as one of the relay's connections: [`RelayService::shutdown`] waits
    /// for it.
    pub(crate) fn track<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.running.tasks.spawn(task);
    }

    /// Stops the relay: every connection is closed (writes in flight are answered
    /// first), the write path drains and stops, and checkpoints are written. Requests
    /// after it are answered 503.
    ///
    /// # Errors
    ///
    /// [`RelayError::Thread`] when a write-path thread cannot be joined, and the
    /// engine's error when the checkpoints fail.
    pub async fn shutdown(&self) -> Result<(), RelayError> {
        let running = &self.running;
        running.stop.send_replace(true);
        running.tasks.close();
        running.tasks.wait().await;
        running.writes.0.write().take();
        let shared = running.ctx.shared.clone();
        shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        let threads = std::mem::take(&mut *running.threads.lock());
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
            shared.engine.checkpoint()
        })
        .await
        .map_err(|e| RelayError::Thread(e.to_string()))??;
        tracing::info!("relay stopped");
        Ok(())
    }

    /// Answers one request.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let response = self.route(request).await;
        http::with_cors(response)
    }

    async fn route<B>(&self, mut request: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = &self.running.ctx.shared;
        if request.method() == Method::OPTIONS {
            return http::preflight();
        }
        if http::is_upgrade(&request) {
            return self.upgrade(&mut request);
        }
        let rpc = request.method() == Method::POST
            && request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().starts_with(nip86::CONTENT_TYPE));
        if rpc {
            let ip = self.client_ip(&request);
            if let Some(refusal) = shared.limiters.check_ip(ip) {
                return http::text(StatusCode::TOO_MANY_REQUESTS, &refusal);
            }
            let (parts, body) = request.into_parts();
            let limit = shared.options.limits.max_message_bytes;
            let body = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return http::text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("request body over {limit} bytes or unreadable"),
                    );
                }
            };
            return nip86::answer(&self.running.ctx, &parts, &body).await;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        match request.uri().path() {
            "/health" => {
                if self.is_healthy().await {
                    http::text(StatusCode::OK, "ok")
                } else {
                    http::text(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
            }
            "/metrics" => {
                let healthy = self.is_healthy().await;
                http::metrics(shared.metrics.render(&shared.gauges(healthy)))
            }
            _ if http::wants_nip11(&request) => http::nip11_response(shared),
            "/" => http::text(
                StatusCode::OK,
                "highwater: a NIP-29 relay. Connect with a Nostr client over WebSocket.",
            ),
            _ => http::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// The client's address: the last `X-Forwarded-For` entry with `trust_proxy`, else
    /// the connection's peer (the [`ClientAddr`] extension).
    fn client_ip<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let shared = &self.running.ctx.shared;
        if shared.options.trust_proxy
            && let Some(ip) = http::forwarded_for(request.headers())
        {
            return Some(ip);
        }
        request.extensions().get::<ClientAddr>().map(|a| a.0.ip())
    }

    /// Whether the relay can take writes: it is not stopping, its write path's threads
    /// run, the store's writer answers (an empty commit) and no commit has found the
    /// writer gone.
    pub(crate) async fn is_healthy(&self) -> bool {
        let shared = self.running.ctx.shared.clone();
        if *self.running.stop.borrow()
            || shared.stopping.load(Ordering::Acquire)
            || shared.writer_failed.load(Ordering::Acquire)
            || self.running.writes.sender().is_none()
            || self
                .running
                .threads
                .lock()
                .iter()
                .any(JoinHandle::is_finished)
        {
            return false;
        }
        let probe = tokio::task::spawn_blocking(move || {
            shared
                .store
                .submit(Vec::new())
                .and_then(highwater_store::Ticket::wait)
                .is_ok()
        });
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), probe).await;
        answered.is_ok_and(|joined| joined.unwrap_or(false))
    }

    /// Accepts a WebSocket upgrade: answers 101 and runs the connection once hyper
    /// hands over the socket.
    fn upgrade<B>(&self, request: &mut Request<B>) -> Response<Full<Bytes>> {
        let ctx = &self.running.ctx;
        if *ctx.shutdown.borrow() {
            return http::text(StatusCode::SERVICE_UNAVAILABLE, "the relay is stopping");
        }
        let Some(key) = request
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .map(|k| derive_accept_key(k.as_bytes()))
        else {
            return http::text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let admitted = request
            .extensions()
            .get::<Admitted>()
            .and_then(|a| a.0.lock().take());
        let limit = ctx.shared.options.limits.max_connections;
        let Some(slot) = admitted.or_else(|| ctx.shared.hub.meter.admit(limit)) else {
            tracing::warn!(limit, "too many connections: answering 503");
            return http::busy();
        };
        let ip = self.client_ip(request);
        let peer = request.extensions().get::<ClientAddr>().map(|a| a.0);
        let id = self.running.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let on_upgrade = hyper::upgrade::on(request);
        let ctx = ctx.clone();
        self.track(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let limits = &ctx.shared.options.limits;
            let mut config = WebSocketConfig::default();
            config.read_buffer_size = READ_BUFFER_BYTES;
            config.max_message_size = Some(limits.max_message_bytes);
            config.max_frame_size = Some(limits.max_message_bytes);
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            conn::serve_ws(ctx, ws, conn::Peer { id, ip, addr: peer }, slot).await;
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

impl<B> tower_service::Service<Request<B>> for RelayService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(request).await) })
    }
}
