//! The agents table, and `AgentStore` on PostgreSQL. `Agent.running` is counted from the
//! running tasks on every read, never stored, so it cannot drift from the tasks.
//!
//! Several nodes may expire agents at once: the sweep locks silent agents `FOR UPDATE SKIP
//! LOCKED`, so each is declared gone (and its leases released) by one node only. An agent's
//! row lock also orders a heartbeat against the sweep: whichever commits second sees the other.

use agentyard_core::agent::{Agent, AgentRegistration, AgentStatus, DEFAULT_SLOTS};
use agentyard_core::event::{EventType, NewEvent, agent_event, agent_removed};
use agentyard_core::{AgentName, Capability, Namespace, Task, TaskStatus, Timestamp};
use agentyard_store::{AgentOptions, AgentStore, StoreError};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use crate::error::{corrupt, pg_error};
use crate::messages;
use crate::record::{TASK_COLUMNS, decode as decode_task, ms, u64_col};
use crate::store::{PgStore, write_tx};
use crate::work::{TxResult, Work};

fn agent_not_found(name: &AgentName) -> StoreError {
    StoreError::NotFound {
        what: format!("agent {name}"),
    }
}

const AGENT_COLUMNS: &str = "namespace, name, status, capabilities, slots, metadata, last_heartbeat, \
     registered_at, inbox_start, inbox_cursor, implicit";

/// Reads a row whose first columns are [`AGENT_COLUMNS`].
fn decode(row: &Row, running: u64) -> Result<Agent, StoreError> {
    let ns: &str = row.try_get(0).map_err(|e| corrupt("agent", e))?;
    let name: &str = row.try_get(1).map_err(|e| corrupt("agent", e))?;
    let what = || format!("agent {ns}/{name}");
    let bad = |e: tokio_postgres::Error| corrupt(what(), e);
    let status: &str = row.try_get(2).map_err(bad)?;
    let caps: Vec<&str> = row.try_get(3).map_err(bad)?;
    let seq = |i: usize| -> Result<u64, StoreError> {
        u64::try_from(row.try_get::<_, i64>(i).map_err(bad)?).map_err(|e| corrupt(what(), e))
    };
    Ok(Agent {
        name: AgentName::parse(name).map_err(|e| corrupt(what(), e))?,
        namespace: Namespace::parse(ns).map_err(|e| corrupt(what(), e))?,
        capabilities: caps
            .into_iter()
            .map(Capability::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(what(), e))?,
        slots: u32::try_from(row.try_get::<_, i32>(4).map_err(bad)?).map_err(|e| corrupt(what(), e))?,
        metadata: row.try_get(5).map_err(bad)?,
        status: AgentStatus::parse(status).ok_or_else(|| corrupt(what(), format!("status {status:?}")))?,
        last_heartbeat: Timestamp::from_millis(row.try_get(6).map_err(bad)?),
        registered_at: Timestamp::from_millis(row.try_get(7).map_err(bad)?),
        running,
        inbox_start: seq(8)?,
        inbox_cursor: seq(9)?,
        implicit: row.try_get(10).map_err(bad)?,
    })
}

/// The stored agent (its `running` left at 0), locked for the transaction when `lock`.
pub(crate) async fn load(
    c: &impl GenericClient,
    ns: &Namespace,
    name: &AgentName,
    lock: bool,
) -> TxResult<Option<Agent>> {
    let sql = if lock {
        "SELECT namespace, name, status, capabilities, slots, metadata, last_heartbeat, registered_at, \
         inbox_start, inbox_cursor, implicit FROM agents WHERE namespace = $1 AND name = $2 FOR UPDATE"
    } else {
        "SELECT namespace, name, status, capabilities, slots, metadata, last_heartbeat, registered_at, \
         inbox_start, inbox_cursor, implicit FROM agents WHERE namespace = $1 AND name = $2"
    };
    let stmt = c.prepare_cached(sql).await?;
    let row = c.query_opt(&stmt, &[&ns.as_str(), &name.as_str()]).await?;
    Ok(row.map(|r| decode(&r, 0)).transpose()?)
}

/// The stored agent or `NotFound`, its `running` left at 0.
pub(crate) async fn require(c: &impl GenericClient, ns: &Namespace, name: &AgentName, lock: bool) -> TxResult<Agent> {
    load(c, ns, name, lock)
        .await?
        .ok_or_else(|| agent_not_found(name).into())
}

