//! `/v1/tasks…`: create (one or a batch), read, list, update, cancel, redrive, and the lease
//! holder's heartbeat, complete and fail.

use agentyard_core::api::{
    BatchCreateRequest, BatchCreateResponse, CompleteManyRequest, CompleteManyResponse, CompleteOutcome,
    CompleteRequest, CreateTaskRequest, FailRequest, HeartbeatRequest, ItemProblem, MAX_BATCH, TaskPage,
    UpdateTaskRequest,
};
use agentyard_core::{Completion, LeaseToken, Namespace, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp};
use agentyard_store::{CreateOptions, Page, StoreError, TaskFilter};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::agents;
use crate::api::error::{ApiError, Problem};
use crate::api::extract::{GivenCorrelation, IfMatch, JsonBody, Ns, TaskIdParam, etag};
use crate::api::json::{self, Json};
use crate::auth::Caller;
use crate::state::AppState;

/// Page size of a list without `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page a list returns.
pub const MAX_PAGE: usize = 1_000;

/// A task with its `ETag`.
fn task_response(status: StatusCode, task: &Task) -> Response {
    let mut response = (status, Json(task)).into_response();
    response.headers_mut().insert(header::ETAG, etag(task.version));
    response
}

fn create_options(s: &AppState) -> CreateOptions {
    CreateOptions {
        max_queue_depth: s.config.max_queue_depth,
    }
}

/// Create a task.
///
/// Answers 201 with the new task, or 200 with the original when a task with the same
/// `idempotency_key` exists in the namespace.
#[utoipa::path(
    post, path = "/v1/tasks", tag = "tasks",
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Created", body = Task,
            headers(("Location" = String, description = "/v1/tasks/{id}"), ("ETag" = String))),
        (status = 200, description = "The idempotency key was seen: the original task", body = Task),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Queue full (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn create_task(
    State(s): State<AppState>,
    Ns(ns): Ns,
    GivenCorrelation(correlation): GivenCorrelation,
    JsonBody(mut req): JsonBody<CreateTaskRequest>,
) -> Result<Response, ApiError> {
    if req.correlation_id.is_none() {
        req.correlation_id = correlation;
    }
    let now = s.clock.now();
    let new = req.into_new_task(now)?;
    let created = s.store.create_tasks(&ns, vec![new], create_options(&s), now).await?;
    let Some(c) = created.into_iter().next() else {
        tracing::error!("the store created no task for a create of one");
        return Err(ApiError::Internal);
    };
    if !c.created {
        return Ok(task_response(StatusCode::OK, &c.task));
    }
    s.dispatch.task_changed(&c.task);
    s.counters.tasks.created(&c.task);
    let mut response = task_response(StatusCode::CREATED, &c.task);
    if let Ok(location) = HeaderValue::try_from(format!("/v1/tasks/{}", c.task.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Create many tasks at once: all of them, or none.
///
/// An invalid item fails the whole batch with 422 naming it (`tasks[3].queue`). Items whose
/// `idempotency_key` was seen come back as the original task.
#[utoipa::path(
    post, path = "/v1/tasks/batch", tag = "tasks",
    request_body = BatchCreateRequest,
    responses(
        (status = 201, description = "Created (see `created` for how many were new)", body = BatchCreateResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid item", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Queue full (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn create_tasks(
    State(s): State<AppState>,
    Ns(ns): Ns,
    GivenCorrelation(correlation): GivenCorrelation,
    JsonBody(req): JsonBody<BatchCreateRequest>,
) -> Result<Response, ApiError> {
    if req.tasks.is_empty() {
        return Err(ApiError::invalid("tasks", "must hold at least one task"));
    }
    if req.tasks.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "tasks",
            format!("holds {} tasks; the limit is {MAX_BATCH}", req.tasks.len()),
        ));
    }
    let now = s.clock.now();
    let mut new = Vec::with_capacity(req.tasks.len());
    for (i, mut t) in req.tasks.into_iter().enumerate() {
        if t.correlation_id.is_none() {
            t.correlation_id.clone_from(&correlation);
        }
        new.push(t.into_new_task(now).map_err(|e| e.within(&format!("tasks[{i}]")))?);
    }
    let created = s.store.create_tasks(&ns, new, create_options(&s), now).await?;
    let fresh = created.iter().filter(|c| c.created).count();
    created
        .iter()
        .filter(|c| c.created)
        .for_each(|c| s.counters.tasks.created(&c.task));
    let tasks: Vec<Task> = created.into_iter().map(|c| c.task).collect();
    if fresh > 0 {
        s.dispatch.tasks_changed(&tasks);
    }
    let body = BatchCreateResponse { tasks, created: fresh };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Read a task. Its `ETag` is its version, for `If-Match` on a later update.
#[utoipa::path(
    get, path = "/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The task", body = Task, headers(("ETag" = String))),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a task id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_task(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
) -> Result<Response, ApiError> {
    let mut task = s.store.get_task(&ns, id).await?;
    caller.redact(&mut task);
    Ok(task_response(StatusCode::OK, &task))
}

/// Query of `GET /v1/tasks`. Everything arrives as text so each bad value gets a 422 naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only tasks of this queue.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")]
    pub queue: Option<String>,
    /// Only tasks with this status (`failed` is the dead-letter view).
    #[param(inline, value_type = Option<TaskStatus>)]
    pub status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (a task id).
    #[param(pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

impl ListParams {
    fn parse(self) -> Result<(TaskFilter, usize, Option<TaskId>), ApiError> {
        let queue = self
            .queue
            .map(|q| {
                QueueName::parse(q.as_str())
                    .map_err(|e| ApiError::invalid("queue", format!("invalid queue name {q:?}: {e}")))
            })
            .transpose()?;
        let status = self
            .status
            .map(|st| {
                TaskStatus::parse(&st).ok_or_else(|| {
                    let all: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::invalid(
                        "status",
                        format!("{st:?} is not a status; use one of {}", all.join(", ")),
                    )
                })
            })
            .transpose()?;
        let limit = match self.limit {
            None => DEFAULT_PAGE,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("{l:?}: must be between 1 and {MAX_PAGE}"),
                    ));
                }
            },
        };
        let after = self
            .cursor
            .map(|c| {
                TaskId::parse(&c)
                    .map_err(|_| ApiError::invalid("cursor", format!("{c:?} is not a cursor this server handed out")))
            })
            .transpose()?;
        Ok((TaskFilter { queue, status }, limit, after))
    }
}

