//! The stored forms of agents, messages and dispatch limits: records of the store's own, never
//! the API's JSON shape.

use super::*;

/// An agent without its running count, which the stores count from the tasks. (Records the log
/// store wrote before this type carry a `running` field: it is ignored.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecordV1<'a> {
    pub name: Cow<'a, AgentName>,
    pub namespace: Cow<'a, Namespace>,
    pub capabilities: Cow<'a, [Capability]>,
    pub slots: u32,
    pub metadata: Cow<'a, Value>,
    pub status: AgentStatusRecordV1,
    #[serde(with = "time_v1")]
    pub last_heartbeat: Timestamp,
    #[serde(with = "time_v1")]
    pub registered_at: Timestamp,
    pub inbox_start: u64,
    pub inbox_cursor: u64,
    /// Registered by a claim (see `Agent::implicit`). Added within version 1: records written
    /// before it have none and are explicit, and an explicit agent's record leaves it out, so its
    /// bytes are what they always were.
    #[serde(default, skip_serializing_if = "is_false")]
    pub implicit: bool,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde hands `skip_serializing_if` the field itself, a `&bool`"
)]
fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatusRecordV1 {
    Active,
    Draining,
    Gone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecordV1<'a> {
    pub id: Cow<'a, str>,
    pub seq: u64,
    pub namespace: Cow<'a, Namespace>,
    pub from: Option<Cow<'a, AgentName>>,
    pub to: RecipientRecordV1<'a>,
    pub body: Cow<'a, Value>,
    pub correlation_id: Option<Cow<'a, str>>,
    pub reply_to: Option<Cow<'a, str>>,
    #[serde(default, with = "opt_time_v1")]
    pub expires_at: Option<Timestamp>,
    pub idempotency_key: Option<Cow<'a, str>>,
    #[serde(with = "time_v1")]
    pub created_at: Timestamp,
}

/// `{"agent": …}`, `{"topic": …}` or `{"broadcast": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipientRecordV1<'a> {
    Agent { agent: Cow<'a, AgentName> },
    Topic { topic: Cow<'a, TopicName> },
    Broadcast { broadcast: bool },
}

/// The dispatch limits of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimitRecordV1 {
    pub rate: Option<RateLimitRecordV1>,
    pub max_concurrent: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitRecordV1 {
    pub rate_per_minute: u32,
    pub burst: u32,
}

impl<'a> From<&'a Agent> for AgentRecordV1<'a> {
    fn from(a: &'a Agent) -> Self {
        Self {
            name: Cow::Borrowed(&a.name),
            namespace: Cow::Borrowed(&a.namespace),
            capabilities: Cow::Borrowed(&a.capabilities),
            slots: a.slots,
            metadata: Cow::Borrowed(&a.metadata),
            status: a.status.into(),
            last_heartbeat: a.last_heartbeat,
            registered_at: a.registered_at,
            inbox_start: a.inbox_start,
            inbox_cursor: a.inbox_cursor,
            implicit: a.implicit,
        }
    }
}

/// The agent with `running` at 0: the store counts it.
impl From<AgentRecordV1<'_>> for Agent {
    fn from(a: AgentRecordV1<'_>) -> Self {
        Self {
            name: a.name.into_owned(),
            namespace: a.namespace.into_owned(),
            capabilities: a.capabilities.into_owned(),
            slots: a.slots,
            metadata: a.metadata.into_owned(),
            status: a.status.into(),
            last_heartbeat: a.last_heartbeat,
            registered_at: a.registered_at,
            running: 0,
            inbox_start: a.inbox_start,
            inbox_cursor: a.inbox_cursor,
            implicit: a.implicit,
        }
    }
}

impl From<AgentStatus> for AgentStatusRecordV1 {
    fn from(s: AgentStatus) -> Self {
        match s {
            AgentStatus::Active => Self::Active,
            AgentStatus::Draining => Self::Draining,
            AgentStatus::Gone => Self::Gone,
        }
    }
}

impl From<AgentStatusRecordV1> for AgentStatus {
    fn from(s: AgentStatusRecordV1) -> Self {
        match s {
            AgentStatusRecordV1::Active => Self::Active,
            AgentStatusRecordV1::Draining => Self::Draining,
            AgentStatusRecordV1::Gone => Self::Gone,
        }
    }
}

impl<'a> From<&'a Message> for MessageRecordV1<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: Cow::Borrowed(&m.id),
            seq: m.seq,
            namespace: Cow::Borrowed(&m.namespace),
            from: m.from.as_ref().map(Cow::Borrowed),
            to: (&m.to).into(),
            body: Cow::Borrowed(&m.body),
            correlation_id: borrowed_str(&m.correlation_id),
            reply_to: borrowed_str(&m.reply_to),
            expires_at: m.expires_at,
            idempotency_key: borrowed_str(&m.idempotency_key),
            created_at: m.created_at,
        }
    }
}

impl From<MessageRecordV1<'_>> for Message {
    fn from(m: MessageRecordV1<'_>) -> Self {
        Self {
            id: m.id.into_owned(),
            seq: m.seq,
            namespace: m.namespace.into_owned(),
            from: m.from.map(Cow::into_owned),
            to: m.to.into(),
            body: m.body.into_owned(),
            correlation_id: owned_str(m.correlation_id),
            reply_to: owned_str(m.reply_to),
            expires_at: m.expires_at,
            idempotency_key: owned_str(m.idempotency_key),
            created_at: m.created_at,
        }
    }
}

impl<'a> From<&'a Recipient> for RecipientRecordV1<'a> {
    fn from(r: &'a Recipient) -> Self {
        match r {
            Recipient::Agent { agent } => Self::Agent {
                agent: Cow::Borrowed(agent),
            },
            Recipient::Topic { topic } => Self::Topic {
                topic: Cow::Borrowed(topic),
            },
            Recipient::Broadcast { broadcast } => Self::Broadcast { broadcast: *broadcast },
        }
    }
}

impl From<RecipientRecordV1<'_>> for Recipient {
    fn from(r: RecipientRecordV1<'_>) -> Self {
        match r {
            RecipientRecordV1::Agent { agent } => Self::Agent {
                agent: agent.into_owned(),
            },
            RecipientRecordV1::Topic { topic } => Self::Topic {
                topic: topic.into_owned(),
            },
            RecipientRecordV1::Broadcast { broadcast } => Self::Broadcast { broadcast },
        }
    }
}

impl From<KeyLimit> for KeyLimitRecordV1 {
    fn from(l: KeyLimit) -> Self {
        Self {
            rate: l.rate.map(|r| RateLimitRecordV1 {
                rate_per_minute: r.rate_per_minute,
                burst: r.burst,
            }),
            max_concurrent: l.max_concurrent,
        }
    }
}

impl From<KeyLimitRecordV1> for KeyLimit {
    fn from(l: KeyLimitRecordV1) -> Self {
        Self {
            rate: l.rate.map(|r| RateLimit {
                rate_per_minute: r.rate_per_minute,
                burst: r.burst,
            }),
            max_concurrent: l.max_concurrent,
        }
    }
}
