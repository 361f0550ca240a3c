//! `GET /metrics`: every metric in the Prometheus text format (rendered by
//! [`crate::metrics::scrape`]). Outside `/v1` and not namespaced: one scrape covers the whole
//! yard. With `--auth` any valid token may read it.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::metrics::scrape;
use crate::state::AppState;

/// Prometheus metrics: requests by route and status with their durations, queue depth and
/// oldest ready age, tasks and agents by status, the yard's counters, process memory and CPU.
#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4"),
    )
)]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let text = scrape::render(&s).await;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(scrape::CONTENT_TYPE));
    response
}
