//! Typed errors of the projections crate.

use highwater_engine::EngineError;

/// Errors of the NIP-29 queries, views and rendering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not produce a fully loaded group (log error, failed fold).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Reading the log directly (the relay-wide parent links) failed.
    #[error(transparent)]
    Store(#[from] highwater_store::StoreError),
    /// State events can be signed only with the configured relay key.
    #[error("the signing keys are not the configured relay key {expected}")]
    WrongRelayKey {
        /// The configured relay key, hex.
        expected: String,
    },
    /// Signing a rendered state event failed.
    #[error("signing a state event failed: {0}")]
    Sign(String),
    /// A writer's speculative state of a group (its accepted, unacknowledged changes
    /// folded into a copy) could not be read or folded.
    #[error("the group's pending state: {0}")]
    Pending(String),
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::Error>();
        check::<crate::Rejection>();
    }
}