async fn running_count(c: &impl GenericClient, ns: &Namespace, name: &AgentName) -> TxResult<u64> {
    let stmt = c
        .prepare_cached("SELECT count(*) FROM tasks WHERE status = 'running' AND namespace = $1 AND lease_agent = $2")
        .await?;
    let n: i64 = c.query_one(&stmt, &[&ns.as_str(), &name.as_str()]).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn with_running(c: &impl GenericClient, mut agent: Agent) -> TxResult<Agent> {
    agent.running = running_count(c, &agent.namespace, &agent.name).await?;
    Ok(agent)
}

pub(crate) async fn save(c: &impl GenericClient, a: &Agent) -> TxResult<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO agents (namespace, name, status, capabilities, slots, metadata, last_heartbeat, \
             registered_at, inbox_start, inbox_cursor, implicit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (namespace, name) DO UPDATE SET status = excluded.status, \
             capabilities = excluded.capabilities, slots = excluded.slots, metadata = excluded.metadata, \
             last_heartbeat = excluded.last_heartbeat, inbox_start = excluded.inbox_start, \
             inbox_cursor = excluded.inbox_cursor, implicit = excluded.implicit",
        )
        .await?;
    let caps: Vec<&str> = a.capabilities.iter().map(Capability::as_str).collect();
    c.execute(
        &stmt,
        &[
            &a.namespace.as_str(),
            &a.name.as_str(),
            &a.status.as_str(),
            &caps,
            &i32::try_from(a.slots).unwrap_or(i32::MAX),
            &a.metadata,
            &ms(a.last_heartbeat),
            &ms(a.registered_at),
            &u64_col(a.inbox_start),
            &u64_col(a.inbox_cursor),
            &a.implicit,
        ],
    )
    .await?;
    Ok(())
}

/// A new agent, unless its namespace is at `options.max_agents`.
async fn new_agent(
    c: &impl GenericClient,
    ns: &Namespace,
    name: &AgentName,
    reg: AgentRegistration,
    options: AgentOptions,
    now: Timestamp,
) -> TxResult<Agent> {
    if let Some(limit) = options.max_agents {
        // New agents of one namespace take turns (until their transactions end), so two nodes
        // cannot both count one place left. Only a new agent pays for this, and the count stops
        // at the limit.
        let stmt = c
            .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended('agentyard agents ' || $1, 0))")
            .await?;
        c.query_one(&stmt, &[&ns.as_str()]).await?;
        let stmt = c
            .prepare_cached("SELECT count(*) FROM (SELECT 1 FROM agents WHERE namespace = $1 LIMIT $2) a")
            .await?;
        let limit_col = u64_col(limit);
        let count: i64 = c.query_one(&stmt, &[&ns.as_str(), &limit_col]).await?.get(0);
        if u64::try_from(count).unwrap_or(0) >= limit {
            return Err(StoreError::TooManyAgents {
                namespace: ns.clone(),
                agent: name.clone(),
                limit,
            }
            .into());
        }
    }
    // Its inbox starts after the latest message: older broadcasts are not its business.
    let start = messages::latest_seq(c, ns).await?;
    Ok(Agent {
        name: name.clone(),
        namespace: ns.clone(),
        capabilities: reg.capabilities,
        slots: reg.slots,
        metadata: reg.metadata,
        status: AgentStatus::Active,
        last_heartbeat: now,
        registered_at: now,
        running: 0,
        inbox_start: start,
        inbox_cursor: start,
        implicit: false,
    })
}

/// Takes every lease the agent holds away (see `Task::release_lease`), after logging `announce`
/// with how many it held (the agent's own event comes before its tasks'). Returns the released
/// tasks.
async fn release_all(
    w: &mut Work<'_>,
    ns: &Namespace,
    name: &AgentName,
    now: Timestamp,
    reason: &str,
    announce: impl FnOnce(usize) -> NewEvent,
) -> TxResult<Vec<Task>> {
    let stmt =
        w.tx.prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'running' AND namespace = $1 AND lease_agent = $2 \
             ORDER BY id FOR UPDATE"
        ))
        .await?;
    let rows = w.tx.query(&stmt, &[&ns.as_str(), &name.as_str()]).await?;
    w.log(announce(rows.len()));
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut task = decode_task(row)?;
        let version = task.version;
        if task.release_lease(now, reason) {
            if task.version != version {
                w.log_task(&task);
            }
            out.push(task);
        }
    }
    let moved: Vec<(TaskStatus, &Task)> = out.iter().map(|t| (TaskStatus::Running, t)).collect();
    crate::tasks::write_state(w, &moved).await?;
    Ok(out)
}

