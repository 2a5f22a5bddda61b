//! Typed errors of the engine.

use highwater_store::StoreError;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Folding an event failed earlier; the (projection, group) serves no answer until
    /// it is rebuilt.
    #[error("projection {projection} failed on group {group} at event sequence {seq}: {message}")]
    Failed {
        projection: String,
        group: String,
        seq: u64,
        message: String,
    },
    /// No projection of that name is registered.
    #[error("unknown projection {0:?}")]
    UnknownProjection(String),
    /// A state could not be encoded for a checkpoint.
    #[error("projection {projection}: {message}")]
    Codec { projection: String, message: String },
    /// The engine has been closed.
    #[error("the engine is closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::EngineError>();
    }
}
