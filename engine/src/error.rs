//! Typed errors of the engine.

use highwater_store::StoreError;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The log failed; the store's error says how (map or disk full, I/O, LMDB, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Folding an event failed earlier; the (projection, group) serves no answer until
    /// it is rebuilt.
    #[error("projection {projection} failed on group {group} at event sequence {seq}: {message}")]
    Failed {
        /// The projection's name.
        projection: String,
        /// The group's id.
        group: String,
        /// The sequence number of the event whose fold failed.
        seq: u64,
        /// What the fold reported (or the panic's message).
        message: String,
    },
    /// No projection of that name is registered, or a name given to
    /// [`EngineBuilder::add`](crate::EngineBuilder::add) is invalid or taken.
    #[error("unknown projection {0:?}")]
    UnknownProjection(String),
    /// A state could not be encoded for a checkpoint.
    #[error("projection {projection}: {message}")]
    Codec {
        /// The projection's name.
        projection: String,
        /// What the codec reported.
        message: String,
    },
    /// A retention policy that would remove records a projection folds.
    #[error("{0}")]
    Retention(String),
    /// The engine could not start one of its threads.
    #[error("{context}: {source}")]
    Thread {
        /// Which thread.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An async call's blocking part never ran: the tokio runtime shut down first.
    #[cfg(feature = "tokio")]
    #[error("the async runtime shut down before the call ran")]
    RuntimeShutdown,
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::EngineError>();
        check::<crate::subscribe::RecvError>();
    }
}
