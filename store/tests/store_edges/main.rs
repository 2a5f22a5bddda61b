//! Tests written against the survivors of mutation testing (`bash .ci/mutants`, see
//! MUTANTS.md), in one test binary so that each mutant links one binary more, not four:
//! the checkpoint table and settings at their edges, the handle itself, and what a
//! store learns of another process's commits.

mod checkpoints;
mod follow;
mod handle;
mod support;
