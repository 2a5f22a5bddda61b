//! Group metadata (`name`, `about`, `picture` and the four flags) as carried by 9007,
//! 9002 and 39000, in every dialect clients and relays use to spell the flags.

use nostr::prelude::Tag;
use rand::Rng;
use rand::seq::IndexedRandom;

use super::super::keys::Signer;
use super::super::vocab::{ADJECTIVES, FLAGS, JSON_FLAGS, LEGACY_FLAGS, NOUNS, SNAPSHOT_METADATA};
use super::{Draft, Planner};

/// Which way a metadata event spells its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `["private"]`, `["closed"]`, … for the flags that are set.
    Tags,
    /// One of `private`/`public`, `closed`/`open`, … per flag (some omitted).
    Legacy,
    /// `{"private":true,"write-restricted":false,…}` in the content.
    Json,
    /// Tags and the same flags as JSON in the content.
    Mixed,
    /// Relay style for 39000: `private`/`public` and `closed`/`open` always, `hidden` and
    /// `restricted` when set.
    Relay,
}

impl Planner {
    /// 9007, 9002 or 39000 metadata (`name`, `about`, `picture`, flags) in a dialect
    /// (random for 9002 when `dialect` is `None`).
    pub(super) fn metadata(
        &mut self,
        group: u32,
        signer: Signer,
        kind: u16,
        dialect: Option<Dialect>,
    ) -> Draft {
        let dialect = dialect.unwrap_or_else(|| {
            let r: f64 = self.rng.random();
            if r < 0.45 {
                Dialect::Tags
            } else if r < 0.7 {
                Dialect::Legacy
            } else if r < 0.88 {
                Dialect::Json
            } else {
                Dialect::Mixed
            }
        });
        let mut tags = vec![if kind == SNAPSHOT_METADATA {
            self.d(group)
        } else {
            self.h(group)
        }];
        if kind == SNAPSHOT_METADATA || self.rng.random_bool(0.9) {
            let name = format!(
                "{} {}",
                ADJECTIVES
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or_default(),
                NOUNS.choose(&mut self.rng).copied().unwrap_or_default()
            );
            tags.push(Tag::custom("name", [name]));
        }
        if self.rng.random_bool(0.6) {
            let words = self.rng.random_range(4..=12);
            tags.push(Tag::custom("about", [self.text(words)]));
        }
        if self.rng.random_bool(0.4) {
            let picture = format!(
                "https://images.example.com/{:016x}.png",
                self.rng.random::<u64>()
            );
            tags.push(Tag::custom("picture", [picture]));
        }
        let flags: [bool; 4] = [
            self.rng.random_bool(0.3),
            self.rng.random_bool(0.3),
            self.rng.random_bool(0.1),
            self.rng.random_bool(0.2),
        ];
        let mut content = String::new();
        for (i, &set) in flags.iter().enumerate() {
            match dialect {
                Dialect::Tags | Dialect::Mixed if set => tags.push(Tag::custom(FLAGS[i], [""; 0])),
                Dialect::Legacy if self.rng.random_bool(0.8) => {
                    let name = if set { FLAGS[i] } else { LEGACY_FLAGS[i] };
                    tags.push(Tag::custom(name, [""; 0]));
                }
                Dialect::Relay if set || i < 2 => {
                    let name = if set { FLAGS[i] } else { LEGACY_FLAGS[i] };
                    tags.push(Tag::custom(name, [""; 0]));
                }
                _ => {}
            }
        }
        if matches!(dialect, Dialect::Json | Dialect::Mixed) {
            let fields: Vec<String> = flags
                .iter()
                .zip(JSON_FLAGS)
                .filter(|_| dialect == Dialect::Mixed || self.rng.random_bool(0.8))
                .map(|(set, key)| format!("\"{key}\":{set}"))
                .collect();
            content = format!("{{{}}}", fields.join(","));
        }
        Draft::new(signer, kind, tags).with_content(content)
    }
}
