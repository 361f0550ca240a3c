//! The claim on PostgreSQL: each round one statement that locks the next ready tasks of the
//! queue (`FOR UPDATE SKIP LOCKED` on the ready index) and leases those without dispatch keys;
//! keyed ones are judged by the dispatch gate (concurrency keys under a per-key advisory lock,
//! rate tokens from the shared buckets).

use std::collections::{HashMap, HashSet};

use agentyard_core::event::{LastChange, TaskChange};
use agentyard_core::{Capability, LeaseToken, Namespace, Task, TaskStatus, Timestamp};
use agentyard_store::{Claim, StoreError};

use crate::events::{CLAIMED_EVENT_FIELDS, TASK_ID_BITS};
use crate::record::{TASK_COLUMN_COUNT, TASK_COLUMNS, decode, id_bytes, ms, u64_col};
use crate::tasks::{to_i64, write_state};
use crate::work::{TxError, TxResult, Work};

/// How many ready tasks a claim may pass over because a dispatch limit holds them back, before
/// it gives up (as on SQLite).
const CLAIM_SKIP_LIMIT: usize = 1_000;

/// The ready tasks a claim locks and leases, as two CTEs (`picked`, `leased`): locks the next
/// `$5` ready tasks the claimer can run (`SKIP LOCKED`, leaving out the ids in `$4`) and leases at
/// once those that hold no dispatch key (the same change as `Task::claim`, written in SQL so the
/// rows are read and written once). The lease token is 128 random bits from `gen_random_uuid()`.
macro_rules! picked_and_leased {
    () => {
        "WITH picked AS ( \
           SELECT namespace, id, concurrency_key IS NULL AND rate_limit_key IS NULL AS free FROM tasks \
           WHERE namespace = $1 AND queue = $2 AND status = 'queued' \
             AND required_capabilities <@ $3::text[] AND NOT (id = ANY($4::bytea[])) \
           ORDER BY priority DESC, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), \
         leased AS ( \
           UPDATE tasks AS t SET status = 'running', attempt = t.attempt + 1, lease_agent = $6::text, \
             lease_token = replace(gen_random_uuid()::text, '-', ''), lease_acquired_at = $7::int8, \
             lease_expires_at = CASE WHEN t.timeout_ms IS NULL THEN $7::int8 + $8::int8 ELSE least($7::int8 + $8::int8, $7::int8 + t.timeout_ms) END, \
             progress = NULL, version = t.version + 1, updated_at = $7::int8 \
           FROM picked AS p WHERE t.namespace = p.namespace AND t.id = p.id AND p.free \
           RETURNING t.*)"
    };
}

/// The leased tasks (`claimed` true) and the keyed ones, locked but untouched (`claimed` false).
macro_rules! leased_then_keyed {
    () => {
        " SELECT COLUMNS, true FROM leased \
         UNION ALL \
         SELECT COLUMNS, false FROM tasks WHERE (namespace, id) IN (SELECT namespace, id FROM picked WHERE NOT free)"
    };
}

/// One round of a claim in a transaction, one statement: returns the tasks it leased and the
/// keyed ones it locked, for the gate to judge.
const CLAIM_ROUND: &str = concat!(picked_and_leased!(), leased_then_keyed!());

/// The first round of a claim on its own, outside any transaction: [`CLAIM_ROUND`] plus the
/// claimed tasks' count deltas and their `task.claimed` events (queued in claim order), so the
/// statement is the whole change (PostgreSQL runs it as one transaction) and a claim of keyless
/// tasks, or of an empty queue, costs one round trip. The keyed tasks it comes across are only
/// looked at: its locks end with it, so they are left for [`claim_tasks`] in a transaction of its
/// own.
const CLAIM_FREE: &str = concat!(
    picked_and_leased!(),
    ", counted AS ( \
       INSERT INTO queue_counts AS c (namespace, queue, shard, scheduled, queued, running, succeeded, failed, cancelled) \
       SELECT $1, $2, pg_backend_pid() % 64, 0, -count(*), count(*), 0, 0, 0 FROM leased HAVING count(*) > 0 \
       ON CONFLICT (namespace, queue, shard) DO UPDATE SET \
         queued = c.queued + excluded.queued, running = c.running + excluded.running), \
     logged AS ( \
       INSERT INTO event_queue (namespace, ts, type, subject, actor, correlation_id, data) \
       SELECT EVENT_FIELDS FROM leased, TASK_ID_BITS ORDER BY priority DESC, run_at, id)",
    leased_then_keyed!()
);

