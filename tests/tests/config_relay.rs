//! `highwater relay` configured by files, as an operator runs it: `--config FILE` with
//! flags over it, a policy changed without a restart (the file edited, or `highwater
//! config set`, then SIGHUP to the running process, on a connection that stays open),
//! `admin_create_only` refusing a non-admin's 9007 end to end, `[groups.retention]`
//! changed the same way (the expired chat leaves the answers), and `--config-dir`: one
//! listener serving several virtual relays chosen by the HTTP `Host` header — two
//! highwater files, and zooid's own README files (tests/fixtures/zooid).

mod processes_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use processes_support::highwater_bin;
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// A bound for noticing a hung relay, not a speed requirement.
const HANG: Duration = Duration::from_mins(1);

const RELAY_SECRET: &str = "3b2a6bb3b1d1f04b54b0c21c1f25a4a4d3a91c29c0cbd2a0d66c1e9a0a6e5f11";

fn admin() -> Keys {
    Keys::parse("0a7f6b2e1c4d3f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c").unwrap()
}

/// A `highwater relay` child whose stderr lines are read as they come.
struct RelayProcess {
    child: Child,
    lines: Receiver<String>,
    addr: String,
}

impl RelayProcess {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(highwater_bin())
            .arg("relay")
            .args(["--bind", "127.0.0.1:0", "--create"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting highwater relay");
        let (tx, lines) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("relay: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut relay = Self {
            child,
            lines,
            addr: String::new(),
        };
        let line = relay.wait_for("listening on ws://");
        let at = line.find("ws://").unwrap() + "ws://".len();
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .clone_into(&mut relay.addr);
        relay
    }

    /// The next stderr line containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("the relay never said {needle:?} ({e})"),
            }
        }
    }

    fn port(&self) -> &str {
        self.addr.rsplit_once(':').unwrap().1
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 GET naming `host`: the status code and the body.
fn http_get(addr: &str, host: &str, accept: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn nip11(addr: &str, host: &str) -> Value {
    let (status, body) = http_get(addr, host, "application/nostr+json");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

type Socket = WebSocket<TcpStream>;

/// A WebSocket connection whose handshake names `host`.
fn connect(addr: &str, host: &str) -> Socket {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request.headers_mut().insert("Host", host.parse().unwrap());
    tungstenite::client::client(request, stream).unwrap().0
}

fn event(keys: &Keys, kind: u16, tags: &[&[&str]]) -> nostr::prelude::Event {
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags.iter().map(|t| Tag::parse(t.to_vec()).unwrap()))
        .finalize(keys)
        .unwrap()
}

/// Sends `event` and returns the relay's `OK` message ("" when accepted without one).
fn send(socket: &mut Socket, event: &nostr::prelude::Event) -> Result<String, String> {
    let id = event.id.to_hex();
    socket
        .send(Message::text(json!(["EVENT", event]).to_string()))
        .unwrap();
    loop {
        let Message::Text(text) = socket.read().unwrap() else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        if value[0] == "OK" && value[1] == id.as_str() {
            let message = value[3].as_str().unwrap_or_default().to_owned();
            return if value[2] == true {
                Ok(message)
            } else {
                Err(message)
            };
        }
    }
}

/// `event` dated `days_ago` days before now.
fn dated(keys: &Keys, kind: u16, tags: &[&[&str]], days_ago: u64) -> nostr::prelude::Event {
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags.iter().map(|t| Tag::parse(t.to_vec()).unwrap()))
        .custom_created_at(Timestamp::from(
            Timestamp::now().as_secs() - days_ago * 86_400,
        ))
        .finalize(keys)
        .unwrap()
}

/// The ids of the stored events matching `filter`.
fn ids_listed(socket: &mut Socket, filter: &Value) -> Vec<String> {
    socket
        .send(Message::text(json!(["REQ", "ids", filter]).to_string()))
        .unwrap();
    let mut ids = Vec::new();
    loop {
        let Message::Text(text) = socket.read().unwrap() else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        match value[0].as_str() {
            Some("EVENT") => ids.push(value[2]["id"].as_str().unwrap().to_owned()),
            Some("EOSE") => break,
            Some("CLOSED") => panic!("{value}"),
            _ => {}
        }
    }
    socket
        .send(Message::text(json!(["CLOSE", "ids"]).to_string()))
        .unwrap();
    ids.sort();
    ids
}

/// The `d` tags of the 39000s a REQ returns.
fn groups_listed(socket: &mut Socket) -> Vec<String> {
    socket
        .send(Message::text(
            json!(["REQ", "groups", {"kinds": [39000]}]).to_string(),
        ))
        .unwrap();
    let mut groups = Vec::new();
    loop {
        let Message::Text(text) = socket.read().unwrap() else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        match value[0].as_str() {
            Some("EVENT") => groups.extend(
                value[2]["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t[0] == "d")
                    .map(|t| t[1].as_str().unwrap().to_owned()),
            ),
            Some("EOSE" | "CLOSED") => return groups,
            _ => {}
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn highwater(db: &Path, args: &[&str]) -> String {
    let out = Command::new(highwater_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn relay_file(admin_create_only: bool) -> String {
    format!(
        "db = \"db\"\nsecret = \"{RELAY_SECRET}\"\n\n[info]\nname = \"Configured\"\n\n[policy]\nrelay_admins = [\"{}\"]\n\n[groups]\nadmin_create_only = {admin_create_only}\n",
        admin().public_key().to_hex()
    )
}

#[test]
fn a_policy_changes_on_sighup_without_a_restart_or_a_dropped_connection() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    write(&file, &relay_file(true));
    let relay = RelayProcess::start(&["--config", file.to_str().unwrap()]);
    assert_eq!(nip11(&relay.addr, "localhost")["name"], "Configured");
    let mut socket = connect(&relay.addr, "localhost");
    let user = Keys::generate();

    // admin_create_only: a non-admin's 9007 is refused, a relay admin's accepted.
    assert_eq!(
        send(&mut socket, &event(&user, 9007, &[&["h", "mine"]])),
        Err("restricted: only relay admins can create groups".into())
    );
    assert!(send(&mut socket, &event(&admin(), 9007, &[&["h", "staff"]])).is_ok());

    // The file edited, then SIGHUP: later writes on the same connection are decided
    // under the new policy.
    write(&file, &relay_file(false));
    relay.hangup();
    let line = relay.wait_for("configuration reloaded");
    assert!(
        line.contains("groups.admin_create_only: true → false"),
        "{line}"
    );
    assert!(send(&mut socket, &event(&user, 9007, &[&["h", "mine"]])).is_ok());

    // `highwater config set` records a change in the database; SIGHUP applies it.
    let db = dir.path().join("db");
    let said = highwater(&db, &["config", "set", "groups.private_admin_only", "true"]);
    assert!(
        said.contains("groups.private_admin_only: false → true"),
        "{said}"
    );
    relay.hangup();
    let line = relay.wait_for("configuration reloaded");
    assert!(
        line.contains("groups.private_admin_only: false → true"),
        "{line}"
    );
    assert_eq!(
        send(
            &mut socket,
            &event(&user, 9007, &[&["h", "secret"], &["private"]])
        ),
        Err("restricted: only relay admins can create private groups".into())
    );
    assert!(highwater(&db, &["config", "show"]).contains("groups.private_admin_only = true"));
}

#[test]
fn retention_changes_on_sighup_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    let base = format!(
        "db = \"db\"\nsecret = \"{RELAY_SECRET}\"\n[policy]\nrelay_admins = [\"{}\"]\n",
        admin().public_key().to_hex()
    );
    write(&file, &base);
    let relay = RelayProcess::start(&[
        "--config",
        file.to_str().unwrap(),
        "--retention-every",
        "1s",
        "--late-publication-secs",
        "0",
    ]);
    let mut socket = connect(&relay.addr, "localhost");
    let group = &["h", "pizza"];
    assert!(send(&mut socket, &dated(&admin(), 9007, &[group], 30)).is_ok());
    let old: Vec<String> = (0..3)
        .map(|i| {
            let post = dated(&admin(), 9, &[group], 30 + i);
            assert!(send(&mut socket, &post).is_ok());
            post.id.to_hex()
        })
        .collect();
    let recent = event(&admin(), 9, &[group]);
    assert!(send(&mut socket, &recent).is_ok());
    let mut old_sorted = old.clone();
    old_sorted.sort();
    assert_eq!(ids_listed(&mut socket, &json!({"ids": old})), old_sorted);

    // A file that does not read keeps what is in force, and says why.
    write(
        &file,
        &format!("{base}[groups.retention]\ndefault = \"7 days\"\n"),
    );
    relay.hangup();
    let line = relay.wait_for("configuration not reloaded");
    assert!(line.contains("groups.retention.default"), "{line}");

    // `[groups.retention]` added, then SIGHUP: the relay compacts under it.
    write(
        &file,
        &format!("{base}[groups.retention]\ndefault = \"7d\"\n"),
    );
    relay.hangup();
    let line = relay.wait_for("configuration reloaded");
    assert!(
        line.contains("retention changed: nothing expires → every 1s, older than 604800s"),
        "{line}"
    );
    let deadline = Instant::now() + HANG;
    loop {
        let found = ids_listed(&mut socket, &json!({"ids": old}));
        if found.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired chat still served: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        ids_listed(&mut socket, &json!({"kinds": [9], "#h": ["pizza"]})),
        [recent.id.to_hex()]
    );
    assert_eq!(groups_listed(&mut socket), ["pizza"]);
}

#[test]
fn flags_override_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    write(
        &file,
        &format!(
            "db = \"db\"\nsecret = \"{RELAY_SECRET}\"\n[info]\nname = \"Members only\"\ncontact = \"mailto:ops@example.com\"\n[policy]\nopen = false\n"
        ),
    );
    let path = file.to_str().unwrap();
    let doc = {
        let relay = RelayProcess::start(&["--config", path]);
        nip11(&relay.addr, "localhost")
    };
    assert_eq!(doc["limitation"]["auth_required"], true, "{doc}");
    assert_eq!(doc["contact"], "mailto:ops@example.com");
    let relay = RelayProcess::start(&["--config", path, "--open-reads", "true"]);
    let doc = nip11(&relay.addr, "localhost");
    assert_eq!(doc["limitation"]["auth_required"], false, "{doc}");
    assert_eq!(doc["name"], "Members only");
}

#[test]
fn an_unknown_key_is_refused_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    write(
        &file,
        "[groups]\nadmin_create_only = true\nadmin_only = true\n",
    );
    let out = Command::new(highwater_bin())
        .args(["relay", "--create", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("relay.toml:3: unknown field `admin_only`"),
        "{stderr}"
    );
}

#[test]
fn a_config_dir_serves_virtual_relays_by_host() {
    let dir = tempfile::tempdir().unwrap();
    for (name, host, title) in [
        ("a.toml", "a.test", "Relay A"),
        ("b.toml", "b.test", "Relay B"),
    ] {
        write(
            &dir.path().join(name),
            &format!("host = \"{host}\"\n[info]\nname = \"{title}\"\n"),
        );
    }
    let relay = RelayProcess::start(&["--config-dir", dir.path().to_str().unwrap()]);
    let port = relay.port().to_owned();
    let a = nip11(&relay.addr, &format!("a.test:{port}"));
    let b = nip11(&relay.addr, "B.TEST");
    assert_eq!(a["name"], "Relay A");
    assert_eq!(b["name"], "Relay B");
    assert_ne!(a["self"], b["self"], "each virtual relay has its own key");
    let (status, body) = http_get(&relay.addr, "c.test", "application/nostr+json");
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("c.test"), "{body}");

    // Each host's groups are its own database's.
    let user = Keys::generate();
    let mut on_a = connect(&relay.addr, &format!("a.test:{port}"));
    assert!(send(&mut on_a, &event(&user, 9007, &[&["h", "only-on-a"]])).is_ok());
    let mut on_b = connect(&relay.addr, "b.test");
    assert!(groups_listed(&mut on_b).is_empty());
    assert_eq!(groups_listed(&mut on_a), ["only-on-a"]);
    assert!(dir.path().join("a.test.lmdb").join("data.mdb").is_file());
}

/// The zooid fixtures, copied where their databases may be made.
fn zooid_config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/zooid");
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn fixture_secret(dir: &Path, file: &str) -> Keys {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let line = text.lines().find(|l| l.starts_with("secret")).unwrap();
    Keys::parse(line.split('"').nth(1).unwrap()).unwrap()
}

fn members(db: &Path, group: &str) -> Vec<String> {
    let shown: Value =
        serde_json::from_str(&highwater(db, &["show", "--group", group, "--json"])).unwrap();
    shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pubkey"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn zooids_readme_files_are_served_with_zooids_defaults() {
    let dir = zooid_config_dir();
    let relay = RelayProcess::start(&["--config-dir", dir.path().to_str().unwrap()]);
    let mine = nip11(&relay.addr, "my-relay.example.com");
    assert_eq!(mine["name"], "My relay");
    assert_eq!(mine["icon"], "https://example.com/icon.png");
    assert_eq!(
        mine["pubkey"],
        "d9254d9898fd4728f7e2b32b87520221a50f6b8b97d935d7da2de8923988aa6d"
    );
    assert_eq!(nip11(&relay.addr, "localhost")["name"], "Localhost Relay");

    let user = Keys::generate();
    for (host, file, schema, auto_join) in [
        (
            "my-relay.example.com",
            "my-relay.example.com",
            "my_relay",
            false,
        ),
        ("localhost", "localhost", "localhost", true),
    ] {
        let mut socket = connect(&relay.addr, host);
        // A zooid relay is members-only (NIP-43): a key that has not joined the relay
        // is refused first, with the wording that tells it to join; zooid's default
        // admin_create_only = true then holds for members (nip29_policy pins it).
        assert_eq!(
            send(&mut socket, &event(&user, 9007, &[&["h", "g"]])),
            Err(
                "restricted: not a member of this relay yet; join it (NIP-43 kind 28934) to create groups"
                    .into()
            ),
            "{host}"
        );
        let owner = fixture_secret(dir.path(), file);
        assert!(send(&mut socket, &event(&owner, 9007, &[&["h", "g"]])).is_ok());
        assert!(send(&mut socket, &event(&user, 9021, &[&["h", "g"]])).is_ok());
        // `auto_join`: the relay adds the member at once; without it (zooid's
        // default), the request waits for a moderator.
        let db = dir.path().join(format!("{schema}.lmdb"));
        assert_eq!(
            members(&db, "g").contains(&user.public_key().to_hex()),
            auto_join,
            "{host}"
        );
    }
}
