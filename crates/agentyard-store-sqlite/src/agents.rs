//! The agents table, and `AgentStore` on SQLite: registrations and heartbeats are writer
//! commands, reads go to the reader pool, and `Agent.running` is counted from the running tasks
//! on every read (it is never stored, so it cannot drift from the tasks).

use agentyard_core::agent::{Agent, AgentRegistration, AgentStatus, DEFAULT_SLOTS};
use agentyard_core::event::{EventType, agent_event, agent_removed};
use agentyard_core::{AgentName, Capability, Namespace, Task, Timestamp};
use agentyard_store::record::AgentRecordV1;
use agentyard_store::{AgentOptions, AgentStore, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use crate::error::{corrupt_record, sql_error};
use crate::store::SqliteStore;
use crate::writer::WriteCtx;
use crate::{messages, tasks};

fn agent_not_found(name: &AgentName) -> StoreError {
    StoreError::NotFound {
        what: format!("agent {name}"),
    }
}

/// The document is an [`AgentRecordV1`] (the store's own format, not the API's JSON), which
/// leaves `running` out: it is counted on read.
fn encode(agent: &Agent) -> Result<String, StoreError> {
    serde_json::to_string(&AgentRecordV1::from(agent))
        .map_err(|e| corrupt_record(format!("agent {}/{}", agent.namespace, agent.name), e))
}

/// Decodes a row whose first three columns are `namespace, name, doc`, with its running count.
fn decode(row: &Row<'_>, running: u64) -> Result<Agent, StoreError> {
    let ns: String = row.get(0).map_err(sql_error)?;
    let name: String = row.get(1).map_err(sql_error)?;
    let doc: String = row.get(2).map_err(sql_error)?;
    let record = || format!("agent {ns}/{name}");
    let stored: AgentRecordV1<'_> = serde_json::from_str(&doc).map_err(|e| corrupt_record(record(), e))?;
    let mut agent = Agent::from(stored);
    agent.running = running;
    if agent.namespace.as_str() != ns || agent.name.as_str() != name {
        return Err(corrupt_record(
            record(),
            format!("it holds agent {}/{}", agent.namespace, agent.name),
        ));
    }
    Ok(agent)
}

/// The stored agent, its `running` left at 0 (see [`with_running`]).
fn load(conn: &Connection, ns: &Namespace, name: &AgentName) -> Result<Option<Agent>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT namespace, name, doc FROM agents WHERE namespace = ?1 AND name = ?2")
        .map_err(sql_error)?;
    let mut rows = stmt.query(params![ns.as_str(), name.as_str()]).map_err(sql_error)?;
    match rows.next().map_err(sql_error)? {
        Some(row) => decode(row, 0).map(Some),
        None => Ok(None),
    }
}

/// The stored agent, or `NotFound`; its `running` left at 0.
pub(crate) fn require(conn: &Connection, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
    load(conn, ns, name)?.ok_or_else(|| agent_not_found(name))
}

fn with_running(conn: &Connection, mut agent: Agent) -> Result<Agent, StoreError> {
    agent.running = tasks::running_count_of(conn, &agent.namespace, &agent.name)?;
    Ok(agent)
}

/// The agent as the API shows it, running count included.
pub(crate) fn view(conn: &Connection, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
    with_running(conn, require(conn, ns, name)?)
}

const LIST: &str = "SELECT a.namespace, a.name, a.doc, \
     (SELECT COUNT(*) FROM tasks t WHERE t.status = 'running' AND t.namespace = a.namespace \
      AND t.lease_agent = a.name) \
     FROM agents a WHERE a.namespace = ?1 ORDER BY a.name";

/// Every agent of the namespace by name, running counts included.
fn list(conn: &Connection, ns: &Namespace) -> Result<Vec<Agent>, StoreError> {
    let mut stmt = conn.prepare_cached(LIST).map_err(sql_error)?;
    let mut rows = stmt.query(params![ns.as_str()]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let running: i64 = row.get(3).map_err(sql_error)?;
        out.push(decode(row, u64::try_from(running).unwrap_or(0))?);
    }
    Ok(out)
}

