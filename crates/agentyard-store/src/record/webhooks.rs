//! The stored form of a webhook (`WebhookRecordV1`): its public facts, its secret and its
//! delivery cursor, in names of the store's own. Event types are stored by their API names,
//! which are frozen (see `record/events.rs`).

use std::borrow::Cow;

use agentyard_core::event::EventType;
use agentyard_core::webhook::Webhook;
use agentyard_core::{Namespace, Timestamp};
use serde::{Deserialize, Serialize};

use crate::StoredWebhook;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecordV1<'a> {
    pub id: Cow<'a, str>,
    pub namespace: Cow<'a, Namespace>,
    pub url: Cow<'a, str>,
    pub types: Cow<'a, [EventType]>,
    #[serde(with = "super::time_v1")]
    pub created_at: Timestamp,
    pub cursor: u64,
    pub secret: Cow<'a, str>,
}

impl<'a> From<&'a StoredWebhook> for WebhookRecordV1<'a> {
    fn from(w: &'a StoredWebhook) -> Self {
        Self {
            id: Cow::Borrowed(&w.hook.id),
            namespace: Cow::Borrowed(&w.hook.namespace),
            url: Cow::Borrowed(&w.hook.url),
            types: Cow::Borrowed(&w.hook.types),
            created_at: w.hook.created_at,
            cursor: w.hook.cursor,
            secret: Cow::Borrowed(&w.secret),
        }
    }
}

impl From<WebhookRecordV1<'_>> for StoredWebhook {
    fn from(r: WebhookRecordV1<'_>) -> Self {
        StoredWebhook {
            hook: Webhook {
                id: r.id.into_owned(),
                namespace: r.namespace.into_owned(),
                url: r.url.into_owned(),
                types: r.types.into_owned(),
                created_at: r.created_at,
                cursor: r.cursor,
            },
            secret: r.secret.into_owned(),
        }
    }
}

/// Writes a webhook as its record: how `Change::Webhook` serializes.
pub(crate) fn write_webhook<T: std::borrow::Borrow<StoredWebhook>, S: serde::Serializer>(
    w: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    WebhookRecordV1::from(w.borrow()).serialize(s)
}

/// Reads a webhook from its record: how `OwnedChange::Webhook` deserializes.
pub(crate) fn read_webhook<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StoredWebhook, D::Error> {
    WebhookRecordV1::deserialize(d).map(StoredWebhook::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &str = r#"{"id":"01kbwq8t3e0000000000000000","namespace":"default","url":"https://example.com/hook","types":["task.completed","task.dead_lettered"],"created_at":"2026-12-08T01:02:03.004Z","cursor":41,"secret":"s3cret"}"#;

    #[test]
    fn a_webhook_is_stored_as_its_record_and_read_back() {
        let w = StoredWebhook {
            hook: Webhook {
                id: "01kbwq8t3e0000000000000000".into(),
                namespace: Namespace::default_namespace(),
                url: "https://example.com/hook".into(),
                types: vec![EventType::TaskCompleted, EventType::TaskDeadLettered],
                created_at: Timestamp::parse_rfc3339("2026-12-08T01:02:03.004Z").unwrap(),
                cursor: 41,
            },
            secret: "s3cret".into(),
        };
        assert_eq!(serde_json::to_string(&WebhookRecordV1::from(&w)).unwrap(), STORED);
        let back: WebhookRecordV1<'_> = serde_json::from_str(STORED).unwrap();
        assert_eq!(StoredWebhook::from(back), w);
    }
}
