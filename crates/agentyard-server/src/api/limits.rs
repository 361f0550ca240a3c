//! `/v1/limits…`: keyed dispatch limits at run time, per namespace (the `Agentyard-Namespace`
//! header). A task's `rate_limit_key` draws from the key's token bucket and its `concurrency_key`
//! caps how many run at once, across every agent (and every node) of the yard. Limits set here
//! are stored and survive restarts; keys a namespace never set fall back to the configuration.

use agentyard_core::api::{Limit, LimitList, LimitRequest};
use agentyard_core::flow::KeyLimit;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::error::{ApiError, Problem};
use crate::api::extract::{JsonBody, Ns};
use crate::api::json::Json;
use crate::state::AppState;

fn key_of(key: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    key.map(|Path(k)| k)
        .map_err(|e| ApiError::invalid("key", e.body_text()))
}

/// Set the limits of a key (replacing what it had).
#[utoipa::path(
    put, path = "/v1/limits/{key}", tag = "limits", operation_id = "set_limit",
    params(("key" = String, Path, description = "A rate_limit_key or concurrency_key: 1 to 1024 bytes (UTF-8), no control characters", min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")),
    request_body = LimitRequest,
    responses(
        (status = 200, description = "The key's limits now", body = Limit),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_limit(
    State(s): State<AppState>,
    Ns(ns): Ns,
    key: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<LimitRequest>,
) -> Result<Json<Limit>, ApiError> {
    let limit = req.into_limit(key_of(key)?)?;
    let stored = KeyLimit {
        rate: limit.rate(),
        max_concurrent: limit.max_concurrent,
    };
    s.store.put_limit(&ns, &limit.key, stored, s.clock.now()).await?;
    s.fleet.limits.set(&ns, limit.key.clone(), stored);
    tracing::info!(namespace = %ns, key = ?limit.key, rate = ?limit.rate_per_minute, burst = ?limit.burst,
        max_concurrent = ?limit.max_concurrent, "limit set");
    Ok(Json(limit))
}

/// The limits of one key in force in the namespace.
#[utoipa::path(
    get, path = "/v1/limits/{key}", tag = "limits", operation_id = "get_limit",
    params(("key" = String, Path, description = "A rate_limit_key or concurrency_key: 1 to 1024 bytes (UTF-8), no control characters", min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")),
    responses(
        (status = 200, description = "The key's limits", body = Limit),
        (status = 404, description = "The key has no limits (no rate; one running task as a concurrency key)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_limit(
    State(s): State<AppState>,
    Ns(ns): Ns,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Limit>, ApiError> {
    let key = key_of(key)?;
    s.fleet.limits.get(&ns, &key).map(Json).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no limits for key {key:?} in namespace {ns}: it has no rate limit and runs one task at a time as a concurrency key"
        ))
    })
}

/// Remove the limits set for a key in the namespace (the configuration's, if any, apply again).
#[utoipa::path(
    delete, path = "/v1/limits/{key}", tag = "limits", operation_id = "delete_limit",
    params(("key" = String, Path, description = "A rate_limit_key or concurrency_key: 1 to 1024 bytes (UTF-8), no control characters", min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The namespace set no limits for this key", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_limit(
    State(s): State<AppState>,
    Ns(ns): Ns,
    key: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let key = key_of(key)?;
    if !s.store.delete_limit(&ns, &key, s.clock.now()).await? {
        return Err(ApiError::NotFound(format!(
            "no limits were set for key {key:?} in namespace {ns}"
        )));
    }
    s.fleet.limits.remove(&ns, &key);
    tracing::info!(namespace = %ns, key = ?key, "limit removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Every key with limits in force in the namespace. Keys not listed have no rate limit and run
/// one task at a time as a concurrency key.
#[utoipa::path(
    get, path = "/v1/limits", tag = "limits",
    responses((status = 200, description = "The limits, by key", body = LimitList))
)]
pub async fn list_limits(State(s): State<AppState>, Ns(ns): Ns) -> Json<LimitList> {
    Json(LimitList {
        limits: s.fleet.limits.list(&ns),
    })
}
