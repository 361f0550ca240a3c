//! The event log on PostgreSQL: how a change's events are written, the sequencer that gives them
//! their place in the log, and `EventStore`.
//!
//! # Why events get their seq after they commit
//! A seq taken when the event is written (a `bigserial`) would let a reader skip events: a
//! transaction takes seq 10, another takes 11 and commits first; a reader sees 11, goes on from
//! 11, and never sees 10 when it commits. So a change writes its events into `event_queue`,
//! without a seq, in its own transaction (an event is never lost and never invented), and the
//! sequencer (`sequence_events()`, see migration 4) moves the committed ones into `events`,
//! numbering them on from the last seq given, in the order they were written. Its runs take
//! turns across nodes (a transaction-level advisory lock, released after the commit is visible)
//! and each commits its seqs at once, so whoever sees a seq sees every seq below it. Readers read
//! `events` only, and `next` comes from the same snapshot as the page.
//!
//! Order: a change that started after another committed writes its events with higher queue ids,
//! so the log keeps the order in which the changes happened; the events of concurrent changes are
//! ordered by when they were written (they may interleave), those of one change in its order.
//!
//! The sequencer never scans the queue, whose moved rows stay behind as dead ones until a vacuum:
//! it looks only at events of transactions no older than the oldest one running at its previous
//! run (`event_seq.floor`, see migration 4), through an index.
//!
//! # When the sequencer runs
//! A read (`read_events`, `last_event_seq`) runs it first, so a caller reads what it wrote and
//! a follower on any node sees everything committed before its read; with nothing waiting that
//! costs one index probe, in the same round trip as the read. Each store also runs it in the
//! background shortly after its own changes that wrote events ([`Sequencer`]), so the queue stays
//! short whoever reads.

use std::sync::Arc;
use std::time::Duration;

use agentyard_core::event::{Event, EventType, NewEvent};
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::StoreError;
use agentyard_store::events::{EVENT_SCAN_WINDOW, EventFilter, EventPage, EventStore};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::error::{corrupt, pg_error};
use crate::store::PgStore;

/// Appends events to the queue, in the order given (the sequencer numbers them by queue id).
pub(crate) const QUEUE_EVENTS: &str = "INSERT INTO event_queue (namespace, ts, type, subject, actor, correlation_id, data) \
     SELECT e.namespace, e.ts, e.type, e.subject, e.actor, e.correlation_id, e.data \
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[]) \
       WITH ORDINALITY AS e(namespace, ts, type, subject, actor, correlation_id, data, n) \
     ORDER BY e.n";

/// Runs the sequencer: gives seqs to every event committed to the queue. One statement, its own
/// transaction.
const SEQUENCE: &str = "SELECT sequence_events()";

/// Events as column arrays for [`QUEUE_EVENTS`].
#[derive(Default)]
pub(crate) struct EventColumns {
    pub namespace: Vec<String>,
    pub ts: Vec<i64>,
    pub kind: Vec<&'static str>,
    pub subject: Vec<String>,
    pub actor: Vec<Option<String>>,
    pub correlation_id: Vec<Option<String>>,
    pub data: Vec<Value>,
}

impl EventColumns {
    pub(crate) fn of(events: Vec<NewEvent>) -> Self {
        let mut c = Self::default();
        for e in events {
            c.namespace.push(e.namespace.as_str().to_owned());
            c.ts.push(e.ts.as_millis());
            c.kind.push(e.kind.as_str());
            c.subject.push(e.subject);
            c.actor.push(e.actor);
            c.correlation_id.push(e.correlation_id);
            c.data.push(e.data);
        }
        c
    }
}

/// The fields of a claim's `task.claimed` events, made in SQL from the claim's `leased` rows
/// (`$6` the agent, `$7` now) for [`crate::claim`]'s one-statement claim: what
/// `agentyard_core::event::task_event` makes for `TaskChange::Claimed`, field for field (a test
/// compares them). Selected `FROM leased, ` [`TASK_ID_BITS`].
pub(crate) static CLAIMED_EVENT_FIELDS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "namespace, $7::int8, 'task.claimed', {}, $6::text, correlation_id, \
         jsonb_build_object('queue', queue, 'status', status, 'attempt', attempt, 'version', version, \
           'waited_ms', greatest($7::int8 - run_at, 0), 'lease_expires_at', event_time(lease_expires_at))",
        task_subject_sql("bits.b")
    )
});

/// The 128 bits of a task's `id` after two zero bits (the 130 bits of its 26 ULID digits), as
/// `bits.b`.
pub(crate) const TASK_ID_BITS: &str = "LATERAL (SELECT B'00' || ('x' || encode(id, 'hex'))::bit(128) AS b) AS bits";

