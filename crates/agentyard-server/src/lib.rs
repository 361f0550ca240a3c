//! agentyard's HTTP server: the `/v1` API (axum handlers in [`api`]), the dispatch machinery that
//! wakes long-polling claimers and runs the timer loop ([`dispatch`]), the cross-cutting HTTP
//! layers and connection handling ([`http`]), configuration and start-up.

pub mod api;
pub mod auth;
pub mod config;
pub mod dispatch;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod state;

pub use config::ServerConfig;
pub use state::AppState;
