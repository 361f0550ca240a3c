//! Cross-cutting HTTP concerns, in one place: the layers every request passes through (body size
//! limit; `requests`: correlation id, request metrics and the request's log line), the connections requests arrive on (`connections`: the accept loop with its
//! header, idle and connection limits; `body`: the request body's deadline, put on where hyper
//! hands a body over) and `tls` (HTTPS).

mod body;
pub mod connections;
pub mod correlation;
mod requests;
mod tls;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::config::ServerConfig;
use crate::metrics::requests::RequestMetrics;

pub use body::BodyTimedOut;
pub use tls::{Tls, TlsError};

/// Wraps `router` in the layers every request passes through: the body size limit (413
/// beyond it) and the request layer (correlation id, metrics, log line). `Router::layer` puts
/// them on each route, after routing, so the request layer sees the matched route template.
pub fn layers<S>(router: Router<S>, config: &ServerConfig, metrics: RequestMetrics) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(metrics, requests::observe))
}
