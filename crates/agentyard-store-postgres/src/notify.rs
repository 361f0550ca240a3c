//! Cross-node wake-ups over LISTEN/NOTIFY. A write transaction queues a notification for what
//! other nodes wait on or cache (a queue got ready tasks, a message was sent, limits or tokens
//! changed); PostgreSQL delivers it when, and only if, the transaction commits. Each node keeps
//! one connection listening on the yard's channel and hands what it hears to the server, which
//! wakes its parked claimers and inbox readers. A node ignores its own notifications: it woke its
//! waiters itself.
//!
//! When the listening connection is lost, notifications sent meanwhile are gone; on reconnecting
//! the node reports `Resync` so the server wakes every waiter to look again.

use std::sync::Arc;
use std::time::Duration;

use agentyard_core::message::Recipient;
use agentyard_core::{AgentName, Namespace, QueueName};
use agentyard_store::{RemoteChange, RemoteSink};
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

/// What a transaction tells other nodes. Payloads are `node|kind|fields…`; names cannot hold `|`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Notice {
    /// `ready` tasks of the queue became ready (see [`ReadyCount`]).
    TasksReady {
        namespace: String,
        queue: String,
        ready: ReadyCount,
    },
    /// `kind` is `a` (agent), `t` (topic) or `b` (broadcast, empty name).
    MessageSent {
        namespace: String,
        kind: char,
        name: String,
    },
    LimitsChanged,
    /// A token was created or revoked: every node forgets what it cached of tokens.
    TokensChanged,
}

impl Notice {
    pub(crate) fn encode(&self, node: &str) -> String {
        match self {
            Notice::TasksReady {
                namespace,
                queue,
                ready,
            } => format!("{node}|t|{namespace}|{queue}|{ready}"),
            Notice::MessageSent { namespace, kind, name } => format!("{node}|m|{namespace}|{kind}|{name}"),
            Notice::LimitsChanged => format!("{node}|l"),
            Notice::TokensChanged => format!("{node}|k"),
        }
    }

    pub(crate) fn message(namespace: &Namespace, to: &Recipient) -> Self {
        let (kind, name) = match to {
            Recipient::Agent { agent } => ('a', agent.as_str()),
            Recipient::Topic { topic } => ('t', topic.as_str()),
            Recipient::Broadcast { .. } => ('b', ""),
        };
        Notice::MessageSent {
            namespace: namespace.as_str().to_owned(),
            kind,
            name: name.to_owned(),
        }
    }
}

/// How many claimers a notice of ready tasks should wake: the tasks, or every claimer of the
/// queue when some need capabilities (any of them may be the one able to run them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ReadyCount(pub(crate) usize);

impl ReadyCount {
    pub(crate) const ALL: ReadyCount = ReadyCount(usize::MAX);
}

