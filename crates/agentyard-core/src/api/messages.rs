//! Wire shapes of `/v1/messages` and the inbox routes: sending, reading, acknowledging, topics.

use super::*;

/// `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// `{"agent": "name"}`, `{"topic": "name"}` or `{"broadcast": true}`.
    pub to: Recipient,
    /// The sending agent; replies go to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<AgentName>,
    /// Any JSON value.
    #[serde(default)]
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub correlation_id: Option<String>,
    /// The id of the message this one answers (1 to 1024 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub reply_to: Option<String>,
    /// Never delivered after this many milliseconds (at most thirty days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 2592000000.0))]
    pub ttl_ms: Option<u64>,
    /// Sending again with the same key (1 to 1024 bytes) returns the original message instead of a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub idempotency_key: Option<String>,
}

impl SendMessageRequest {
    pub fn new(to: Recipient, body: Value) -> Self {
        Self {
            to,
            from: None,
            body,
            correlation_id: None,
            reply_to: None,
            ttl_ms: None,
            idempotency_key: None,
        }
    }

    /// A message to one agent.
    pub fn to_agent(agent: AgentName, body: Value) -> Self {
        Self::new(Recipient::Agent { agent }, body)
    }

    /// A message to a topic's subscribers.
    pub fn to_topic(topic: TopicName, body: Value) -> Self {
        Self::new(Recipient::Topic { topic }, body)
    }

    /// A message to every agent of the namespace.
    pub fn broadcast(body: Value) -> Self {
        Self::new(Recipient::Broadcast { broadcast: true }, body)
    }

    /// An answer to `original`: to its sender, with its correlation id, replying to its id.
    /// `None` when the original names no sender.
    pub fn reply(original: &Message, body: Value) -> Option<Self> {
        let to = original.from.clone()?;
        let mut req = Self::to_agent(to, body);
        req.correlation_id = original.correlation_id.clone();
        req.reply_to = Some(original.id.clone());
        Some(req)
    }

    pub fn into_new_message(self) -> Result<NewMessage, FieldError> {
        if let Recipient::Broadcast { broadcast: false } = self.to {
            return Err(FieldError::new(
                "to.broadcast",
                "must be true: send {\"broadcast\": true}, or name an agent or a topic",
            ));
        }
        for (field, value) in [
            ("correlation_id", &self.correlation_id),
            ("reply_to", &self.reply_to),
            ("idempotency_key", &self.idempotency_key),
        ] {
            check_text(field, value)?;
        }
        if let Some(ttl) = self.ttl_ms
            && !(1..=MAX_TTL_MS).contains(&ttl)
        {
            return Err(FieldError::new(
                "ttl_ms",
                format!("must be between 1 and {MAX_TTL_MS} (thirty days)"),
            ));
        }
        Ok(NewMessage {
            from: self.from,
            to: self.to,
            body: self.body,
            correlation_id: self.correlation_id,
            reply_to: self.reply_to,
            ttl_ms: self.ttl_ms,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// `GET /v1/agents/{name}/inbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxResponse {
    /// In sequence order: direct, topic and broadcast messages interleaved as they were sent.
    pub messages: Vec<Message>,
    /// `seq` of the last message returned (the `after` it started from when none): pass it as
    /// `after` to read on, and to `ack` once they are handled.
    pub cursor: u64,
}

/// `POST /v1/agents/{name}/inbox/ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Everything up to and including this `seq` is handled.
    pub cursor: u64,
}

/// The acknowledged position of an inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckResponse {
    /// Everything up to here is acknowledged (it never moves back).
    pub cursor: u64,
}

/// `GET /v1/agents/{name}/subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopicList {
    /// Every topic the agent subscribes to, in name order.
    pub topics: Vec<TopicName>,
}

/// `PUT|DELETE /v1/agents/{name}/subscriptions/{topic}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscriptions {
    /// Every topic the agent subscribes to now.
    pub topics: Vec<TopicName>,
    /// False when the request changed nothing (already subscribed, or was not).
    pub changed: bool,
}