pub(crate) fn save(conn: &Connection, agent: &Agent) -> Result<(), StoreError> {
    let doc = encode(agent)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO agents (namespace, name, status, last_heartbeat, doc, implicit) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (namespace, name) DO UPDATE SET \
             status = excluded.status, last_heartbeat = excluded.last_heartbeat, doc = excluded.doc, \
             implicit = excluded.implicit",
        )
        .map_err(sql_error)?;
    stmt.execute(params![
        agent.namespace.as_str(),
        agent.name.as_str(),
        agent.status.as_str(),
        agent.last_heartbeat.as_millis(),
        doc,
        agent.implicit,
    ])
    .map_err(sql_error)?;
    Ok(())
}

/// Removes the agent and its subscriptions. Returns false if there was no such agent.
fn delete(conn: &Connection, ns: &Namespace, name: &AgentName) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM agents WHERE namespace = ?1 AND name = ?2")
        .map_err(sql_error)?;
    let deleted = stmt.execute(params![ns.as_str(), name.as_str()]).map_err(sql_error)?;
    if deleted == 0 {
        return Ok(false);
    }
    messages::unsubscribe_all(conn, ns, name)?;
    Ok(true)
}

const SILENT: &str = "SELECT namespace, name, doc FROM agents WHERE status != 'gone' AND last_heartbeat <= ?1";

/// Agents not yet gone whose last heartbeat is at or before `since`, found through the
/// `agents_silent` index (unordered).
fn silent_since(conn: &Connection, since: i64) -> Result<Vec<Agent>, StoreError> {
    let mut stmt = conn.prepare_cached(SILENT).map_err(sql_error)?;
    let mut rows = stmt.query(params![since]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(decode(row, 0)?);
    }
    Ok(out)
}

const FORGETTABLE: &str = "SELECT namespace, name, doc FROM agents WHERE status = 'gone' AND implicit = 1 \
     AND last_heartbeat <= ?1 ORDER BY last_heartbeat, namespace, name LIMIT ?2";

/// Implicit gone agents silent since `since`, longest silent first, through `agents_forgettable`.
fn forgettable(conn: &Connection, since: i64, limit: usize) -> Result<Vec<Agent>, StoreError> {
    let mut stmt = conn.prepare_cached(FORGETTABLE).map_err(sql_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![since, limit]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(decode(row, 0)?);
    }
    Ok(out)
}

/// Counts the namespace's agents in the primary key (never reading a row).
const COUNT: &str = "SELECT COUNT(*) FROM agents WHERE namespace = ?1";

