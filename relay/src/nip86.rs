//! NIP-86 relay management over HTTP, authorized by NIP-98.
//!
//! A `POST` to the relay's URL with `Content-Type: application/nostr+json+rpc` and a
//! body `{"method": "…", "params": […]}` is answered `{"result": …}` or
//! `{"result": null, "error": "…"}`. The caller proves who it is with a kind-27235
//! event in `Authorization: Nostr <base64>`: signed, dated within
//! [`AUTH_WINDOW_SECS`] of the relay's clock, `u` naming this relay's URL, `method`
//! `POST` and `payload` the SHA-256 of the body. No or a bad authorization is answered
//! 401; a valid one from a key that is neither a relay admin (the policy's
//! `relay_admins`) nor the relay key is answered 403.
//!
//! A change (a ban, a new name) is an event of kind
//! [`MANAGEMENT_KIND`](highwater_projections::MANAGEMENT_KIND) signed by the relay key,
//! sent through the write path like a client's event and answered once it is durable;
//! the `management` projection folds it (see `highwater_projections::Management`), so
//! the change persists and every reader sees it. Lists are read from that projection.

use base64::Engine as _;
use bytes::Bytes;
use highwater_projections::{Listed, MANAGEMENT_KIND, ManagementState, parse_hex32};
use http_body_util::Full;
use hyper::header;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use nostr::prelude::{Event, EventBuilder, FinalizeEvent, Kind, PublicKey, Tag, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::handoff::{self, Ctx};
use crate::http;

/// NIP-86's content type, of requests and answers.
pub(crate) const CONTENT_TYPE: &str = "application/nostr+json+rpc";

/// How far a NIP-98 event's `created_at` may be from the relay's clock (NIP-98
/// suggests 60 seconds).
pub(crate) const AUTH_WINDOW_SECS: u64 = 60;

/// NIP-98's HTTP-auth kind.
const HTTP_AUTH_KIND: u16 = 27_235;

/// The methods answered, in `supportedmethods`' order.
pub(crate) const METHODS: [&str; 13] = [
    "supportedmethods",
    "banpubkey",
    "unbanpubkey",
    "listbannedpubkeys",
    "allowpubkey",
    "unallowpubkey",
    "listallowedpubkeys",
    "banevent",
    "unbanevent",
    "listbannedevents",
    "changerelayname",
    "changerelaydescription",
    "changerelayicon",
];

/// Why a request is not answered with a result.
enum Failure {
    /// 401: no or a bad NIP-98 authorization.
    Unauthorized(String),
    /// 403: a valid authorization from a key that may not manage the relay.
    Forbidden(String),
    /// 200 with `error`: an unknown method or bad parameters.
    Bad(String),
    /// 500: the relay could not do it.
    Failed(String),
}

/// Answers one NIP-86 request.
pub(crate) async fn answer(ctx: &Ctx, parts: &Parts, body: &Bytes) -> Response<Full<Bytes>> {
    let outcome = match authorize(ctx, parts, body) {
        Ok(admin) => call(ctx, admin, body).await,
        Err(failure) => Err(failure),
    };
    let metrics = &ctx.shared.metrics;
    let (status, value) = match outcome {
        Ok(result) => {
            metrics.count_nip86("ok");
            (StatusCode::OK, json!({ "result": result }))
        }
        Err(Failure::Unauthorized(e)) => {
            metrics.count_nip86("unauthorized");
            (
                StatusCode::UNAUTHORIZED,
                json!({ "result": null, "error": e }),
            )
        }
        Err(Failure::Forbidden(e)) => {
            metrics.count_nip86("forbidden");
            (StatusCode::FORBIDDEN, json!({ "result": null, "error": e }))
        }
        Err(Failure::Bad(e)) => {
            metrics.count_nip86("error");
            (StatusCode::OK, json!({ "result": null, "error": e }))
        }
        Err(Failure::Failed(e)) => {
            metrics.count_nip86("error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "result": null, "error": e }),
            )
        }
    };
    http::json(status, CONTENT_TYPE, &value)
}

/// Checks the NIP-98 authorization; returns the authorized manager's key.
fn authorize(ctx: &Ctx, parts: &Parts, body: &[u8]) -> Result<PublicKey, Failure> {
    let unauthorized = |why: &str| Failure::Unauthorized(format!("unauthorized: {why}"));
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("a NIP-98 Authorization header is required"))?;
    let encoded = header
        .strip_prefix("Nostr ")
        .ok_or_else(|| unauthorized("the Authorization scheme must be Nostr"))?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| unauthorized("the Authorization is not base64"))?;
    let event = Event::from_json(&json).map_err(|_| unauthorized("not a Nostr event"))?;
    if event.kind.as_u16() != HTTP_AUTH_KIND {
        return Err(unauthorized("the event must be of kind 27235"));
    }
    if event.verify().is_err() {
        return Err(unauthorized("bad id or signature"));
    }
    let now = Timestamp::now().as_secs();
    if now.abs_diff(event.created_at.as_secs()) > AUTH_WINDOW_SECS {
        return Err(unauthorized(&format!(
            "created_at is more than {AUTH_WINDOW_SECS} seconds away"
        )));
    }
    let tag = |name: &str| {
        event
            .tags
            .iter()
            .find(|t| t.kind() == name)
            .and_then(|t| t.content())
    };
    if !tag("method").is_some_and(|m| m.eq_ignore_ascii_case("POST")) {
        return Err(unauthorized("the method tag must be POST"));
    }
    let u = tag("u").ok_or_else(|| unauthorized("a u tag is required"))?;
    if !names_this_relay(ctx, parts, u) {
        return Err(unauthorized("the u tag names another URL"));
    }
    let digest = hex::encode(Sha256::digest(body));
    if !tag("payload").is_some_and(|p| p.eq_ignore_ascii_case(&digest)) {
        return Err(unauthorized(
            "the payload tag must be the SHA-256 of the body",
        ));
    }
    let shared = &ctx.shared;
    if event.pubkey != shared.keys.public_key()
        && !shared.policy.policy().relay_admins.contains(&event.pubkey)
    {
        return Err(Failure::Forbidden(
            "restricted: only the relay's admins manage it".into(),
        ));
    }
    Ok(event.pubkey)
}

