//! `/v1/webhooks…`: registering webhooks for a namespace's events, their delivery state, and the
//! latest delivery attempts (`crate::dispatch::webhooks` delivers them).

use agentyard_core::api::{CreateWebhookRequest, DeliveryList, WebhookList, WebhookView};
use agentyard_core::webhook::Webhook;
use agentyard_core::{Namespace, TaskId};
use agentyard_store::StoredWebhook;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, Problem};
use crate::api::extract::{JsonBody, Ns};
use crate::api::json::Json;
use crate::state::AppState;

/// Register a webhook: from now on, the namespace's events (all, or those of `types`) are
/// POSTed to `url`, signed with `secret`, in order, at least once.
///
/// Each delivery carries `Agentyard-Delivery-Id` (the same on every attempt at one event: what
/// to de-duplicate by), `Agentyard-Event-Type`, `Agentyard-Timestamp` (Unix seconds) and
/// `Agentyard-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`. A failed delivery is
/// retried with exponential backoff; a webhook that keeps failing is paused for a while, then
/// tried again.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks", operation_id = "create_webhook",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "The webhook (its secret is never shown)", body = WebhookView),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_webhook(
    State(s): State<AppState>,
    Ns(ns): Ns,
    JsonBody(req): JsonBody<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let types = req.check()?;
    check_url(&req.url)?;
    let hook = StoredWebhook {
        hook: Webhook {
            id: TaskId::generate().to_string(),
            namespace: ns,
            url: req.url,
            types,
            created_at: s.clock.now(),
            cursor: s.store.last_event_seq().await?,
        },
        secret: req.secret,
    };
    s.store.create_webhook(hook.clone()).await?;
    tracing::info!(webhook = %hook.hook.id, namespace = %hook.hook.namespace, url = %hook.hook.url, "webhook registered");
    Ok((StatusCode::CREATED, Json(s.webhooks.view(&hook))).into_response())
}

/// An absolute http:// or https:// URL with a host.
fn check_url(url: &str) -> Result<(), ApiError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ApiError::invalid("url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid(
            "url",
            format!("{url:?}: must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(())
}

/// The namespace's webhooks with their delivery state.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    responses((status = 200, description = "The webhooks, by id", body = WebhookList))
)]
pub async fn list_webhooks(State(s): State<AppState>, Ns(ns): Ns) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = s
        .store
        .list_webhooks()
        .await?
        .iter()
        .filter(|h| h.hook.namespace == ns)
        .map(|h| s.webhooks.view(h))
        .collect();
    Ok(Json(WebhookList { webhooks }))
}

async fn find(
    s: &AppState,
    ns: &Namespace,
    id: Result<Path<String>, PathRejection>,
) -> Result<StoredWebhook, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid("id", e.body_text()))?;
    s.store
        .list_webhooks()
        .await?
        .into_iter()
        .find(|h| &h.hook.namespace == ns && h.hook.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no webhook {id} in namespace {ns}")))
}

/// One webhook with its delivery state.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookView),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_webhook(
    State(s): State<AppState>,
    Ns(ns): Ns,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookView>, ApiError> {
    let hook = find(&s, &ns, id).await?;
    Ok(Json(s.webhooks.view(&hook)))
}

/// Remove a webhook: nothing more is delivered to it.
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_webhook(
    State(s): State<AppState>,
    Ns(ns): Ns,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let hook = find(&s, &ns, id).await?;
    if !s.store.delete_webhook(&ns, &hook.hook.id).await? {
        return Err(ApiError::NotFound(format!(
            "no webhook {} in namespace {ns}",
            hook.hook.id
        )));
    }
    s.webhooks.removed(&ns, &hook.hook.id);
    tracing::info!(webhook = %hook.hook.id, namespace = %ns, "webhook removed");
    Ok(StatusCode::NO_CONTENT)
}

/// The latest delivery attempts of a webhook (up to 100, newest first), as the node answering
/// made them.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_deliveries",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "Delivery attempts, newest first", body = DeliveryList),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_deliveries(
    State(s): State<AppState>,
    Ns(ns): Ns,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeliveryList>, ApiError> {
    let hook = find(&s, &ns, id).await?;
    Ok(Json(DeliveryList {
        deliveries: s.webhooks.deliveries(&ns, &hook.hook.id),
    }))
}
