//! The generator's own view of a group: where it is in its life, its members and the
//! holders of the admin and moderator roles.

use std::collections::HashMap;

use nostr::prelude::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// No event yet.
    Unborn,
    /// Seeded from snapshots; the value is the next snapshot stage (0..4).
    Seeding(u8),
    Live,
    Deleted,
}

/// The generator's own view of a group, used only to make the workload plausible.
pub(super) struct Group {
    pub(super) id: String,
    pub(super) life: Life,
    /// Incremented by every deletion, so stale relay answers are dropped.
    pub(super) generation: u32,
    /// Seeded group that has seen nothing but snapshot events so far.
    pub(super) snapshot_only: bool,
    pub(super) creator: Option<u32>,
    pub(super) members: Vec<u32>,
    member_index: HashMap<u32, u32>,
    pub(super) admins: Vec<u32>,
    pub(super) moderators: Vec<u32>,
    /// Events left in this life before its 9008.
    pub(super) doom: Option<u32>,
    pub(super) last_chat: Option<EventId>,
    pub(super) last_invite: Option<String>,
}

impl Group {
    pub(super) fn new(id: String) -> Self {
        Self {
            id,
            life: Life::Unborn,
            generation: 0,
            snapshot_only: false,
            creator: None,
            members: Vec::new(),
            member_index: HashMap::new(),
            admins: Vec::new(),
            moderators: Vec::new(),
            doom: None,
            last_chat: None,
            last_invite: None,
        }
    }

    pub(super) fn is_member(&self, user: u32) -> bool {
        self.member_index.contains_key(&user)
    }

    pub(super) fn add(&mut self, user: u32) {
        if !self.is_member(user) {
            self.member_index.insert(user, self.members.len() as u32);
            self.members.push(user);
        }
    }

    pub(super) fn remove(&mut self, user: u32) {
        if let Some(position) = self.member_index.remove(&user) {
            self.members.swap_remove(position as usize);
            if let Some(&moved) = self.members.get(position as usize) {
                self.member_index.insert(moved, position);
            }
        }
        self.set_roles(user, &[]);
    }

    pub(super) fn set_roles(&mut self, user: u32, roles: &[&str]) {
        update_role_list(&mut self.admins, user, roles.contains(&"admin"));
        update_role_list(&mut self.moderators, user, roles.contains(&"moderator"));
    }

    pub(super) fn clear(&mut self) {
        self.members.clear();
        self.member_index.clear();
        self.admins.clear();
        self.moderators.clear();
        self.creator = None;
        self.last_chat = None;
        self.last_invite = None;
        self.snapshot_only = false;
    }
}

fn update_role_list(list: &mut Vec<u32>, user: u32, has: bool) {
    let position = list.iter().position(|&u| u == user);
    match (has, position) {
        (true, None) if list.len() < 32 => list.push(user),
        (false, Some(position)) => {
            list.swap_remove(position);
        }
        _ => {}
    }
}
