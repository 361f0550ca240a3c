//! The claim on PostgreSQL: each round one statement that locks the next ready tasks of the
//! queue (`FOR UPDATE SKIP LOCKED` on the ready index) and leases those without dispatch keys;
//! keyed ones are judged by the dispatch gate (concurrency keys under a per-key advisory lock,
//! rate tokens from the shared buckets).

use std::collections::{HashMap, HashSet};

use agentyard_core::{Capability, LeaseToken, Namespace, Task, TaskStatus, Timestamp};
use agentyard_store::{Claim, StoreError};

use crate::record::{TASK_COLUMN_COUNT, TASK_COLUMNS, decode, id_bytes, ms, u64_col};
use crate::tasks::{to_i64, write_state};
use crate::work::{TxResult, Work};

/// How many ready tasks a claim may pass over because a dispatch limit holds them back, before
/// it gives up (as on SQLite).
const CLAIM_SKIP_LIMIT: usize = 1_000;

/// One round of a claim, one statement: locks the next `$5` ready tasks the claimer can run
/// (`SKIP LOCKED`, leaving out the ids in `$4`), leases at once those that hold no dispatch key
/// (the same change as `Task::claim`, written in SQL so the rows are read and written once),
/// and returns them (`claimed` true) with the keyed ones, locked but untouched (`claimed` false),
/// for the gate to judge. The lease token is 128 random bits from `gen_random_uuid()`.
const CLAIM_ROUND: &str = "WITH picked AS ( \
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
       RETURNING t.*) \
     SELECT COLUMNS, true FROM leased \
     UNION ALL \
     SELECT COLUMNS, false FROM tasks WHERE (namespace, id) IN (SELECT namespace, id FROM picked WHERE NOT free)";

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
    // Claim order, whichever way each was leased.
    leased.sort_by(|a, b| {
        (std::cmp::Reverse(a.priority), a.run_at, a.id).cmp(&(std::cmp::Reverse(b.priority), b.run_at, b.id))
    });
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
