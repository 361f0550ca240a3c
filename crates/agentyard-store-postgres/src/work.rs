//! One write transaction and what it owes the database before it commits: the per-queue count
//! deltas of the tasks it moved, the events of its changes, and the notifications other nodes
//! wait for. All are written once, at the end, in the same transaction and the same round trip as
//! its `COMMIT`, so a change, its counts, its events and its wake-ups commit together or not at
//! all.

use std::collections::{BTreeMap, BTreeSet};

use agentyard_core::event::{NewEvent, task_event};
use agentyard_core::{Namespace, QueueName, Task, TaskStatus};
use agentyard_store::StoreError;
use deadpool_postgres::Object;

use crate::error::pg_error;
use crate::events::{EventColumns, QUEUE_EVENTS};
use crate::notify::{Notice, ReadyCount};

/// An error inside a transaction: the driver's (kept whole, so deadlocks can be retried) or the
/// store's own (a refused command).
#[derive(Debug)]
pub(crate) enum TxError {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl TxError {
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            TxError::Pg(e) => pg_error(e),
            TxError::Store(e) => e,
        }
    }
}

pub(crate) type TxResult<T> = Result<T, TxError>;

/// Index of a status in a counts row.
fn slot(s: TaskStatus) -> usize {
    match s {
        TaskStatus::Scheduled => 0,
        TaskStatus::Queued => 1,
        TaskStatus::Running => 2,
        TaskStatus::Succeeded => 3,
        TaskStatus::Failed => 4,
        TaskStatus::Cancelled => 5,
    }
}

/// A pooled connection with a transaction open on it (see `write_tx!`): unless the transaction
/// was finished (committed or rolled back), dropping it closes the connection instead of
/// returning it to the pool, and PostgreSQL rolls the transaction back.
pub(crate) struct OpenTx {
    conn: Option<Object>,
}

impl OpenTx {
    pub(crate) fn new(conn: Object) -> Self {
        Self { conn: Some(conn) }
    }

    pub(crate) fn client(&self) -> &Object {
        self.conn.as_ref().expect("an open transaction holds its connection")
    }

    /// The transaction committed: the connection may go back to the pool.
    pub(crate) fn finished(&mut self) {
        self.conn = None;
    }

    /// Rolls the transaction back; the connection goes back to the pool only if that worked.
    pub(crate) async fn roll_back(&mut self) {
        if let Some(conn) = &self.conn
            && conn.batch_execute("ROLLBACK").await.is_ok()
        {
            self.finished();
        }
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// A write transaction with its pending counts and notifications.
pub(crate) struct Work<'a> {
    pub tx: &'a Object,
    deltas: BTreeMap<(String, String), [i64; 6]>,
    /// Queues that got ready tasks, and how many claimers that should wake on other nodes.
    ready: BTreeMap<(String, String), ReadyCount>,
    notices: BTreeSet<Notice>,
    /// The events of its changes, in the order they happened.
    events: Vec<NewEvent>,
    /// How many events it wrote (known after the commit too).
    logged: usize,
}

impl<'a> Work<'a> {
    pub(crate) fn new(tx: &'a Object) -> Self {
        Self {
            tx,
            deltas: BTreeMap::new(),
            ready: BTreeMap::new(),
            notices: BTreeSet::new(),
            events: Vec::new(),
            logged: 0,
        }
    }

    fn delta(&mut self, ns: &Namespace, queue: &QueueName) -> &mut [i64; 6] {
        self.deltas
            .entry((ns.as_str().to_owned(), queue.as_str().to_owned()))
            .or_default()
    }

    /// A task was inserted.
    pub(crate) fn created(&mut self, task: &Task) {
        self.delta(&task.namespace, &task.queue)[slot(task.status)] += 1;
        self.changed(task);
    }

    /// A task moved from `before` to its status now (the same status is fine: nothing counts).
    pub(crate) fn moved(&mut self, before: TaskStatus, task: &Task) {
        if before != task.status {
            let d = self.delta(&task.namespace, &task.queue);
            d[slot(before)] -= 1;
            d[slot(task.status)] += 1;
        }
        self.changed(task);
    }

    /// Notes what other nodes must hear of a changed task: a ready task wakes claimers of its
    /// queue; a finished task holding a concurrency key frees a slot for them.
    fn changed(&mut self, task: &Task) {
        let frees_slot =
            task.concurrency_key.is_some() && !matches!(task.status, TaskStatus::Running | TaskStatus::Queued);
        if task.status == TaskStatus::Queued || frees_slot {
            let picky = !task.required_capabilities.is_empty();
            let entry = self
                .ready
                .entry((task.namespace.as_str().to_owned(), task.queue.as_str().to_owned()))
                .or_insert(ReadyCount(0));
            *entry = if picky || *entry == ReadyCount::ALL {
                ReadyCount::ALL
            } else {
                ReadyCount(entry.0 + 1)
            };
        }
    }

