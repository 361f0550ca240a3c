//! The schema, as an ordered list of embedded migrations tracked by `PRAGMA user_version`.
//!
//! Step `i` (0-based) brings the database from version `i` to `i + 1`. Steps are only ever
//! appended: a released step is never edited, because databases in the field already ran it.
//!
//! The documents (`tasks.doc` and `tasks.meta`, `agents.doc`, `messages.doc`) are the store's own
//! records (`agentyard_store::record`: `TaskRecordV1`, `TaskMetaRecordV1`, `AgentRecordV1`,
//! `MessageRecordV1`), never the API's JSON, so an API change does not change them. Every schema
//! version so far holds version 1 of the records, which is the JSON the API types produced when
//! the records were introduced (the SQL comments below still call it that). A new record version
//! comes with a step that rewrites the documents: the schema version then says which records a
//! database holds, and an older agentyard, which refuses a newer schema, never misreads them.

use rusqlite::{Connection, TransactionBehavior};

use agentyard_store::StoreError;

use crate::error::sql_error;

/// Every schema step, oldest first.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tasks and the indexes every hot query walks.
    //
    // A rowid table rather than WITHOUT ROWID: a row carries the whole task as JSON (usually
    // several hundred bytes, up to many KB), and SQLite advises WITHOUT ROWID only for rows
    // small next to the page size. The primary key (namespace, id) is the lookup every API call
    // makes (ids are only meaningful within their namespace) and, because ULIDs sort by creation
    // time, it also serves an unfiltered listing of a namespace in id order.
    //
    // The indexed columns (status, priority, run_at, lease_expires_at, ...) copy fields of `doc`
    // so the queries below never parse JSON; the writer keeps them in step on every write.
    // `capabilities` is the task's required capabilities, space separated (names cannot hold a
    // space), NULL when it needs none: a claimer can skip a task it cannot run without parsing it.
    r"
    CREATE TABLE tasks (
        namespace        TEXT    NOT NULL,
        id               TEXT    NOT NULL,
        queue            TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        priority         INTEGER NOT NULL,
        run_at           INTEGER NOT NULL, -- unix ms
        lease_expires_at INTEGER,          -- unix ms, set while running
        idempotency_key  TEXT,
        capabilities     TEXT,
        doc              TEXT    NOT NULL, -- serde_json of Task (without meta)
        meta             TEXT    NOT NULL, -- serde_json of TaskMeta
        PRIMARY KEY (namespace, id)
    );

    -- Claims walk this in claim order and stop at the first rows they can run: never a table scan.
    CREATE INDEX tasks_ready ON tasks (namespace, queue, priority DESC, run_at, id)
        WHERE status = 'queued';
    -- promote_due and next_wakeup. The id makes ties come out in id order without a sort.
    CREATE INDEX tasks_scheduled ON tasks (run_at, id) WHERE status = 'scheduled';
    -- expire_leases and next_wakeup.
    CREATE INDEX tasks_leases ON tasks (lease_expires_at, id) WHERE status = 'running';
    -- Idempotency keys are unique per namespace; the index also answers the lookup on create.
    CREATE UNIQUE INDEX tasks_idempotency ON tasks (namespace, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    -- list_tasks filtered by queue, or by status (the dead-letter view, bulk redrive).
    CREATE INDEX tasks_by_queue ON tasks (namespace, queue, id);
    CREATE INDEX tasks_by_status ON tasks (namespace, status, id);
    ",
    // 2: agents, messages, subscriptions; two more task columns for what agents need of tasks.
    //
    // `lease_agent` (the lease holder) and `concurrency_key` are copies of `doc` fields, written
    // with the row like the other indexed columns, so counting an agent's running tasks,
    // releasing its leases and counting a concurrency key's running tasks walk an index and
    // never parse JSON. Both indexes are partial: only running tasks are ever looked up by them,
    // so every other task costs nothing in them. Existing rows are backfilled from `doc`.
    //
    // An agent is `doc` (its JSON without `running`, which is counted from the tasks on read)
    // plus copies of `status` and `last_heartbeat` for the sweep that finds silent agents.
    //
    // A message is stored once, whoever reads it: `kind` and `to_name` (the agent or the topic,
    // NULL for a broadcast) say whose inbox it belongs to. An inbox read is one range scan of
    // `messages_inbox` per source (direct, broadcast, each subscribed topic) after the cursor,
    // merged by `seq`; `expires_at` rides in the index so expired messages are skipped without
    // touching the row. Sequences come from `message_seq`, never from MAX(seq): deleting the
    // newest messages (retention) must not hand their numbers out again, or a cursor past them
    // would skip new messages.
    r"
    ALTER TABLE tasks ADD COLUMN lease_agent TEXT;
    ALTER TABLE tasks ADD COLUMN concurrency_key TEXT;
    UPDATE tasks SET lease_agent = json_extract(doc, '$.lease.agent'),
                     concurrency_key = json_extract(doc, '$.concurrency_key');
    -- Agent.running, and the leases to release when an agent goes; in id order without a sort.
    CREATE INDEX tasks_running_by_agent ON tasks (namespace, lease_agent, id) WHERE status = 'running';
    -- Claims count the running tasks of a concurrency key.
    CREATE INDEX tasks_running_by_key ON tasks (namespace, concurrency_key)
        WHERE status = 'running' AND concurrency_key IS NOT NULL;

    CREATE TABLE agents (
        namespace      TEXT    NOT NULL,
        name           TEXT    NOT NULL,
        status         TEXT    NOT NULL,
        last_heartbeat INTEGER NOT NULL, -- unix ms
        doc            TEXT    NOT NULL, -- serde_json of Agent without `running`
        PRIMARY KEY (namespace, name)
    );
    -- expire_agents: the agents still counted alive, by how long they have been silent.
    CREATE INDEX agents_silent ON agents (last_heartbeat) WHERE status != 'gone';

    CREATE TABLE messages (
        namespace       TEXT    NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT    NOT NULL CHECK (kind IN ('agent', 'topic', 'broadcast')),
        to_name         TEXT,             -- the agent or the topic; NULL for a broadcast
        expires_at      INTEGER,          -- unix ms; NULL: never
        idempotency_key TEXT,
        doc             TEXT    NOT NULL, -- serde_json of Message
        PRIMARY KEY (namespace, seq)
    );
    CREATE INDEX messages_inbox ON messages (namespace, kind, to_name, seq, expires_at);
    CREATE UNIQUE INDEX messages_idempotency ON messages (namespace, idempotency_key)
        WHERE idempotency_key IS NOT NULL;

    -- start_seq: the topic's messages after it are the subscriber's.
    CREATE TABLE subscriptions (
        namespace TEXT    NOT NULL,
        agent     TEXT    NOT NULL,
        topic     TEXT    NOT NULL,
        start_seq INTEGER NOT NULL,
        PRIMARY KEY (namespace, agent, topic)
    ) WITHOUT ROWID;

    -- The last message sequence handed out in each namespace.
    CREATE TABLE message_seq (
        namespace TEXT    NOT NULL PRIMARY KEY,
        last      INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 3: running tasks leave `tasks_by_status`.
    //
    // Every status change moved a task's entry in `tasks_by_status` from one status's range to
    // another's: two more pages written per claim and per completion. Running tasks are few
    // (at most what the agents hold) and already in `tasks_running_by_agent`, which serves
    // the listing of running tasks (with a sort of those few); so a claim no longer touches this
    // index, and a completion adds one entry. Drained ~12 % more tasks per second (BENCHMARKS.md).
    r"
    DROP INDEX tasks_by_status;
    CREATE INDEX tasks_by_status ON tasks (namespace, status, id) WHERE status != 'running';
    ",
    // 4: dispatch limits set through the API, per namespace and key, kept across restarts.
    //
    // A rate is `rate_per_minute` with its `burst`, both set or both NULL; `max_concurrent` NULL
    // is the default of one running task per concurrency key. Few small rows, read whole at
    // start-up and looked up by key: WITHOUT ROWID, the primary key is the table.
    r"
    CREATE TABLE limits (
        namespace       TEXT    NOT NULL,
        key             TEXT    NOT NULL,
        rate_per_minute INTEGER,
        burst           INTEGER,
        max_concurrent  INTEGER,
        PRIMARY KEY (namespace, key),
        CHECK ((rate_per_minute IS NULL) = (burst IS NULL))
    ) WITHOUT ROWID;
    ",
    // 5: API tokens: the public facts of each and the SHA-256 of its secret (never the secret).
    //
    // `role` is its lowercase name; `namespaces` is `*` for every namespace or the names joined
    // by commas (a name holds no comma); `agent` is the agent name of an agent token. A revoked
    // token keeps its row, with `revoked_at` set. Few small rows, looked up by id on every
    // request whose token is not cached: WITHOUT ROWID, the primary key is the table, and a
    // listing reads it in id order with no sort.
    r"
    CREATE TABLE tokens (
        id          TEXT    NOT NULL PRIMARY KEY,
        secret_hash BLOB    NOT NULL, -- 32 bytes
        role        TEXT    NOT NULL,
        namespaces  TEXT    NOT NULL,
        agent       TEXT,
        name        TEXT    NOT NULL,
        created_at  INTEGER NOT NULL, -- unix ms
        revoked_at  INTEGER           -- unix ms; NULL while the token is valid
    ) WITHOUT ROWID;
    ",
    // 6: agents registered by a claim (`implicit`, a copy of the document's field) are removed
    // once gone long enough; the sweep walks only those, longest silent first.
    //
    // Agents stored before this step have no such field in their documents: they read as
    // explicit, so none of them is removed without an operator's `DELETE`.
    r"
    ALTER TABLE agents ADD COLUMN implicit INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX agents_forgettable ON agents (last_heartbeat, namespace, name)
        WHERE status = 'gone' AND implicit = 1;
    ",
    // 7: the event log (`events.rs`): one row per change of a task, an agent, a message or a
    // limit, appended in the transaction of the change.
    //
    // `seq` is the rowid, in the order the writer appended them. A seq is never given twice, also
    // once old events are deleted (a reader past them must not miss new ones): the trigger keeps
    // the highest seq ever deleted in `events_floor`, and an append takes the next after both the
    // newest row and that floor. AUTOINCREMENT would do the same by rewriting `sqlite_sequence`
    // at every append: one more page in every commit (4.9 → 8.9 pages a claim or completion with
    // it, 7.9 without; BENCHMARKS.md), where the trigger writes only when events are deleted.
    // `type` is the API name of the event type (frozen with `EventRecordV1`), `data` its JSON.
    //
    // Two indexes, for the only lookups over the whole log: a subject's history and a
    // correlation id's trace. Both end in the rowid, so their entries come out in seq order and
    // `seq > ?` is a range of them; the correlation index holds only the events that have one.
    // Everything else reads a window of the primary key.
    r"
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY,
        ts             INTEGER NOT NULL, -- unix ms
        namespace      TEXT    NOT NULL,
        type           TEXT    NOT NULL, -- task.created, agent.gone, …
        subject        TEXT    NOT NULL, -- task:<id>, agent:<name>, message:<seq>, limit:<key>
        actor          TEXT,
        correlation_id TEXT,
        data           TEXT    NOT NULL  -- JSON
    );
    CREATE INDEX events_by_subject ON events (namespace, subject);
    CREATE INDEX events_by_correlation ON events (namespace, correlation_id)
        WHERE correlation_id IS NOT NULL;

    -- One row: the highest seq of the events deleted so far (0: none).
    CREATE TABLE events_floor (last INTEGER NOT NULL);
    INSERT INTO events_floor (last) VALUES (0);
    CREATE TRIGGER events_floor_on_delete AFTER DELETE ON events
        WHEN old.seq > (SELECT last FROM events_floor)
    BEGIN
        UPDATE events_floor SET last = old.seq;
    END;
    ",
    // 8: webhooks: the document is the store's WebhookRecordV1 (secret and delivery cursor
    // included); the delivery lease is a pair of columns.
    r"
    CREATE TABLE webhooks (
        namespace    TEXT    NOT NULL,
        id           TEXT    NOT NULL,
        doc          TEXT    NOT NULL,
        lease_holder TEXT,
        lease_until  INTEGER,           -- unix ms
        PRIMARY KEY (namespace, id)
    );
    ",
];