fn new_agent(
    conn: &Connection,
    ns: &Namespace,
    name: &AgentName,
    reg: AgentRegistration,
    options: AgentOptions,
    now: Timestamp,
) -> Result<Agent, StoreError> {
    if let Some(limit) = options.max_agents {
        // Only a new agent pays for the count.
        let mut stmt = conn.prepare_cached(COUNT).map_err(sql_error)?;
        let count: i64 = stmt.query_row(params![ns.as_str()], |r| r.get(0)).map_err(sql_error)?;
        if u64::try_from(count).unwrap_or(0) >= limit {
            return Err(StoreError::TooManyAgents {
                namespace: ns.clone(),
                agent: name.clone(),
                limit,
            });
        }
    }
    // Its inbox starts after the latest message: older broadcasts are not its business.
    let start = messages::latest_seq(conn, ns)?;
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

/// Takes every lease the agent holds away (see `Task::release_lease`). Returns the released tasks.
fn release_all(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    name: &AgentName,
    now: Timestamp,
    reason: &str,
) -> Result<Vec<Task>, StoreError> {
    let held = tasks::running_of(ctx.conn(), ns, name)?;
    release(ctx, held, now, reason)
}

/// Removes the agent (its row and subscriptions) and takes its leases away, logging its removal
/// (with how many leases it held) before the leases it lost. `None` if there was no such agent.
fn remove(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    name: &AgentName,
    now: Timestamp,
) -> Result<Option<Vec<Task>>, StoreError> {
    if !delete(ctx.conn(), ns, name)? {
        return Ok(None);
    }
    let held = tasks::running_of(ctx.conn(), ns, name)?;
    ctx.log(&agent_removed(ns, name, held.len(), now))?;
    release(ctx, held, now, &format!("agent {name} was removed")).map(Some)
}

/// Takes the lease of each of `held` away, in their order (each change logs its event).
fn release(ctx: &mut WriteCtx<'_>, held: Vec<Task>, now: Timestamp, reason: &str) -> Result<Vec<Task>, StoreError> {
    let mut out = Vec::with_capacity(held.len());
    for mut task in held {
        let before = task.status;
        if task.release_lease(now, reason) {
            ctx.update(before, &task)?;
            out.push(task);
        }
    }
    Ok(out)
}

fn register(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    name: &AgentName,
    reg: AgentRegistration,
    options: AgentOptions,
    now: Timestamp,
) -> Result<Agent, StoreError> {
    let conn = ctx.conn();
    let agent = match load(conn, ns, name)? {
        Some(mut a) => {
            a.capabilities = reg.capabilities;
            a.slots = reg.slots;
            a.metadata = reg.metadata;
            a.status = AgentStatus::Active;
            a.last_heartbeat = now;
            a.implicit = false;
            a
        }
        None => new_agent(conn, ns, name, reg, options, now)?,
    };
    save(conn, &agent)?;
    ctx.log(&agent_event(EventType::AgentRegistered, &agent, now))?;
    with_running(ctx.conn(), agent)
}

fn touch(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    name: &AgentName,
    capabilities: Option<Vec<Capability>>,
    options: AgentOptions,
    now: Timestamp,
) -> Result<Agent, StoreError> {
    let conn = ctx.conn();
    let (agent, logged) = match load(conn, ns, name)? {
        Some(mut a) => {
            let back = a.status == AgentStatus::Gone;
            if back {
                a.status = AgentStatus::Active;
            }
            a.last_heartbeat = now;
            (a, back.then_some(EventType::AgentBack))
        }
        None => {
            let reg = AgentRegistration {
                capabilities: capabilities.unwrap_or_default(),
                slots: DEFAULT_SLOTS,
                metadata: serde_json::Value::Null,
            };
            let agent = Agent {
                implicit: true,
                ..new_agent(conn, ns, name, reg, options, now)?
            };
            (agent, Some(EventType::AgentRegistered))
        }
    };
    save(conn, &agent)?;
    if let Some(kind) = logged {
        ctx.log(&agent_event(kind, &agent, now))?;
    }
    with_running(ctx.conn(), agent)
}

/// Loads a registered agent, changes it, stores it, logs the event `f` names (if any) at `now`
/// and returns its view.
fn change(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    name: &AgentName,
    now: Timestamp,
    f: impl FnOnce(&mut Agent) -> Option<EventType>,
) -> Result<Agent, StoreError> {
    let conn = ctx.conn();
    let mut agent = require(conn, ns, name)?;
    let logged = f(&mut agent);
    save(conn, &agent)?;
    if let Some(kind) = logged {
        ctx.log(&agent_event(kind, &agent, now))?;
    }
    with_running(ctx.conn(), agent)
}

fn expire(ctx: &mut WriteCtx<'_>, now: Timestamp, timeout_ms: u64) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
    let timeout = i64::try_from(timeout_ms).unwrap_or(i64::MAX);
    let mut silent = silent_since(ctx.conn(), now.as_millis().saturating_sub(timeout))?;
    // The exact rule of `MemoryStore` (the index bound above only narrows), in its order.
    silent.retain(|a| a.last_heartbeat.add_millis(timeout_ms) <= now);
    silent.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut out = Vec::with_capacity(silent.len());
    for mut agent in silent {
        agent.status = AgentStatus::Gone;
        save(ctx.conn(), &agent)?;
        ctx.log(&agent_event(EventType::AgentGone, &agent, now))?;
        let reason = format!("agent {} stopped heartbeating", agent.name);
        let released = release_all(ctx, &agent.namespace, &agent.name, now, &reason)?;
        out.push((with_running(ctx.conn(), agent)?, released));
    }
    Ok(out)
}

fn forget(
    ctx: &mut WriteCtx<'_>,
    now: Timestamp,
    silent_since: Timestamp,
    limit: usize,
) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
    let agents = forgettable(ctx.conn(), silent_since.as_millis(), limit)?;
    let mut out = Vec::with_capacity(agents.len());
    for agent in agents {
        let agent = with_running(ctx.conn(), agent)?;
        let released = remove(ctx, &agent.namespace, &agent.name, now)?.unwrap_or_default();
        out.push((agent, released));
    }
    Ok(out)
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn register_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        registration: AgentRegistration,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.writer
            .run(move |ctx| register(ctx, &ns, &name, registration, options, now))
            .await
    }

    async fn touch_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        capabilities: Option<Vec<Capability>>,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.writer
            .run(move |ctx| touch(ctx, &ns, &name, capabilities, options, now))
            .await
    }

    async fn heartbeat_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.writer
            .run(move |ctx| {
                change(ctx, &ns, &name, now, |a| {
                    let back = a.status == AgentStatus::Gone;
                    if back {
                        a.status = AgentStatus::Active;
                    }
                    a.last_heartbeat = now;
                    back.then_some(EventType::AgentBack)
                })
            })
            .await
    }

    async fn get_agent(&self, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.readers.snapshot(move |conn| view(conn, &ns, &name)).await
    }

    async fn list_agents(&self, ns: &Namespace) -> Result<Vec<Agent>, StoreError> {
        let ns = ns.clone();
        self.readers.run(move |conn| list(conn, &ns)).await
    }

    async fn drain_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.writer
            .run(move |ctx| {
                change(ctx, &ns, &name, now, |a| {
                    let draining = a.status != AgentStatus::Draining;
                    a.status = AgentStatus::Draining;
                    a.last_heartbeat = a.last_heartbeat.max(now);
                    draining.then_some(EventType::AgentDraining)
                })
            })
            .await
    }

    async fn delete_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        let (ns, name) = (ns.clone(), name.clone());
        self.writer
            .run(move |ctx| remove(ctx, &ns, &name, now)?.ok_or_else(|| agent_not_found(&name)))
            .await
    }

    async fn expire_agents(&self, now: Timestamp, timeout_ms: u64) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        self.writer.run(move |ctx| expire(ctx, now, timeout_ms)).await
    }

    async fn forget_agents(
        &self,
        now: Timestamp,
        silent_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        self.writer.run(move |ctx| forget(ctx, now, silent_since, limit)).await
    }
}

#[cfg(test)]
mod tests {
    use super::{COUNT, FORGETTABLE, LIST, SILENT};
    use crate::migrations::plans::assert_uses;

    /// Listing agents counts each one's running tasks through the index, and the sweep for
    /// silent agents never reads those already gone.
    #[test]
    fn agent_queries_use_their_index() {
        assert_uses(LIST, "tasks_running_by_agent");
        assert_uses(LIST, "sqlite_autoindex_agents_1");
        assert_uses(SILENT, "agents_silent");
        assert_uses(FORGETTABLE, "agents_forgettable");
        assert_uses(COUNT, "sqlite_autoindex_agents_1");
    }
}
