//! The HTTP answers of the relay's service (`service.rs`): the NIP-11 information
//! document, `/metrics`, `/health`, short texts, CORS, and reading the client's address
//! from `X-Forwarded-For`; and the raw `503` for a connection past `max_connections`.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::shared::Shared;

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
    // The name, description and icon set over NIP-86 (the `management` projection)
    // win over the configured ones.
    let [name, description, icon] = shared
        .policy
        .groups()
        .management_projection()
        .read(|m| [m.name(), m.description(), m.icon()].map(|v| v.map(str::to_owned)))
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "the management state cannot be read; NIP-11 shows the configured texts");
            [None, None, None]
        });
    let info = shared.info.read().clone();
    // A replica's state events are its primary's, signed with the primary's key.
    let relay = shared.policy.groups().config().relay_pubkey.to_hex();
    let mut document = json!({
        "name": name.unwrap_or_else(|| info.name.clone()),
        "description": description.unwrap_or_else(|| info.description.clone()),
        "pubkey": info.pubkey.clone().unwrap_or_else(|| relay.clone()),
        "self": relay,
        "supported_nips": [1, 11, 29, 42, 43, 70, 77, 86, 98],
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
    });
    for (field, value) in [
        ("contact", &info.contact),
        ("icon", &icon.or_else(|| info.icon.clone())),
        ("banner", &info.banner),
        ("terms_of_service", &info.terms_of_service),
    ] {
        if let Some(value) = value {
            document[field] = json!(value);
        }
    }
    if let Some(of) = &shared.options.replica_of {
        document["replica_of"] = json!({ "url": of.url, "pubkey": of.primary.to_hex() });
        document["limitation"]["restricted_writes"] = json!(true);
    }
    document
}

/// Whether a request asks for a WebSocket (`Upgrade: websocket`).
pub(crate) fn is_upgrade<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("websocket"))
}

/// Whether a request asks for the NIP-11 document (`Accept: application/nostr+json`).
pub(crate) fn wants_nip11<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/nostr+json"))
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A short text answer.
pub(crate) fn text(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        format!("{}\n", text.trim_end()),
    )
}

/// A JSON answer (NIP-86).
pub(crate) fn json(
    status: StatusCode,
    content_type: &'static str,
    value: &serde_json::Value,
) -> Response<Full<Bytes>> {
    response(status, content_type, value.to_string())
}

/// The NIP-11 document.
pub(crate) fn nip11_response(shared: &Shared) -> Response<Full<Bytes>> {
    response(
        StatusCode::OK,
        "application/nostr+json",
        nip11(shared).to_string(),
    )
}

/// The metrics in Prometheus' text format.
pub(crate) fn metrics(body: String) -> Response<Full<Bytes>> {
    response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        body,
    )
}

/// `503` for a WebSocket past `max_connections`.
pub(crate) fn busy() -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "highwater: too many connections; try again later.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// What CORS allows: any origin may `GET` (NIP-11) and `POST` (NIP-86) with the
/// headers NIP-86 and NIP-98 need.
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept";

/// The CORS preflight answer.
pub(crate) fn preflight() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// Adds the headers every answer carries: any origin may read it and call NIP-86.
pub(crate) fn with_cors(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    response
}

/// The last address of the `X-Forwarded-For` headers: the one the proxy in front of the
/// relay added (earlier ones are whatever the client claimed).
pub(crate) fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|last| last.trim().parse().ok())
}

/// Answers `503` without reading the request (the relay is at `max_connections`).
pub(crate) async fn busy_raw(stream: &mut TcpStream) -> std::io::Result<()> {
    let body = "highwater: too many connections; try again later.\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_proxy_s_own_entry_is_the_last_one() {
        let mut headers = hyper::HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.1".parse().unwrap(),
        );
        headers.append("x-forwarded-for", "192.0.2.7".parse().unwrap());
        assert_eq!(
            super::forwarded_for(&headers),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(super::forwarded_for(&hyper::HeaderMap::new()), None);
    }
}