/// Whether a NIP-98 `u` names the URL this request was sent to: the configured
/// `public_url` when there is one (its `ws`/`wss` scheme read as `http`/`https`), else
/// the request's `Host` and path (whatever the scheme: behind a TLS proxy the relay
/// cannot know it). A trailing `/` is ignored.
fn names_this_relay(ctx: &Ctx, parts: &Parts, u: &str) -> bool {
    fn strip(url: &str) -> &str {
        let url = url.trim().trim_end_matches('/');
        ["https://", "http://", "wss://", "ws://"]
            .iter()
            .find_map(|s| url.strip_prefix(s))
            .unwrap_or(url)
    }
    fn secure(url: &str) -> Option<bool> {
        let url = url.trim();
        if url.starts_with("https://") || url.starts_with("wss://") {
            Some(true)
        } else if url.starts_with("http://") || url.starts_with("ws://") {
            Some(false)
        } else {
            None
        }
    }
    if let Some(public) = &ctx.shared.options.public_url {
        return secure(u).is_some() && secure(u) == secure(public) && strip(u) == strip(public);
    }
    let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            parts
                .uri
                .authority()
                .map(hyper::http::uri::Authority::as_str)
        })
    else {
        return false;
    };
    let path = parts.uri.path().trim_end_matches('/');
    secure(u).is_some() && strip(u).eq_ignore_ascii_case(&format!("{host}{path}"))
}