/// List tasks in creation order, a page at a time.
///
/// A page holds at most `limit` tasks and at most the server's answer budget of JSON
/// (`--answer-budget`, 8 MiB by default): a page of big tasks stops early, with a cursor.
#[utoipa::path(
    get, path = "/v1/tasks", tag = "tasks",
    params(ListParams),
    responses(
        (status = 200, description = "One page", body = TaskPage),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_tasks(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let (filter, limit, after) = params.parse()?;
    let mut page = s.store.list_tasks(&ns, &filter, after, limit).await?;
    page.items.iter_mut().for_each(|t| caller.redact(t));
    Ok(Json(within_budget(page, s.config.answer_budget_bytes)))
}

/// The page as an answer of at most `budget` bytes of tasks, with the cursor of what it left out.
fn within_budget(page: Page, budget: usize) -> TaskPage {
    let (items, cut) = json::within_budget(page.items, budget);
    let next = if cut { items.last().map(|t| t.id) } else { page.next };
    TaskPage {
        items,
        next_cursor: next.map(|id| id.to_string()),
    }
}

/// Query of `PATCH /v1/tasks/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateParams {
    /// Merge with changes made since `expected_version` instead of refusing them: artifacts are
    /// appended, context keys merge (the same key changed on both sides is a conflict), plain
    /// fields are last-write-wins. Status changes always need the exact version.
    #[param(value_type = Option<bool>)]
    pub merge: Option<String>,
}