/// Brings the schema up to date, one transaction per step, so a crash mid-way leaves the
/// database at the last completed version.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql_error)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Other(format!(
            "the database schema is at version {current} but this build knows only up to {known}; \
             it was written by a newer agentyard"
        )));
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let version = index as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Other(format!("schema migration {version} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version).map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
        tracing::info!(version, "applied SQLite schema migration");
    }
    Ok(())
}

/// Checks that hot queries walk their index: every such statement of the store is listed with
/// the index it must use in a unit test beside it.
#[cfg(test)]
pub(crate) mod plans {
    use rusqlite::Connection;

    use super::migrate;

    /// Asserts that `sql`, on a fresh database at the current schema, uses `index` and neither
    /// scans a table nor sorts; with and without stable query plans (`ENABLE_QPSG`, where the
    /// planner may not look at bound values to pick a partial index).
    pub(crate) fn assert_uses(sql: &str, index: &str) {
        check_plan(sql, index, false);
    }

    /// Like [`assert_uses`] for a query that may sort what it reads from `index` (a small set).
    pub(crate) fn assert_uses_sorting(sql: &str, index: &str) {
        check_plan(sql, index, true);
    }

    /// The query plan of `sql` on a fresh database with stable plans, one line per step.
    pub(crate) fn plan_of(sql: &str) -> String {
        plan(sql, true)
    }

