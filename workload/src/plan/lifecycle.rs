//! A group's life: what its next event is (creation, seeding snapshots, activity or
//! deletion), and the 9007 that starts a life and the 9008 that ends it.

use rand::Rng;

use super::super::keys::{Signer, Signers};
use super::super::vocab::{CREATE_GROUP, DELETE_GROUP, EDIT_METADATA};
use super::group::Life;
use super::metadata::Dialect;
use super::{Draft, PROTECTED_RANKS, Planner};

impl Planner {
    /// The next event of `group`, or `None` to pick again.
    pub(super) fn plan_for_group(&mut self, signers: &Signers, group: u32) -> Option<Draft> {
        match self.groups[group as usize].life {
            Life::Unborn => {
                self.touched += 1;
                if group >= PROTECTED_RANKS && self.rng.random_bool(0.06) {
                    self.seeded += 1;
                    self.groups[group as usize].snapshot_only = true;
                    Some(self.seed_snapshot(signers, group, 0))
                } else {
                    Some(self.create(group))
                }
            }
            Life::Seeding(stage) => Some(self.seed_snapshot(signers, group, stage)),
            Life::Deleted => {
                self.recreated += 1;
                Some(self.create(group))
            }
            Life::Live => self.live(signers, group),
        }
    }

    fn live(&mut self, signers: &Signers, group: u32) -> Option<Draft> {
        if self.groups[group as usize].snapshot_only {
            if self.rng.random_bool(0.25) {
                return Some(self.newer_seed_snapshot(signers, group));
            }
            self.groups[group as usize].snapshot_only = false;
        }
        let doom = &mut self.groups[group as usize].doom;
        match *doom {
            Some(0) => return Some(self.delete_group(group)),
            Some(left) => *doom = Some(left - 1),
            None => {}
        }
        let r: f64 = self.rng.random();
        // Chat is the default (about 55% here, about half of the log once the relay's
        // answers to joins and leaves are counted).
        let draft = if r < 0.21 {
            self.put_users(signers, group)
        } else if r < 0.245 {
            self.remove_users(signers, group)
        } else if r < 0.315 {
            self.join(group)
        } else if r < 0.34 {
            self.leave(group)?
        } else if r < 0.37 {
            let signer = self.authority(group);
            self.metadata(group, signer, EDIT_METADATA, None)
        } else if r < 0.385 {
            self.invite(group)
        } else if r < 0.395 {
            self.delete_event(group)
        } else if r < 0.445 {
            self.relay_snapshot(signers, group)
        } else if r < 0.447 {
            self.forged_snapshot(signers, group)
        } else {
            self.chat(group)
        };
        Some(draft)
    }

    /// 9007: a new life of the group, created by a new user or, on re-creation, sometimes
    /// by its previous creator.
    fn create(&mut self, group: u32) -> Draft {
        let previous = self.groups[group as usize].creator;
        let creator = match previous {
            Some(user) if self.rng.random_bool(0.5) => user,
            _ => self.random_user(),
        };
        let doom = (group >= PROTECTED_RANKS && self.rng.random_bool(0.05))
            .then(|| self.rng.random_range(2..40));
        let g = &mut self.groups[group as usize];
        g.clear();
        g.life = Life::Live;
        g.creator = Some(creator);
        g.add(creator);
        g.doom = doom;
        let r: f64 = self.rng.random();
        if r < 0.3 {
            Draft::new(Signer::User(creator), CREATE_GROUP, vec![self.h(group)])
        } else {
            let dialect = if r < 0.75 {
                Dialect::Tags
            } else {
                Dialect::Legacy
            };
            self.metadata(group, Signer::User(creator), CREATE_GROUP, Some(dialect))
        }
    }

    /// 9008 by the creator (or an admin), ending the group's current life.
    fn delete_group(&mut self, group: u32) -> Draft {
        let g = &mut self.groups[group as usize];
        let signer = match (g.creator, g.admins.first()) {
            (Some(creator), _) => Signer::User(creator),
            (None, Some(&admin)) => Signer::User(admin),
            (None, None) => Signer::Relay,
        };
        g.clear();
        g.life = Life::Deleted;
        g.generation += 1;
        g.doom = None;
        let content = if self.rng.random_bool(0.5) {
            String::new()
        } else {
            "group closed".to_owned()
        };
        Draft::new(signer, DELETE_GROUP, vec![self.h(group)]).with_content(content)
    }
}