/// Update a task, based on the version the client read.
///
/// The version comes from `If-Match: "<version>"` (a mismatch is 412) or `expected_version` in
/// the body (a mismatch is 409); one of them is required (428).
#[utoipa::path(
    patch, path = "/v1/tasks/{id}", tag = "tasks",
    params(
        ("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"),
        ("If-Match" = Option<String>, Header, description = "The task's ETag, e.g. \"3\" (a weak one, W/\"3\", and \
            the bare number are taken too); when the body also has expected_version they must agree (422)",
            pattern = r#"^(W/)?("\+?[0-9]{1,19}"|\+?[0-9]{1,19})$"#),
        UpdateParams,
    ),
    request_body = UpdateTaskRequest,
    responses(
        (status = 200, description = "The updated task", body = Task, headers(("ETag" = String))),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Version or merge conflict, or an invalid status change", body = Problem,
            content_type = "application/problem+json"),
        (status = 412, description = "If-Match is not the current version", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "No version given", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_task(
    State(s): State<AppState>,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
    IfMatch(if_match): IfMatch,
    params: Result<Query<UpdateParams>, axum::extract::rejection::QueryRejection>,
    JsonBody(req): JsonBody<UpdateTaskRequest>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let merge = match params.merge.as_deref() {
        None | Some("false") => false,
        Some("true" | "") => true,
        Some(other) => return Err(ApiError::invalid("merge", format!("{other:?}: use true or false"))),
    };
    let (expected, from_header) = match (if_match, req.expected_version) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::invalid(
                "expected_version",
                format!("is {b} but If-Match names version {h}; send one of them"),
            ));
        }
        (Some(h), _) => (h, true),
        (None, Some(b)) => (b, false),
        (None, None) => {
            return Err(ApiError::PreconditionRequired(
                "an update must say which version it is based on: send If-Match: \"<version>\" (the task's \
                 ETag) or expected_version in the body"
                    .to_owned(),
            ));
        }
    };
    let patch = req.into_patch()?;
    let command = TaskCommand::Update {
        patch,
        expected_version: expected,
        merge,
    };
    let task = s
        .store
        .apply(&ns, id, command, s.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::VersionConflict {
                expected,
                actual,
                current,
            } if from_header => ApiError::PreconditionFailed {
                expected,
                actual,
                current,
            },
            e => e.into(),
        })?;
    s.dispatch.task_changed(&task);
    Ok(task_response(StatusCode::OK, &task))
}

pub(crate) async fn apply(
    s: &AppState,
    ns: &Namespace,
    id: TaskId,
    command: TaskCommand,
) -> Result<Response, ApiError> {
    let now = s.clock.now();
    let task = s.store.apply(ns, id, command, now).await?;
    s.dispatch.task_changed(&task);
    s.counters.tasks.changed(&task, now);
    Ok(task_response(StatusCode::OK, &task))
}

/// Cancel a task that has not finished. A running task's lease is void from then on.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The cancelled task", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The task already finished", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn cancel_task(
    State(s): State<AppState>,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
) -> Result<Response, ApiError> {
    apply(&s, &ns, id, TaskCommand::Cancel).await
}

/// Send a failed (dead-lettered) task back to its queue with fresh attempts.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/redrive", tag = "tasks",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 200, description = "The re-queued task", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The task is not failed", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn redrive_task(
    State(s): State<AppState>,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
) -> Result<Response, ApiError> {
    apply(&s, &ns, id, TaskCommand::Redrive).await
}

/// Extend the lease of a running task (and report progress).
#[utoipa::path(
    post, path = "/v1/tasks/{id}/heartbeat", tag = "leases", operation_id = "heartbeat_task",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "The task with its extended lease", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token is not the task's current lease", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn heartbeat(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> Result<Response, ApiError> {
    req.check()?;
    check_leases(&s, &caller, &ns, &[(id, &req.lease_token)]).await?;
    let command = TaskCommand::Heartbeat {
        lease_ms: req.lease_ms.unwrap_or(s.config.default_lease_ms),
        token: req.lease_token,
        progress: req.progress,
    };
    let now = s.clock.now();
    let task = s.store.apply(&ns, id, command, now).await?;
    s.dispatch.task_changed(&task);
    // A task's heartbeat is its agent's sign of life too: an agent busy with one long task is
    // not declared gone (and its lease released) for not calling anything else.
    if let Some(lease) = &task.lease
        && let Err(e) = agents::seen(&s, &ns, &lease.agent, now).await
    {
        tracing::debug!(agent = %lease.agent, error = ?e, "a task heartbeat did not reach its agent");
    }
    Ok(task_response(StatusCode::OK, &task))
}

/// Finish a running task successfully, with its result and artifacts.
///
/// Repeating a completion with the same lease token is harmless.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/complete", tag = "leases", operation_id = "complete_task",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "The succeeded task", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token is not the task's current lease", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn complete(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
    JsonBody(req): JsonBody<CompleteRequest>,
) -> Result<Response, ApiError> {
    let (token, completion) = req.into_completion()?;
    check_leases(&s, &caller, &ns, &[(id, &token)]).await?;
    apply(&s, &ns, id, TaskCommand::Complete { token, completion }).await
}

