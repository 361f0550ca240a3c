//! The state every handler and loop shares: the store, the clock, the settings and the dispatcher.

use std::sync::Arc;

use agentyard_core::Clock;
use agentyard_store::Store;

use crate::config::ServerConfig;
use crate::dispatch::Dispatch;

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ServerConfig>,
    pub dispatch: Arc<Dispatch>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ServerConfig) -> Self {
        Self {
            store,
            clock,
            config: Arc::new(config),
            dispatch: Arc::new(Dispatch::new()),
        }
    }
}
