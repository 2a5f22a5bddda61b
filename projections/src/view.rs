//! [`GroupView`]: a whole group in one serialisable value, for rendering, snapshot tests
//! and the command-line tool.

use std::collections::BTreeMap;

use highwater_engine::Engine;
use serde::Serialize;

use crate::error::Error;
use crate::fields::GroupMetadata;
use crate::groups::Groups;
use crate::life::{Life, Source};
use crate::metadata::Metadata;
use crate::roles::RoleDefinition;

/// One member and their roles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MemberView {
    /// The member's pubkey, lowercase hex.
    pub pubkey: String,
    /// Their roles, sorted.
    pub roles: Vec<String>,
}

/// A whole group as the projections see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// The group id.
    pub group: String,
    /// Unknown, active or deleted.
    pub state: Life,
    /// Where the state of its current life comes from.
    pub source: Source,
    /// The creator of its current life, hex.
    pub creator: Option<String>,
    /// Its metadata, with the effective parent.
    pub metadata: GroupMetadata,
    /// Its children, in order.
    pub children: Vec<String>,
    /// Its pinned references (`e`/`a` values of its latest 9010), in order.
    pub pinned: Vec<String>,
    /// Its invite codes, sorted.
    pub invite_codes: Vec<String>,
    /// Its role definitions, sorted by name.
    pub role_definitions: Vec<RoleDefinition>,
    /// How many members.
    pub member_count: usize,
    /// The members with their roles, sorted by pubkey.
    pub members: Vec<MemberView>,
    /// Per projection, the last sequence number folded into the state shown (read
    /// after the state; in oracle mode, the group's head).
    pub watermarks: BTreeMap<String, u64>,
}

impl Groups {
    /// The whole of `group`, from the four projections (each read fully loaded), with
    /// each projection's watermark from `engine` after the reads.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when a group involved cannot be fully loaded (a log read or a
    /// fold failed).
    pub fn view(&self, engine: &Engine, group: &str) -> Result<GroupView, Error> {
        let lifecycle = self.lifecycle(group)?;
        let creator = self.creator(group)?.map(|k| k.to_hex());
        let (metadata, invite_codes, pinned) = self.with::<Metadata, _>(group, |s| {
            (
                s.metadata().clone(),
                s.invite_codes().map(str::to_owned).collect(),
                s.pins().iter().map(|p| p.value.clone()).collect(),
            )
        })?;
        let metadata = GroupMetadata {
            parent: match metadata.parent {
                Some(_) => self.parent(group)?,
                None => None,
            },
            ..metadata
        };
        let children = self.children(group)?;
        let role_definitions = self.role_definitions(group)?;
        let members: Vec<MemberView> = self
            .members_with_roles(group)?
            .into_iter()
            .map(|m| MemberView {
                pubkey: m.pubkey.to_hex(),
                roles: m.roles,
            })
            .collect();
        let mut watermarks = BTreeMap::new();
        let head = engine.store().group(group).map_or(0, |g| g.head);
        for name in [
            self.membership_projection().name(),
            self.roles_projection().name(),
            self.metadata_projection().name(),
            self.creator_projection().name(),
        ] {
            let watermark = if self.is_oracle() {
                head
            } else {
                engine.group_status(name, group)?.watermark
            };
            watermarks.insert(name.to_owned(), watermark);
        }
        Ok(GroupView {
            group: group.to_owned(),
            state: lifecycle.life,
            source: lifecycle.source,
            creator,
            metadata,
            children,
            pinned,
            invite_codes,
            role_definitions,
            member_count: members.len(),
            members,
            watermarks,
        })
    }
}
