//! The store at its edges, in one test binary (so that each mutant of a mutation run —
//! `bash .ci/mutants`, MUTANTS.md — links one binary more, not four): the checkpoint
//! table and settings, the handle itself, and what a store learns of another
//! process's commits.

mod checkpoints;
mod follow;
mod handle;
mod support;
mod tail;