async fn register(
    w: &mut Work<'_>,
    ns: &Namespace,
    name: &AgentName,
    reg: AgentRegistration,
    options: AgentOptions,
    now: Timestamp,
) -> TxResult<Agent> {
    let agent = match load(w.tx, ns, name, true).await? {
        Some(mut a) => {
            a.capabilities = reg.capabilities;
            a.slots = reg.slots;
            a.metadata = reg.metadata;
            a.status = AgentStatus::Active;
            a.last_heartbeat = now;
            a.implicit = false;
            a
        }
        None => new_agent(w.tx, ns, name, reg, options, now).await?,
    };
    save(w.tx, &agent).await?;
    let agent = with_running(w.tx, agent).await?;
    w.log(agent_event(EventType::AgentRegistered, &agent, now));
    Ok(agent)
}

async fn touch(
    w: &mut Work<'_>,
    ns: &Namespace,
    name: &AgentName,
    capabilities: Option<Vec<Capability>>,
    options: AgentOptions,
    now: Timestamp,
) -> TxResult<Agent> {
    let (agent, kind) = match load(w.tx, ns, name, true).await? {
        Some(mut a) => {
            let back = a.status == AgentStatus::Gone;
            if back {
                a.status = AgentStatus::Active;
            }
            // Heartbeats through several nodes arrive in any order: the latest one counts.
            a.last_heartbeat = a.last_heartbeat.max(now);
            (a, back.then_some(EventType::AgentBack))
        }
        None => {
            let reg = AgentRegistration {
                capabilities: capabilities.unwrap_or_default(),
                slots: DEFAULT_SLOTS,
                metadata: Value::Null,
            };
            let agent = Agent {
                implicit: true,
                ..new_agent(w.tx, ns, name, reg, options, now).await?
            };
            (agent, Some(EventType::AgentRegistered))
        }
    };
    save(w.tx, &agent).await?;
    let agent = with_running(w.tx, agent).await?;
    if let Some(kind) = kind {
        w.log(agent_event(kind, &agent, now));
    }
    Ok(agent)
}

/// Loads a registered agent locked, changes it (`f` says which event that is, if any), stores it,
/// logs the event and returns its view.
async fn change(
    w: &mut Work<'_>,
    ns: &Namespace,
    name: &AgentName,
    now: Timestamp,
    f: impl FnOnce(&mut Agent) -> Option<EventType>,
) -> TxResult<Agent> {
    let mut agent = require(w.tx, ns, name, true).await?;
    let kind = f(&mut agent);
    save(w.tx, &agent).await?;
    let agent = with_running(w.tx, agent).await?;
    if let Some(kind) = kind {
        w.log(agent_event(kind, &agent, now));
    }
    Ok(agent)
}

async fn delete(w: &mut Work<'_>, ns: &Namespace, name: &AgentName, now: Timestamp) -> TxResult<Vec<Task>> {
    let stmt =
        w.tx.prepare_cached("DELETE FROM agents WHERE namespace = $1 AND name = $2")
            .await?;
    if w.tx.execute(&stmt, &[&ns.as_str(), &name.as_str()]).await? == 0 {
        return Err(agent_not_found(name).into());
    }
    messages::unsubscribe_all(w.tx, ns, name).await?;
    let reason = format!("agent {name} was removed");
    release_all(w, ns, name, now, &reason, |held| agent_removed(ns, name, held, now)).await
}