impl std::fmt::Display for ReadyCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::ALL {
            f.write_str("*")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Reads a payload; `None` for one of this node's own or one it cannot read.
fn decode(payload: &str, own_node: &str) -> Option<RemoteChange> {
    let mut parts = payload.split('|');
    let node = parts.next()?;
    if node == own_node {
        return None;
    }
    match parts.next()? {
        "t" => Some(RemoteChange::TasksReady {
            namespace: Namespace::parse(parts.next()?).ok()?,
            queue: QueueName::parse(parts.next()?).ok()?,
            // `*`: some need capabilities, wake every claimer of the queue.
            ready: match parts.next()? {
                "*" => usize::MAX,
                n => n.parse().ok()?,
            },
        }),
        "m" => {
            let namespace = Namespace::parse(parts.next()?).ok()?;
            let to = match (parts.next()?, parts.next()?) {
                ("a", name) => Recipient::Agent {
                    agent: AgentName::parse(name).ok()?,
                },
                ("t", name) => Recipient::Topic {
                    topic: QueueName::parse(name).ok()?,
                },
                ("b", _) => Recipient::Broadcast { broadcast: true },
                _ => return None,
            };
            Some(RemoteChange::MessageSent { namespace, to })
        }
        "l" => Some(RemoteChange::LimitsChanged),
        "k" => Some(RemoteChange::TokensChanged),
        _ => None,
    }
}

/// Listens on `channel` until aborted, reconnecting with backoff, and reports to `sink`.
pub(crate) async fn listen(config: tokio_postgres::Config, channel: String, node: String, sink: RemoteSink) {
    const FIRST_RETRY: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_RETRY;
    loop {
        let mut listened = false;
        let result = listen_once(&config, &channel, &node, &sink, &mut listened).await;
        if listened {
            // That connection worked: losing it is a new outage, retried quickly again (else
            // the delay grows over the node's life, and after a few restarts of PostgreSQL the
            // node goes 5 s without other nodes' wake-ups after each).
            backoff = FIRST_RETRY;
        }
        match result {
            Ok(()) => tracing::warn!(channel, "the PostgreSQL notification connection closed; reconnecting"),
            Err(e) => tracing::warn!(channel, error = %e, retry_in_ms = backoff.as_millis() as u64,
                "cannot listen for PostgreSQL notifications; other nodes' changes reach this node only by its periodic re-checks until it can"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    node: &str,
    sink: &RemoteSink,
    listened: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the client's own queries to complete, so a task drives
    // it and passes notifications on.
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let _abort = AbortOnDrop(driver);
    client.batch_execute(&format!("LISTEN \"{channel}\"")).await?;
    *listened = true;
    tracing::info!(channel, "listening for other nodes' changes");
    // Whatever was sent while this node was not listening is lost: everyone looks again.
    sink(RemoteChange::Resync);
    while let Some(message) = rx.recv().await {
        let payload = message?;
        if let Some(change) = decode(&payload, node) {
            sink(change);
        }
    }
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The listener task of a store; stops when the store is dropped.
pub(crate) struct Listener(pub(crate) Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>);

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(task) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_own_ones_are_ignored() {
        let ns = Namespace::default_namespace();
        let cases = [
            (
                Notice::TasksReady {
                    namespace: "default".into(),
                    queue: "emails".into(),
                    ready: ReadyCount(3),
                },
                RemoteChange::TasksReady {
                    namespace: ns.clone(),
                    queue: QueueName::parse("emails").expect("valid"),
                    ready: 3,
                },
            ),
            (
                Notice::TasksReady {
                    namespace: "default".into(),
                    queue: "emails".into(),
                    ready: ReadyCount::ALL,
                },
                RemoteChange::TasksReady {
                    namespace: ns.clone(),
                    queue: QueueName::parse("emails").expect("valid"),
                    ready: usize::MAX,
                },
            ),
            (
                Notice::message(&ns, &Recipient::Broadcast { broadcast: true }),
                RemoteChange::MessageSent {
                    namespace: ns.clone(),
                    to: Recipient::Broadcast { broadcast: true },
                },
            ),
            (
                Notice::message(
                    &ns,
                    &Recipient::Agent {
                        agent: AgentName::parse("w-1").expect("valid"),
                    },
                ),
                RemoteChange::MessageSent {
                    namespace: ns.clone(),
                    to: Recipient::Agent {
                        agent: AgentName::parse("w-1").expect("valid"),
                    },
                },
            ),
            (Notice::LimitsChanged, RemoteChange::LimitsChanged),
            (Notice::TokensChanged, RemoteChange::TokensChanged),
        ];
        for (notice, change) in cases {
            let payload = notice.encode("node-a");
            assert_eq!(decode(&payload, "node-b"), Some(change), "{payload}");
            assert_eq!(decode(&payload, "node-a"), None, "own: {payload}");
        }
        assert_eq!(decode("x|t|Bad Name|q", "y"), None);
        assert_eq!(decode("garbage", "y"), None);
    }
}