    /// Logs an event of this transaction's changes.
    pub(crate) fn log(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Logs the latest change of a task, as `task_event` tells it (a heartbeat that only moved
    /// the lease logs nothing), at the time it changed. Callers log only changes that moved the
    /// task's version, as every store does (a repeated completion logs nothing).
    pub(crate) fn log_task(&mut self, task: &Task) {
        if let Some(event) = task_event(task, task.updated_at) {
            self.events.push(event);
        }
    }

    /// How many events the transaction wrote.
    pub(crate) fn logged(&self) -> usize {
        self.logged
    }

    /// Something else other nodes must hear of, once this transaction commits.
    pub(crate) fn notify(&mut self, notice: Notice) {
        self.notices.insert(notice);
    }

    /// Writes the counts, queues the notifications and commits, all in one round trip: the
    /// statements are prepared first (cached per connection), then sent together with `COMMIT`
    /// behind them. Should one fail, PostgreSQL rolls back at the `COMMIT`, and its error is
    /// what this returns.
    pub(crate) async fn settle_and_commit(&mut self, channel: &str, node: &str) -> TxResult<()> {
        let deltas = std::mem::take(&mut self.deltas);
        let deltas: Vec<_> = deltas.into_iter().filter(|(_, d)| d.iter().any(|n| *n != 0)).collect();
        let (mut ns, mut queue) = (Vec::new(), Vec::new());
        let mut cols: [Vec<i64>; 6] = Default::default();
        // Sorted by (namespace, queue) by the map: every transaction locks counter rows in the
        // same order, so two on one shard wait, never deadlock.
        for ((n, q), d) in deltas {
            ns.push(n);
            queue.push(q);
            for (col, v) in cols.iter_mut().zip(d) {
                col.push(v);
            }
        }
        let mut notices = std::mem::take(&mut self.notices);
        for ((namespace, queue), ready) in std::mem::take(&mut self.ready) {
            notices.insert(Notice::TasksReady {
                namespace,
                queue,
                ready,
            });
        }
        let payloads: Vec<String> = notices.iter().map(|n| n.encode(node)).collect();
        let events = std::mem::take(&mut self.events);
        self.logged = events.len();
        let events = EventColumns::of(events);
        let add_counts = match ns.is_empty() {
            true => None,
            false => Some(self.tx.prepare_cached(ADD_COUNTS).await?),
        };
        let notify = match payloads.is_empty() {
            true => None,
            false => Some(self.tx.prepare_cached(NOTIFY).await?),
        };
        let queue_events = match events.ts.is_empty() {
            true => None,
            false => Some(self.tx.prepare_cached(QUEUE_EVENTS).await?),
        };
        let tx = self.tx;
        let counted = async {
            match &add_counts {
                Some(stmt) => tx
                    .execute(
                        stmt,
                        &[&ns, &queue, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]],
                    )
                    .await
                    .map(drop),
                None => Ok(()),
            }
        };
        let notified = async {
            match &notify {
                Some(stmt) => tx.execute(stmt, &[&channel, &payloads]).await.map(drop),
                None => Ok(()),
            }
        };
        let queued = async {
            match &queue_events {
                Some(stmt) => {
                    let e = &events;
                    tx.execute(
                        stmt,
                        &[
                            &e.namespace,
                            &e.ts,
                            &e.kind,
                            &e.subject,
                            &e.actor,
                            &e.correlation_id,
                            &e.data,
                        ],
                    )
                    .await
                    .map(drop)
                }
                None => Ok(()),
            }
        };
        // Polled in this order, so sent in this order.
        let (counted, notified, queued, committed) =
            tokio::join!(counted, notified, queued, tx.batch_execute("COMMIT"));
        counted?;
        notified?;
        queued?;
        committed?;
        Ok(())
    }
}

const ADD_COUNTS: &str = "INSERT INTO queue_counts AS c \
     (namespace, queue, shard, scheduled, queued, running, succeeded, failed, cancelled) \
     SELECT d.namespace, d.queue, pg_backend_pid() % 64, d.s, d.q, d.r, d.ok, d.f, d.c \
     FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[]) \
          AS d(namespace, queue, s, q, r, ok, f, c) \
     ON CONFLICT (namespace, queue, shard) DO UPDATE SET \
       scheduled = c.scheduled + excluded.scheduled, queued = c.queued + excluded.queued, \
       running = c.running + excluded.running, succeeded = c.succeeded + excluded.succeeded, \
       failed = c.failed + excluded.failed, cancelled = c.cancelled + excluded.cancelled";

const NOTIFY: &str = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p";
