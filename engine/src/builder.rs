//! Building an engine: `Engine::builder`, then `EngineBuilder` registers projections
//! (per group and relay-wide, names unique across both) and `build` starts the engine:
//! its commit observer, its checkpoint thread, and the relay-wide states made current.

use std::sync::Arc;

use highwater_store::Store;
use parking_lot::Mutex;

use crate::checkpoints::{checkpoint_worker, write_checkpoints};
use crate::engine::{Engine, EngineOptions, EngineShared};
use crate::error::EngineError;
use crate::handle::Handle;
use crate::observer::Observer;
use crate::projection::Projection;
use crate::registry::Projections;
use crate::relay_wide::{ErasedRelayWide, RelayWideHandle, RelayWideProjection, RelayWideRuntime};
use crate::runtime::{ErasedRuntime, Runtime};

/// Registers projections, then starts the engine.
pub struct EngineBuilder {
    store: Store,
    options: EngineOptions,
    runtimes: Vec<Arc<dyn ErasedRuntime>>,
    relay_wide: Vec<Arc<dyn ErasedRelayWide>>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("projections", &self.runtimes.len())
            .field("relay_wide", &self.relay_wide.len())
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// The store the engine is built over (for projections' query layers that read
    /// the log directly, e.g. a relay-wide index).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Registers a projection and returns the typed handle to read it through.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] when the name is empty, longer than 64 bytes,
    /// not `[A-Za-z0-9_-]`, or already registered.
    pub fn add<P: Projection>(&mut self, projection: P) -> Result<Handle<P>, EngineError> {
        self.check_name(projection.name())?;
        let runtime = Arc::new(Runtime::new(projection, self.store.clone()));
        self.runtimes.push(runtime.clone());
        Ok(Handle { runtime })
    }

    /// Registers a relay-wide projection (one state for the whole log) and returns the
    /// typed handle to read it through.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownProjection`] when the name is empty, longer than 64 bytes,
    /// not `[A-Za-z0-9_-]`, or already registered (per-group projections included).
    pub fn add_relay_wide<P: RelayWideProjection>(
        &mut self,
        projection: P,
    ) -> Result<RelayWideHandle<P>, EngineError> {
        self.check_name(projection.name())?;
        let runtime = Arc::new(RelayWideRuntime::new(projection, self.store.clone()));
        self.relay_wide.push(runtime.clone());
        Ok(RelayWideHandle { runtime })
    }

    fn check_name(&self, name: &str) -> Result<(), EngineError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let taken = self.runtimes.iter().any(|r| r.name() == name)
            || self.relay_wide.iter().any(|r| r.name() == name);
        if !valid || taken {
            return Err(EngineError::UnknownProjection(format!(
                "{name} (invalid or already registered)"
            )));
        }
        Ok(())
    }

    /// Starts the engine: it begins folding commits into loaded groups. Over a
    /// writable store, the relay-wide projections are made current here (checkpoint
    /// plus log tail), so this process's commits fold into them as they are made and
    /// the checkpoints it writes cover them; a load that had to pass a long tail writes
    /// their checkpoints at once. A failed load is logged and retried by the next read.
    ///
    /// # Errors
    ///
    /// [`EngineError::Thread`] when the checkpoint thread cannot be started.
    pub fn build(self) -> Result<Engine, EngineError> {
        let projections = Projections {
            per_group: self.runtimes.into(),
            relay_wide: self.relay_wide.into(),
        };
        let (checkpoint_tx, checkpoint_rx) = crossbeam_channel::unbounded();
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        let observer = Arc::new(Observer {
            projections: projections.clone(),
            subscribers: subscribers.clone(),
            checkpoint_tx: checkpoint_tx.clone(),
            checkpoint_every: self.options.checkpoint_every,
        });
        let observer_id = self.store.add_observer(observer);
        let worker = {
            let store = self.store.clone();
            let projections = projections.clone();
            std::thread::Builder::new()
                .name("highwater-checkpoints".into())
                .spawn(move || checkpoint_worker(&store, &projections, &checkpoint_rx))
                .map_err(|source| EngineError::Thread {
                    context: "starting the checkpoint thread",
                    source,
                })?
        };
        if !self.store.is_read_only() {
            let mut long_tail = false;
            for r in projections.relay_wide.iter() {
                match r.make_current() {
                    Ok(records) => {
                        long_tail |= r.long_tail(records, self.options.checkpoint_every);
                    }
                    Err(error) => {
                        tracing::warn!(projection = r.name(), %error, "loading a relay-wide projection failed; its next read tries again");
                    }
                }
            }
            if long_tail && let Err(error) = write_checkpoints(&self.store, &projections, None) {
                tracing::warn!(%error, "checkpoints after a long relay-wide catch-up failed; the next open folds the tail again");
            }
        }
        Ok(Engine {
            shared: Arc::new(EngineShared {
                store: self.store,
                options: self.options,
                projections,
                subscribers,
                observer_id,
                checkpoint_tx: Some(checkpoint_tx),
                worker: Some(worker),
            }),
        })
    }
}

impl Engine {
    /// Starts registering projections over `store`.
    pub fn builder(store: Store, options: EngineOptions) -> EngineBuilder {
        EngineBuilder {
            store,
            options,
            runtimes: Vec::new(),
            relay_wide: Vec::new(),
        }
    }
}