/// What the first round of a claim leased, and how many more tasks the claim still wants from a
/// transaction of its own (0 when the round met no keyed task: the queue had no more for it).
pub(crate) struct FreeRound {
    pub leased: Vec<Task>,
    pub rest: u32,
}

/// Runs [`CLAIM_FREE`] on `client`, outside a transaction.
pub(crate) async fn claim_free(
    client: &deadpool_postgres::Object,
    ns: &Namespace,
    claim: &Claim,
    now: Timestamp,
) -> Result<FreeRound, TxError> {
    if claim.max == 0 {
        return Ok(FreeRound {
            leased: Vec::new(),
            rest: 0,
        });
    }
    let caps: Vec<&str> = claim.capabilities.iter().map(Capability::as_str).collect();
    let stmt = client
        .prepare_cached(
            &CLAIM_FREE
                .replace("COLUMNS", TASK_COLUMNS)
                .replace("EVENT_FIELDS", &CLAIMED_EVENT_FIELDS)
                .replace("TASK_ID_BITS", TASK_ID_BITS),
        )
        .await?;
    let none_seen: Vec<Vec<u8>> = Vec::new();
    let rows = client
        .query(
            &stmt,
            &[
                &ns.as_str(),
                &claim.queue.as_str(),
                &caps,
                &none_seen,
                &i64::from(claim.max),
                &claim.agent.as_str(),
                &ms(now),
                &u64_col(claim.lease_ms),
            ],
        )
        .await?;
    let mut leased = Vec::with_capacity(rows.len());
    let mut keyed = false;
    for row in &rows {
        if row
            .try_get::<_, bool>(TASK_COLUMN_COUNT)
            .map_err(|e| StoreError::Other(e.to_string()))?
        {
            leased.push(decode(row)?);
        } else {
            keyed = true;
        }
    }
    let taken = u32::try_from(leased.len()).unwrap_or(u32::MAX);
    leased.sort_by(claim_order);
    Ok(FreeRound {
        rest: if keyed { claim.max.saturating_sub(taken) } else { 0 },
        leased,
    })
}

/// Claim order: higher priority first, then earlier `run_at`, then older.
pub(crate) fn claim_order(a: &Task, b: &Task) -> std::cmp::Ordering {
    (std::cmp::Reverse(a.priority), a.run_at, a.id).cmp(&(std::cmp::Reverse(b.priority), b.run_at, b.id))
}

