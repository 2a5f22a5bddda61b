//! The relay's configuration file (`highwater relay --config FILE`, or one file per
//! virtual relay with `--config-dir DIR`): reading it, and applying it over the stored
//! policy options and under the command line.
//!
//! The file is TOML with zooid's sections and key names where they mean the same
//! thing (README, "Configuration", lists every key, its default and its zooid name).
//! An unknown key is refused with its line. A file is read with NIP-29's defaults for
//! the keys it leaves out — unless it is a zooid file (it has zooid's required
//! `schema`, or says `defaults = "zooid"`), which gets zooid's documented defaults for
//! the switches zooid has, so that it behaves as it did under zooid.
//!
//! Where the policy comes from, later ones replacing earlier ones key by key: NIP-29's
//! defaults; the options stored in the database (`init`, the first `import`, `config
//! set`); the file; the command line. The relay reads the file and the stored options
//! again on SIGHUP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use highwater_relay::RelayInfo;
use serde::Deserialize;

use crate::cli::db::{self, PolicyOptions};

/// Which defaults the keys a file leaves out take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Defaults {
    /// NIP-29's text (and what the database stores).
    Nip29,
    /// zooid's documented defaults for the switches zooid has.
    Zooid,
}

/// A configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    /// The host name this relay answers for (the HTTP `Host` header, port left out).
    pub(crate) host: Option<String>,
    /// zooid's database schema name: marks a zooid file; names its database when `db`
    /// is absent.
    pub(crate) schema: Option<String>,
    /// The relay's secret key (hex or nsec).
    pub(crate) secret: Option<String>,
    /// The database directory, relative to the file's directory.
    pub(crate) db: Option<PathBuf>,
    /// The address to listen on (`--config` only; virtual relays share the listener).
    pub(crate) bind: Option<SocketAddr>,
    /// The relay's public URL, which NIP-42 AUTH must name.
    pub(crate) public_url: Option<String>,
    /// `nip29` or `zooid`.
    pub(crate) defaults: Option<Defaults>,
    #[serde(default)]
    pub(crate) info: Info,
    #[serde(default)]
    pub(crate) policy: PolicySection,
    #[serde(default)]
    pub(crate) groups: Groups,
    #[serde(default)]
    pub(crate) management: Management,
    #[serde(default)]
    pub(crate) blossom: Blossom,
    #[serde(default)]
    pub(crate) roles: BTreeMap<String, Role>,
}

/// `[info]`: the NIP-11 document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Info {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    /// The operator's public key (NIP-11 `pubkey`).
    pub(crate) pubkey: Option<String>,
    /// The relay's own public key (NIP-11 `self`): checked against the secret.
    #[serde(rename = "self")]
    pub(crate) self_key: Option<String>,
    pub(crate) contact: Option<String>,
    pub(crate) icon: Option<String>,
    pub(crate) banner: Option<String>,
    pub(crate) terms_of_service: Option<String>,
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicySection {
    /// Relay admins besides the relay key.
    pub(crate) relay_admins: Option<Vec<String>>,
    /// zooid's `open`: anyone reads groups that are not private.
    pub(crate) open: Option<bool>,
    /// zooid's relay membership without an invite (NIP-43 kind 28934): on by default.
    pub(crate) public_join: Option<bool>,
    /// zooid's signature stripping: highwater always serves signed events.
    pub(crate) strip_signatures: Option<bool>,
    /// Groups without `restricted` take posts from members only.
    pub(crate) require_membership: Option<bool>,
    /// With `require_membership`: posting to an open, public group joins it.
    pub(crate) join_by_posting: Option<bool>,
    /// Joining a private or hidden group needs an invite code.
    pub(crate) private_needs_invite: Option<bool>,
    /// Accept events that belong to no group.
    pub(crate) allow_ungrouped: Option<bool>,
}

/// `[groups]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Groups {
    /// zooid's NIP-29 switch: highwater is a NIP-29 relay, so only `true`.
    pub(crate) enabled: Option<bool>,
    pub(crate) auto_join: Option<bool>,
    pub(crate) admin_create_only: Option<bool>,
    pub(crate) private_admin_only: Option<bool>,
    pub(crate) private_relay_admin_access: Option<bool>,
    pub(crate) admin_roles: Option<Vec<String>>,
    pub(crate) retention: Option<Retention>,
}

/// zooid's `[groups.retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retention {
    pub(crate) default: Option<String>,
    #[serde(default)]
    pub(crate) groups: BTreeMap<String, String>,
}

/// `[management]` (NIP-86).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Management {
    pub(crate) enabled: Option<bool>,
    pub(crate) methods: Option<Vec<String>>,
}

