//! Storage of agents and their messages: the `AgentStore` and `MessageStore` traits.

use agentyard_core::agent::{Agent, AgentRegistration};
use agentyard_core::message::{Message, NewMessage, TopicName};
use agentyard_core::{AgentName, Capability, Namespace, Task, Timestamp};
use async_trait::async_trait;

use crate::StoreError;

/// Agents of the yard. Every method is atomic and durable once it returns `Ok`.
#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Registers the agent or updates its registration; it becomes `active` and explicit (an
    /// implicit one too). A new agent's inbox starts after the namespace's latest message, so it
    /// does not receive old broadcasts. `TooManyAgents` when a new agent would pass
    /// `options.max_agents`.
    async fn register_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        registration: AgentRegistration,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError>;

    /// Records a sign of life: registers the agent implicitly if unknown (with these
    /// capabilities, if any; `TooManyAgents` past `options.max_agents`), brings a `gone` agent
    /// back to `active`, and moves its heartbeat.
    async fn touch_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        capabilities: Option<Vec<Capability>>,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError>;

    /// Heartbeat of a registered agent (`NotFound` if it never registered).
    async fn heartbeat_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError>;

    async fn get_agent(&self, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError>;

    /// Every agent of the namespace, by name.
    async fn list_agents(&self, ns: &Namespace) -> Result<Vec<Agent>, StoreError>;

    /// The agent finishes what it holds and gets nothing new.
    async fn drain_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError>;

    /// Removes the agent; its leases are released at once. Returns the released tasks.
    async fn delete_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Vec<Task>, StoreError>;

    /// Marks agents silent since `now - timeout_ms` as `gone` and releases their leases.
    /// Returns each newly gone agent with the tasks it lost.
    async fn expire_agents(&self, now: Timestamp, timeout_ms: u64) -> Result<Vec<(Agent, Vec<Task>)>, StoreError>;

    /// Removes, as [`AgentStore::delete_agent`] does, at most `limit` implicit agents that are
    /// `gone` with their last heartbeat at or before `silent_since`, longest silent first (then
    /// by namespace and name). Explicit agents are never removed here. Returns each removed
    /// agent (as it was) with the tasks it still held.
    async fn forget_agents(
        &self,
        now: Timestamp,
        silent_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Agent, Vec<Task>)>, StoreError>;
}

/// Options of a registration or a touch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentOptions {
    /// Refuse to create an agent when its namespace already has this many (existing agents are
    /// never refused).
    pub max_agents: Option<u64>,
}

/// Options of a send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Refuse a direct message when the recipient already has this many unacknowledged ones.
    pub max_inbox_depth: Option<u64>,
}

/// The outcome of a send.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub message: Message,
    /// False when the `idempotency_key` was seen before: `message` is the original.
    pub created: bool,
}

/// A page of an inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    pub messages: Vec<Message>,
    /// Sequence of the last message returned, or the `after` it started from if none.
    pub cursor: u64,
}

/// Messages: stored once, fanned out on read.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Stores a message. A direct message needs a registered recipient (`NotFound` otherwise).
    async fn send_message(
        &self,
        ns: &Namespace,
        message: NewMessage,
        options: SendOptions,
        now: Timestamp,
    ) -> Result<Sent, StoreError>;

    /// Messages for the agent after `after` (default: its acknowledged cursor), in sequence order:
    /// its direct messages, its topics' messages since it subscribed, broadcasts since it
    /// registered; expired ones are skipped.
    async fn read_inbox(
        &self,
        ns: &Namespace,
        agent: &AgentName,
        after: Option<u64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<InboxPage, StoreError>;

    /// Acknowledges everything up to `cursor` (a cursor never moves back).
    async fn ack_inbox(&self, ns: &Namespace, agent: &AgentName, cursor: u64) -> Result<Agent, StoreError>;

    /// Subscribes the agent to a topic from now on. Returns false if it already was.
    async fn subscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError>;

    /// Returns false if it was not subscribed.
    async fn unsubscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError>;

    async fn subscriptions(&self, ns: &Namespace, agent: &AgentName) -> Result<Vec<TopicName>, StoreError>;

    /// Stored messages of the namespace (a broadcast counts once, however many agents read it).
    async fn message_count(&self, ns: &Namespace) -> Result<u64, StoreError>;

    /// Unacknowledged messages waiting for the agent.
    async fn inbox_depth(&self, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<u64, StoreError>;
}