/// Claims up to `claim.max` ready tasks: the ready index in claim order, tasks locked by other
/// claimers skipped, those the agent cannot run never read. Tasks without dispatch keys are
/// leased by the round's statement itself; keyed ones are judged by the gate one by one.
pub(crate) async fn claim_tasks(
    w: &mut Work<'_>,
    ns: &Namespace,
    claim: &Claim,
    now: Timestamp,
) -> TxResult<Vec<Task>> {
    let max = usize::try_from(claim.max).unwrap_or(usize::MAX);
    if max == 0 {
        return Ok(Vec::new());
    }
    let caps: Vec<&str> = claim.capabilities.iter().map(Capability::as_str).collect();
    let sql = CLAIM_ROUND.replace("COLUMNS", TASK_COLUMNS);
    let stmt = w.tx.prepare_cached(&sql).await?;
    let lease_ms = u64_col(claim.lease_ms);
    let mut leased: Vec<Task> = Vec::new();
    let mut admitted: Vec<Task> = Vec::new();
    // Rows this transaction already locked, taken or passed over: `SKIP LOCKED` skips only
    // other transactions' locks, so a later round must leave these out by id.
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut passed = 0usize;
    let mut taken_per_key: HashMap<String, u64> = HashMap::new();
    let mut locked_keys: HashSet<String> = HashSet::new();
    while leased.len() + admitted.len() < max && passed < CLAIM_SKIP_LIMIT {
        let want = max - leased.len() - admitted.len();
        let rows =
            w.tx.query(
                &stmt,
                &[
                    &ns.as_str(),
                    &claim.queue.as_str(),
                    &caps,
                    &seen,
                    &to_i64(want),
                    &claim.agent.as_str(),
                    &ms(now),
                    &lease_ms,
                ],
            )
            .await?;
        let found = rows.len();
        for row in &rows {
            let task = decode(row)?;
            seen.push(id_bytes(task.id));
            if row
                .try_get::<_, bool>(TASK_COLUMN_COUNT)
                .map_err(|e| StoreError::Other(e.to_string()))?
            {
                // Leased by the statement: the change `Task::claim` would have noted.
                let mut task = task;
                task.meta.change = LastChange(Some(TaskChange::Claimed {
                    agent: claim.agent.clone(),
                    waited_ms: now.millis_since(task.run_at),
                }));
                w.moved(TaskStatus::Queued, &task);
                leased.push(task);
            } else if admit(w, ns, claim, &task, now, &mut taken_per_key, &mut locked_keys).await? {
                admitted.push(task);
            } else {
                passed += 1;
            }
        }
        if found < want {
            break;
        }
    }
    for task in &mut admitted {
        task.claim(&claim.agent, LeaseToken::generate(), claim.lease_ms, now)
            .map_err(|e| StoreError::from_transition(e, task))?;
    }
    let moved: Vec<(TaskStatus, &Task)> = admitted.iter().map(|t| (TaskStatus::Queued, t)).collect();
    write_state(w, &moved).await?;
    leased.append(&mut admitted);
    // Claim order, whichever way each was leased; the events too.
    leased.sort_by(claim_order);
    for task in &leased {
        w.log_task(task);
    }
    Ok(leased)
}

/// The dispatch limits of one task, in claim order: its concurrency key's slots (counted with
/// the key's advisory lock held, so claimers on every node take turns per key), then a token of
/// its rate-limit key.
async fn admit(
    w: &mut Work<'_>,
    ns: &Namespace,
    claim: &Claim,
    task: &Task,
    now: Timestamp,
    taken_per_key: &mut HashMap<String, u64>,
    locked_keys: &mut HashSet<String>,
) -> TxResult<bool> {
    if let Some(k) = &task.concurrency_key {
        if locked_keys.insert(k.clone()) {
            let stmt =
                w.tx.prepare_cached(
                    "SELECT pg_advisory_xact_lock(hashtextextended('agentyard concurrency ' || $1 || ' ' || $2, 0))",
                )
                .await?;
            w.tx.execute(&stmt, &[&ns.as_str(), &k.as_str()]).await?;
        }
        let stmt =
            w.tx.prepare_cached(
                "SELECT count(*) FROM tasks WHERE status = 'running' AND namespace = $1 AND concurrency_key = $2",
            )
            .await?;
        let running: i64 = w.tx.query_one(&stmt, &[&ns.as_str(), &k.as_str()]).await?.get(0);
        let taken = taken_per_key.get(k).copied().unwrap_or(0);
        if u64::try_from(running).unwrap_or(0) + taken >= claim.max_concurrent(k) {
            return Ok(false);
        }
    }
    if let Some(k) = &task.rate_limit_key {
        let shared = claim.gate.as_ref().and_then(|g| g.shared_rate(k).map(|rate| (g, rate)));
        match shared {
            // The bucket lives in the database, shared by every node.
            Some((gate, rate)) => {
                if let Err(retry_at) = crate::limits::take_token(w, ns, k, rate, now).await? {
                    gate.rate_refused(k, retry_at);
                    return Ok(false);
                }
            }
            None if !claim.take_rate_token(k, now) => return Ok(false),
            None => {}
        }
    }
    if let Some(k) = &task.concurrency_key {
        *taken_per_key.entry(k.clone()).or_default() += 1;
    }
    Ok(true)
}
