//! `/v1/webhooks…`: registering webhooks, their delivery state and their recent deliveries.

use serde::{Deserialize, Serialize};

use super::FieldError;
use crate::event::EventType;
use crate::time::Timestamp;
use crate::webhook::Webhook;

/// Shortest secret taken: an HMAC key shorter than this is guessable.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;
pub const MAX_WEBHOOK_SECRET_LEN: usize = 1024;
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// An http:// or https:// URL that takes POSTed JSON.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 2048, example = "https://ci.example.com/agentyard")
    )]
    pub url: String,
    /// The key of each delivery's HMAC-SHA256 signature (16 to 1024 bytes). Kept by the
    /// server; never shown again.
    #[cfg_attr(feature = "openapi", schema(min_length = 16, max_length = 1024))]
    pub secret: String,
    /// Event types to deliver: exact (`task.dead_lettered`) or kinds (`task.*`); all when absent.
    #[serde(default)]
    pub types: Vec<String>,
}

impl CreateWebhookRequest {
    /// Checks the secret's length and the types (the URL is the server's to check) and gives
    /// the types named.
    pub fn check(&self) -> Result<Vec<EventType>, FieldError> {
        if self.url.is_empty() || self.url.len() > MAX_WEBHOOK_URL_LEN {
            return Err(FieldError::new(
                "url",
                format!("must be 1 to {MAX_WEBHOOK_URL_LEN} bytes"),
            ));
        }
        let n = self.secret.len();
        if !(MIN_WEBHOOK_SECRET_LEN..=MAX_WEBHOOK_SECRET_LEN).contains(&n) {
            return Err(FieldError::new(
                "secret",
                format!("is {n} bytes long; it must be {MIN_WEBHOOK_SECRET_LEN} to {MAX_WEBHOOK_SECRET_LEN}"),
            ));
        }
        let mut types = Vec::new();
        for (i, pattern) in self.types.iter().enumerate() {
            let found = EventType::matching(pattern).ok_or_else(|| {
                FieldError::new(
                    format!("types[{i}]"),
                    format!("{pattern:?} is not an event type; use e.g. task.completed or task.*"),
                )
            })?;
            for t in found {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
        Ok(types)
    }
}

/// Whether deliveries go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Delivering (or waiting for events).
    Active,
    /// The last delivery failed; it is retried with backoff.
    Retrying,
    /// Failed too many times in a row: the circuit breaker holds deliveries until
    /// `paused_until`, then tries again.
    Paused,
}

/// A webhook with its delivery state, as the node answering delivers it (each node reports what
/// it delivered itself; with several nodes, one delivers a webhook at a time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub state: WebhookState,
    /// Failed attempts since the last delivery that worked.
    pub consecutive_failures: u32,
    /// Why the latest attempt failed; cleared by a delivery that works.
    pub last_error: Option<String>,
    pub paused_until: Option<Timestamp>,
    pub last_delivered_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// One attempt to deliver one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// `<webhook id>:<seq>`, the same on every attempt at one event: what a receiver
    /// de-duplicates by (the `Agentyard-Delivery-Id` header).
    pub id: String,
    pub seq: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub event_type: EventType,
    /// 1 for the first attempt at this event.
    pub attempt: u32,
    pub at: Timestamp,
    pub delivered: bool,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The latest attempts, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}
