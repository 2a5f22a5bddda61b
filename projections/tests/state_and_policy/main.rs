//! The projections' state and the access policy at their edges, in one test binary (so
//! that each mutant of a mutation run — `bash .ci/mutants`, MUTANTS.md — links one
//! binary more, not several): the group lifecycle, the metadata state, the access
//! policy, and membership, roles and creator against a reference model.

mod dense;
mod life;
mod metadata;
mod policy_matrix;
mod policy_rules;
mod support;