/// Finish many running tasks successfully in one request.
///
/// Each item succeeds or fails alone, with the problem its own `POST /v1/tasks/{id}/complete`
/// would have answered; the answer carries each task's new version, not the task. The items'
/// store writes are sent together, so the SQLite writer commits them in one group.
#[utoipa::path(
    post, path = "/v1/tasks/complete", tag = "leases", operation_id = "complete_tasks",
    request_body = CompleteManyRequest,
    responses(
        (status = 200, description = "One outcome per item, in request order", body = CompleteManyResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid item, or none, or too many", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn complete_many(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    JsonBody(req): JsonBody<CompleteManyRequest>,
) -> Result<Json<CompleteManyResponse>, ApiError> {
    let completions = req.into_completions()?;
    let leases: Vec<_> = completions.iter().map(|(id, token, _)| (*id, token)).collect();
    check_leases(&s, &caller, &ns, &leases).await?;
    let (ids, commands) = complete_commands(completions);
    let now = s.clock.now();
    // One store call: the SQLite store commits the whole batch in one transaction.
    let outcomes = s.store.apply_many(&ns, commands, now).await?;
    let items = complete_outcomes(&s, ids, outcomes, now);
    let completed = items.iter().filter(|o| o.error.is_none()).count();
    Ok(Json(CompleteManyResponse { items, completed }))
}

/// For an `agent` token: 403 when a lease token presented is the current lease of a task leased
/// to another agent. Costs a read per task, and only for agent tokens.
pub(crate) async fn check_leases(
    s: &AppState,
    caller: &Caller,
    ns: &Namespace,
    leases: &[(TaskId, &LeaseToken)],
) -> Result<(), ApiError> {
    if caller.agent().is_none() {
        return Ok(());
    }
    for &(id, token) in leases {
        match s.store.get_task(ns, id).await {
            Ok(task) => caller.may_use_lease(&task, token)?,
            // The command itself answers for a task that is not there.
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The ids of checked completions and their store commands, in request order.
pub(crate) fn complete_commands(
    completions: Vec<(TaskId, LeaseToken, Completion)>,
) -> (Vec<TaskId>, Vec<(TaskId, TaskCommand)>) {
    completions
        .into_iter()
        .map(|(id, token, completion)| (id, (id, TaskCommand::Complete { token, completion })))
        .unzip()
}

/// The outcome of each completion of a batch (applied at `now`), in order, with the dispatcher
/// told of each task that finished and each completion counted.
pub(crate) fn complete_outcomes(
    s: &AppState,
    ids: Vec<TaskId>,
    outcomes: Vec<Result<Task, StoreError>>,
    now: Timestamp,
) -> Vec<CompleteOutcome> {
    ids.into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| match outcome {
            Ok(task) => {
                s.dispatch.task_changed(&task);
                s.counters.tasks.changed(&task, now);
                CompleteOutcome {
                    id,
                    version: Some(task.version),
                    error: None,
                }
            }
            Err(e) => {
                let p = ApiError::from(e).problem();
                CompleteOutcome {
                    id,
                    version: None,
                    error: Some(ItemProblem {
                        kind: p.kind.to_owned(),
                        title: p.title.to_owned(),
                        status: p.status,
                        detail: p.detail,
                    }),
                }
            }
        })
        .collect()
}

/// Report a failed attempt. A retryable error with attempts left schedules a retry after the
/// task's backoff; otherwise the task is `failed` (the dead-letter view).
#[utoipa::path(
    post, path = "/v1/tasks/{id}/fail", tag = "leases", operation_id = "fail_task",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = FailRequest,
    responses(
        (status = 200, description = "The task, scheduled for a retry or failed", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token is not the task's current lease", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fail(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
    JsonBody(req): JsonBody<FailRequest>,
) -> Result<Response, ApiError> {
    let (token, error) = req.into_error()?;
    check_leases(&s, &caller, &ns, &[(id, &token)]).await?;
    let command = TaskCommand::Fail {
        token,
        error,
        jitter_sample: rand::random::<f64>(),
    };
    apply(&s, &ns, id, command).await
}
