//! Every registered projection, per group and relay-wide, as the engine, its commit
//! observer and its checkpoint worker share them.

use std::sync::Arc;

use crate::relay_wide::ErasedRelayWide;
use crate::runtime::ErasedRuntime;

/// Every registered projection, per group and relay-wide.
#[derive(Clone)]
pub(crate) struct Projections {
    pub(crate) per_group: Arc<[Arc<dyn ErasedRuntime>]>,
    pub(crate) relay_wide: Arc<[Arc<dyn ErasedRelayWide>]>,
}
