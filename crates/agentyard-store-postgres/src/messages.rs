//! The messages, subscriptions and message_seq tables, and `MessageStore` on PostgreSQL.
//!
//! A message is one row whoever reads it; an inbox is a view read from `messages_inbox`, one
//! range per source of the agent (its direct messages, the broadcasts since it registered, each
//! topic since it subscribed) after its cursor, merged by sequence. A send takes the namespace's
//! next sequence from `message_seq` and holds that row until it commits, so sequences become
//! visible in order: a reader that saw message 7 never later finds a 6 it skipped.

use agentyard_core::agent::Agent;
use agentyard_core::event::message_sent;
use agentyard_core::message::{Message, NewMessage, Recipient, TopicName};
use agentyard_core::{AgentName, Namespace, Timestamp};
use agentyard_store::{InboxPage, MessageStore, SendOptions, Sent, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::agents;
use crate::error::{corrupt, pg_error};
use crate::notify::Notice;
use crate::record::{ms, u64_col};
use crate::store::{PgStore, write_tx};
use crate::work::{TxResult, Work};

const MESSAGE_COLUMNS: &str = "namespace, seq, id, kind, to_name, from_agent, body, correlation_id, reply_to, expires_at, idempotency_key, created_at";

fn seq_value(column: i64) -> u64 {
    u64::try_from(column).unwrap_or(0)
}

/// The `kind` and `to_name` columns of a recipient.
fn destination(to: &Recipient) -> (&'static str, &str) {
    match to {
        Recipient::Agent { agent } => ("agent", agent.as_str()),
        Recipient::Topic { topic } => ("topic", topic.as_str()),
        Recipient::Broadcast { .. } => ("broadcast", ""),
    }
}

fn decode(row: &Row) -> Result<Message, StoreError> {
    let ns: &str = row.try_get(0).map_err(|e| corrupt("message", e))?;
    let seq: i64 = row.try_get(1).map_err(|e| corrupt("message", e))?;
    let what = || format!("message {ns}/{seq}");
    let bad = |e: tokio_postgres::Error| corrupt(what(), e);
    let kind: &str = row.try_get(3).map_err(bad)?;
    let to_name: &str = row.try_get(4).map_err(bad)?;
    let to = match kind {
        "agent" => Recipient::Agent {
            agent: AgentName::parse(to_name).map_err(|e| corrupt(what(), e))?,
        },
        "topic" => Recipient::Topic {
            topic: TopicName::parse(to_name).map_err(|e| corrupt(what(), e))?,
        },
        "broadcast" => Recipient::Broadcast { broadcast: true },
        other => return Err(corrupt(what(), format!("kind {other:?}"))),
    };
    let from: Option<&str> = row.try_get(5).map_err(bad)?;
    Ok(Message {
        id: row.try_get(2).map_err(bad)?,
        seq: seq_value(seq),
        namespace: Namespace::parse(ns).map_err(|e| corrupt(what(), e))?,
        from: from.map(AgentName::parse).transpose().map_err(|e| corrupt(what(), e))?,
        to,
        body: row.try_get(6).map_err(bad)?,
        correlation_id: row.try_get(7).map_err(bad)?,
        reply_to: row.try_get(8).map_err(bad)?,
        expires_at: row
            .try_get::<_, Option<i64>>(9)
            .map_err(bad)?
            .map(Timestamp::from_millis),
        idempotency_key: row.try_get(10).map_err(bad)?,
        created_at: Timestamp::from_millis(row.try_get(11).map_err(bad)?),
    })
}

/// The last sequence handed out in the namespace (0 before the first message).
pub(crate) async fn latest_seq(c: &impl GenericClient, ns: &Namespace) -> TxResult<u64> {
    let stmt = c
        .prepare_cached("SELECT last FROM message_seq WHERE namespace = $1")
        .await?;
    let row = c.query_opt(&stmt, &[&ns.as_str()]).await?;
    Ok(row.map_or(0, |r| seq_value(r.get(0))))
}

/// Takes the namespace's next sequence; the row stays locked until the transaction ends.
async fn next_seq(c: &impl GenericClient, ns: &Namespace) -> TxResult<u64> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO message_seq AS s (namespace, last) VALUES ($1, 1) \
             ON CONFLICT (namespace) DO UPDATE SET last = s.last + 1 RETURNING last",
        )
        .await?;
    Ok(seq_value(c.query_one(&stmt, &[&ns.as_str()]).await?.get(0)))
}

