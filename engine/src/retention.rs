//! Retention: which records may leave the log, and when they have expired.
//!
//! A record may be removed only if no registered projection — per group or relay-wide
//! — folds its kind: then no state, no watermark and no checkpoint depends on it, and
//! every projection's answer is the same before and after (folds pass holes like
//! records of kinds they do not fold). The removable kinds are derived from what is
//! registered, never listed by hand: registering a projection that folds kind 9 makes
//! kind 9 permanent. A record has expired when its `created_at` is older than its
//! group's duration at the clock the caller passes in; compaction is not a fold, so
//! the folds stay clock-free.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use highwater_store::{CompactReport, ExpiryRule};

use crate::engine::Engine;
use crate::error::EngineError;

/// Records removed per compaction transaction by [`Engine::compact`].
pub const DEFAULT_COMPACT_CHUNK: usize = 4_096;

/// How long the records of a group are kept (zooid's `[groups.retention]`): a
/// configuration fills it, `highwater compact` and the relay's background task apply
/// it through [`Engine::compact`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// How long records of a group without its own duration are kept (`None`: forever).
    pub default: Option<Duration>,
    /// Per group id, how long its records are kept; overrides `default`. A duration
    /// longer than the clock (`Duration::MAX`) keeps that group's records forever.
    pub per_group: BTreeMap<String, Duration>,
    /// Which kinds expire: `None`, every kind no registered projection folds; `Some`,
    /// only these, each of which must be such a kind.
    pub kinds: Option<BTreeSet<u16>>,
}

impl RetentionPolicy {
    /// Whether the policy expires nothing.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.per_group.is_empty()
    }
}

/// Seconds since the epoch `keep` before `now` (0 when that is before the epoch).
fn bound(now: SystemTime, keep: Duration) -> u64 {
    now.checked_sub(keep)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

impl Engine {
    /// Whether any registered projection, per group or relay-wide, folds `kind`.
    pub fn folds_kind(&self, kind: u16) -> bool {
        self.folding_projection(kind).is_some()
    }

    /// The store's rule for `policy` at the clock `now`: a record expires when its
    /// kind may be removed and its `created_at` is before `now` less its group's
    /// duration.
    ///
    /// # Errors
    ///
    /// [`EngineError::Retention`] when `policy.kinds` names a kind a registered
    /// projection folds.
    pub fn expiry_rule(
        &self,
        policy: &RetentionPolicy,
        now: SystemTime,
    ) -> Result<ExpiryRule, EngineError> {
        if let Some(kinds) = &policy.kinds {
            for &kind in kinds {
                if let Some(projection) = self.folding_projection(kind) {
                    return Err(EngineError::Retention(format!(
                        "kind {kind} cannot expire: projection {projection} folds it"
                    )));
                }
            }
        }
        let mut rule = ExpiryRule::new(|kind| {
            policy
                .kinds
                .as_ref()
                .is_none_or(|only| only.contains(&kind))
                && !self.folds_kind(kind)
        });
        rule.default_before = policy.default.map(|keep| bound(now, keep));
        rule.groups = (policy.per_group.iter())
            .map(|(group, &keep)| (group.clone(), bound(now, keep)))
            .collect();
        Ok(rule)
    }

    /// Removes the records `policy` expires at the clock `now` from the log (see
    /// [`Store::compact`](highwater_store::Store::compact)), in transactions of
    /// [`DEFAULT_COMPACT_CHUNK`] records. No state changes: only records of kinds no
    /// projection folds are removed.
    ///
    /// # Errors
    ///
    /// As [`Engine::expiry_rule`], and the store's errors; what was committed before an
    /// error stays removed.
    pub fn compact(
        &self,
        policy: &RetentionPolicy,
        now: SystemTime,
    ) -> Result<CompactReport, EngineError> {
        self.compact_with(policy, now, DEFAULT_COMPACT_CHUNK, |_| {
            ControlFlow::Continue(())
        })
    }

    /// [`Engine::compact`] with `chunk` records per transaction, calling `after_chunk`
    /// after each commit (it may stop the compaction).
    ///
    /// # Errors
    ///
    /// As [`Engine::compact`].
    pub fn compact_with(
        &self,
        policy: &RetentionPolicy,
        now: SystemTime,
        chunk: usize,
        after_chunk: impl FnMut(&CompactReport) -> ControlFlow<()>,
    ) -> Result<CompactReport, EngineError> {
        if policy.is_empty() {
            return Ok(CompactReport::default());
        }
        let rule = self.expiry_rule(policy, now)?;
        Ok(self.store().compact(&rule, chunk, after_chunk)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_saturate_at_the_epoch() {
        let now = UNIX_EPOCH + Duration::from_mins(20);
        assert_eq!(bound(now, Duration::from_mins(5)), 900);
        assert_eq!(bound(now, Duration::from_hours(2)), 0);
        assert_eq!(bound(now, Duration::MAX), 0);
        assert!(RetentionPolicy::default().is_empty());
    }
}
