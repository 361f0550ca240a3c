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
        schema(
            max_length = 2048,
            pattern = r"^https?://([A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~%/-]*)?$",
            example = "https://ci.example.com/agentyard"
        )
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

/// Is `url` an `http://` or `https://` URL of the form webhooks take: a host name whose labels
/// start with a letter (`hooks.example.com`, `localhost`) or a dotted IPv4 address, an optional
/// port from 1 to 65535, and a path of unreserved characters, `/` and `%`. The document's
/// `pattern` for `url` says the same.
pub fn webhook_url_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n))
    });
    let name_ok = !host.is_empty()
        && host.split('.').all(|label| {
            label.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let octets: Vec<&str> = host.split('.').collect();
    let ipv4_ok = octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.bytes().all(|b| b.is_ascii_digit())
                && (o.len() == 1 || !o.starts_with('0'))
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        });
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'%' | b'/' | b'-'));
    (name_ok || ipv4_ok) && port_ok && path_ok
}

impl CreateWebhookRequest {
    /// Checks the URL's form, the secret's length and the types, and gives the types named.
    pub fn check(&self) -> Result<Vec<EventType>, FieldError> {
        if self.url.is_empty() || self.url.len() > MAX_WEBHOOK_URL_LEN {
            return Err(FieldError::new(
                "url",
                format!("must be 1 to {MAX_WEBHOOK_URL_LEN} bytes"),
            ));
        }
        if !webhook_url_ok(&self.url) {
            return Err(FieldError::new(
                "url",
                format!(
                    "{:?}: must be an http:// or https:// URL with a host name or an IPv4 address, a port from 1 to \
                     65535 and a plain path (letters, digits, . _ ~ % / -)",
                    self.url
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_http_with_a_plain_host_port_and_path() {
        for ok in [
            "http://127.0.0.1:8080/hook",
            "https://hooks.example.com/agentyard/v1",
            "http://localhost",
            "http://a-b.c9:1/x%20y",
            "http://127.0.0.1:65535/",
            "http://0.0.0.0/",
        ] {
            assert!(webhook_url_ok(ok), "{ok}");
        }
        for bad in [
            "ftp://example.com/",
            "http://",
            "http://9abc.com/",
            "http://256.1.1.1/",
            "http://01.1.1.1/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com/a?b",
            "http://exa mple.com/",
            "http://.com/",
            "0000",
        ] {
            assert!(!webhook_url_ok(bad), "{bad}");
        }
    }
}