async fn insert(c: &impl GenericClient, m: &Message) -> TxResult<()> {
    let (kind, to_name) = destination(&m.to);
    let stmt = c
        .prepare_cached(&format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .await?;
    c.execute(
        &stmt,
        &[
            &m.namespace.as_str(),
            &u64_col(m.seq),
            &m.id,
            &kind,
            &to_name,
            &m.from.as_ref().map(AgentName::as_str),
            &m.body,
            &m.correlation_id,
            &m.reply_to,
            &m.expires_at.map(ms),
            &m.idempotency_key,
            &ms(m.created_at),
        ],
    )
    .await?;
    Ok(())
}

async fn find_by_idempotency_key(c: &impl GenericClient, ns: &Namespace, key: &str) -> TxResult<Option<Message>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE namespace = $1 AND idempotency_key = $2"
        ))
        .await?;
    let row = c.query_opt(&stmt, &[&ns.as_str(), &key]).await?;
    Ok(row.map(|r| decode(&r)).transpose()?)
}

/// One source of an inbox: the messages of one `(kind, to_name)` after `after`.
struct Source {
    kind: &'static str,
    to_name: String,
    after: u64,
}

/// The sources of the agent's inbox read after `after`.
async fn sources(c: &impl GenericClient, ns: &Namespace, agent: &Agent, after: u64) -> TxResult<Vec<Source>> {
    let mut out = vec![
        Source {
            kind: "agent",
            to_name: agent.name.as_str().to_owned(),
            after,
        },
        Source {
            kind: "broadcast",
            to_name: String::new(),
            after: after.max(agent.inbox_start),
        },
    ];
    let stmt = c
        .prepare_cached("SELECT topic, start_seq FROM subscriptions WHERE namespace = $1 AND agent = $2")
        .await?;
    for row in c.query(&stmt, &[&ns.as_str(), &agent.name.as_str()]).await? {
        out.push(Source {
            kind: "topic",
            to_name: row.get(0),
            after: after.max(seq_value(row.get(1))),
        });
    }
    Ok(out)
}

