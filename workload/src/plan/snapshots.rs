//! Relay snapshot events 39000–39003: the stages of groups seeded from snapshots only,
//! the relay's refreshes of a live group's state, and snapshots forged by other keys.

use nostr::prelude::Tag;
use rand::Rng;

use super::super::keys::{Signer, Signers};
use super::super::vocab::{
    ROLES, SNAPSHOT_ADMINS, SNAPSHOT_MEMBERS, SNAPSHOT_METADATA, SNAPSHOT_ROLES,
};
use super::group::Life;
use super::metadata::Dialect;
use super::{Draft, MAX_SNAPSHOT_MEMBERS, Planner};

impl Planner {
    /// Snapshot `stage` (39000, 39001, 39002, 39003) of a group seeded from snapshots.
    pub(super) fn seed_snapshot(&mut self, signers: &Signers, group: u32, stage: u8) -> Draft {
        let draft = match stage {
            0 => self.metadata(
                group,
                Signer::Relay,
                SNAPSHOT_METADATA,
                Some(Dialect::Relay),
            ),
            1 => {
                for _ in 0..self.rng.random_range(1..=3) {
                    let user = self.random_user();
                    let roles: &[&str] = if self.rng.random_bool(0.7) {
                        &["admin"]
                    } else {
                        &["moderator"]
                    };
                    let g = &mut self.groups[group as usize];
                    g.add(user);
                    g.set_roles(user, roles);
                }
                self.admins_snapshot(signers, group, Signer::Relay)
            }
            2 => {
                for _ in 0..self.rng.random_range(2..=30) {
                    let user = self.random_user();
                    self.groups[group as usize].add(user);
                }
                self.members_snapshot(signers, group, Signer::Relay)
            }
            _ => self.roles_snapshot(group),
        };
        self.groups[group as usize].life = if stage >= 3 {
            Life::Live
        } else {
            Life::Seeding(stage + 1)
        };
        draft
    }

    /// A newer 39002 (members changed) or 39000 of a group still seeded by snapshots only.
    pub(super) fn newer_seed_snapshot(&mut self, signers: &Signers, group: u32) -> Draft {
        if self.rng.random_bool(0.4) {
            return self.metadata(
                group,
                Signer::Relay,
                SNAPSHOT_METADATA,
                Some(Dialect::Relay),
            );
        }
        for _ in 0..self.rng.random_range(1..=3) {
            let user = self.random_user();
            self.groups[group as usize].add(user);
        }
        if self.rng.random_bool(0.5)
            && let Some(member) = self.ordinary_member(group)
        {
            self.groups[group as usize].remove(member);
        }
        self.members_snapshot(signers, group, Signer::Relay)
    }

    /// A relay refresh of one of the group's state events.
    pub(super) fn relay_snapshot(&mut self, signers: &Signers, group: u32) -> Draft {
        let r: f64 = self.rng.random();
        let small = self.groups[group as usize].members.len() <= MAX_SNAPSHOT_MEMBERS;
        if r < 0.25 {
            self.admins_snapshot(signers, group, Signer::Relay)
        } else if r < 0.5 && small {
            self.members_snapshot(signers, group, Signer::Relay)
        } else if r < 0.65 {
            self.roles_snapshot(group)
        } else {
            self.metadata(
                group,
                Signer::Relay,
                SNAPSHOT_METADATA,
                Some(Dialect::Relay),
            )
        }
    }

    /// A 39000/39001/39002 signed by a key other than the relay's, claiming the group.
    pub(super) fn forged_snapshot(&mut self, signers: &Signers, group: u32) -> Draft {
        self.forged += 1;
        let signer = if self.rng.random_bool(0.5) {
            Signer::Forger
        } else {
            Signer::User(self.random_user())
        };
        let forger = signers.hex(signer);
        match self.rng.random_range(0..3) {
            0 => Draft::new(
                signer,
                SNAPSHOT_ADMINS,
                vec![
                    self.d(group),
                    Tag::custom("p", [forger, "admin".to_owned()]),
                ],
            ),
            1 => Draft::new(
                signer,
                SNAPSHOT_MEMBERS,
                vec![self.d(group), Tag::custom("p", [forger])],
            ),
            _ => Draft::new(
                signer,
                SNAPSHOT_METADATA,
                vec![
                    self.d(group),
                    Tag::custom("name", ["free for all"]),
                    Tag::custom("public", [""; 0]),
                    Tag::custom("open", [""; 0]),
                ],
            ),
        }
    }

    /// 39001: the creator and admins as `admin`, moderators as `moderator`.
    fn admins_snapshot(&self, signers: &Signers, group: u32, signer: Signer) -> Draft {
        let g = &self.groups[group as usize];
        let mut tags = vec![self.d(group)];
        let admins = g
            .creator
            .iter()
            .chain(&g.admins)
            .map(|&user| (user, "admin"));
        let moderators = g.moderators.iter().map(|&user| (user, "moderator"));
        let mut listed = Vec::new();
        for (user, role) in admins.chain(moderators).take(20) {
            if !listed.contains(&user) {
                listed.push(user);
                tags.push(Tag::custom("p", [signers.user_hex(user), role.to_owned()]));
            }
        }
        Draft::new(signer, SNAPSHOT_ADMINS, tags)
    }

    /// 39002 listing (at most [`MAX_SNAPSHOT_MEMBERS`]) members.
    fn members_snapshot(&self, signers: &Signers, group: u32, signer: Signer) -> Draft {
        let g = &self.groups[group as usize];
        let mut tags = vec![self.d(group)];
        tags.extend(
            g.members
                .iter()
                .take(MAX_SNAPSHOT_MEMBERS)
                .map(|&user| Tag::custom("p", [signers.user_hex(user)])),
        );
        Draft::new(signer, SNAPSHOT_MEMBERS, tags)
    }

    /// 39003 with the role definitions.
    fn roles_snapshot(&self, group: u32) -> Draft {
        let mut tags = vec![self.d(group)];
        tags.extend(
            ROLES
                .iter()
                .map(|&(name, description)| Tag::custom("role", [name, description])),
        );
        Draft::new(Signer::Relay, SNAPSHOT_ROLES, tags)
    }
}
