//! The reference model of NIP-29 (`model`), the relay state events it expects
//! (`render`) and the access policy's answers (`policy`), random logs (`logs`), and the
//! comparison of every query with the model (`compare`).

#![allow(
    unreachable_pub,
    reason = "a helper module of one test binary; `pub` is read as crate-wide"
)]

pub mod compare;
pub mod logs;
pub mod model;
pub mod policy;
pub mod render;
