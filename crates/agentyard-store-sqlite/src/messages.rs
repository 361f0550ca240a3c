//! The messages, subscriptions and message_seq tables, and `MessageStore` on SQLite.
//!
//! A message is one row whoever reads it; an inbox is a view. Reading one walks the
//! `messages_inbox` index once per source of the agent (its direct messages, the broadcasts
//! since it registered, each topic since it subscribed), from the cursor on and at most `limit`
//! entries each, and merges the sequences: the cost follows what the agent receives, never how
//! many messages the namespace holds. Only the documents of the messages returned are read.

use agentyard_core::agent::Agent;
use agentyard_core::event::message_sent;
use agentyard_core::message::{Message, NewMessage, Recipient, TopicName};
use agentyard_core::{AgentName, Namespace, Timestamp};
use agentyard_store::record::MessageRecordV1;
use agentyard_store::{InboxPage, MessageStore, SendOptions, Sent, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::agents;
use crate::error::{corrupt_record, sql_error};
use crate::store::SqliteStore;
use crate::writer::WriteCtx;

const SEQ_OF_KEY: &str = "SELECT seq, doc FROM messages WHERE namespace = ?1 AND idempotency_key = ?2";

const DOC_OF_SEQ: &str = "SELECT doc FROM messages WHERE namespace = ?1 AND seq = ?2";

const SUBSCRIPTIONS_OF: &str = "SELECT topic, start_seq FROM subscriptions WHERE namespace = ?1 AND agent = ?2";

const COUNT: &str = "SELECT COUNT(*) FROM messages WHERE namespace = ?1";

/// Sequences are u64 in the API and INTEGER (i64) in SQLite; they never come near the limit,
/// and a cursor past it simply finds nothing.
fn seq_column(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_value(column: i64) -> u64 {
    u64::try_from(column).unwrap_or(0)
}

/// The `kind` and `to_name` columns of a recipient.
fn destination(to: &Recipient) -> (&'static str, Option<&str>) {
    match to {
        Recipient::Agent { agent } => ("agent", Some(agent.as_str())),
        Recipient::Topic { topic } => ("topic", Some(topic.as_str())),
        Recipient::Broadcast { .. } => ("broadcast", None),
    }
}

/// The document is a [`MessageRecordV1`] (the store's own format, not the API's JSON).
fn decode(ns: &Namespace, seq: i64, doc: &str) -> Result<Message, StoreError> {
    let record = || format!("message {ns}/{seq}");
    let stored: MessageRecordV1<'_> = serde_json::from_str(doc).map_err(|e| corrupt_record(record(), e))?;
    let message = Message::from(stored);
    if message.seq != seq_value(seq) || &message.namespace != ns {
        return Err(corrupt_record(
            record(),
            format!("it holds message {}/{}", message.namespace, message.seq),
        ));
    }
    Ok(message)
}

/// The last sequence handed out in the namespace (0 before the first message).
pub(crate) fn latest_seq(conn: &Connection, ns: &Namespace) -> Result<u64, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT last FROM message_seq WHERE namespace = ?1")
        .map_err(sql_error)?;
    let last: Option<i64> = stmt
        .query_row(params![ns.as_str()], |r| r.get(0))
        .optional()
        .map_err(sql_error)?;
    Ok(last.map_or(0, seq_value))
}

/// Takes the namespace's next sequence.
fn next_seq(conn: &Connection, ns: &Namespace) -> Result<u64, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO message_seq (namespace, last) VALUES (?1, 1) \
             ON CONFLICT (namespace) DO UPDATE SET last = last + 1 RETURNING last",
        )
        .map_err(sql_error)?;
    let last: i64 = stmt.query_row(params![ns.as_str()], |r| r.get(0)).map_err(sql_error)?;
    Ok(seq_value(last))
}

