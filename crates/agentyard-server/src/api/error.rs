//! `ApiError`: every way a request can fail, mapped by one table to an HTTP status and a stable
//! problem `type`, and rendered as RFC 9457 `application/problem+json`.

use agentyard_core::api::FieldError;
use agentyard_core::{QueueName, Task, TaskStatus};
use agentyard_store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// What a 429 or 503 asks clients to wait before retrying, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why a request failed. Each variant carries what its problem body shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The body is not JSON (syntax error, truncated, empty).
    MalformedBody(String),
    UnsupportedMediaType(String),
    /// A field, query parameter, path parameter or header is invalid; `field` names it.
    InvalidField {
        field: String,
        detail: String,
    },
    /// The request is well-formed but makes no sense as a whole.
    InvalidRequest(String),
    NotFound(String),
    NoSuchRoute {
        method: String,
        path: String,
    },
    MethodNotAllowed {
        method: String,
        path: String,
    },
    /// A conditional request was required (`If-Match` or `expected_version`).
    PreconditionRequired(String),
    /// `expected_version` (body) is not the task's version.
    VersionConflict {
        expected: u64,
        actual: u64,
        current: Box<Task>,
    },
    /// `If-Match` is not the task's version.
    PreconditionFailed {
        expected: u64,
        actual: u64,
        current: Box<Task>,
    },
    MergeConflict {
        expected: u64,
        actual: u64,
        paths: Vec<String>,
        current: Box<Task>,
    },
    /// The lease token is not (or no longer) the task's lease. The current task is not shown:
    /// it would hand a stale holder the new lease's token.
    LeaseConflict {
        detail: String,
        task_status: TaskStatus,
    },
    InvalidTransition {
        detail: String,
        task_status: TaskStatus,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// The request body did not arrive within the body timeout.
    RequestTimeout {
        timeout_ms: u64,
    },
    Backpressure {
        queue: QueueName,
        depth: u64,
        limit: u64,
    },
    InboxFull {
        agent: String,
        depth: u64,
        limit: u64,
    },
    /// Creating the agent would pass its namespace's `--max-agents-per-namespace`.
    TooManyAgents {
        namespace: String,
        agent: String,
        limit: u64,
    },
    /// The agent the request names is over its API rate.
    RateLimited {
        agent: String,
        rate_per_minute: u32,
        burst: u32,
        retry_after_ms: u64,
    },
    /// No valid token (auth is on): missing, malformed, unknown or revoked.
    Unauthorized(String),
    /// The token is valid but its role or namespaces do not cover the request.
    Forbidden(String),
    /// The store is unreachable; worth retrying.
    Unavailable,
    /// A bug or an unexpected store failure. The cause is logged, never shown.
    Internal,
}