/// zooid's `[blossom]` media server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Blossom {
    pub(crate) enabled: Option<bool>,
}

/// `[roles.NAME]`: relay-level roles; `can_manage` makes their keys relay admins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Role {
    #[serde(default)]
    pub(crate) pubkeys: Vec<String>,
    pub(crate) can_invite: Option<bool>,
    pub(crate) can_manage: Option<bool>,
}

/// A file read and checked.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) defaults: Defaults,
}

/// The line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Parses `text` (the contents of `path`); errors name the file and the line.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Config> {
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| format!(":{}", line_of(text, span.start)))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {}", path.display(), e.message().trim_end())
    })?;
    let defaults = file.defaults.unwrap_or(if file.schema.is_some() {
        Defaults::Zooid
    } else {
        Defaults::Nip29
    });
    let config = Config {
        path: path.to_owned(),
        file,
        defaults,
    };
    config.check()?;
    Ok(config)
}

/// Reads and parses the file at `path`.
pub(crate) fn load(path: &Path) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(path, &text)
}

/// The configuration files of a directory, in name order (hidden files and
/// directories left out).
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<Config>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type().is_ok_and(|t| t.is_file()) {
            paths.push(entry.path());
        }
    }
    paths.sort();
    if paths.is_empty() {
        bail!("{} holds no configuration file", dir.display());
    }
    let configs = paths.iter().map(|p| load(p)).collect::<Result<Vec<_>>>()?;
    let mut hosts = BTreeMap::new();
    for config in &configs {
        let Some(host) = config.host() else {
            bail!(
                "{}: `host` is required in a --config-dir file (it chooses the virtual relay by the HTTP Host header)",
                config.path.display()
            );
        };
        if let Some(other) = hosts.insert(host.clone(), &config.path) {
            bail!(
                "{} and {} both serve host {host}",
                other.display(),
                config.path.display()
            );
        }
    }
    Ok(configs)
}

impl Config {
    /// What the file asks that highwater cannot do is refused here, not ignored.
    fn check(&self) -> Result<()> {
        let f = &self.file;
        let refuse = |what: &str| bail!("{}: {what}", self.path.display());
        self.retention()?;
        if f.groups.enabled == Some(false) {
            return refuse(
                "groups.enabled = false: highwater is a NIP-29 relay; leave the key out or set it to true",
            );
        }
        if f.policy.strip_signatures == Some(true) {
            return refuse("policy.strip_signatures = true: highwater serves events as signed");
        }
        if f.blossom.enabled == Some(true) {
            return refuse("blossom.enabled = true: highwater has no media server");
        }
        if f.roles
            .get("member")
            .is_some_and(|r| r.can_manage == Some(true))
        {
            return refuse(
                "roles.member.can_manage = true would make every key a relay admin; name the admins in another role",
            );
        }
        Ok(())
    }

    /// zooid's `[groups.retention]` as a retention policy: `default` for every group
    /// without its own duration (an empty string or none: keep forever), `groups` for
    /// each group's own (`never` keeps a group). Durations are written as for
    /// `highwater compact` (`30d`, `12h`, `2w`). `highwater relay` compacts with it
    /// every `--retention-every`, and reads it again on SIGHUP.
    pub(crate) fn retention(&self) -> Result<highwater_engine::RetentionPolicy> {
        let mut policy = highwater_engine::RetentionPolicy::default();
        let Some(retention) = &self.file.groups.retention else {
            return Ok(policy);
        };
        let at = |key: &str| format!("{}: groups.retention.{key}", self.path.display());
        if let Some(default) = retention
            .default
            .as_deref()
            .filter(|d| !d.trim().is_empty())
        {
            policy.default =
                Some(crate::cli::compact::parse_duration(default).with_context(|| at("default"))?);
        }
        for (group, duration) in &retention.groups {
            let duration = crate::cli::compact::parse_duration(duration)
                .with_context(|| at(&format!("groups.{group}")))?;
            policy.per_group.insert(group.clone(), duration);
        }
        Ok(policy)
    }

    /// The host, lower-cased, without a port.
    pub(crate) fn host(&self) -> Option<String> {
        self.file.host.as_deref().map(highwater_relay::host_name)
    }

    /// Keys of the file that change nothing in highwater, with why.
    pub(crate) fn notes(&self) -> Vec<String> {
        let f = &self.file;
        let mut notes = Vec::new();
        if f.management.enabled.is_some() || f.management.methods.is_some() {
            notes.push("management: NIP-86 is answered for the relay key and relay admins, with highwater's own methods".to_owned());
        }
        notes
    }