fn insert(conn: &Connection, message: &Message) -> Result<(), StoreError> {
    let doc = serde_json::to_string(&MessageRecordV1::from(message))
        .map_err(|e| corrupt_record(format!("message {}/{}", message.namespace, message.seq), e))?;
    let (kind, to_name) = destination(&message.to);
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO messages (namespace, seq, kind, to_name, expires_at, idempotency_key, doc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(sql_error)?;
    stmt.execute(params![
        message.namespace.as_str(),
        seq_column(message.seq),
        kind,
        to_name,
        message.expires_at.map(Timestamp::as_millis),
        message.idempotency_key,
        doc,
    ])
    .map_err(sql_error)?;
    Ok(())
}

fn find_by_idempotency_key(conn: &Connection, ns: &Namespace, key: &str) -> Result<Option<Message>, StoreError> {
    let mut stmt = conn.prepare_cached(SEQ_OF_KEY).map_err(sql_error)?;
    let found: Option<(i64, String)> = stmt
        .query_row(params![ns.as_str(), key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(sql_error)?;
    found.map(|(seq, doc)| decode(ns, seq, &doc)).transpose()
}

fn load(conn: &Connection, ns: &Namespace, seq: u64) -> Result<Message, StoreError> {
    let mut stmt = conn.prepare_cached(DOC_OF_SEQ).map_err(sql_error)?;
    let doc: String = stmt
        .query_row(params![ns.as_str(), seq_column(seq)], |r| r.get(0))
        .map_err(sql_error)?;
    decode(ns, seq_column(seq), &doc)
}

/// One source of an inbox: the messages of one `(kind, to_name)` after `after`.
struct Source {
    kind: &'static str,
    to_name: Option<String>,
    after: u64,
}

/// The sources of the agent's inbox read after `after`: its direct messages, the broadcasts
/// since it registered, and each topic it subscribes to since it subscribed.
fn sources(conn: &Connection, ns: &Namespace, agent: &Agent, after: u64) -> Result<Vec<Source>, StoreError> {
    let mut out = vec![
        Source {
            kind: "agent",
            to_name: Some(agent.name.as_str().to_owned()),
            after,
        },
        Source {
            kind: "broadcast",
            to_name: None,
            after: after.max(agent.inbox_start),
        },
    ];
    let mut stmt = conn.prepare_cached(SUBSCRIPTIONS_OF).map_err(sql_error)?;
    let mut rows = stmt
        .query(params![ns.as_str(), agent.name.as_str()])
        .map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let topic: String = row.get(0).map_err(sql_error)?;
        let start: i64 = row.get(1).map_err(sql_error)?;
        out.push(Source {
            kind: "topic",
            to_name: Some(topic),
            after: after.max(seq_value(start)),
        });
    }
    Ok(out)
}

/// The unexpired messages of one source after a sequence. `to_name IS ?3` matches NULL (a
/// broadcast) as well as a name, and walks the index either way.
macro_rules! unexpired_of_source {
    () => {
        "namespace = ?1 AND kind = ?2 AND to_name IS ?3 AND seq > ?4 AND (expires_at IS NULL OR expires_at > ?5)"
    };
}

const INBOX_PAGE: &str = concat!(
    "SELECT seq FROM messages WHERE ",
    unexpired_of_source!(),
    " ORDER BY seq LIMIT ?6"
);

const INBOX_COUNT: &str = concat!("SELECT COUNT(*) FROM messages WHERE ", unexpired_of_source!());

/// The sequences of at most `limit` unexpired messages for the agent after `after`, in order.
fn inbox_seqs(
    conn: &Connection,
    ns: &Namespace,
    agent: &Agent,
    after: u64,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<u64>, StoreError> {
    let limit_column = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(INBOX_PAGE).map_err(sql_error)?;
    let mut seqs = Vec::new();
    for source in sources(conn, ns, agent, after)? {
        let rows = stmt
            .query_map(
                params![
                    ns.as_str(),
                    source.kind,
                    source.to_name,
                    seq_column(source.after),
                    now.as_millis(),
                    limit_column
                ],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql_error)?;
        for seq in rows {
            seqs.push(seq_value(seq.map_err(sql_error)?));
        }
    }
    // The sources are disjoint (one kind and name each), so this is a merge without duplicates.
    seqs.sort_unstable();
    seqs.truncate(limit);
    Ok(seqs)
}

/// Unacknowledged unexpired messages for the agent.
pub(crate) fn depth(conn: &Connection, ns: &Namespace, agent: &Agent, now: Timestamp) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(INBOX_COUNT).map_err(sql_error)?;
    let mut total = 0u64;
    for source in sources(conn, ns, agent, agent.inbox_cursor)? {
        let n: i64 = stmt
            .query_row(
                params![
                    ns.as_str(),
                    source.kind,
                    source.to_name,
                    seq_column(source.after),
                    now.as_millis()
                ],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        total = total.saturating_add(seq_value(n));
    }
    Ok(total)
}

fn read_inbox(
    conn: &Connection,
    ns: &Namespace,
    name: &AgentName,
    after: Option<u64>,
    limit: usize,
    now: Timestamp,
) -> Result<InboxPage, StoreError> {
    let agent = agents::require(conn, ns, name)?;
    let after = after.unwrap_or(agent.inbox_cursor);
    let messages = inbox_seqs(conn, ns, &agent, after, limit, now)?
        .into_iter()
        .map(|seq| load(conn, ns, seq))
        .collect::<Result<Vec<_>, _>>()?;
    let cursor = messages.last().map_or(after, |m| m.seq);
    Ok(InboxPage { messages, cursor })
}

fn send(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    message: NewMessage,
    options: SendOptions,
    now: Timestamp,
) -> Result<Sent, StoreError> {
    let conn = ctx.conn();
    if let Some(key) = &message.idempotency_key
        && let Some(original) = find_by_idempotency_key(conn, ns, key)?
    {
        return Ok(Sent {
            message: original,
            created: false,
        });
    }
    if let Recipient::Agent { agent } = &message.to {
        let to = agents::require(conn, ns, agent)?;
        if let Some(limit) = options.max_inbox_depth {
            let depth = depth(conn, ns, &to, now)?;
            if depth >= limit {
                return Err(StoreError::InboxFull {
                    agent: agent.clone(),
                    depth,
                    limit,
                });
            }
        }
    }
    let seq = next_seq(conn, ns)?;
    let stored = message.into_message(ns.clone(), seq, now);
    insert(conn, &stored)?;
    ctx.log(&message_sent(&stored, now))?;
    Ok(Sent {
        message: stored,
        created: true,
    })
}

fn ack(ctx: &mut WriteCtx<'_>, ns: &Namespace, name: &AgentName, cursor: u64) -> Result<Agent, StoreError> {
    let conn = ctx.conn();
    let latest = latest_seq(conn, ns)?;
    if cursor > latest {
        return Err(StoreError::Invalid {
            message: format!("cursor {cursor} is past the latest message ({latest})"),
        });
    }
    let mut agent = agents::require(conn, ns, name)?;
    if cursor > agent.inbox_cursor {
        agent.inbox_cursor = cursor;
        agents::save(conn, &agent)?;
    }
    agents::view(conn, ns, name)
}

fn subscribe(ctx: &mut WriteCtx<'_>, ns: &Namespace, name: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
    let conn = ctx.conn();
    agents::require(conn, ns, name)?;
    let start = latest_seq(conn, ns)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO subscriptions (namespace, agent, topic, start_seq) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (namespace, agent, topic) DO NOTHING",
        )
        .map_err(sql_error)?;
    let added = stmt
        .execute(params![ns.as_str(), name.as_str(), topic.as_str(), seq_column(start)])
        .map_err(sql_error)?;
    Ok(added == 1)
}

fn unsubscribe(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    name: &AgentName,
    topic: &TopicName,
) -> Result<bool, StoreError> {
    let conn = ctx.conn();
    agents::require(conn, ns, name)?;
    let mut stmt = conn
        .prepare_cached("DELETE FROM subscriptions WHERE namespace = ?1 AND agent = ?2 AND topic = ?3")
        .map_err(sql_error)?;
    let removed = stmt
        .execute(params![ns.as_str(), name.as_str(), topic.as_str()])
        .map_err(sql_error)?;
    Ok(removed == 1)
}

/// Drops every subscription of the agent (it was removed).
pub(crate) fn unsubscribe_all(conn: &Connection, ns: &Namespace, name: &AgentName) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM subscriptions WHERE namespace = ?1 AND agent = ?2")
        .map_err(sql_error)?;
    stmt.execute(params![ns.as_str(), name.as_str()]).map_err(sql_error)?;
    Ok(())
}

fn subscriptions(conn: &Connection, ns: &Namespace, name: &AgentName) -> Result<Vec<TopicName>, StoreError> {
    agents::require(conn, ns, name)?;
    let mut stmt = conn
        .prepare_cached("SELECT topic FROM subscriptions WHERE namespace = ?1 AND agent = ?2 ORDER BY topic")
        .map_err(sql_error)?;
    let mut rows = stmt.query(params![ns.as_str(), name.as_str()]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let topic: String = row.get(0).map_err(sql_error)?;
        let parsed = TopicName::parse(topic.as_str())
            .map_err(|e| corrupt_record(format!("subscription of agent {ns}/{name} to {topic:?}"), e))?;
        out.push(parsed);
    }
    Ok(out)
}

fn count(conn: &Connection, ns: &Namespace) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(COUNT).map_err(sql_error)?;
    let n: i64 = stmt.query_row(params![ns.as_str()], |r| r.get(0)).map_err(sql_error)?;
    Ok(seq_value(n))
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn send_message(
        &self,
        ns: &Namespace,
        message: NewMessage,
        options: SendOptions,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        let ns = ns.clone();
        self.writer.run(move |ctx| send(ctx, &ns, message, options, now)).await
    }

    async fn read_inbox(
        &self,
        ns: &Namespace,
        agent: &AgentName,
        after: Option<u64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<InboxPage, StoreError> {
        let (ns, agent) = (ns.clone(), agent.clone());
        self.readers
            .snapshot(move |conn| read_inbox(conn, &ns, &agent, after, limit, now))
            .await
    }

    async fn ack_inbox(&self, ns: &Namespace, agent: &AgentName, cursor: u64) -> Result<Agent, StoreError> {
        let (ns, agent) = (ns.clone(), agent.clone());
        self.writer.run(move |ctx| ack(ctx, &ns, &agent, cursor)).await
    }

    async fn subscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let (ns, agent, topic) = (ns.clone(), agent.clone(), topic.clone());
        self.writer.run(move |ctx| subscribe(ctx, &ns, &agent, &topic)).await
    }

    async fn unsubscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let (ns, agent, topic) = (ns.clone(), agent.clone(), topic.clone());
        self.writer.run(move |ctx| unsubscribe(ctx, &ns, &agent, &topic)).await
    }

    async fn subscriptions(&self, ns: &Namespace, agent: &AgentName) -> Result<Vec<TopicName>, StoreError> {
        let (ns, agent) = (ns.clone(), agent.clone());
        self.readers
            .snapshot(move |conn| subscriptions(conn, &ns, &agent))
            .await
    }

    async fn message_count(&self, ns: &Namespace) -> Result<u64, StoreError> {
        let ns = ns.clone();
        self.readers.run(move |conn| count(conn, &ns)).await
    }

    async fn inbox_depth(&self, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<u64, StoreError> {
        let (ns, agent) = (ns.clone(), agent.clone());
        self.readers
            .snapshot(move |conn| {
                let agent = agents::require(conn, &ns, &agent)?;
                depth(conn, &ns, &agent, now)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::{COUNT, DOC_OF_SEQ, INBOX_COUNT, INBOX_PAGE, SEQ_OF_KEY, SUBSCRIPTIONS_OF};
    use crate::migrations::plans::assert_uses;

    /// An inbox read is a range scan of `messages_inbox` per source, answered from the index
    /// alone (expired ones skipped there too), then one primary-key lookup per message returned.
    #[test]
    fn inbox_queries_walk_the_inbox_index() {
        assert_uses(
            INBOX_PAGE,
            "COVERING INDEX messages_inbox (namespace=? AND kind=? AND to_name=? AND seq>?)",
        );
        assert_uses(
            INBOX_COUNT,
            "COVERING INDEX messages_inbox (namespace=? AND kind=? AND to_name=? AND seq>?)",
        );
        assert_uses(DOC_OF_SEQ, "sqlite_autoindex_messages_1 (namespace=? AND seq=?)");
        assert_uses(SUBSCRIPTIONS_OF, "PRIMARY KEY (namespace=? AND agent=?)");
        assert_uses(SEQ_OF_KEY, "messages_idempotency");
        assert_uses(COUNT, "sqlite_autoindex_messages_1");
    }
}
