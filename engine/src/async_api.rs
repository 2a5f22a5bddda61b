//! The async face of the engine (feature `tokio`): appends acknowledged by a future
//! the writer completes after the durable commit, reads that may catch a cold group up
//! run on tokio's blocking pool, and subscriptions as a `futures_core::Stream`.
//!
//! Nothing here blocks a runtime worker thread: validation (id hash, signature, the
//! duplicate lookup) and catch-up folds run under `spawn_blocking`; waiting for the
//! group commit's fsync is an `.await` on the store's [`Ticket`](highwater_store::Ticket),
//! which the writer thread completes. The blocking API is unchanged beside it.

use std::sync::Arc;

use highwater_store::{AppendOutcome, Prepared, StoreError};
use nostr::prelude::Event;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::handle::Handle;
use crate::projection::Projection;

/// Runs `f` on tokio's blocking pool; a panic in `f` is resumed in the caller, as in
/// the blocking API.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, EngineError> + Send + 'static,
) -> Result<R, EngineError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(EngineError::RuntimeShutdown),
    }
}

impl Engine {
    /// Appends an event; resolves once it is durable and folded into loaded groups.
    ///
    /// Validation runs on tokio's blocking pool, and the wait for the group commit is
    /// an `.await` completed by the writer thread, so no runtime worker thread blocks:
    /// many tasks may append at once and share one commit. Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`Engine::append`]: a rejected event, or a failed commit (map or disk full,
    /// I/O); [`EngineError::RuntimeShutdown`] if the runtime shuts down first.
    pub async fn append_async(&self, event: &Event) -> Result<AppendOutcome, EngineError> {
        let store = self.store().clone();
        let event = event.clone();
        let prepared = blocking(move || Ok(store.prepare(&event)?)).await?;
        match prepared {
            Prepared::Duplicate(seq) => Ok(AppendOutcome::Duplicate(seq)),
            Prepared::Ready(prepared) => {
                let outcomes = self.store().submit(vec![prepared])?.await?;
                Ok(outcomes.into_iter().next().ok_or(StoreError::WriterGone)?)
            }
        }
    }

    /// Appends a batch in one commit (see [`Engine::append_batch`]), on tokio's
    /// blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Engine::append_batch`]; [`EngineError::RuntimeShutdown`] if the runtime
    /// shuts down first.
    pub async fn append_batch_async(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, EngineError> {
        let engine = self.clone();
        blocking(move || engine.append_batch(&events)).await
    }

    /// Loads a group in every projection (see [`Engine::load_group`]) on tokio's
    /// blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Engine::load_group`]; [`EngineError::RuntimeShutdown`] if the runtime
    /// shuts down first.
    pub async fn load_group_async(&self, group: &str) -> Result<(), EngineError> {
        let engine = self.clone();
        let group: Arc<str> = group.into();
        blocking(move || engine.load_group(&group)).await
    }
}

impl<P: Projection> Handle<P> {
    /// [`Handle::read`] on tokio's blocking pool: a read that must first catch a cold
    /// group up (checkpoint plus the tail of its log) never holds a runtime worker.
    ///
    /// # Errors
    ///
    /// As [`Handle::read`]; [`EngineError::RuntimeShutdown`] if the runtime shuts
    /// down first.
    ///
    /// # Panics
    ///
    /// When `f` panics (the panic is resumed here).
    pub async fn read_async<R, F>(&self, group: &str, f: F) -> Result<R, EngineError>
    where
        F: FnOnce(&P::State) -> R + Send + 'static,
        R: Send + 'static,
    {
        let handle = self.clone();
        let group: Arc<str> = group.into();
        blocking(move || handle.read(&group, f)).await
    }
}