    /// The file's directory (paths in it are relative to it).
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The database the file names; `None` when it names none.
    pub(crate) fn db(&self) -> Option<PathBuf> {
        self.file.db.as_ref().map(|db| self.dir().join(db))
    }

    /// The database of a virtual relay: `db`, else `<schema or host>.lmdb` beside the
    /// file.
    pub(crate) fn virtual_db(&self) -> PathBuf {
        self.db().unwrap_or_else(|| {
            let name = self
                .file
                .schema
                .clone()
                .or_else(|| self.host())
                .unwrap_or_else(|| "relay".to_owned());
            self.dir().join(format!("{name}.lmdb"))
        })
    }

    /// The policy options the file gives, with zooid's defaults for a zooid file.
    pub(crate) fn policy_options(&self) -> Result<PolicyOptions> {
        let f = &self.file;
        let zooid = self.defaults == Defaults::Zooid;
        let or_zooid =
            |given: Option<bool>, zooid_default: bool| given.or(zooid.then_some(zooid_default));
        let mut admins: Vec<String> = f.policy.relay_admins.clone().unwrap_or_default();
        for role in f.roles.values() {
            if role.can_manage == Some(true) {
                admins.extend(role.pubkeys.iter().cloned());
            }
        }
        // zooid's owner (`[info] pubkey`) manages the relay.
        if zooid && let Some(owner) = &f.info.pubkey {
            admins.push(owner.clone());
        }
        let admins_given = f.policy.relay_admins.is_some()
            || f.roles.values().any(|r| r.can_manage.is_some())
            || zooid;
        let relay_admins = admins_given
            .then(|| {
                db::canonical_keys(&admins, &format!("relay admins in {}", self.path.display()))
            })
            .transpose()?;
        Ok(PolicyOptions {
            relay_admins,
            open_reads: or_zooid(f.policy.open, false),
            require_membership: f.policy.require_membership,
            auto_join: f.policy.join_by_posting,
            private_needs_invite: or_zooid(f.policy.private_needs_invite, true),
            answer_joins: or_zooid(f.groups.auto_join, false),
            admin_create_only: or_zooid(f.groups.admin_create_only, true),
            private_admin_only: or_zooid(f.groups.private_admin_only, true),
            admins_manage_private: or_zooid(f.groups.private_relay_admin_access, false),
            group_admin_roles: f
                .groups
                .admin_roles
                .clone()
                .or_else(|| zooid.then(Vec::new)),
        })
    }

    /// `base` with the file's `[info]` keys replacing its own.
    pub(crate) fn info(&self, mut base: RelayInfo) -> Result<RelayInfo> {
        let i = &self.file.info;
        if let Some(name) = &i.name {
            base.name.clone_from(name);
        }
        if let Some(description) = &i.description {
            base.description.clone_from(description);
        }
        if let Some(pubkey) = &i.pubkey {
            let key = db::parse_pubkey(pubkey)
                .with_context(|| format!("info.pubkey in {}", self.path.display()))?;
            base.pubkey = Some(key.to_hex());
        }
        for (field, value) in [
            (&mut base.contact, &i.contact),
            (&mut base.icon, &i.icon),
            (&mut base.banner, &i.banner),
            (&mut base.terms_of_service, &i.terms_of_service),
        ] {
            if value.is_some() {
                field.clone_from(value);
            }
        }
        Ok(base)
    }

