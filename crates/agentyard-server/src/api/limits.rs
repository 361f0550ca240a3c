//! `/v1/limits…`: keyed dispatch limits at run time. A task's `rate_limit_key` draws from the
//! key's token bucket and its `concurrency_key` caps how many run at once, across all agents of
//! this server. They start from the configuration; changes made here last until a restart.

use agentyard_core::api::{Limit, LimitList, LimitRequest};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use crate::api::error::{ApiError, Problem};
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::config::LimitConfig;
use crate::state::AppState;

/// Set the limits of a key (replacing what it had).
#[utoipa::path(
    put, path = "/v1/limits/{key}", tag = "limits", operation_id = "set_limit",
    params(("key" = String, Path, description = "A rate_limit_key or concurrency_key")),
    request_body = LimitRequest,
    responses(
        (status = 200, description = "The key's limits now", body = Limit),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_limit(
    State(s): State<AppState>,
    key: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<LimitRequest>,
) -> Result<Json<Limit>, ApiError> {
    let Path(key) = key.map_err(|e| ApiError::invalid("key", e.body_text()))?;
    let limit = req.into_limit(key)?;
    s.fleet.limits.set(
        limit.key.clone(),
        LimitConfig {
            rate: limit.rate(),
            max_concurrent: limit.max_concurrent,
        },
    );
    tracing::info!(key = %limit.key, rate = ?limit.rate_per_minute, burst = ?limit.burst,
        max_concurrent = ?limit.max_concurrent, "limit set");
    Ok(Json(limit))
}

/// Every configured key with its limits. Keys not listed have no rate limit and run one task at
/// a time as a concurrency key.
#[utoipa::path(
    get, path = "/v1/limits", tag = "limits",
    responses((status = 200, description = "The limits, by key", body = LimitList))
)]
pub async fn list_limits(State(s): State<AppState>) -> Json<LimitList> {
    Json(LimitList {
        limits: s.fleet.limits.list(),
    })
}
