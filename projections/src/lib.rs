//! NIP-29 projections for highwater: membership, roles, metadata and creator of
//! relay-based groups, the queries over them (subgroups and pins included), an access
//! policy, and the rendering of the relay's group state events.
//!
//! Each projection is a separate engine [`Projection`](highwater_engine::Projection)
//! with its own watermark per group. Their folds are pure: they read events in log
//! order (never by `created_at`, except NIP-01 ties between relay snapshots) and ignore
//! what they cannot parse. All four track the same group [`Lifecycle`]: a 9007 starts a
//! fresh life, a 9008 deletes the group (only a new 9007 brings it back),
//! 9000/9001/9002 make a group exist even without a 9007, and relay-signed 39000–39002
//! seed a group until its first moderation event. The rules, their sources and the
//! tests that pin them are listed in the repository's `SEMANTICS.md`.
//!
//! [`Groups`] answers every query from a fully loaded group (or, as
//! [`Groups::oracle`], from a full replay). Subgroup questions ([`Groups::parent`],
//! [`Groups::children`]) combine the fully loaded metadata of the groups involved with
//! the relay-wide `links` projection, made current up to the log head before each
//! answer; the relay-wide `deletions` projection says which stored events a relay may
//! serve. [`AccessPolicy`] decides
//! reads and writes with NIP-01 `OK` messages; [`Groups::render`] builds 39000–39003
//! and 39005.
//!
//! ```
//! use highwater_engine::{Engine, EngineOptions};
//! use highwater_projections::{AccessPolicy, Groups, Nip29Config, Policy};
//! use highwater_store::{Store, StoreOptions};
//! use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
//!
//! let dir = tempfile::tempdir()?;
//! let relay = Keys::generate();
//! let (alice, bob) = (Keys::generate(), Keys::generate());
//! let store = Store::open(dir.path(), StoreOptions::default())?;
//! let mut builder = Engine::builder(store, EngineOptions::default());
//! let groups = Groups::register(&mut builder, Nip29Config::new(relay.public_key()))?;
//! let engine = builder.build()?;
//!
//! let create = EventBuilder::new(Kind::GroupCreateGroup, "")
//!     .tags([Tag::parse(["h", "pizza"])?, Tag::parse(["name", "Pizza"])?])
//!     .finalize(&alice)?;
//! let put = EventBuilder::new(Kind::GroupPutUser, "")
//!     .tags([Tag::parse(["h", "pizza"])?, Tag::parse(["p", &bob.public_key().to_hex(), "writer"])?])
//!     .finalize(&alice)?;
//! engine.append(&create)?;
//! engine.append(&put)?;
//!
//! assert!(groups.is_member("pizza", &bob.public_key())?);
//! assert_eq!(groups.roles("pizza", &bob.public_key())?, ["writer"]);
//! assert_eq!(groups.creator("pizza")?, Some(alice.public_key()));
//! assert_eq!(groups.metadata("pizza")?.name.as_deref(), Some("Pizza"));
//!
//! let policy = AccessPolicy::new(groups.clone(), Policy::default());
//! let again = EventBuilder::new(Kind::GroupCreateGroup, "")
//!     .tag(Tag::parse(["h", "pizza"])?)
//!     .finalize(&bob)?;
//! let refused = policy.check_write(&again).unwrap_err();
//! assert_eq!(refused.to_string(), "duplicate: group already exists");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::missing_errors_doc, clippy::missing_panics_doc)]

mod config;
mod creator;
mod deletions;
mod dict;
mod error;
mod fields;
mod groups;
mod kinds;
mod life;
mod links;
mod management;
mod membership;
mod metadata;
mod nip29;
mod overlay;
mod parse;
mod policy;
mod reads;
mod relay_members;
mod render;
mod roles;
mod sequencer;
mod subgroups;
mod view;

pub use crate::config::Nip29Config;
pub use crate::creator::{Creator, CreatorState};
pub use crate::deletions::{Deletions, DeletionsState};
pub use crate::error::Error;
pub use crate::fields::{GroupMetadata, Pin};
pub use crate::groups::{DEFAULT_CREATOR_ROLE, Groups, Member};
pub use crate::kinds::KindTable;
pub use crate::life::{Life, Lifecycle, Source};
pub use crate::links::{LinksState, ParentLinks};
pub use crate::management::{Listed, MANAGEMENT_KIND, Management, ManagementState};
pub use crate::membership::{Membership, MembershipState};
pub use crate::metadata::{Metadata, MetadataState};
pub use crate::nip29::Nip29;
pub use crate::parse::parse_hex32;
pub use crate::policy::{AccessPolicy, Policy, Rejection};
pub use crate::relay_members::{
    ADD_MEMBER_KIND, INVITE_KIND, JOIN_REQUEST_KIND, LEAVE_REQUEST_KIND, MEMBER_EVENT_KINDS,
    MEMBER_LIST_KIND, REMOVE_MEMBER_KIND, RelayMembers, RelayMembersState,
};
pub use crate::render::RENDERED_KINDS;
pub use crate::roles::{RoleDefinition, Roles, RolesState};
pub use crate::sequencer::{Sequencer, Verdict};
pub use crate::view::{GroupView, MemberView};

/// The README's library examples, compiled and run as doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
