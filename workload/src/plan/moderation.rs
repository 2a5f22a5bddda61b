//! Moderation and membership: members put (9000) and removed (9001) by an authority, join
//! (9021) and leave (9022) requests and the relay's answers to them, invites (9009) and
//! event deletions (9005).

use nostr::prelude::Tag;
use rand::Rng;
use rand::seq::IndexedRandom;

use super::super::keys::{Signer, Signers};
use super::super::vocab::{CREATE_INVITE, DELETE_EVENT, JOIN, LEAVE, PUT_USER, REMOVE_USER};
use super::group::Life;
use super::{Answer, Draft, Planner, random_string};

impl Planner {
    /// The author of a moderation event: mostly the creator or an admin, sometimes a
    /// moderator, rarely anybody.
    pub(super) fn authority(&mut self, group: u32) -> Signer {
        let r: f64 = self.rng.random();
        let g = &self.groups[group as usize];
        if r < 0.04 {
            return Signer::User(self.rng.random_range(0..self.users));
        }
        if r < 0.14
            && let Some(&moderator) = g.moderators.choose(&mut self.rng)
        {
            return Signer::User(moderator);
        }
        if let Some(creator) = g.creator
            && (g.admins.is_empty() || r < 0.6)
        {
            return Signer::User(creator);
        }
        g.admins
            .choose(&mut self.rng)
            .map_or(Signer::Relay, |&admin| Signer::User(admin))
    }

    /// 9000 from an authority: one or several `p`, bare or with roles.
    pub(super) fn put_users(&mut self, signers: &Signers, group: u32) -> Draft {
        let signer = self.authority(group);
        let count = if self.rng.random_bool(0.06) {
            self.rng.random_range(5..=20)
        } else {
            1 + usize::from(self.rng.random_bool(0.35)) + usize::from(self.rng.random_bool(0.1))
        };
        let mut tags = vec![self.h(group)];
        let mut chosen = Vec::with_capacity(count);
        for _ in 0..count {
            let existing = if self.rng.random_bool(0.15) {
                self.groups[group as usize]
                    .members
                    .choose(&mut self.rng)
                    .copied()
            } else {
                None
            };
            let user = match existing {
                Some(member) => member,
                None => self.outsider(group),
            };
            if chosen.contains(&user) {
                continue;
            }
            chosen.push(user);
            let r: f64 = self.rng.random();
            let roles: &[&str] = if r < 0.62 {
                &[]
            } else if r < 0.80 {
                &["admin"]
            } else if r < 0.90 {
                &["moderator", "writer"]
            } else if r < 0.96 {
                &["writer"]
            } else if r < 0.98 {
                &["moderator"]
            } else {
                &["admin", "admin"]
            };
            let g = &mut self.groups[group as usize];
            g.add(user);
            g.set_roles(user, roles);
            let mut values = vec![signers.user_hex(user)];
            values.extend(roles.iter().map(|&role| role.to_owned()));
            tags.push(Tag::custom("p", values));
        }
        let content = if self.rng.random_bool(0.1) {
            "welcome".to_owned()
        } else {
            String::new()
        };
        Draft::new(signer, PUT_USER, tags).with_content(content)
    }

    /// 9001 from an authority: one or several `p`, sometimes of non-members.
    pub(super) fn remove_users(&mut self, signers: &Signers, group: u32) -> Draft {
        let signer = self.authority(group);
        let r: f64 = self.rng.random();
        let count = if r < 0.7 {
            1
        } else if r < 0.9 {
            2
        } else {
            self.rng.random_range(3..=5)
        };
        let mut tags = vec![self.h(group)];
        let mut chosen = Vec::with_capacity(count);
        for _ in 0..count {
            let user = match self.ordinary_member(group) {
                Some(member) if self.rng.random_bool(0.92) => member,
                _ => self.random_user(),
            };
            if chosen.contains(&user) {
                continue;
            }
            chosen.push(user);
            self.groups[group as usize].remove(user);
            tags.push(Tag::custom("p", [signers.user_hex(user)]));
        }
        Draft::new(signer, REMOVE_USER, tags)
    }

    /// 9021 from an outsider; the relay usually answers with a 9000 a little later.
    pub(super) fn join(&mut self, group: u32) -> Draft {
        let user = self.outsider(group);
        let mut tags = vec![self.h(group)];
        if let Some(code) = &self.groups[group as usize].last_invite
            && self.rng.random_bool(0.3)
        {
            tags.push(Tag::custom("code", [code.as_str()]));
        }
        if self.rng.random_bool(0.8) {
            self.answers.push_back(Answer {
                group,
                generation: self.groups[group as usize].generation,
                user,
                put: true,
            });
        }
        let content = if self.rng.random_bool(0.3) {
            "hi, may I join?".to_owned()
        } else {
            String::new()
        };
        Draft::new(Signer::User(user), JOIN, tags).with_content(content)
    }

    /// 9022 from a member; the relay usually answers with a 9001 a little later.
    pub(super) fn leave(&mut self, group: u32) -> Option<Draft> {
        let user = self.ordinary_member(group)?;
        if self.rng.random_bool(0.9) {
            self.answers.push_back(Answer {
                group,
                generation: self.groups[group as usize].generation,
                user,
                put: false,
            });
        }
        Some(Draft::new(Signer::User(user), LEAVE, vec![self.h(group)]))
    }

    /// The relay's 9000/9001 for a join or leave, unless the group was deleted since.
    pub(super) fn answer(&mut self, signers: &Signers, answer: &Answer) -> Option<Draft> {
        let g = &mut self.groups[answer.group as usize];
        if g.generation != answer.generation || g.life != Life::Live {
            return None;
        }
        let kind = if answer.put {
            g.add(answer.user);
            g.set_roles(answer.user, &[]);
            PUT_USER
        } else {
            g.remove(answer.user);
            REMOVE_USER
        };
        let tags = vec![
            self.h(answer.group),
            Tag::custom("p", [signers.user_hex(answer.user)]),
        ];
        Some(Draft::new(Signer::Relay, kind, tags))
    }

    /// 9009 with a fresh code.
    pub(super) fn invite(&mut self, group: u32) -> Draft {
        let signer = self.authority(group);
        let code = random_string(&mut self.rng, 10);
        self.groups[group as usize].last_invite = Some(code.clone());
        Draft::new(
            signer,
            CREATE_INVITE,
            vec![self.h(group), Tag::custom("code", [code])],
        )
    }

    /// 9005 of the group's last known chat message, else a chat message.
    pub(super) fn delete_event(&mut self, group: u32) -> Draft {
        let Some(id) = self.groups[group as usize].last_chat.take() else {
            return self.chat(group);
        };
        let signer = self.authority(group);
        Draft::new(
            signer,
            DELETE_EVENT,
            vec![self.h(group), Tag::custom("e", [id.to_hex()])],
        )
    }
}
