//! Why a replica's connection to its primary ended: [`ReplicaError`]. The connection
//! is retried after any of them; the error is logged with the primary's URL.

use std::time::Duration;

use highwater_store::StoreError;
use tokio_tungstenite::tungstenite;

/// Why one connection of a replica to its primary ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ReplicaError {
    /// The WebSocket connection could not be opened.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// The primary's URL.
        url: String,
        /// What the WebSocket client said.
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// Sending or receiving on the open connection failed.
    #[error("the connection to the primary failed: {0}")]
    Connection(#[source] Box<tungstenite::Error>),
    /// The primary closed the connection.
    #[error("the primary closed the connection")]
    Closed,
    /// The primary sent nothing for this long while an answer was awaited.
    #[error("the primary did not answer for {} s", .0.as_secs())]
    Silent(Duration),
    /// A text message from the primary is not a NIP-01 relay message.
    #[error("the primary sent a message that is not a NIP-01 relay message: {0}")]
    Message(#[source] nostr::error::Error),
    /// A NIP-77 message from the primary is not hex.
    #[error("the primary sent a NIP-77 message that is not hex: {0}")]
    Hex(#[from] hex::FromHexError),
    /// The negentropy reconciliation failed (a malformed message, or the replica's own
    /// item list).
    #[error("reconciliation (NIP-77) failed: {0}")]
    Negentropy(#[source] negentropy::Error),
    /// The primary refused the replica's NIP-42 authentication (is its key in the
    /// primary's `replicas`?).
    #[error("the primary refused this replica's authentication: {0}")]
    AuthRefused(String),
    /// The primary answered the reconciliation with `NEG-ERR`.
    #[error("the primary refused to reconcile: {0}")]
    ReconcileRefused(String),
    /// The primary closed one of the replica's subscriptions.
    #[error("the primary closed {subscription}: {message}")]
    SubscriptionClosed {
        /// The subscription's id.
        subscription: String,
        /// The primary's `CLOSED` message.
        message: String,
    },
    /// More live events arrived while the stored log was read than the replica buffers.
    #[error("more than {0} live events arrived while catching up")]
    TooManyBuffered(usize),
    /// The replica could not build or sign its authentication event.
    #[error("building this replica's authentication event: {0}")]
    Sign(#[source] nostr::error::Error),
    /// The replica's own log could not be read.
    #[error("reading this replica's log: {0}")]
    Store(#[from] StoreError),
    /// A commit of events from the primary failed; nothing handed over after it was
    /// appended on this connection.
    #[error("appending: {0}")]
    Append(#[source] StoreError),
    /// A thread of the append pipeline could not be started.
    #[error("starting the replica's {what}: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The append pipeline stopped without saying why.
    #[error("the append pipeline stopped")]
    PipelineStopped,
    /// A blocking task of the replica panicked or was cancelled.
    #[error("a blocking task of the replica failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ReplicaError {
    /// A send or receive on the open connection failed.
    pub(super) fn connection(error: tungstenite::Error) -> Self {
        Self::Connection(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicaError;

    #[test]
    fn the_errors_name_what_failed() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ReplicaError>();
        assert_eq!(
            ReplicaError::AuthRefused("restricted: not a replica".into()).to_string(),
            "the primary refused this replica's authentication: restricted: not a replica"
        );
        assert_eq!(
            ReplicaError::SubscriptionClosed {
                subscription: "catchup".into(),
                message: "error: shutting down".into()
            }
            .to_string(),
            "the primary closed catchup: error: shutting down"
        );
        assert_eq!(
            ReplicaError::Silent(std::time::Duration::from_secs(30)).to_string(),
            "the primary did not answer for 30 s"
        );
    }
}
