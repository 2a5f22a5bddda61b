//! The HTTP side of the listening socket: reading a request's head, answering the
//! NIP-11 information document (for `Accept: application/nostr+json`) or a short text,
//! and handing WebSocket upgrades to tungstenite with the bytes already read.

use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::shared::Shared;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// What the client asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    WebSocket,
    Nip11,
    Other,
}

/// Reads until the end of the request head; returns the bytes read and what they ask.
pub(crate) async fn read_head(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, Request)> {
    let mut buf = Vec::with_capacity(1_024);
    let mut chunk = [0u8; 2_048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let header = |name: &str| {
                head.lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(k, _)| k.trim() == name)
                    .map(|(_, v)| v.trim().to_owned())
                    .collect::<Vec<_>>()
            };
            let kind = if header("upgrade").iter().any(|v| v.contains("websocket")) {
                Request::WebSocket
            } else if header("accept")
                .iter()
                .any(|v| v.contains("application/nostr+json"))
            {
                Request::Nip11
            } else {
                Request::Other
            };
            return Ok((buf, kind));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
}

/// The NIP-11 relay information document.
///
/// `limitation.auth_required` is true only when reading needs NIP-42: with members-only
/// reading (`open_reads` off) every group's events are refused until a member
/// authenticates; by default (NIP-29) anyone reads groups that are not private.
/// `restricted_writes` is true when writing has a condition a client should know before
/// trying: only group events are accepted (`allow_ungrouped` off), or only members post
/// (`require_membership`). Refusals that depend on a group's own flags or on moderation
/// rights do not count: NIP-11 asks for conditions of the relay, not of each group.
pub(crate) fn nip11(shared: &Shared) -> serde_json::Value {
    let limits = &shared.options.limits;
    let policy = shared.policy.policy();
    json!({
        "name": shared.options.name,
        "description": shared.options.description,
        "pubkey": shared.keys.public_key().to_hex(),
        "supported_nips": [1, 11, 29, 42],
        "nip29": { "subgroups": true },
        "software": "highwater",
        "version": env!("CARGO_PKG_VERSION"),
        "limitation": {
            "max_message_length": limits.max_message_bytes,
            "max_subscriptions": limits.max_subscriptions,
            "max_subid_length": limits.max_subscription_id_bytes,
            "max_filters": limits.max_filters,
            "max_limit": limits.max_limit,
            "default_limit": limits.default_limit,
            "max_event_tags": shared.store.options().limits.max_tags,
            "auth_required": !policy.open_reads,
            "restricted_writes": !shared.options.allow_ungrouped || policy.require_membership,
        },
    })
}

/// Answers a plain HTTP request and closes.
pub(crate) async fn answer(
    stream: &mut TcpStream,
    shared: &Shared,
    request: &Request,
) -> std::io::Result<()> {
    let (content_type, body) = if *request == Request::Nip11 {
        ("application/nostr+json", nip11(shared).to_string())
    } else {
        (
            "text/plain; charset=utf-8",
            "highwater: a NIP-29 relay. Connect with a Nostr client over WebSocket.\n".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: *\r\nAccess-Control-Allow-Methods: GET, OPTIONS\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Answers `503` without reading the request (the relay is at `max_connections`).
pub(crate) async fn busy(stream: &mut TcpStream) -> std::io::Result<()> {
    let body = "highwater: too many connections; try again later.\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// A stream that yields `prefix` before the socket's own bytes.
#[derive(Debug)]
pub(crate) struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Prefixed {
    pub(crate) fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