impl ApiError {
    /// The one table from error to status, problem type and title.
    pub fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            MalformedBody(_) => (
                StatusCode::BAD_REQUEST,
                "/problems/malformed-body",
                "Malformed request body",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Unsupported media type",
            ),
            InvalidField { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-field",
                "Invalid field",
            ),
            InvalidRequest(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-request",
                "Invalid request",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
            NoSuchRoute { .. } => (StatusCode::NOT_FOUND, "/problems/no-such-route", "No such route"),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
            ),
            PreconditionRequired(_) => (
                StatusCode::PRECONDITION_REQUIRED,
                "/problems/precondition-required",
                "Precondition required",
            ),
            VersionConflict { .. } => (StatusCode::CONFLICT, "/problems/version-conflict", "Version conflict"),
            PreconditionFailed { .. } => (
                StatusCode::PRECONDITION_FAILED,
                "/problems/precondition-failed",
                "Precondition failed",
            ),
            MergeConflict { .. } => (StatusCode::CONFLICT, "/problems/merge-conflict", "Merge conflict"),
            LeaseConflict { .. } => (StatusCode::CONFLICT, "/problems/lease-conflict", "Lease conflict"),
            InvalidTransition { .. } => (
                StatusCode::CONFLICT,
                "/problems/invalid-transition",
                "Invalid status transition",
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/payload-too-large",
                "Payload too large",
            ),
            RequestTimeout { .. } => (
                StatusCode::REQUEST_TIMEOUT,
                "/problems/request-timeout",
                "Request body too slow",
            ),
            Backpressure { .. } => (StatusCode::TOO_MANY_REQUESTS, "/problems/backpressure", "Queue is full"),
            InboxFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "/problems/inbox-full", "Inbox is full"),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/rate-limited",
                "Too many requests",
            ),
            TooManyAgents { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/too-many-agents",
                "Too many agents",
            ),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "/problems/unauthorized", "Unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden"),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/unavailable",
                "Service unavailable",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/internal",
                "Internal server error",
            ),
        }
    }

    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn detail(&self) -> String {
        use ApiError::*;
        match self {
            MalformedBody(d)
            | UnsupportedMediaType(d)
            | InvalidRequest(d)
            | NotFound(d)
            | PreconditionRequired(d)
            | Unauthorized(d)
            | Forbidden(d) => d.clone(),
            InvalidField { field, detail } => format!("{field}: {detail}"),
            NoSuchRoute { method, path } => format!("no route for {method} {path}"),
            MethodNotAllowed { method, path } => format!("{path} does not accept {method}"),
            VersionConflict { expected, actual, .. } => format!(
                "the task changed: expected_version is {expected} but the task is at version {actual}; \
                 re-read it and apply your change again"
            ),
            PreconditionFailed { expected, actual, .. } => format!(
                "If-Match names version {expected} but the task is at version {actual}; re-read it and \
                 apply your change again"
            ),
            MergeConflict {
                expected,
                actual,
                paths,
                ..
            } => format!(
                "the context changed since version {expected} (now {actual}) at the same keys: {}",
                paths.join(", ")
            ),
            LeaseConflict { detail, .. } | InvalidTransition { detail, .. } => detail.clone(),
            PayloadTooLarge { limit } => format!("the request body is larger than the limit of {limit} bytes"),
            RequestTimeout { timeout_ms } => format!(
                "the request body did not arrive within {timeout_ms} ms of its headers (the server's --body-timeout-ms)"
            ),
            Backpressure { queue, depth, limit } => {
                format!("queue {queue} holds {depth} waiting tasks; its limit is {limit}; retry later")
            }
            InboxFull { agent, depth, limit } => {
                format!("agent {agent} has {depth} unacknowledged messages; its limit is {limit}; retry later")
            }
            TooManyAgents {
                namespace,
                agent,
                limit,
            } => format!(
                "namespace {namespace} already has {limit} agents, its limit: agent {agent} is not created \
                 (agents already known go on working; remove some with DELETE /v1/agents/{{name}}, or wait for \
                 gone implicit ones to be forgotten)"
            ),
            RateLimited {
                agent,
                rate_per_minute,
                burst,
                retry_after_ms,
            } => format!(
                "agent {agent} is over its rate of {rate_per_minute} requests per minute (burst {burst}); \
                 retry in {retry_after_ms} ms"
            ),
            Unavailable => "the storage is unavailable right now; retry later".to_owned(),
            Internal => "the server failed to handle the request; the cause is in its log".to_owned(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Backpressure { .. } | ApiError::InboxFull { .. } | ApiError::Unavailable => {
                Some(RETRY_AFTER_SECS)
            }
            // Whole seconds, rounded up: a client that waits that long finds a token.
            ApiError::RateLimited { retry_after_ms, .. } => Some(retry_after_ms.div_ceil(1_000).max(1)),
            _ => None,
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.kind();
        let mut p = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: self.detail(),
            field: None,
            expected_version: None,
            actual_version: None,
            conflicts: None,
            task_status: None,
            queue: None,
            depth: None,
            limit: None,
            agent: None,
            retry_after_ms: None,
            current: None,
        };
        match self {
            ApiError::InvalidField { field, .. } => p.field = Some(field.clone()),
            ApiError::VersionConflict {
                expected,
                actual,
                current,
            }
            | ApiError::PreconditionFailed {
                expected,
                actual,
                current,
            } => {
                p.expected_version = Some(*expected);
                p.actual_version = Some(*actual);
                p.current = Some(current.clone());
            }
            ApiError::MergeConflict {
                expected,
                actual,
                paths,
                current,
            } => {
                p.expected_version = Some(*expected);
                p.actual_version = Some(*actual);
                p.conflicts = Some(paths.clone());
                p.current = Some(current.clone());
            }
            ApiError::LeaseConflict { task_status, .. } | ApiError::InvalidTransition { task_status, .. } => {
                p.task_status = Some(*task_status);
            }
            ApiError::PayloadTooLarge { limit } => p.limit = Some(*limit as u64),
            ApiError::Backpressure { queue, depth, limit } => {
                p.queue = Some(queue.to_string());
                p.depth = Some(*depth);
                p.limit = Some(*limit);
            }
            ApiError::InboxFull { agent, depth, limit } => {
                p.agent = Some(agent.clone());
                p.depth = Some(*depth);
                p.limit = Some(*limit);
            }
            ApiError::TooManyAgents { agent, limit, .. } => {
                p.agent = Some(agent.clone());
                p.limit = Some(*limit);
            }
            ApiError::RateLimited {
                agent,
                rate_per_minute,
                retry_after_ms,
                ..
            } => {
                p.agent = Some(agent.clone());
                p.limit = Some(u64::from(*rate_per_minute));
                p.retry_after_ms = Some(*retry_after_ms);
            }
            _ => {}
        }
        p
    }
}

