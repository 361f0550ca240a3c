//! The schema, as an ordered list of embedded migrations, applied at start under an advisory
//! lock so nodes starting at the same moment take turns; the version lives in `schema_version`.
//!
//! Step `i` (0-based) brings the schema from version `i` to `i + 1`. Steps are only ever appended:
//! a released step is never edited, because databases in the field already ran it.

use agentyard_store::StoreError;
use tokio_postgres::Client;

use crate::error::pg_error;

/// Every schema step, oldest first. Times are milliseconds since the Unix epoch in `bigint`s
/// (what `Timestamp` is); task ids are their 16 bytes, big-endian, so they sort as ULIDs do.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tasks, per-queue counts, agents, messages, limits and rate buckets.
    //
    // A task is a row of columns, not a document: a claim or a completion rewrites the row, but
    // large values it does not change (`input`, `context`) stay where PostgreSQL put them
    // (TOAST) instead of being sent and written again. Status moves are never HOT updates
    // (`status` is indexed), so the table keeps room on its pages (fillfactor) and is vacuumed
    // early. Every hot query walks a partial index: the ready index holds only queued tasks,
    // however many finished ones pile up.
    //
    // `queue_counts` holds per-queue counts by status as deltas in up to 64 shards per queue (a
    // transaction adds to the shard of its connection), so counting costs no scan and writers on
    // different connections never wait for one another's counter row.
    r"
    CREATE TABLE tasks (
        namespace             text    NOT NULL,
        id                    bytea   NOT NULL,
        queue                 text    NOT NULL,
        kind                  text,
        title                 text,
        input                 jsonb   NOT NULL,
        status                text    NOT NULL,
        priority              integer NOT NULL,
        required_capabilities text[]  NOT NULL,
        attempt               integer NOT NULL,
        max_attempts          integer NOT NULL,
        backoff               jsonb   NOT NULL,
        run_at                bigint  NOT NULL,
        timeout_ms            bigint,
        lease_agent           text,
        lease_token           text,
        lease_expires_at      bigint,
        lease_acquired_at     bigint,
        idempotency_key       text,
        concurrency_key       text,
        rate_limit_key        text,
        correlation_id        text,
        artifacts             jsonb   NOT NULL,
        context               jsonb   NOT NULL,
        progress              jsonb,
        result                jsonb,
        error                 jsonb,
        version               bigint  NOT NULL,
        created_at            bigint  NOT NULL,
        updated_at            bigint  NOT NULL,
        finished_at           bigint,
        context_versions      jsonb   NOT NULL,
        finished_by           text,
        PRIMARY KEY (namespace, id)
    ) WITH (fillfactor = 85, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

    CREATE INDEX tasks_ready ON tasks (namespace, queue, priority DESC, run_at, id) WHERE status = 'queued';
    CREATE INDEX tasks_scheduled ON tasks (run_at, id) WHERE status = 'scheduled';
    CREATE INDEX tasks_leases ON tasks (lease_expires_at, id) WHERE status = 'running';
    CREATE UNIQUE INDEX tasks_idempotency ON tasks (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_by_queue ON tasks (namespace, queue, id);
    -- Listing by status, for the statuses that pile up. Not for queued tasks: a claim's
    -- `namespace = … AND status = 'queued'` would match it, and the planner took it over the ready
    -- index, reading and sorting every queued task of the namespace per claim (measured: 6,300
    -- index entries read per claim over 10,000 tasks). Queued and running tasks are listed from
    -- the ready and running indexes.
    CREATE INDEX tasks_by_status ON tasks (namespace, status, id) WHERE status NOT IN ('running', 'queued');
    CREATE INDEX tasks_running_by_agent ON tasks (namespace, lease_agent, id) WHERE status = 'running';
    CREATE INDEX tasks_running_by_key ON tasks (namespace, concurrency_key)
        WHERE status = 'running' AND concurrency_key IS NOT NULL;

    CREATE TABLE queue_counts (
        namespace text    NOT NULL,
        queue     text    NOT NULL,
        shard     integer NOT NULL,
        scheduled bigint  NOT NULL,
        queued    bigint  NOT NULL,
        running   bigint  NOT NULL,
        succeeded bigint  NOT NULL,
        failed    bigint  NOT NULL,
        cancelled bigint  NOT NULL,
        PRIMARY KEY (namespace, queue, shard)
    ) WITH (fillfactor = 50);

    CREATE TABLE agents (
        namespace      text    NOT NULL,
        name           text    NOT NULL,
        status         text    NOT NULL,
        capabilities   text[]  NOT NULL,
        slots          integer NOT NULL,
        metadata       jsonb   NOT NULL,
        last_heartbeat bigint  NOT NULL,
        registered_at  bigint  NOT NULL,
        inbox_start    bigint  NOT NULL,
        inbox_cursor   bigint  NOT NULL,
        PRIMARY KEY (namespace, name)
    ) WITH (fillfactor = 70);
    CREATE INDEX agents_silent ON agents (last_heartbeat) WHERE status <> 'gone';

    -- A message is one row whoever reads it; `to_name` is the agent or the topic, '' for a
    -- broadcast (so every source of an inbox is an equality lookup in `messages_inbox`).
    CREATE TABLE messages (
        namespace       text   NOT NULL,
        seq             bigint NOT NULL,
        id              text   NOT NULL,
        kind            text   NOT NULL CHECK (kind IN ('agent', 'topic', 'broadcast')),
        to_name         text   NOT NULL,
        from_agent      text,
        body            jsonb  NOT NULL,
        correlation_id  text,
        reply_to        text,
        expires_at      bigint,
        idempotency_key text,
        created_at      bigint NOT NULL,
        PRIMARY KEY (namespace, seq)
    );
    CREATE INDEX messages_inbox ON messages (namespace, kind, to_name, seq) INCLUDE (expires_at);
    CREATE UNIQUE INDEX messages_idempotency ON messages (namespace, idempotency_key)
        WHERE idempotency_key IS NOT NULL;

    CREATE TABLE subscriptions (
        namespace text   NOT NULL,
        agent     text   NOT NULL,
        topic     text   NOT NULL,
        start_seq bigint NOT NULL,
        PRIMARY KEY (namespace, agent, topic)
    );

    -- The last message sequence handed out in each namespace. A send holds its row until it
    -- commits, so sequences commit in order and a reader's cursor never skips a late commit.
    CREATE TABLE message_seq (
        namespace text   NOT NULL PRIMARY KEY,
        last      bigint NOT NULL
    );

    -- Dispatch limits set through the API, and the token buckets of rate-limit keys: one row
    -- per key that a claim locks while it takes a token, so every node draws from one bucket.
    CREATE TABLE limits (
        namespace       text    NOT NULL,
        key             text    NOT NULL,
        rate_per_minute integer,
        burst           integer,
        max_concurrent  bigint,
        PRIMARY KEY (namespace, key)
    );
    CREATE TABLE rate_buckets (
        namespace text   NOT NULL,
        key       text   NOT NULL,
        tat_us    bigint NOT NULL, -- theoretical arrival time of the next token (GCRA)
        PRIMARY KEY (namespace, key)
    ) WITH (fillfactor = 50);
    ",
    // 2: API tokens: the public facts of each and the SHA-256 of its secret (never the secret).
    //
    // `role` is its lowercase name; `namespaces` is `{*}` for every namespace or the names;
    // `agent` is the agent name of an agent token. A revoked token keeps its row, with
    // `revoked_at` set. The id sorts bytewise (`C`), so the primary key gives the listing its
    // order, the order of every other store.
    r#"
    CREATE TABLE tokens (
        id          text COLLATE "C" NOT NULL PRIMARY KEY,
        secret_hash bytea  NOT NULL, -- 32 bytes
        role        text   NOT NULL,
        namespaces  text[] NOT NULL,
        agent       text,
        name        text   NOT NULL,
        created_at  bigint NOT NULL,
        revoked_at  bigint -- NULL while the token is valid
    );
    "#,
    // 3: agents registered by a claim (`implicit`) are removed once gone long enough; the sweep
    // walks only those, longest silent first. Agents stored before are explicit: none of them is
    // removed without an operator's `DELETE`.
    r#"
    ALTER TABLE agents ADD COLUMN implicit boolean NOT NULL DEFAULT false;
    CREATE INDEX agents_forgettable ON agents (last_heartbeat, namespace COLLATE "C", name COLLATE "C")
        WHERE status = 'gone' AND implicit;
    "#,
    // 4: the event log (see `events.rs`). A change appends its events to `event_queue` in its own
    // transaction, where they wait without a place in the log; the sequencer (`sequence_events()`,
    // one at a time across nodes under an advisory lock) moves the committed ones into `events`,
    // giving them the next seqs in the order they were written. Readers read `events` only: a seq
    // is given once its event committed, and every seq below it was given (and committed) before,
    // so a reader going on from `after` never skips an event that commits late.
    //
    // `event_queue` is a queue: rows come and go at the rate of the changes, and until a vacuum
    // the rows moved stay behind as dead ones. So the sequencer never scans the table: each row
    // carries the id of the transaction that wrote it (`xid`), and `event_seq.floor` is the
    // oldest transaction that was still running at the sequencer's last run. Every event of an
    // older transaction had committed (or never will) by then, so that run took it; the next run
    // looks only at `xid >= floor` through the index, a short range unless a write transaction
    // stays open for long. `events` is written once per event and never updated.
    //
    // Written to run again on a schema that has it (as the migration tests replay steps).
    r#"
    CREATE TABLE IF NOT EXISTS event_queue (
        id             bigserial NOT NULL,
        xid            xid8      NOT NULL DEFAULT pg_current_xact_id(),
        namespace      text      NOT NULL,
        ts             bigint    NOT NULL,
        type           text      NOT NULL,
        subject        text      NOT NULL,
        actor          text,
        correlation_id text,
        data           jsonb     NOT NULL
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
            autovacuum_vacuum_insert_threshold = 5000);
    CREATE INDEX IF NOT EXISTS event_queue_by_xid ON event_queue (xid);

    CREATE TABLE IF NOT EXISTS events (
        seq            bigint NOT NULL PRIMARY KEY,
        namespace      text   NOT NULL,
        ts             bigint NOT NULL,
        type           text   NOT NULL,
        subject        text   NOT NULL,
        actor          text,
        correlation_id text,
        data           jsonb  NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_by_subject ON events (namespace, subject, seq);
    CREATE INDEX IF NOT EXISTS events_by_correlation ON events (namespace, correlation_id, seq) WHERE correlation_id IS NOT NULL;

    -- The last seq given (kept apart from `events`, so it never goes back, whatever is pruned),
    -- and the floor of the queue (above).
    CREATE TABLE IF NOT EXISTS event_seq (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        last      bigint  NOT NULL,
        floor     xid8    NOT NULL
    );
    INSERT INTO event_seq (last, floor) VALUES (0, '0') ON CONFLICT DO NOTHING;

    -- Gives seqs to the committed events of the queue; returns how many. Each statement of a
    -- VOLATILE function reads a fresh snapshot, so the move below, taken after the lock, sees
    -- every event committed before the previous run of the sequencer committed. The lock goes
    -- with the transaction, after its commit is visible. The new floor is the oldest transaction
    -- running in the move's own snapshot: every older one is over, and what it wrote is visible
    -- to the move.
    --
    -- `jit = off`: the planner cannot know `event_seq` holds one row and once costed this move
    -- high enough to compile it, which took 0.7 s a run (measured, auto_explain).
    CREATE OR REPLACE FUNCTION sequence_events() RETURNS bigint LANGUAGE plpgsql VOLATILE
    SET search_path FROM CURRENT SET jit = off AS $fn$
    DECLARE
        moved bigint;
    BEGIN
        -- The first waiting event, from the index (an `EXISTS` was planned as a bitmap scan of
        -- the whole range: 2.5 ms a call where this takes 0.1).
        PERFORM 1 FROM event_queue WHERE xid >= (SELECT floor FROM event_seq LIMIT 1) ORDER BY xid LIMIT 1;
        IF NOT FOUND THEN
            RETURN 0;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('agentyard events ' || current_schema(), 0));
        WITH low AS (
            SELECT floor FROM event_seq LIMIT 1
        ), taken AS (
            DELETE FROM event_queue WHERE xid >= (SELECT floor FROM low)
            RETURNING id, namespace, ts, type, subject, actor, correlation_id, data
        ), counted AS (
            SELECT count(*) AS n FROM taken
        ), bumped AS (
            UPDATE event_seq SET last = last + counted.n,
                floor = greatest(floor, pg_snapshot_xmin(pg_current_snapshot()))
            FROM counted
            RETURNING last - counted.n AS base
        )
        INSERT INTO events (seq, namespace, ts, type, subject, actor, correlation_id, data)
        SELECT bumped.base + row_number() OVER (ORDER BY taken.id), taken.namespace, taken.ts, taken.type,
               taken.subject, taken.actor, taken.correlation_id, taken.data
        FROM taken, bumped;
        GET DIAGNOSTICS moved = ROW_COUNT;
        RETURN moved;
    END
    $fn$;

    -- A time as `Timestamp` serializes it, for events made in SQL (a claim's).
    -- Whole days and the milliseconds of the day, each exact (an interval multiplies in floating
    -- point). Years past 9999 get chrono's `+`; times before year 0, which no lease has, are not
    -- written as the core writes them.
    CREATE OR REPLACE FUNCTION event_time(ms bigint) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
        SELECT CASE WHEN ms >= 253402300800000 THEN '+' ELSE '' END
            || to_char(timestamp '1970-01-01' + (ms / 86400000) * interval '1 day'
                       + (ms % 86400000) * interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    $fn$;
    "#,
    // 5: webhooks: `doc` is the store's WebhookRecordV1 (secret and delivery cursor included);
    // the node delivering a webhook holds its lease until `lease_until`. Listed by namespace and
    // id bytewise, as every store orders them. Written to run again on a schema that has it (as
    // the migration tests replay steps).
    r#"
    CREATE TABLE IF NOT EXISTS webhooks (
        namespace    text COLLATE "C" NOT NULL,
        id           text COLLATE "C" NOT NULL,
        doc          jsonb  NOT NULL,
        lease_holder text,
        lease_until  bigint,
        PRIMARY KEY (namespace, id)
    );
    "#,
    // 6: what retention (`retention.rs`) walks, oldest first, so that a prune reads about what
    // it deletes rather than every row of `tasks` or `messages` on every call (no index before
    // this one orders rows of every namespace by a time): finished tasks by `finished_at`, tasks
    // and messages still holding an idempotency key by `created_at` (only the keys of the
    // retention window are in it), and messages by `created_at`. The partial ones cost a write
    // little: a task enters `tasks_finished` as it finishes, a move that rewrites its indexed
    // `status` anyway, and `tasks_keyed` only when inserted with a key.
    //
    // Written to run again on a schema that has it (as the migration tests replay steps).
    r#"
    CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled');
    CREATE INDEX IF NOT EXISTS tasks_keyed ON tasks (created_at) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX IF NOT EXISTS messages_by_created ON messages (created_at);
    CREATE INDEX IF NOT EXISTS messages_keyed ON messages (created_at) WHERE idempotency_key IS NOT NULL;
    "#,
];

/// Key of the advisory lock that serializes migrations of one schema across nodes.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(hashtextextended('agentyard migrations ' || $1, 0))";
const MIGRATION_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended('agentyard migrations ' || $1, 0))";

/// Brings the schema up to date, one transaction per step, under a session advisory lock so
/// concurrent starts take turns (the lock goes with the session if this process dies). Refuses a
/// schema newer than this build knows.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<u32, StoreError> {
    client.query_one(MIGRATION_LOCK, &[&schema]).await.map_err(pg_error)?;
    let result = migrate_locked(client, schema).await;
    // Unlocking fails only with the session, which releases the lock anyway.
    let _ = client.query_one(MIGRATION_UNLOCK, &[&schema]).await;
    result
}

async fn migrate_locked(client: &mut Client, schema: &str) -> Result<u32, StoreError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE IF NOT EXISTS {schema}.schema_version ( \
                 singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
                 version   integer NOT NULL)"
        ))
        .await
        .map_err(pg_error)?;
    let row = client
        .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .await
        .map_err(pg_error)?;
    let current = row.map_or(0, |r| r.get::<_, i32>(0));
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if current > known {
        return Err(StoreError::Other(format!(
            "the PostgreSQL schema {schema} is at version {current} but this build knows only up to {known}; \
             it was written by a newer agentyard: run that version, or point this one at another schema (?schema=NAME)"
        )));
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(&format!("SET LOCAL search_path = {schema}"))
            .await
            .map_err(pg_error)?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Other(format!("schema migration {version} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1) \
             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            &[&version],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        tracing::info!(schema, version, "applied PostgreSQL schema migration");
    }
    Ok(u32::try_from(known).unwrap_or(0))
}
