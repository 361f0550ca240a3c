//! The stored form of an event (`EventRecordV1`): the log store keeps it in its change frames, and
//! the SQL stores keep the same fields as columns (the type as its name, the data as JSON).
//!
//! The type is stored by its API name (`task.completed`); those names are frozen with the
//! record: an event type renamed for the API is mapped here, never rewritten on disk.

use std::borrow::Cow;

use agentyard_core::event::{Event, EventType};
use agentyard_core::{Namespace, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecordV1<'a> {
    pub seq: u64,
    #[serde(with = "super::time_v1")]
    pub ts: Timestamp,
    pub namespace: Cow<'a, Namespace>,
    /// Serialized by its API name, which is frozen here.
    #[serde(rename = "type")]
    pub kind: EventType,
    pub subject: Cow<'a, str>,
    pub actor: Option<Cow<'a, str>>,
    pub correlation_id: Option<Cow<'a, str>>,
    pub data: Cow<'a, Value>,
}

impl<'a> From<&'a Event> for EventRecordV1<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            seq: e.seq,
            ts: e.ts,
            namespace: Cow::Borrowed(&e.namespace),
            kind: e.kind,
            subject: Cow::Borrowed(&e.subject),
            actor: e.actor.as_deref().map(Cow::Borrowed),
            correlation_id: e.correlation_id.as_deref().map(Cow::Borrowed),
            data: Cow::Borrowed(&e.data),
        }
    }
}

impl From<EventRecordV1<'_>> for Event {
    fn from(r: EventRecordV1<'_>) -> Self {
        Event {
            seq: r.seq,
            ts: r.ts,
            namespace: r.namespace.into_owned(),
            kind: r.kind,
            subject: r.subject.into_owned(),
            actor: r.actor.map(Cow::into_owned),
            correlation_id: r.correlation_id.map(Cow::into_owned),
            data: r.data.into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STORED: &str = r#"{"seq":7,"ts":"2026-12-08T01:02:03.004Z","namespace":"default","type":"task.claimed","subject":"task:01kbwq8t3e0000000000000000","actor":"w1","correlation_id":"c-1","data":{"queue":"q","attempt":1}}"#;

    fn event() -> Event {
        Event {
            seq: 7,
            ts: Timestamp::parse_rfc3339("2026-12-08T01:02:03.004Z").unwrap(),
            namespace: Namespace::parse("default").unwrap(),
            kind: EventType::TaskClaimed,
            subject: "task:01kbwq8t3e0000000000000000".into(),
            actor: Some("w1".into()),
            correlation_id: Some("c-1".into()),
            data: json!({"queue": "q", "attempt": 1}),
        }
    }

    #[test]
    fn an_event_is_stored_as_its_record_and_read_back() {
        let e = event();
        assert_eq!(serde_json::to_string(&EventRecordV1::from(&e)).unwrap(), STORED);
        let back: EventRecordV1<'_> = serde_json::from_str(STORED).unwrap();
        assert_eq!(Event::from(back), e);
    }

    #[test]
    fn an_unknown_type_is_refused_by_name() {
        let bad = STORED.replace("task.claimed", "task.nope");
        let err = serde_json::from_str::<EventRecordV1<'_>>(&bad).unwrap_err().to_string();
        assert!(err.contains("task.nope"), "{err}");
    }
}