/// `task:` and the ULID of a task id given as [`TASK_ID_BITS`]: its 26 Crockford digits, each
/// written out (an SQL function doing the same took 30 to 70 µs a call; this, about 10).
fn task_subject_sql(bits: &str) -> String {
    let digits: Vec<String> = (0..26)
        .map(|i| {
            format!(
                "substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', substring({bits} FROM {} FOR 5)::bit(5)::int + 1, 1)",
                i * 5 + 1
            )
        })
        .collect();
    format!("'task:' || {}", digits.join(" || "))
}

/// Runs the sequencer in the background, shortly after this store's changes that wrote events
/// ([`Sequencer::nudge`]). Changes in the meantime are taken by the same run.
pub(crate) struct Sequencer {
    nudge: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// How long the background sequencer waits after a nudge, to take the events of many changes in
/// one run: followers on other nodes see an event this much later at most (their reads run the
/// sequencer themselves anyway).
const GATHER: Duration = Duration::from_millis(5);

/// How long the background sequencer waits after it failed (the database is away).
const RETRY: Duration = Duration::from_secs(1);

impl Sequencer {
    pub(crate) fn start(pool: Pool) -> Self {
        let nudge = Arc::new(Notify::new());
        let task = tokio::spawn(run(pool, nudge.clone()));
        Self { nudge, task }
    }

