//! The relay's operations kit over HTTP: NIP-86 management authorized by NIP-98 (each
//! method, each refusal), bans enforced on writes and reads and kept across a restart,
//! CORS for browser clients, `/metrics`, `/health`, rate limits, `X-Forwarded-For`
//! only with `trust_proxy`, and the relay served beside another route by an axum
//! router (`relay/examples/axum_router.rs`).

mod support;

#[path = "../examples/axum_router.rs"]
#[allow(
    unreachable_pub,
    reason = "the example's items are public to its readers"
)]
mod axum_router;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroU32;

use base64::Engine as _;
use highwater_engine::{Engine, EngineOptions};
use highwater_projections::{Groups, Nip29Config};
use highwater_relay::{Rate, RateLimits, Relay, RelayOptions};
use highwater_store::{Store, StoreOptions};
use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use nostr_sdk::prelude as sdk;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{WAIT, client, fetch, group_event, relay_keys, send, start};

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole answer.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let raw = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// How a test's NIP-98 event differs from a correct one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    WrongUrl,
    WrongMethod,
    WrongPayload,
    Expired,
}

/// A NIP-98 `Authorization` header value for a POST of `body` to `url`.
fn nip98(keys: &Keys, url: &str, body: &[u8], fault: Fault) -> String {
    let url = if fault == Fault::WrongUrl {
        "http://elsewhere.example/"
    } else {
        url
    };
    let method = if fault == Fault::WrongMethod {
        "GET"
    } else {
        "POST"
    };
    let mut payload = hex::encode(Sha256::digest(body));
    if fault == Fault::WrongPayload {
        payload = hex::encode(Sha256::digest(b"another body"));
    }
    let mut created_at = Timestamp::now();
    if fault == Fault::Expired {
        created_at = Timestamp::from_secs(created_at.as_secs() - 3_600);
    }
    let event = EventBuilder::new(Kind::Custom(27_235), "")
        .tags([
            Tag::parse(["u", url]).expect("u"),
            Tag::parse(["method", method]).expect("method"),
            Tag::parse(["payload", payload.as_str()]).expect("payload"),
        ])
        .custom_created_at(created_at)
        .finalize(keys)
        .expect("sign");
    format!(
        "Nostr {}",
        base64::engine::general_purpose::STANDARD.encode(event.as_json())
    )
}

/// Calls a NIP-86 method as `keys` and returns the answer.
async fn rpc(addr: &str, keys: &Keys, method: &str, params: Value, fault: Fault) -> Answer {
    let body = json!({ "method": method, "params": params }).to_string();
    let auth = nip98(keys, &format!("http://{addr}/"), body.as_bytes(), fault);
    http(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/nostr+json+rpc"),
            ("Authorization", &auth),
        ],
        body.as_bytes(),
    )
    .await
}

/// The `result` of a call that must succeed.
async fn ok(addr: &str, keys: &Keys, method: &str, params: Value) -> Value {
    let answer = rpc(addr, keys, method, params, Fault::None).await;
    assert_eq!(answer.status, 200, "{method}: {}", answer.body);
    let value = answer.json();
    assert_eq!(value.get("error"), None, "{method}: {value}");
    value["result"].clone()
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("ws://").to_owned()
}

fn with_admin(admin: &Keys) -> RelayOptions {
    let mut options = RelayOptions::default();
    options.policy.relay_admins.insert(admin.public_key());
    options
}

