//! Tests written against the survivors of mutation testing (`bash .ci/mutants`, see
//! MUTANTS.md), in one test binary so that each mutant links one binary more, not
//! several: the group lifecycle, the metadata state, the access policy, and membership,
//! roles and creator against a reference model.

mod dense;
mod life;
mod metadata;
mod policy_matrix;
mod policy_rules;
mod support;