    /// Events were committed to the queue: sequence them soon.
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(pool: Pool, nudge: Arc<Notify>) {
    loop {
        nudge.notified().await;
        tokio::time::sleep(GATHER).await;
        let ran = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client.prepare_cached(SEQUENCE).await.map_err(|e| e.to_string())?;
            client.query_one(&stmt, &[]).await.map_err(|e| e.to_string())
        };
        if let Err(e) = ran.await {
            // The events wait in the queue; the next run (or any read) takes them.
            tracing::warn!(error = %e, "the event sequencer failed; trying again");
            tokio::time::sleep(RETRY).await;
            nudge.notify_one();
        }
    }
}

/// The columns an event is read with, after the last seq given (`l.last`).
const EVENT_COLUMNS: &str = "e.seq, e.ts, e.namespace, e.type, e.subject, e.actor, e.correlation_id, e.data";

/// A page of events and the last seq given, read in one statement (so one snapshot: `next` never
/// passes an event the page could not see). `$1` namespace, `$2` after, `$3` types (all when
/// empty), `$4` limit (none when NULL), `$5` subject, `$6` correlation id; `BOUND` is the highest
/// seq the read may look at.
fn read_sql(filter: &EventFilter) -> String {
    let mut cond =
        String::from("e.namespace = $1 AND e.seq > $2 AND (cardinality($3::text[]) = 0 OR e.type = ANY($3::text[]))");
    let bound = if filter.is_indexed() {
        if filter.subject.is_some() {
            cond.push_str(" AND e.subject = $5::text");
        }
        if filter.correlation_id.is_some() {
            cond.push_str(" AND e.correlation_id = $6::text");
        }
        "l.last".to_owned()
    } else {
        format!("least(l.last, $2 + {EVENT_SCAN_WINDOW})")
    };
    format!(
        "SELECT l.last, {EVENT_COLUMNS} FROM (SELECT last FROM event_seq LIMIT 1) AS l LEFT JOIN LATERAL ( \
           SELECT * FROM events AS e WHERE {cond} AND e.seq <= {bound} \
           ORDER BY e.seq LIMIT $4::int8) AS e ON true \
         ORDER BY e.seq"
    )
}

fn seq_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn decode(row: &Row) -> Result<Option<Event>, StoreError> {
    let bad = |e: tokio_postgres::Error| corrupt("event", e);
    let Some(seq) = row.try_get::<_, Option<i64>>(1).map_err(bad)? else {
        return Ok(None);
    };
    let what = || format!("event {seq}");
    let ns: &str = row.try_get(3).map_err(bad)?;
    let kind: &str = row.try_get(4).map_err(bad)?;
    Ok(Some(Event {
        seq: seq_of(seq),
        ts: Timestamp::from_millis(row.try_get(2).map_err(bad)?),
        namespace: Namespace::parse(ns).map_err(|e| corrupt(what(), e))?,
        kind: EventType::parse(kind).ok_or_else(|| corrupt(what(), format!("type {kind:?}")))?,
        subject: row.try_get(5).map_err(bad)?,
        actor: row.try_get(6).map_err(bad)?,
        correlation_id: row.try_get(7).map_err(bad)?,
        data: row.try_get(8).map_err(bad)?,
    }))
}

/// The parameter types of [`read_sql`]'s statements (each names only some of them).
const READ_TYPES: [Type; 6] = [
    Type::TEXT,
    Type::INT8,
    Type::TEXT_ARRAY,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
];

#[async_trait]
impl EventStore for PgStore {
    async fn read_events(
        &self,
        ns: &Namespace,
        filter: &EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
        let after_col = i64::try_from(after).unwrap_or(i64::MAX);
        // As on the other stores, a limit of 0 sets none.
        let limit_col = (limit > 0).then(|| i64::try_from(limit).unwrap_or(i64::MAX));
        let client = self.client().await?;
        let sequence = client.prepare_cached(SEQUENCE).await.map_err(pg_error)?;
        let read = client
            .prepare_typed_cached(&read_sql(filter), &READ_TYPES)
            .await
            .map_err(pg_error)?;
        // Sent together (one round trip), each its own transaction: the read sees what the
        // sequencer gave.
        let params: [&(dyn ToSql + Sync); 6] = [
            &ns.as_str(),
            &after_col,
            &types,
            &limit_col,
            &filter.subject,
            &filter.correlation_id,
        ];
        let (sequenced, rows) = tokio::join!(client.query_one(&sequence, &[]), client.query(&read, &params));
        sequenced.map_err(pg_error)?;
        let rows = rows.map_err(pg_error)?;
        let last = match rows.first() {
            Some(row) => seq_of(row.try_get(0).map_err(|e| corrupt("event_seq", e))?),
            None => return Err(StoreError::Other("the event_seq row is missing".into())),
        };
        let end = if filter.is_indexed() {
            last
        } else {
            last.min(after.saturating_add(EVENT_SCAN_WINDOW))
        };
        if end <= after {
            return Ok(EventPage {
                events: Vec::new(),
                next: after,
            });
        }
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(e) = decode(row)? {
                events.push(e);
            }
        }
        let next = match events.last() {
            Some(e) if events.len() == limit => e.seq,
            _ => end,
        };
        Ok(EventPage { events, next })
    }

    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sequence = client.prepare_cached(SEQUENCE).await.map_err(pg_error)?;
        let last = client
            .prepare_cached("SELECT last FROM event_seq")
            .await
            .map_err(pg_error)?;
        let (sequenced, row) = tokio::join!(client.query_one(&sequence, &[]), client.query_opt(&last, &[]));
        sequenced.map_err(pg_error)?;
        let row = row
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::Other("the event_seq row is missing".into()))?;
        Ok(seq_of(row.try_get(0).map_err(|e| corrupt("event_seq", e))?))
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::event::{LastChange, TaskChange, task_event};
    use agentyard_core::{AgentName, NewTask, QueueName, Task, TaskId};
    use agentyard_store::{Claim, CreateOptions, Store};
    use serde_json::json;

    use super::*;
    use crate::PgOptions;
    use crate::record::id_bytes;
    use crate::testing::TestSchema;

    async fn store(test: &str) -> Option<(PgStore, TestSchema)> {
        let schema = TestSchema::create(test).await?;
        let store = PgStore::connect(PgOptions::parse(&schema.url).expect("test URL"))
            .await
            .expect("connect");
        Some((store, schema))
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    /// What the core makes of a claim the store made.
    fn expected(task: &Task, agent: &str, now: Timestamp) -> NewEvent {
        let mut task = task.clone();
        task.meta.change = LastChange(Some(TaskChange::Claimed {
            agent: AgentName::parse(agent).expect("valid"),
            waited_ms: now.millis_since(task.run_at),
        }));
        task_event(&task, now).expect("a claim is logged")
    }

    fn unplaced(e: Event) -> NewEvent {
        NewEvent {
            ts: e.ts,
            namespace: e.namespace,
            kind: e.kind,
            subject: e.subject,
            actor: e.actor,
            correlation_id: e.correlation_id,
            data: e.data,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_subjects_and_times_are_the_cores() {
        let Some((store, _schema)) = store("event sql functions").await else {
            return;
        };
        let client = store.client().await.expect("client");
        let sql = format!(
            "SELECT {}, event_time($2) FROM (SELECT $1::bytea AS id) AS t, {TASK_ID_BITS}",
            task_subject_sql("bits.b")
        );
        let stmt = client.prepare(&sql).await.expect("prepare");
        let mut ids = vec![TaskId::from_u128(0), TaskId::from_u128(u128::MAX), TaskId::from_u128(1)];
        ids.extend((0..200).map(|_| TaskId::generate()));
        // From 1970 to past year 9999, leap days and the last millisecond of a day among them.
        let times = [
            0,
            1,
            999,
            86_399_999,
            951_782_400_000,
            1_800_000_000_123,
            253_402_300_799_999,
            253_402_300_800_000,
            300_000_000_000_000,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for (i, id) in ids.iter().enumerate() {
            // Every other one anywhere in years 0000 to 9999 (a fixed pseudo-random sequence).
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ms = match i % 2 {
                0 => times[i / 2 % times.len()] + i64::try_from(i).expect("small") * 7_919,
                _ => i64::try_from(x >> 16).expect("48 bits") % 315_537_897_599_999 - 62_167_219_200_000,
            };
            let t = Timestamp::from_millis(ms);
            let row = client
                .query_one(&stmt, &[&id_bytes(*id), &t.as_millis()])
                .await
                .expect("query");
            assert_eq!(row.get::<_, String>(0), agentyard_core::event::task_subject(*id));
            assert_eq!(json!(row.get::<_, String>(1)), json!(t), "{}", t.as_millis());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_log_what_the_core_makes_whichever_way_they_lease() {
        let Some((store, _schema)) = store("claim events").await else {
            return;
        };
        let ns = Namespace::default_namespace();
        let q = QueueName::parse("work").expect("valid");
        let mut plain = NewTask::on(q.clone(), json!({}));
        plain.correlation_id = Some("c-1".into());
        plain.timeout_ms = Some(300);
        plain.run_at = Some(at(-40));
        let mut keyed = NewTask::on(q.clone(), json!({}));
        keyed.concurrency_key = Some("k".into());
        keyed.priority = -1;
        let later = NewTask::on(q.clone(), json!({}));
        let created = store
            .create_tasks(&ns, vec![plain, keyed], CreateOptions::default(), at(0))
            .await
            .expect("create");
        assert_eq!(created.len(), 2);
        let before = store.last_event_seq().await.expect("seq");

        // The one-statement claim leases the keyless task; the keyed one goes through the gate.
        let claimed = store
            .claim_tasks(
                &ns,
                &Claim::new(q.clone(), AgentName::parse("w1").expect("valid"), 2, 1_000),
                at(7),
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 2);
        // In a transaction (after other commands), the claim statement leases it.
        store
            .create_tasks(&ns, vec![later], CreateOptions::default(), at(8))
            .await
            .expect("create");
        let (_, more) = store
            .apply_then_claim(
                &ns,
                Vec::new(),
                &Claim::new(q, AgentName::parse("w2").expect("valid"), 1, 500),
                at(9),
            )
            .await
            .expect("claim in a transaction");
        assert_eq!(more.len(), 1);

        let page = store
            .read_events(
                &ns,
                &EventFilter {
                    types: vec![EventType::TaskClaimed],
                    ..EventFilter::default()
                },
                before,
                10,
            )
            .await
            .expect("read");
        let got: Vec<NewEvent> = page.events.into_iter().map(unplaced).collect();
        let want = vec![
            expected(&claimed[0], "w1", at(7)),
            expected(&claimed[1], "w1", at(7)),
            expected(&more[0], "w2", at(9)),
        ];
        assert_eq!(got, want);
        assert_eq!(got[0].data["waited_ms"], 7);
        assert_eq!(got[0].data["lease_expires_at"], json!(at(307)), "capped by the timeout");
        assert_eq!(got[0].correlation_id.as_deref(), Some("c-1"));
    }

    /// The case a seq taken at insert gets wrong: an event written before another but committed
    /// after it (and after a reader went past the other) is still read, after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_that_commits_late_is_not_skipped() {
        let Some((store, _schema)) = store("late event").await else {
            return;
        };
        let ns = Namespace::default_namespace();
        let slow = store.client().await.expect("client");
        slow.batch_execute("BEGIN").await.expect("begin");
        let late = agentyard_core::event::limit_changed(&ns, "late", None, at(0));
        let c = EventColumns::of(vec![late.clone()]);
        slow.execute(
            QUEUE_EVENTS,
            &[
                &c.namespace,
                &c.ts,
                &c.kind,
                &c.subject,
                &c.actor,
                &c.correlation_id,
                &c.data,
            ],
        )
        .await
        .expect("queue an event, not committed yet");

        let q = QueueName::parse("work").expect("valid");
        store
            .create_tasks(&ns, vec![NewTask::on(q, json!({}))], CreateOptions::default(), at(1))
            .await
            .expect("create");
        let all = EventFilter::default();
        let first = store.read_events(&ns, &all, 0, 10).await.expect("read");
        assert_eq!(first.events.len(), 1, "only what committed");
        assert_eq!(first.events[0].kind, EventType::TaskCreated);
        assert_eq!(first.next, 1);

        slow.batch_execute("COMMIT").await.expect("commit");
        let second = store.read_events(&ns, &all, first.next, 10).await.expect("read");
        assert_eq!(second.events.len(), 1, "the late event comes after");
        assert_eq!(second.events[0].seq, 2);
        assert_eq!(unplaced(second.events[0].clone()), late);
        assert_eq!(store.last_event_seq().await.expect("seq"), 2);
    }
}
