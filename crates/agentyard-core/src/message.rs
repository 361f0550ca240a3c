//! Messages between agents: direct, to a topic, or broadcast to the whole namespace.
//!
//! Every message is stored once. An inbox is a view: the agent's direct messages, the messages of
//! the topics it subscribes to (from when it subscribed), and broadcasts (from when it
//! registered), merged in one sequence order per namespace.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::{AgentName, Namespace};
use crate::time::Timestamp;

/// A topic name follows the same rule as every other name.
pub type TopicName = crate::names::QueueName;

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Recipient {
    Agent {
        agent: AgentName,
    },
    Topic {
        topic: TopicName,
    },
    /// `{"broadcast": true}`; `false` is refused at the edge.
    Broadcast {
        broadcast: bool,
    },
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: String,
    /// Position in the namespace's message sequence; inbox cursors are these.
    pub seq: u64,
    pub namespace: Namespace,
    pub from: Option<AgentName>,
    pub to: Recipient,
    pub body: Value,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
}

/// A validated message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub from: Option<AgentName>,
    pub to: Recipient,
    pub body: Value,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub ttl_ms: Option<u64>,
    pub idempotency_key: Option<String>,
}

impl Message {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

impl NewMessage {
    /// The message as stored at position `seq`.
    pub fn into_message(self, namespace: Namespace, seq: u64, now: Timestamp) -> Message {
        Message {
            id: ulid::Ulid::new().to_string(),
            seq,
            namespace,
            from: self.from,
            to: self.to,
            body: self.body,
            correlation_id: self.correlation_id,
            reply_to: self.reply_to,
            expires_at: self.ttl_ms.map(|ttl| now.add_millis(ttl)),
            idempotency_key: self.idempotency_key,
            created_at: now,
        }
    }
}