/// At most `limit` unexpired messages for the agent after `after`, in sequence order: each
/// source's range of the inbox index, merged in one statement.
async fn inbox(
    c: &impl GenericClient,
    ns: &Namespace,
    agent: &Agent,
    after: u64,
    limit: usize,
    now: Timestamp,
) -> TxResult<Vec<Message>> {
    let sources = sources(c, ns, agent, after).await?;
    let kinds: Vec<&str> = sources.iter().map(|s| s.kind).collect();
    let names: Vec<&str> = sources.iter().map(|s| s.to_name.as_str()).collect();
    let afters: Vec<i64> = sources.iter().map(|s| u64_col(s.after)).collect();
    let stmt = c
        .prepare_cached(&format!(
            "SELECT m.* FROM unnest($2::text[], $3::text[], $4::int8[]) AS s(kind, to_name, after) \
             CROSS JOIN LATERAL ( \
                 SELECT {MESSAGE_COLUMNS} FROM messages \
                 WHERE namespace = $1 AND kind = s.kind AND to_name = s.to_name AND seq > s.after \
                   AND (expires_at IS NULL OR expires_at > $5) \
                 ORDER BY seq LIMIT $6) AS m \
             ORDER BY m.seq LIMIT $6"
        ))
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c
        .query(&stmt, &[&ns.as_str(), &kinds, &names, &afters, &ms(now), &limit])
        .await?;
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Unacknowledged unexpired messages for the agent.
async fn depth(c: &impl GenericClient, ns: &Namespace, agent: &Agent, now: Timestamp) -> TxResult<u64> {
    let sources = sources(c, ns, agent, agent.inbox_cursor).await?;
    let kinds: Vec<&str> = sources.iter().map(|s| s.kind).collect();
    let names: Vec<&str> = sources.iter().map(|s| s.to_name.as_str()).collect();
    let afters: Vec<i64> = sources.iter().map(|s| u64_col(s.after)).collect();
    let stmt = c
        .prepare_cached(
            "SELECT count(*) FROM unnest($2::text[], $3::text[], $4::int8[]) AS s(kind, to_name, after) \
             JOIN messages m ON m.namespace = $1 AND m.kind = s.kind AND m.to_name = s.to_name \
               AND m.seq > s.after AND (m.expires_at IS NULL OR m.expires_at > $5)",
        )
        .await?;
    let n: i64 = c
        .query_one(&stmt, &[&ns.as_str(), &kinds, &names, &afters, &ms(now)])
        .await?
        .get(0);
    Ok(seq_value(n))
}

async fn send(
    w: &mut Work<'_>,
    ns: &Namespace,
    message: NewMessage,
    options: SendOptions,
    now: Timestamp,
) -> TxResult<Sent> {
    if let Some(key) = &message.idempotency_key
        && let Some(original) = find_by_idempotency_key(w.tx, ns, key).await?
    {
        return Ok(Sent {
            message: original,
            created: false,
        });
    }
    if let Recipient::Agent { agent } = &message.to {
        let to = agents::require(w.tx, ns, agent, false).await?;
        if let Some(limit) = options.max_inbox_depth {
            let depth = depth(w.tx, ns, &to, now).await?;
            if depth >= limit {
                return Err(StoreError::InboxFull {
                    agent: agent.clone(),
                    depth,
                    limit,
                }
                .into());
            }
        }
    }
    let seq = next_seq(w.tx, ns).await?;
    // Two senders of one key wait on the sequence row in turn: the second finds the first's.
    if let Some(key) = &message.idempotency_key
        && let Some(original) = find_by_idempotency_key(w.tx, ns, key).await?
    {
        return Ok(Sent {
            message: original,
            created: false,
        });
    }
    let stored = message.into_message(ns.clone(), seq, now);
    insert(w.tx, &stored).await?;
    w.notify(Notice::message(ns, &stored.to));
    w.log(message_sent(&stored, now));
    Ok(Sent {
        message: stored,
        created: true,
    })
}

async fn ack(w: &mut Work<'_>, ns: &Namespace, name: &AgentName, cursor: u64) -> TxResult<Agent> {
    let latest = latest_seq(w.tx, ns).await?;
    if cursor > latest {
        return Err(StoreError::Invalid {
            message: format!("cursor {cursor} is past the latest message ({latest})"),
        }
        .into());
    }
    let mut agent = agents::require(w.tx, ns, name, true).await?;
    if cursor > agent.inbox_cursor {
        agent.inbox_cursor = cursor;
        agents::save(w.tx, &agent).await?;
    }
    Ok(agent)
}

async fn subscribe(w: &mut Work<'_>, ns: &Namespace, name: &AgentName, topic: &TopicName) -> TxResult<bool> {
    agents::require(w.tx, ns, name, false).await?;
    let start = latest_seq(w.tx, ns).await?;
    let stmt =
        w.tx.prepare_cached(
            "INSERT INTO subscriptions (namespace, agent, topic, start_seq) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, agent, topic) DO NOTHING",
        )
        .await?;
    let added =
        w.tx.execute(&stmt, &[&ns.as_str(), &name.as_str(), &topic.as_str(), &u64_col(start)])
            .await?;
    Ok(added == 1)
}

async fn unsubscribe(w: &mut Work<'_>, ns: &Namespace, name: &AgentName, topic: &TopicName) -> TxResult<bool> {
    agents::require(w.tx, ns, name, false).await?;
    let stmt =
        w.tx.prepare_cached("DELETE FROM subscriptions WHERE namespace = $1 AND agent = $2 AND topic = $3")
            .await?;
    let removed =
        w.tx.execute(&stmt, &[&ns.as_str(), &name.as_str(), &topic.as_str()])
            .await?;
    Ok(removed == 1)
}

/// Drops every subscription of the agent (it was removed).
pub(crate) async fn unsubscribe_all(c: &impl GenericClient, ns: &Namespace, name: &AgentName) -> TxResult<()> {
    let stmt = c
        .prepare_cached("DELETE FROM subscriptions WHERE namespace = $1 AND agent = $2")
        .await?;
    c.execute(&stmt, &[&ns.as_str(), &name.as_str()]).await?;
    Ok(())
}

#[async_trait]
impl MessageStore for PgStore {
    async fn send_message(
        &self,
        ns: &Namespace,
        message: NewMessage,
        options: SendOptions,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        write_tx!(self, |w| send(&mut w, ns, message.clone(), options, now).await)
    }

    async fn read_inbox(
        &self,
        ns: &Namespace,
        agent: &AgentName,
        after: Option<u64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<InboxPage, StoreError> {
        let client = self.client().await?;
        let read = async {
            let found = agents::require(&client, ns, agent, false).await?;
            let after = after.unwrap_or(found.inbox_cursor);
            let messages = inbox(&client, ns, &found, after, limit, now).await?;
            let cursor = messages.last().map_or(after, |m| m.seq);
            TxResult::Ok(InboxPage { messages, cursor })
        };
        read.await.map_err(|e| e.into_store())
    }

    async fn ack_inbox(&self, ns: &Namespace, agent: &AgentName, cursor: u64) -> Result<Agent, StoreError> {
        let acked = write_tx!(self, |w| ack(&mut w, ns, agent, cursor).await)?;
        self.get_agent_view(acked).await
    }

    async fn subscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        write_tx!(self, |w| subscribe(&mut w, ns, agent, topic).await)
    }

    async fn unsubscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        write_tx!(self, |w| unsubscribe(&mut w, ns, agent, topic).await)
    }

    async fn subscriptions(&self, ns: &Namespace, agent: &AgentName) -> Result<Vec<TopicName>, StoreError> {
        let client = self.client().await?;
        let read = async {
            agents::require(&client, ns, agent, false).await?;
            let stmt = client
                .prepare_cached(
                    "SELECT topic FROM subscriptions WHERE namespace = $1 AND agent = $2 ORDER BY topic COLLATE \"C\"",
                )
                .await?;
            let rows = client.query(&stmt, &[&ns.as_str(), &agent.as_str()]).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let topic: &str = row.get(0);
                out.push(TopicName::parse(topic).map_err(|e| corrupt(format!("subscription of {ns}/{agent}"), e))?);
            }
            TxResult::Ok(out)
        };
        read.await.map_err(|e| e.into_store())
    }

    async fn message_count(&self, ns: &Namespace) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT count(*) FROM messages WHERE namespace = $1")
            .await
            .map_err(pg_error)?;
        let n: i64 = client.query_one(&stmt, &[&ns.as_str()]).await.map_err(pg_error)?.get(0);
        Ok(seq_value(n))
    }

    async fn inbox_depth(&self, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let read = async {
            let found = agents::require(&client, ns, agent, false).await?;
            depth(&client, ns, &found, now).await
        };
        read.await.map_err(|e| e.into_store())
    }
}

impl PgStore {
    /// The agent as the API shows it, running count included.
    async fn get_agent_view(&self, agent: Agent) -> Result<Agent, StoreError> {
        agentyard_store::AgentStore::get_agent(self, &agent.namespace, &agent.name).await
    }
}