    /// Checks `[info] self` against the relay's public key.
    pub(crate) fn check_self(&self, relay: &nostr::prelude::PublicKey) -> Result<()> {
        if let Some(text) = &self.file.info.self_key {
            let key = db::parse_pubkey(text)
                .with_context(|| format!("info.self in {}", self.path.display()))?;
            if key != *relay {
                bail!(
                    "{}: info.self is {}, but the relay's secret key is that of {}",
                    self.path.display(),
                    key.to_hex(),
                    relay.to_hex()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::db::StoredPolicy;

    const ADMIN: &str = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";

    fn parse_text(text: &str) -> Result<Config> {
        parse(Path::new("/etc/highwater/relay.toml"), text)
    }

    #[test]
    fn every_key_is_read() {
        let text = format!(
            r#"
host = "Groups.Example.com:443"
secret = "nsec1placeholder"
db = "data/relay.lmdb"
bind = "0.0.0.0:7777"
public_url = "wss://groups.example.com"
defaults = "nip29"

[info]
name = "Groups"
description = "A relay"
pubkey = "{ADMIN}"
contact = "mailto:ops@example.com"
icon = "https://example.com/icon.png"
banner = "https://example.com/banner.png"
terms_of_service = "https://example.com/tos"

[policy]
relay_admins = ["{ADMIN}"]
open = false
public_join = true
strip_signatures = false
require_membership = true
join_by_posting = true
private_needs_invite = true
allow_ungrouped = true

[groups]
enabled = true
auto_join = false
admin_create_only = true
private_admin_only = true
private_relay_admin_access = true
admin_roles = ["admin", "moderator"]

[groups.retention]
default = ""

[management]
enabled = true
methods = ["supportedmethods"]

[blossom]
enabled = false

[roles.admin]
pubkeys = ["{ADMIN}"]
can_invite = true
can_manage = true
"#
        );
        let config = parse_text(&text).unwrap();
        assert_eq!(config.defaults, Defaults::Nip29);
        assert_eq!(config.host().as_deref(), Some("groups.example.com"));
        assert_eq!(
            config.db(),
            Some(PathBuf::from("/etc/highwater/data/relay.lmdb"))
        );
        let p = config
            .policy_options()
            .unwrap()
            .over(&StoredPolicy::default());
        assert_eq!(p.relay_admins, vec![ADMIN.to_owned()]);
        assert!(!p.open_reads && p.require_membership && p.auto_join && p.private_needs_invite);
        assert!(!p.answer_joins && p.admin_create_only && p.private_admin_only);
        assert!(p.admins_manage_private);
        assert_eq!(p.group_admin_roles, ["admin", "moderator"]);
        let info = config.info(RelayInfo::default()).unwrap();
        assert_eq!(info.name, "Groups");
        assert_eq!(info.pubkey.as_deref(), Some(ADMIN));
        assert_eq!(
            info.terms_of_service.as_deref(),
            Some("https://example.com/tos")
        );
        assert_eq!(config.file.policy.allow_ungrouped, Some(true));
    }

    #[test]
    fn groups_retention_becomes_the_relays_retention_policy() {
        let none = parse_text("host = \"a\"\n[groups.retention]\ndefault = \"\"\n").unwrap();
        assert!(none.retention().unwrap().is_empty());
        let some = parse_text(
            "[groups.retention]\ndefault = \"30d\"\ngroups = { pizza = \"7d\", archive = \"never\" }\n",
        )
        .unwrap();
        let policy = some.retention().unwrap();
        assert_eq!(
            policy.default,
            Some(std::time::Duration::from_hours(30 * 24))
        );
        assert_eq!(
            policy.per_group.get("pizza"),
            Some(&std::time::Duration::from_hours(7 * 24))
        );
        assert_eq!(
            policy.per_group.get("archive"),
            Some(&std::time::Duration::MAX)
        );
        assert!(some.notes().iter().all(|n| !n.contains("retention")));
        let bad = parse_text("[groups.retention]\ngroups = { pizza = \"7 days\" }\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("groups.retention.groups.pizza"), "{bad}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let error = parse_text(
            "host = \"a\"\n\n[groups]\nadmin_create_only = true\nadmin_creates_only = true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("/etc/highwater/relay.toml:5: "),
            "{error}"
        );
        assert!(
            error.contains("unknown field `admin_creates_only`"),
            "{error}"
        );
        let error = parse_text("[info]\nname = \"x\"\nlogo = \"y\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("/etc/highwater/relay.toml:3: "),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_a_key_keeps_nip29_and_a_zooid_file_gets_zooids_defaults() {
        let nip29 = parse_text("host = \"a\"\n").unwrap();
        let stored = StoredPolicy::default();
        assert_eq!(nip29.policy_options().unwrap().over(&stored), stored);
        let zooid = parse_text(&format!(
            "host = \"a\"\nschema = \"a\"\n[info]\npubkey = \"{ADMIN}\"\n"
        ))
        .unwrap();
        assert_eq!(zooid.defaults, Defaults::Zooid);
        let p = zooid.policy_options().unwrap().over(&stored);
        assert!(p.admin_create_only && p.private_admin_only && !p.answer_joins);
        assert!(!p.open_reads && p.private_needs_invite && !p.admins_manage_private);
        assert!(p.group_admin_roles.is_empty());
        assert_eq!(
            p.relay_admins,
            vec![ADMIN.to_owned()],
            "zooid's owner manages"
        );
    }

    #[test]
    fn what_highwater_cannot_do_is_refused() {
        for text in [
            "[groups]\nenabled = false\n",
            "[policy]\nstrip_signatures = true\n",
            "[blossom]\nenabled = true\n",
            "[roles.member]\ncan_manage = true\n",
        ] {
            assert!(parse_text(text).is_err(), "{text}");
        }
    }
}
