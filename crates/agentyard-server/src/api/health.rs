//! `GET /health`: is the process up and answering.

use axum::Json;
use serde::{Deserialize, Serialize};

/// The answer of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Liveness: answers as long as the server runs.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}
