//! Typed errors of the relay.

use highwater_engine::EngineError;
use highwater_store::StoreError;

/// Errors of the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The signing keys are not the relay key the projections were configured with.
    #[error("the relay secret key does not match the database's relay key {expected}")]
    WrongKey {
        /// The configured relay public key, hex.
        expected: String,
    },
    /// Binding or accepting on the listening socket failed.
    #[error("network I/O error while {context}: {source}")]
    Io {
        /// What the relay was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A NIP-29 query failed.
    #[error(transparent)]
    Projections(#[from] highwater_projections::Error),
    /// The relay could not build or sign one of its own events (an answer to a join or
    /// leave request, a NIP-43 membership event).
    #[error(transparent)]
    Sign(Box<dyn std::error::Error + Send + Sync>),
    /// A background thread of the relay could not be started or stopped.
    #[error("relay thread error: {0}")]
    Thread(String),
}

impl RelayError {
    /// The error of building or signing one of the relay's own events.
    pub(crate) fn sign(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Sign(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::RelayError>();
    }
}
