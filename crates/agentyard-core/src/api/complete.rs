//! Wire shapes of completions in bulk: `POST /v1/tasks/complete` and the `complete` of a claim.

use super::*;

/// One task of `POST /v1/tasks/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    pub id: TaskId,
    pub lease_token: LeaseToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<NewArtifact>>,
}

/// `POST /v1/tasks/complete`: finish many running tasks in one request. Each item succeeds or
/// fails on its own, as `POST /v1/tasks/{id}/complete` would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteManyRequest {
    /// 1 to 1000 tasks, each at most once.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub items: Vec<CompleteItem>,
}

impl CompleteManyRequest {
    /// Checks the batch and each item; returns the completions in request order.
    pub fn into_completions(self) -> Result<Vec<(TaskId, LeaseToken, Completion)>, FieldError> {
        completions("items", self.items)
    }
}

/// Checks a batch of completions found at `field` and each item; returns them in request order.
pub(super) fn completions(
    field: &str,
    items: Vec<CompleteItem>,
) -> Result<Vec<(TaskId, LeaseToken, Completion)>, FieldError> {
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(FieldError::new(
            field,
            format!("holds {} tasks; send 1 to {MAX_BATCH}", items.len()),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if !seen.insert(item.id) {
            return Err(FieldError::new(
                format!("{field}[{i}].id"),
                format!("task {} is listed twice", item.id),
            ));
        }
        let artifacts = item.artifacts.unwrap_or_default();
        check_artifacts(&artifacts).map_err(|e| e.within(&format!("{field}[{i}]")))?;
        out.push((
            item.id,
            item.lease_token,
            Completion {
                result: item.result,
                artifacts,
            },
        ));
    }
    Ok(out)
}

/// Why one item of a batch failed: the problem its own request would have answered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemProblem {
    /// The problem `type`, e.g. `/problems/lease-conflict`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// The outcome of one item: the task's new `version`, or its `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteOutcome {
    pub id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemProblem>,
}

/// The answer of `POST /v1/tasks/complete`: one outcome per item, in request order. Tasks are
/// not echoed back, so a worker finishing many tasks does not download them again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteManyResponse {
    pub items: Vec<CompleteOutcome>,
    /// How many items succeeded.
    pub completed: usize,
}
