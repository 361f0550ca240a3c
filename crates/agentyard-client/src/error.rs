//! `ClientError`: a refused request (with its parsed problem body), or a transport failure.

use agentyard_core::{Task, TaskStatus};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

/// An RFC 9457 problem body as the server sends it. Fields beyond the standard ones are set when
/// the problem has them; anything else lands in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Problem {
    /// Stable kind, e.g. `/problems/version-conflict`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// The invalid field, query parameter or header (422).
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub expected_version: Option<u64>,
    #[serde(default)]
    pub actual_version: Option<u64>,
    /// Context paths changed on both sides (merge conflicts).
    #[serde(default)]
    pub conflicts: Option<Vec<String>>,
    /// The task's status (lease conflicts, invalid transitions).
    #[serde(default)]
    pub task_status: Option<TaskStatus>,
    /// The task as it is now (version and merge conflicts).
    #[serde(default)]
    pub current: Option<Box<Task>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Problem `type`s the server sends.
pub mod kinds {
    pub const MALFORMED_BODY: &str = "/problems/malformed-body";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "/problems/unsupported-media-type";
    pub const INVALID_FIELD: &str = "/problems/invalid-field";
    pub const INVALID_REQUEST: &str = "/problems/invalid-request";
    pub const NOT_FOUND: &str = "/problems/not-found";
    pub const PRECONDITION_REQUIRED: &str = "/problems/precondition-required";
    pub const VERSION_CONFLICT: &str = "/problems/version-conflict";
    pub const PRECONDITION_FAILED: &str = "/problems/precondition-failed";
    pub const MERGE_CONFLICT: &str = "/problems/merge-conflict";
    pub const LEASE_CONFLICT: &str = "/problems/lease-conflict";
    pub const INVALID_TRANSITION: &str = "/problems/invalid-transition";
    pub const PAYLOAD_TOO_LARGE: &str = "/problems/payload-too-large";
    pub const REQUEST_TIMEOUT: &str = "/problems/request-timeout";
    pub const BACKPRESSURE: &str = "/problems/backpressure";
    pub const INBOX_FULL: &str = "/problems/inbox-full";
    pub const RATE_LIMITED: &str = "/problems/rate-limited";
    pub const TOO_MANY_AGENTS: &str = "/problems/too-many-agents";
    pub const UNAUTHORIZED: &str = "/problems/unauthorized";
    pub const FORBIDDEN: &str = "/problems/forbidden";
    pub const UNAVAILABLE: &str = "/problems/unavailable";
    pub const INTERNAL: &str = "/problems/internal";
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{status}: {}", if problem.detail.is_empty() { &problem.title } else { &problem.detail })]
    Api {
        status: StatusCode,
        problem: Box<Problem>,
        /// `Retry-After` in seconds, when the server sent one (429, 503).
        retry_after_secs: Option<u64>,
    },
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("cannot reach the agentyard server")]
    Transport(#[source] reqwest::Error),
    /// The token given to [`crate::Client::with_token`] cannot be sent in a header.
    #[error(
        "the API token holds characters a header cannot carry; copy it again as `agentyard token create` printed it"
    )]
    InvalidToken,
    /// The answer was not what this client understands.
    #[error("unexpected answer from the agentyard server: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem body of a refused request.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The problem `type` of a refused request (see [`kinds`]).
    pub fn kind(&self) -> Option<&str> {
        self.problem().map(|p| p.kind.as_str())
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// A version conflict (409 on `expected_version`, or 412 on `If-Match`) or a merge conflict:
    /// re-read the task and try again.
    pub fn is_version_conflict(&self) -> bool {
        matches!(
            self.kind(),
            Some(kinds::VERSION_CONFLICT | kinds::PRECONDITION_FAILED | kinds::MERGE_CONFLICT)
        )
    }

    /// The lease token is not the task's current lease: the task moved on without this holder.
    pub fn is_lease_conflict(&self) -> bool {
        self.kind() == Some(kinds::LEASE_CONFLICT)
    }

    /// The agent the request named is over its API rate: wait [`ClientError::retry_after_secs`].
    pub fn is_rate_limited(&self) -> bool {
        self.kind() == Some(kinds::RATE_LIMITED)
    }

    /// Worth retrying later (429 backpressure or rate limit, 503), after [`ClientError::retry_after_secs`].
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        ) || matches!(self, ClientError::Transport(_))
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ClientError::Api { retry_after_secs, .. } => *retry_after_secs,
            _ => None,
        }
    }
}
