//! Cross-cutting HTTP concerns, in one place: the layers every request passes through (body size
//! and time budgets, tracing) and the connections requests arrive on (`connections`: the accept
//! loop with its header, idle and connection limits; `tls`: HTTPS).

mod body;
pub mod connections;
mod tls;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::ServerConfig;

pub use body::{BodyDeadline, BodyDeadlineLayer, BodyTimedOut};
pub use tls::{Tls, TlsError};

/// Wraps `router` in the layers every request passes through: the body size limit (413
/// beyond it), the body deadline and the trace span.
pub fn layers<S>(router: Router<S>, config: &ServerConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(BodyDeadlineLayer::new(config.body_timeout))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
}
