//! `highwater config`: shows and changes the policy options stored in a database, by
//! the names the configuration file gives them.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::cli::Global;
use crate::cli::db::{self, StoredPolicy};

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the policy options stored in the database, one `KEY = VALUE` a line.
    Show,
    /// Change one stored policy option. A running relay takes it at its next SIGHUP
    /// (or restart); a configuration file's or a flag's value for the same key wins.
    #[command(
        after_help = "Keys (the configuration file's names):\n  policy.relay_admins        comma-separated keys (hex or npub)\n  policy.open                anyone reads groups that are not private\n  policy.require_membership  only members post, even without `restricted`\n  policy.join_by_posting     with require_membership: posting joins open groups\n  policy.private_needs_invite\n  groups.auto_join           the relay answers join requests at once\n  groups.admin_create_only   only relay admins create groups\n  groups.private_admin_only  only relay admins create private groups\n  groups.private_relay_admin_access\n  groups.admin_roles         comma-separated group roles that moderate\n\nExample:\n  highwater config set groups.admin_create_only true"
    )]
    Set {
        /// The option, as the configuration file names it (`groups.admin_create_only`);
        /// the part after the dot alone is enough.
        key: String,
        /// `true`/`false`, or a comma-separated list.
        value: String,
    },
}

pub(crate) fn run(global: &Global, args: &ConfigArgs) -> Result<ExitCode> {
    match &args.command {
        ConfigCommand::Show => {
            let store = db::open_existing(global)?;
            let stored = db::stored_policy(&store)?.unwrap_or_default();
            for (key, value) in stored.entries() {
                println!("{key} = {value}");
            }
        }
        ConfigCommand::Set { key, value } => {
            let store = db::open_writable_store(global)?;
            let before = db::stored_policy(&store)?.unwrap_or_default();
            let after = set(&before, key, value)?;
            db::store_policy(&store, &after)?;
            let changes = after.changes_from(&before);
            if changes.is_empty() {
                println!("{}: unchanged", global.db.display());
            } else {
                println!(
                    "{}: {} (a running relay takes it on SIGHUP)",
                    global.db.display(),
                    changes.join("; ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `policy` with `key` set to `value`.
pub(crate) fn set(policy: &StoredPolicy, key: &str, value: &str) -> Result<StoredPolicy> {
    let names: Vec<&str> = policy.entries().iter().map(|(k, _)| *k).collect();
    let matching: Vec<&str> = names
        .iter()
        .copied()
        .filter(|k| *k == key || k.split_once('.').is_some_and(|(_, short)| short == key))
        .collect();
    let [name] = matching[..] else {
        bail!(
            "no policy option {key:?}{}; the options are: {}",
            if matching.len() > 1 {
                " alone (give its section)"
            } else {
                ""
            },
            names.join(", ")
        );
    };
    let flag = || -> Result<bool> {
        value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} takes true or false, not {value:?}"))
    };
    let list = || -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(ToOwned::to_owned)
            .collect()
    };
    let mut p = policy.clone();
    match name {
        "policy.relay_admins" => p.relay_admins = db::canonical_keys(&list(), name)?,
        "policy.open" => p.open_reads = flag()?,
        "policy.require_membership" => p.require_membership = flag()?,
        "policy.join_by_posting" => p.auto_join = flag()?,
        "policy.private_needs_invite" => p.private_needs_invite = flag()?,
        "groups.auto_join" => p.answer_joins = flag()?,
        "groups.admin_create_only" => p.admin_create_only = flag()?,
        "groups.private_admin_only" => p.private_admin_only = flag()?,
        "groups.private_relay_admin_access" => p.admins_manage_private = flag()?,
        "groups.admin_roles" => p.group_admin_roles = list(),
        _ => unreachable!("every entry is settable"),
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";

    #[test]
    fn config_set_names_options_as_the_file_does() {
        let p = StoredPolicy::default();
        assert!(
            set(&p, "groups.admin_create_only", "true")
                .unwrap()
                .admin_create_only
        );
        assert!(
            set(&p, "admin_create_only", "true")
                .unwrap()
                .admin_create_only
        );
        assert!(!set(&p, "open", "false").unwrap().open_reads);
        assert_eq!(
            set(&p, "policy.relay_admins", ADMIN).unwrap().relay_admins,
            [ADMIN]
        );
        assert!(set(&p, "auto_join", "maybe").is_err());
        assert!(set(&p, "nonsense", "true").is_err());
    }
}