/// Runs an authorized method.
async fn call(ctx: &Ctx, admin: PublicKey, body: &[u8]) -> Result<Value, Failure> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::Bad(format!("invalid: the body is not JSON: {e}")))?;
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Bad("invalid: a method is required".into()))?;
    let params: Vec<Value> = match request.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params.clone(),
        Some(_) => return Err(Failure::Bad("invalid: params must be an array".into())),
    };
    let param = |i: usize| params.get(i).and_then(Value::as_str);
    let management = ctx.shared.policy.groups().management_projection().clone();
    let read = |f: fn(&ManagementState) -> Vec<Listed>| {
        management
            .read(f)
            .map_err(|e| Failure::Failed(format!("error: {e}")))
    };
    match method {
        "supportedmethods" => Ok(json!(METHODS)),
        "listbannedpubkeys" => Ok(listing(&read(ManagementState::banned_pubkeys)?, "pubkey")),
        "listallowedpubkeys" => Ok(listing(&read(ManagementState::allowed_pubkeys)?, "pubkey")),
        "listbannedevents" => Ok(listing(&read(ManagementState::banned_events)?, "id")),
        "banpubkey" | "unbanpubkey" | "allowpubkey" | "unallowpubkey" | "banevent"
        | "unbanevent" => {
            let key = param(0)
                .filter(|k| parse_hex32(k).is_some())
                .ok_or_else(|| {
                    Failure::Bad(format!(
                        "invalid: {method} takes a 64-hex-digit key and an optional reason"
                    ))
                })?;
            let mut values = vec![key.to_ascii_lowercase()];
            values.extend(param(1).map(str::to_owned));
            record(ctx, admin, method, values).await
        }
        "changerelayname" | "changerelaydescription" | "changerelayicon" => {
            let value = param(0)
                .ok_or_else(|| Failure::Bad(format!("invalid: {method} takes one string")))?;
            record(ctx, admin, method, vec![value.to_owned()]).await
        }
        other => Err(Failure::Bad(format!(
            "unsupported: the method {other} is not supported"
        ))),
    }
}

fn listing(items: &[Listed], field: &str) -> Value {
    Value::Array(
        items
            .iter()
            .map(|item| {
                let mut entry = serde_json::Map::new();
                entry.insert(field.into(), Value::String(hex::encode(item.key)));
                if !item.reason.is_empty() {
                    entry.insert("reason".into(), Value::String(item.reason.clone()));
                }
                Value::Object(entry)
            })
            .collect(),
    )
}

/// Signs the management event for `method` with the relay key, commits it through the
/// write path and answers `true` once it is durable.
async fn record(
    ctx: &Ctx,
    admin: PublicKey,
    method: &str,
    params: Vec<String>,
) -> Result<Value, Failure> {
    let failed = |e: String| Failure::Failed(format!("error: {e}"));
    let mut tags = vec![Tag::parse(["method", method]).map_err(|e| failed(e.to_string()))?];
    for value in &params {
        tags.push(Tag::parse(["param", value.as_str()]).map_err(|e| failed(e.to_string()))?);
    }
    tags.push(Tag::parse(["by", admin.to_hex().as_str()]).map_err(|e| failed(e.to_string()))?);
    // Two equal actions in one second would otherwise be one event: a ban, an unban
    // and the same ban again would leave the pubkey unbanned.
    let nonce = nostr::prelude::Keys::generate().public_key().to_hex();
    tags.push(Tag::parse(["nonce", &nonce[..16]]).map_err(|e| failed(e.to_string()))?);
    let event = EventBuilder::new(Kind::Custom(MANAGEMENT_KIND), "")
        .tags(tags)
        .finalize(&ctx.shared.keys)
        .map_err(|e| failed(e.to_string()))?;
    let Some(writes) = ctx.writes.sender() else {
        return Err(failed("the relay is shutting down".into()));
    };
    let reply = handoff::write(ctx.shared.clone(), writes, event).await;
    if reply.accepted {
        tracing::info!(%admin, method, ?params, "NIP-86 change recorded");
        Ok(Value::Bool(true))
    } else {
        Err(failed(reply.message))
    }
}

/// The ids of the events banned over NIP-86, as of the log head, for one read.
pub(crate) fn banned_events(
    shared: &crate::shared::Shared,
) -> Result<std::collections::BTreeSet<[u8; 32]>, highwater_engine::EngineError> {
    shared.policy.groups().management_projection().read(|m| {
        if m.has_banned_events() {
            m.banned_events().into_iter().map(|l| l.key).collect()
        } else {
            std::collections::BTreeSet::new()
        }
    })
}
