//! `/v1/tokens…`: API tokens, for admin tokens only (see `crate::auth`). A token's text is shown
//! once, in the answer that makes it; afterwards only its id and grant are.

use agentyard_core::auth::{IssuedToken, NewToken, TokenId, TokenInfo, TokenList};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::error::{ApiError, Problem};
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::auth::issue::{IssueError, issue};
use crate::state::AppState;

/// Make a token. Its text is in this answer and nowhere else: keep it.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = NewToken,
    responses(
        (status = 201, description = "The token, shown this once", body = IssuedToken),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(State(s): State<AppState>, JsonBody(req): JsonBody<NewToken>) -> Result<Response, ApiError> {
    let issued = issue(&*s.store, req, s.clock.now()).await.map_err(|e| match e {
        IssueError::Invalid(field) => ApiError::from(field),
        IssueError::Store(e) => ApiError::from(e),
    })?;
    tracing::info!(token = %issued.info.id, role = %issued.info.role, namespaces = %issued.info.namespaces.describe(),
        agent = ?issued.info.agent.as_ref().map(|a| a.as_str()), "token created");
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Every token, revoked ones included, in id order.
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    responses(
        (status = 200, description = "The tokens (never their secrets)", body = TokenList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_tokens(State(s): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    let tokens = s.store.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(|t| t.info).collect(),
    }))
}

/// Revoke a token: from now on (within 5 seconds on other nodes) it authenticates nothing.
/// Revoking it again changes nothing.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("id" = String, Path, description = "The token's id (12 characters of 0-9, a-v)", pattern = "^[0-9a-v]{12}$")),
    responses(
        (status = 200, description = "The revoked token", body = TokenInfo),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a token id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_token(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TokenInfo>, ApiError> {
    let raw = id
        .map(|Path(id)| id)
        .map_err(|e| ApiError::invalid("id", e.body_text()))?;
    let id = TokenId::parse(raw).map_err(|e| ApiError::invalid("id", e.to_string()))?;
    let revoked = s.store.revoke_token(&id, s.clock.now()).await?;
    s.tokens.forget(&id);
    let token = revoked.ok_or_else(|| ApiError::NotFound(format!("no token {id}")))?;
    tracing::info!(token = %id, "token revoked");
    Ok(Json(token.info))
}
