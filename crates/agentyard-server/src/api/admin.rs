//! `/v1/admin/…`: what only an admin does across namespaces.

use agentyard_core::api::PruneResult;
use axum::extract::State;

use crate::api::error::{ApiError, Problem};
use crate::api::json::Json;
use crate::dispatch::Retention;
use crate::state::AppState;

/// Run the retention pass now.
///
/// Deletes, in every namespace, what is older than the server's retention ages (finished
/// tasks, events, acknowledged or expired messages, idempotency keys), as the retention loop
/// does every minute. Admin tokens only.
#[utoipa::path(
    post, path = "/v1/admin/prune", tag = "admin", operation_id = "prune",
    responses(
        (status = 200, description = "What was deleted", body = PruneResult),
        (status = 503, description = "The store is unavailable", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn prune(State(s): State<AppState>) -> Result<Json<PruneResult>, ApiError> {
    let pruned = Retention::new(s).tick().await?;
    Ok(Json(PruneResult {
        tasks: pruned.tasks,
        events: pruned.events,
        messages: pruned.messages,
        idempotency_keys: pruned.idempotency_keys,
    }))
}