async fn expire(w: &mut Work<'_>, now: Timestamp, timeout_ms: u64) -> TxResult<Vec<(Agent, Vec<Task>)>> {
    let since = ms(now).saturating_sub(u64_col(timeout_ms));
    let stmt =
        w.tx.prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE status <> 'gone' AND last_heartbeat <= $1 \
             ORDER BY namespace COLLATE \"C\", name COLLATE \"C\" FOR UPDATE SKIP LOCKED"
        ))
        .await?;
    let rows = w.tx.query(&stmt, &[&since]).await?;
    let mut silent = rows.iter().map(|r| decode(r, 0)).collect::<Result<Vec<_>, _>>()?;
    // The exact rule of `MemoryStore` (the bound above only narrows).
    silent.retain(|a| a.last_heartbeat.add_millis(timeout_ms) <= now);
    let mut out = Vec::with_capacity(silent.len());
    for mut agent in silent {
        agent.status = AgentStatus::Gone;
        save(w.tx, &agent).await?;
        let reason = format!("agent {} stopped heartbeating", agent.name);
        let gone = agent_event(EventType::AgentGone, &agent, now);
        let released = release_all(w, &agent.namespace, &agent.name, now, &reason, |_| gone).await?;
        let agent = with_running(w.tx, agent).await?;
        out.push((agent, released));
    }
    Ok(out)
}

/// Locks the implicit agents gone since `silent_since` (`SKIP LOCKED`: one node removes each,
/// and one revived meanwhile is not taken) and removes them as `DELETE` does.
async fn forget(
    w: &mut Work<'_>,
    now: Timestamp,
    silent_since: Timestamp,
    limit: usize,
) -> TxResult<Vec<(Agent, Vec<Task>)>> {
    let stmt =
        w.tx.prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE status = 'gone' AND implicit AND last_heartbeat <= $1 \
             ORDER BY last_heartbeat, namespace COLLATE \"C\", name COLLATE \"C\" LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = w.tx.query(&stmt, &[&ms(silent_since), &limit]).await?;
    let agents = rows.iter().map(|r| decode(r, 0)).collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(agents.len());
    for agent in agents {
        let agent = with_running(w.tx, agent).await?;
        let released = delete(w, &agent.namespace, &agent.name, now).await?;
        out.push((agent, released));
    }
    Ok(out)
}

#[async_trait]
impl AgentStore for PgStore {
    async fn register_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        registration: AgentRegistration,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        write_tx!(self, |w| register(&mut w, ns, name, registration.clone(), options, now)
            .await)
    }

    async fn touch_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        capabilities: Option<Vec<Capability>>,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        write_tx!(self, |w| touch(&mut w, ns, name, capabilities.clone(), options, now)
            .await)
    }

    async fn heartbeat_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        write_tx!(self, |w| {
            change(&mut w, ns, name, now, |a| {
                let back = a.status == AgentStatus::Gone;
                if back {
                    a.status = AgentStatus::Active;
                }
                a.last_heartbeat = a.last_heartbeat.max(now);
                back.then_some(EventType::AgentBack)
            })
            .await
        })
    }

    async fn get_agent(&self, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
        let client = self.client().await?;
        let agent = require(&client, ns, name, false).await.map_err(|e| e.into_store())?;
        with_running(&client, agent).await.map_err(|e| e.into_store())
    }

    async fn list_agents(&self, ns: &Namespace) -> Result<Vec<Agent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {AGENT_COLUMNS}, (SELECT count(*) FROM tasks t WHERE t.status = 'running' \
                 AND t.namespace = a.namespace AND t.lease_agent = a.name) \
                 FROM agents a WHERE a.namespace = $1 ORDER BY a.name COLLATE \"C\""
            ))
            .await
            .map_err(pg_error)?;
        let rows = client.query(&stmt, &[&ns.as_str()]).await.map_err(pg_error)?;
        rows.iter()
            .map(|r| decode(r, u64::try_from(r.get::<_, i64>(11)).unwrap_or(0)))
            .collect()
    }

    async fn drain_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        write_tx!(self, |w| {
            change(&mut w, ns, name, now, |a| {
                let draining = a.status != AgentStatus::Draining;
                a.status = AgentStatus::Draining;
                a.last_heartbeat = a.last_heartbeat.max(now);
                draining.then_some(EventType::AgentDraining)
            })
            .await
        })
    }

    async fn delete_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        write_tx!(self, |w| delete(&mut w, ns, name, now).await)
    }

    async fn expire_agents(&self, now: Timestamp, timeout_ms: u64) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        write_tx!(self, |w| expire(&mut w, now, timeout_ms).await)
    }

    async fn forget_agents(
        &self,
        now: Timestamp,
        silent_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        write_tx!(self, |w| forget(&mut w, now, silent_since, limit).await)
    }
}