    /// The query plan of `sql` on a fresh database, with or without stable plans.
    fn plan(sql: &str, stable: bool) -> String {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, stable)
            .expect("config");
        migrate(&mut conn).expect("migrate");
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
        let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(unbound), |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        plan.join(" / ")
    }

    fn check_plan(sql: &str, index: &str, may_sort: bool) {
        for stable in [false, true] {
            let plan = plan(sql, stable);
            let context = format!("{sql}\nplan (stable plans: {stable}): {plan}");
            assert!(plan.contains(index), "{context}");
            assert!(may_sort || !plan.contains("TEMP B-TREE"), "{context}");
            assert!(!plan.contains("SCAN "), "{context}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_set_the_version() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first run");
        migrate(&mut conn).expect("second run is a no-op");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    /// Tasks stored before migration 2 get their lease holder and concurrency key columns from
    /// their documents, so the running tasks of an agent or a key are found after the upgrade.
    #[test]
    fn migration_2_fills_the_new_task_columns_from_the_documents() {
        use agentyard_core::{AgentName, LeaseToken, NewTask, QueueName, TaskId, Timestamp};

        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("version 1");
        conn.pragma_update(None, "user_version", 1).expect("set");
        let queue = QueueName::parse("q").expect("valid");
        let ns = agentyard_core::Namespace::default_namespace();
        let now = Timestamp::from_millis(1_000);
        let mut running = NewTask::on(queue.clone(), serde_json::json!({}));
        running.concurrency_key = Some("repo-a".into());
        let mut running = running.into_task(TaskId::generate(), ns.clone(), now);
        let agent = AgentName::parse("w-1").expect("valid");
        running
            .claim(&agent, LeaseToken::generate(), 30_000, now)
            .expect("claim");
        let queued = NewTask::on(queue, serde_json::json!({})).into_task(TaskId::generate(), ns, now);
        for task in [&running, &queued] {
            conn.execute(
                "INSERT INTO tasks (namespace, id, queue, status, priority, run_at, doc, meta) \
                 VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, '{}')",
                rusqlite::params![
                    task.namespace.as_str(),
                    task.id.to_string(),
                    task.queue.as_str(),
                    task.status.as_str(),
                    serde_json::to_string(task).expect("json"),
                ],
            )
            .expect("insert at version 1");
        }
        migrate(&mut conn).expect("migrate");
        let columns = |id: TaskId| -> (Option<String>, Option<String>) {
            conn.query_row(
                "SELECT lease_agent, concurrency_key FROM tasks WHERE id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("row")
        };
        assert_eq!(columns(running.id), (Some("w-1".into()), Some("repo-a".into())));
        assert_eq!(columns(queued.id), (None, None));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", 999).expect("set");
        assert_eq!(migrate(&mut conn).map_err(|e| e.kind()), Err("other"));
    }
}