fn sdk_keys(keys: &Keys) -> sdk::Keys {
    sdk::Keys::parse(&keys.secret_key().to_secret_hex()).expect("same key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nip86_method_answers_a_relay_admin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = Keys::generate();
    let relay = start(dir.path(), with_admin(&admin)).await;
    let addr = addr_of(&relay.url);
    let (x, y, e) = ("ab".repeat(32), "cd".repeat(32), "ef".repeat(32));

    let methods = ok(&addr, &admin, "supportedmethods", json!([])).await;
    for m in [
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
    ] {
        assert!(
            methods.as_array().unwrap().contains(&json!(m)),
            "{m} in {methods}"
        );
    }
    assert_eq!(
        ok(&addr, &admin, "banpubkey", json!([x, "spam"])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listbannedpubkeys", json!([])).await,
        json!([{ "pubkey": x, "reason": "spam" }])
    );
    assert_eq!(
        ok(&addr, &admin, "allowpubkey", json!([y])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listallowedpubkeys", json!([])).await,
        json!([{ "pubkey": y }])
    );
    assert_eq!(
        ok(&addr, &admin, "unallowpubkey", json!([y])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listallowedpubkeys", json!([])).await,
        json!([])
    );
    // Allowing a banned pubkey lifts its ban (NIP-86).
    assert_eq!(
        ok(&addr, &admin, "allowpubkey", json!([x])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listbannedpubkeys", json!([])).await,
        json!([])
    );
    assert_eq!(
        ok(&addr, &admin, "banpubkey", json!([x])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listallowedpubkeys", json!([])).await,
        json!([])
    );
    assert_eq!(
        ok(&addr, &admin, "unbanpubkey", json!([x])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listbannedpubkeys", json!([])).await,
        json!([])
    );

    assert_eq!(
        ok(&addr, &admin, "banevent", json!([e, "illegal"])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listbannedevents", json!([])).await,
        json!([{ "id": e, "reason": "illegal" }])
    );
    assert_eq!(
        ok(&addr, &admin, "unbanevent", json!([e])).await,
        json!(true)
    );
    assert_eq!(
        ok(&addr, &admin, "listbannedevents", json!([])).await,
        json!([])
    );

    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nip86_changes_the_relay_s_texts_and_refuses_unknown_methods() {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = Keys::generate();
    let relay = start(dir.path(), with_admin(&admin)).await;
    let addr = addr_of(&relay.url);
    // The relay key manages too; NIP-11 shows the new texts.
    let relay_key = relay_keys();
    assert_eq!(
        ok(&addr, &relay_key, "changerelayname", json!(["Pizza relay"])).await,
        json!(true)
    );
    assert_eq!(
        ok(
            &addr,
            &admin,
            "changerelaydescription",
            json!(["Groups about pizza"])
        )
        .await,
        json!(true)
    );
    assert_eq!(
        ok(
            &addr,
            &admin,
            "changerelayicon",
            json!(["https://pizza.example/icon.png"])
        )
        .await,
        json!(true)
    );
    let info = http(
        &addr,
        "GET",
        "/",
        &[("Accept", "application/nostr+json")],
        b"",
    )
    .await;
    let info = info.json();
    assert_eq!(info["name"], "Pizza relay");
    assert_eq!(info["description"], "Groups about pizza");
    assert_eq!(info["icon"], "https://pizza.example/icon.png");

    let unknown = rpc(&addr, &admin, "blockip", json!(["192.0.2.1"]), Fault::None).await;
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("unsupported:")
    );
    let bad = rpc(&addr, &admin, "banpubkey", json!(["not hex"]), Fault::None).await;
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid:")
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nip86_refuses_missing_or_wrong_authorization_and_non_admins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = Keys::generate();
    let relay = start(dir.path(), with_admin(&admin)).await;
    let addr = addr_of(&relay.url);
    let body = json!({ "method": "banpubkey", "params": ["ab".repeat(32)] }).to_string();
    let none = http(
        &addr,
        "POST",
        "/",
        &[("Content-Type", "application/nostr+json+rpc")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(
        none.headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("*")
    );
    for (fault, why) in [
        (Fault::WrongUrl, "u tag"),
        (Fault::WrongMethod, "method tag"),
        (Fault::WrongPayload, "payload tag"),
        (Fault::Expired, "created_at"),
    ] {
        let answer = rpc(&addr, &admin, "banpubkey", json!(["ab".repeat(32)]), fault).await;
        assert_eq!(answer.status, 401, "{fault:?}: {}", answer.body);
        assert!(
            answer.json()["error"].as_str().unwrap().contains(why),
            "{fault:?}: {}",
            answer.body
        );
    }
    let stranger = Keys::generate();
    let answer = rpc(&addr, &stranger, "supportedmethods", json!([]), Fault::None).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    // Nothing was banned by any of them.
    assert_eq!(
        ok(&addr, &admin, "listbannedpubkeys", json!([])).await,
        json!([])
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_is_enforced_on_writes_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = Keys::generate();
    let alice = Keys::generate();
    let alice_sdk = sdk_keys(&alice);
    let relay = start(dir.path(), with_admin(&admin)).await;
    let addr = addr_of(&relay.url);
    let a = client(&relay.url, &alice_sdk, false).await;
    send(&a, &group_event(&alice_sdk, 9007, "pizza", "", &[]))
        .await
        .expect("alice creates the group");
    send(&a, &group_event(&alice_sdk, 9, "pizza", "before", &[]))
        .await
        .expect("alice posts");
    ok(
        &addr,
        &admin,
        "banpubkey",
        json!([alice.public_key().to_hex(), "spam"]),
    )
    .await;
    let refused = send(&a, &group_event(&alice_sdk, 9, "pizza", "after", &[]))
        .await
        .expect_err("a banned pubkey's event is refused");
    assert!(refused.starts_with("blocked:"), "{refused}");
    a.disconnect().await;
    relay.stop().await;

    let relay = start(dir.path(), with_admin(&admin)).await;
    let addr = addr_of(&relay.url);
    let a = client(&relay.url, &alice_sdk, false).await;
    let refused = send(
        &a,
        &group_event(&alice_sdk, 9, "pizza", "after restart", &[]),
    )
    .await
    .expect_err("the ban is in the log");
    assert!(refused.starts_with("blocked:"), "{refused}");
    assert_eq!(
        ok(&addr, &admin, "listbannedpubkeys", json!([])).await,
        json!([{ "pubkey": alice.public_key().to_hex(), "reason": "spam" }])
    );
    // Nobody else can publish a management event.
    let forged = sdk::EventBuilder::new(sdk::Kind::Custom(9086), "")
        .tags([
            sdk::Tag::parse(["h", "pizza"]).unwrap(),
            sdk::Tag::parse(["method", "unbanpubkey"]).unwrap(),
            sdk::Tag::parse(["param", alice.public_key().to_hex().as_str()]).unwrap(),
        ])
        .sign_with_keys(&sdk_keys(&admin))
        .unwrap();
    let b = client(&relay.url, &sdk_keys(&admin), false).await;
    let refused = send(&b, &forged)
        .await
        .expect_err("kind 9086 is the relay's");
    assert!(refused.starts_with("restricted:"), "{refused}");
    a.disconnect().await;
    b.disconnect().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_event_is_not_served_and_management_records_never_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = Keys::generate();
    let relay = start(dir.path(), with_admin(&admin)).await;
    let addr = addr_of(&relay.url);
    let alice = sdk::Keys::generate();
    let a = client(&relay.url, &alice, false).await;
    send(&a, &group_event(&alice, 9007, "pizza", "", &[]))
        .await
        .expect("create");
    let post = group_event(&alice, 9, "pizza", "to be banned", &[]);
    send(&a, &post).await.expect("post");
    let by_id = sdk::Filter::new().id(post.id);
    assert_eq!(
        fetch(&a, by_id.clone()).await.len(),
        1,
        "served before the ban"
    );
    ok(&addr, &admin, "banevent", json!([post.id.to_hex()])).await;
    assert!(
        fetch(&a, by_id).await.is_empty(),
        "not served after the ban"
    );
    assert!(
        fetch(&a, support::in_group(&[9], "pizza")).await.is_empty(),
        "not served by group either"
    );
    let records = fetch(&a, sdk::Filter::new().kind(sdk::Kind::Custom(9086))).await;
    assert!(
        records.is_empty(),
        "management records are never served: {records:?}"
    );
    let again = send(&a, &post).await;
    assert!(
        again.is_ok() || again.as_ref().is_err_and(|m| m.starts_with("blocked:")),
        "{again:?}"
    );
    a.disconnect().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_s_cors_preflight_allows_nip86_posts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let addr = addr_of(&relay.url);
    let preflight = http(
        &addr,
        "OPTIONS",
        "/",
        &[
            ("Origin", "https://app.flotilla.social"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        b"",
    )
    .await;
    assert!(
        preflight.status == 204 || preflight.status == 200,
        "{preflight:?}"
    );
    let allowed = |name: &str| preflight.headers.get(name).cloned().unwrap_or_default();
    assert_eq!(allowed("access-control-allow-origin"), "*");
    assert!(
        allowed("access-control-allow-methods").contains("POST"),
        "{preflight:?}"
    );
    let headers = allowed("access-control-allow-headers").to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    relay.stop().await;
}

/// The value of one sample line (`name{labels} value`) of a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_counters_move_after_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let addr = addr_of(&relay.url);
    let before = http(&addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(before.status, 200);
    assert!(before.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    for name in [
        "highwater_connections",
        "highwater_subscriptions",
        "highwater_fanout_queue_bytes",
        "highwater_groups",
        "highwater_log_head",
        "highwater_checkpoint_lag",
        "highwater_up",
        "highwater_commit_seconds",
        "highwater_events_accepted_total",
        "highwater_events_refused_total",
        "highwater_nip86_requests_total",
    ] {
        assert!(
            before.body.contains(&format!("# TYPE {name} ")),
            "{name} in\n{}",
            before.body
        );
    }
    let alice = sdk::Keys::generate();
    let a = client(&relay.url, &alice, false).await;
    send(&a, &group_event(&alice, 9007, "pizza", "", &[]))
        .await
        .expect("create");
    send(&a, &group_event(&alice, 9, "pizza", "hi", &[]))
        .await
        .expect("post");
    let refused = send(&a, &group_event(&alice, 9, "nowhere", "hi", &[])).await;
    assert!(
        refused.is_err(),
        "a post to a group that does not exist is refused"
    );
    let _sub = a
        .subscribe(support::in_group(&[9], "pizza"), None)
        .await
        .expect("subscribe");
    // The client's subscribe returns once its REQ is sent; the relay counts the
    // subscription when it has read it.
    let mut after = http(&addr, "GET", "/metrics", &[], b"").await.body;
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while sample(&after, "highwater_subscriptions") < 1.0 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        after = http(&addr, "GET", "/metrics", &[], b"").await.body;
    }
    assert!(
        sample(&after, "highwater_events_accepted_total") >= 2.0,
        "{after}"
    );
    assert!(
        after.contains("highwater_events_refused_total{reason="),
        "a refusal is counted by reason: {after}"
    );
    assert!(
        sample(&after, "highwater_commit_seconds_count") >= 2.0,
        "{after}"
    );
    assert!(sample(&after, "highwater_log_head") >= 2.0, "{after}");
    assert!(sample(&after, "highwater_groups") >= 1.0, "{after}");
    assert!(sample(&after, "highwater_connections") >= 1.0, "{after}");
    assert!(sample(&after, "highwater_subscriptions") >= 1.0, "{after}");
    assert!(sample(&after, "highwater_up") > 0.5, "{after}");
    a.disconnect().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_pubkey_rate_events_are_answered_rate_limited() {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = NonZeroU32::MIN;
    let options = RelayOptions {
        rate_limits: RateLimits {
            per_ip: None,
            per_pubkey: Some(Rate {
                per_second: one,
                burst: one,
            }),
        },
        ..RelayOptions::default()
    };
    let relay = start(dir.path(), options).await;
    let alice = sdk::Keys::generate();
    let a = client(&relay.url, &alice, false).await;
    let mut answers = Vec::new();
    for i in 0..10 {
        answers.push(send(&a, &group_event(&alice, 9, "pizza", &format!("{i}"), &[])).await);
    }
    assert!(
        answers
            .iter()
            .any(|a| a.as_ref().is_err_and(|m| m.starts_with("rate-limited:"))),
        "{answers:?}"
    );
    a.disconnect().await;
    relay.stop().await;
}

/// A NIP-86 call from the address `forwarded` claims.
async fn from(addr: &str, admin: &Keys, forwarded: &str) -> u16 {
    let body = json!({ "method": "supportedmethods", "params": [] }).to_string();
    let auth = nip98(
        admin,
        &format!("http://{addr}/"),
        body.as_bytes(),
        Fault::None,
    );
    http(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/nostr+json+rpc"),
            ("Authorization", &auth),
            ("X-Forwarded-For", forwarded),
        ],
        body.as_bytes(),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_names_the_client_only_with_trust_proxy() {
    let admin = Keys::generate();
    let one = NonZeroU32::MIN;
    for trust_proxy in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = RelayOptions {
            rate_limits: RateLimits {
                per_ip: Some(Rate {
                    per_second: one,
                    burst: one,
                }),
                per_pubkey: None,
            },
            trust_proxy,
            ..with_admin(&admin)
        };
        let relay = start(dir.path(), options).await;
        let addr = addr_of(&relay.url);
        assert_eq!(from(&addr, &admin, "198.51.100.1").await, 200);
        let second = from(&addr, &admin, "198.51.100.2").await;
        if trust_proxy {
            assert_eq!(second, 200, "another forwarded address has its own bucket");
            assert_eq!(
                from(&addr, &admin, "198.51.100.2").await,
                429,
                "the same forwarded address again is over its rate"
            );
        } else {
            assert_eq!(second, 429, "without trust_proxy both are 127.0.0.1");
        }
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_shares_a_port_with_an_axum_route_and_health_follows_the_write_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = relay_keys();
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open the store");
    let mut builder = Engine::builder(store, EngineOptions::default());
    let groups = Groups::register(&mut builder, Nip29Config::new(keys.public_key()))
        .expect("register the projections");
    let engine = builder.build().expect("start the engine");
    let relay = Relay::new(engine, groups, keys, RelayOptions::default()).expect("relay");
    let (router, service) = axum_router::router(relay).expect("the router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let hello = http(&addr, "GET", "/hello", &[], b"").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "hello from the application\n")
    );
    let info = http(
        &addr,
        "GET",
        "/",
        &[("Accept", "application/nostr+json")],
        b"",
    )
    .await;
    assert_eq!(info.json()["pubkey"], relay_keys().public_key().to_hex());
    assert_eq!(http(&addr, "GET", "/health", &[], b"").await.status, 200);

    let alice = sdk::Keys::generate();
    let a = client(&format!("ws://{addr}"), &alice, false).await;
    send(&a, &group_event(&alice, 9007, "pizza", "", &[]))
        .await
        .expect("create over axum");
    let post = group_event(&alice, 9, "pizza", "hi", &[]);
    send(&a, &post).await.expect("post over axum");
    assert_eq!(fetch(&a, sdk::Filter::new().id(post.id)).await.len(), 1);
    a.disconnect().await;

    tokio::time::timeout(WAIT, service.shutdown())
        .await
        .expect("the relay stops in time")
        .expect("the relay stops cleanly");
    assert_eq!(
        http(&addr, "GET", "/health", &[], b"").await.status,
        503,
        "the write path is gone"
    );
    assert_eq!(http(&addr, "GET", "/hello", &[], b"").await.status, 200);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_health_is_200_on_the_relay_s_own_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = start(dir.path(), RelayOptions::default()).await;
    let addr = addr_of(&relay.url);
    assert_eq!(http(&addr, "GET", "/health", &[], b"").await.status, 200);
    assert_eq!(
        http(&addr, "GET", "/nothing-here", &[], b"").await.status,
        404
    );
    let root = http(&addr, "GET", "/", &[], b"").await;
    assert_eq!(root.status, 200);
    assert!(root.body.contains("NIP-29"));
    relay.stop().await;
}
