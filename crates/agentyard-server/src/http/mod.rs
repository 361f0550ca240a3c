//! Cross-cutting HTTP concerns, in one place: the layers every request passes through (body size
//! limit, tracing), the connections requests arrive on (`connections`: the accept loop with its
//! header, idle and connection limits; `body`: the request body's deadline, put on where hyper
//! hands a body over) and `tls` (HTTPS).

mod body;
pub mod connections;
mod tls;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::ServerConfig;

pub use body::BodyTimedOut;
pub use tls::{Tls, TlsError};

/// Wraps `router` in the layers every request passes through: the body size limit (413
/// beyond it) and the trace span.
pub fn layers<S>(router: Router<S>, config: &ServerConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(DefaultBodyLimit::max(config.body_limit_bytes)).layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
            .on_request(())
            .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
    )
}