/// Marks an error response with its problem type, for the counters (see
/// [`crate::metrics::count_problems`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemKind(pub &'static str);

/// An RFC 9457 problem body. Fields beyond the standard five appear when they apply.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/problems/version-conflict`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// What went wrong with this request, for humans.
    pub detail: String,
    /// The invalid field (`tasks[3].queue`), query parameter, path parameter or header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The version the request was based on (conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// The task's version now (conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<u64>,
    /// Context paths changed on both sides (merge conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<String>>,
    /// The task's status now (lease conflicts, invalid transitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<TaskStatus>,
    /// The full queue (backpressure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// The limit that was hit: tasks of a queue, messages of an inbox, requests per minute,
    /// agents of a namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The agent concerned (full inbox, rate limit, too many agents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How long until the request would be accepted (rate limit); `Retry-After` rounds it up to
    /// seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The task as it is now (version and merge conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Box<Task>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let body = match serde_json::to_vec(&problem) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a problem body");
                br#"{"type":"/problems/internal","title":"Internal server error","status":500}"#.to_vec()
            }
        };
        let mut response = (self.kind().0, body).into_response();
        response.extensions_mut().insert(ProblemKind(problem.kind));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Unauthorized(_) = self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agentyard\""),
            );
        }
        response
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::InvalidField {
            field: e.field,
            detail: e.message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::NotFound(format!("no {what}")),
            StoreError::VersionConflict {
                expected,
                actual,
                current,
            } => ApiError::VersionConflict {
                expected,
                actual,
                current,
            },
            StoreError::MergeConflict {
                expected,
                actual,
                paths,
                current,
            } => ApiError::MergeConflict {
                expected,
                actual,
                paths,
                current,
            },
            StoreError::LeaseConflict { message, current } => ApiError::LeaseConflict {
                detail: message,
                task_status: current.status,
            },
            StoreError::InvalidTransition { message, current } => ApiError::InvalidTransition {
                detail: message,
                task_status: current.status,
            },
            StoreError::Invalid { message } => ApiError::InvalidRequest(message),
            StoreError::Backpressure { queue, depth, limit } => ApiError::Backpressure { queue, depth, limit },
            StoreError::InboxFull { agent, depth, limit } => ApiError::InboxFull {
                agent: agent.to_string(),
                depth,
                limit,
            },
            StoreError::TooManyAgents {
                namespace,
                agent,
                limit,
            } => ApiError::TooManyAgents {
                namespace: namespace.to_string(),
                agent: agent.to_string(),
                limit,
            },
            StoreError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "storage unavailable");
                ApiError::Unavailable
            }
            StoreError::Other(cause) => {
                tracing::error!(cause = %cause, "storage error");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::{Namespace, NewTask, TaskId, Timestamp};
    use axum::body::to_bytes;

    use super::*;

    fn task() -> Box<Task> {
        let new = NewTask::on(QueueName::parse("emails").unwrap(), serde_json::json!({"to": "a@b.c"}));
        let t = new.into_task(
            TaskId::from_parts(1_795_000_000_000, 42),
            Namespace::default(),
            Timestamp::from_millis(1_795_000_000_000),
        );
        Box::new(t)
    }

    async fn render(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let retry = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(r.into_body(), usize::MAX).await.unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn every_problem_renders_as_problem_json() {
        let q = QueueName::parse("emails").unwrap();
        let cases = vec![
            (
                "malformed_body",
                ApiError::MalformedBody("the body is not valid JSON: EOF".into()),
            ),
            (
                "unsupported_media_type",
                ApiError::UnsupportedMediaType("expected application/json".into()),
            ),
            (
                "invalid_field",
                ApiError::invalid("tasks[3].queue", "invalid name \"Bad\""),
            ),
            (
                "invalid_request",
                ApiError::InvalidRequest("status cannot be set to running".into()),
            ),
            (
                "not_found",
                ApiError::NotFound("no task 01KA9Q3Z8006AB4RTCGKRYT3D2".into()),
            ),
            (
                "no_such_route",
                ApiError::NoSuchRoute {
                    method: "GET".into(),
                    path: "/v2".into(),
                },
            ),
            (
                "method_not_allowed",
                ApiError::MethodNotAllowed {
                    method: "PUT".into(),
                    path: "/v1/tasks".into(),
                },
            ),
            (
                "precondition_required",
                ApiError::PreconditionRequired("send If-Match".into()),
            ),
            (
                "version_conflict",
                ApiError::VersionConflict {
                    expected: 1,
                    actual: 2,
                    current: task(),
                },
            ),
            (
                "precondition_failed",
                ApiError::PreconditionFailed {
                    expected: 1,
                    actual: 2,
                    current: task(),
                },
            ),
            (
                "merge_conflict",
                ApiError::MergeConflict {
                    expected: 1,
                    actual: 3,
                    paths: vec!["/plan".into()],
                    current: task(),
                },
            ),
            (
                "lease_conflict",
                ApiError::LeaseConflict {
                    detail: "cannot complete".into(),
                    task_status: TaskStatus::Queued,
                },
            ),
            (
                "invalid_transition",
                ApiError::InvalidTransition {
                    detail: "cannot redrive a task that is queued".into(),
                    task_status: TaskStatus::Queued,
                },
            ),
            ("payload_too_large", ApiError::PayloadTooLarge { limit: 1024 }),
            ("request_timeout", ApiError::RequestTimeout { timeout_ms: 30_000 }),
            (
                "backpressure",
                ApiError::Backpressure {
                    queue: q,
                    depth: 10,
                    limit: 10,
                },
            ),
            (
                "inbox_full",
                ApiError::InboxFull {
                    agent: "a".into(),
                    depth: 5,
                    limit: 5,
                },
            ),
            (
                "rate_limited",
                ApiError::RateLimited {
                    agent: "flooder".into(),
                    rate_per_minute: 60,
                    burst: 5,
                    retry_after_ms: 1_500,
                },
            ),
            (
                "too_many_agents",
                ApiError::TooManyAgents {
                    namespace: "default".into(),
                    agent: "worker-10001".into(),
                    limit: 10_000,
                },
            ),
            (
                "unauthorized",
                ApiError::Unauthorized("token 0123456789av was revoked at 2026-12-07T22:00:00Z".into()),
            ),
            (
                "forbidden",
                ApiError::Forbidden("a reader token only reads; POST /v1/tasks changes the yard".into()),
            ),
            ("unavailable", ApiError::Unavailable),
            ("internal", ApiError::Internal),
        ];
        for (name, e) in cases {
            let (code, retry, body) = render(e).await;
            assert_eq!(body["status"], code.as_u16(), "{name}");
            insta::assert_json_snapshot!(
                name,
                serde_json::json!({"status": code.as_u16(), "retry_after": retry, "body": body})
            );
        }
    }

    #[test]
    fn store_failures_do_not_leak_their_cause() {
        let e = ApiError::from(StoreError::Other("disk I/O error at /var/lib/secret.db".into()));
        assert_eq!(e, ApiError::Internal);
        assert!(!e.problem().detail.contains("secret"));
    }
}
