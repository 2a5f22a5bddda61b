//! Chat messages (kind 9, about half of the log) and the text of messages and group
//! descriptions.

use nostr::prelude::Tag;
use rand::Rng;
use rand::seq::IndexedRandom;

use super::super::keys::Signer;
use super::super::vocab::{CHAT, UNICODE_WORDS, WORDS};
use super::{Draft, Planner};

impl Planner {
    /// Kind 9 from a member.
    pub(super) fn chat(&mut self, group: u32) -> Draft {
        let author = match self.groups[group as usize].members.choose(&mut self.rng) {
            Some(&member) => member,
            None => self.random_user(),
        };
        let mut tags = vec![self.h(group)];
        if let Some(last) = self.groups[group as usize].last_chat {
            let r: f64 = self.rng.random();
            if r < 0.2 {
                tags.push(Tag::custom("previous", [&last.to_hex()[..8]]));
            } else if r < 0.3 {
                tags.push(Tag::custom(
                    "e",
                    [last.to_hex(), String::new(), "reply".to_owned()],
                ));
            }
        }
        let words = self.rng.random_range(2..=22);
        let content = self.text(words);
        Draft::new(Signer::User(author), CHAT, tags).with_content(content)
    }

    /// `words` words, in one message out of five with some non-ASCII ones.
    pub(super) fn text(&mut self, words: usize) -> String {
        let unicode = self.rng.random_bool(0.2);
        let mut text = String::new();
        for i in 0..words {
            if i > 0 {
                text.push(' ');
            }
            let list: &[&str] = if unicode && self.rng.random_bool(0.25) {
                &UNICODE_WORDS
            } else {
                &WORDS
            };
            text.push_str(list.choose(&mut self.rng).copied().unwrap_or_default());
        }
        if self.rng.random_bool(0.3) {
            text.push(['.', '!', '?'][self.rng.random_range(0..3)]);
        }
        text
    }
}
