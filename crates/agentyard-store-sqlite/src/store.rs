//! [`SqliteStore`]: the `Store` trait on SQLite. Writes (claims included) become commands for
//! the writer; reads go to the reader pool. The semantics are those of `MemoryStore`,
//! step for step: only where the data lives differs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use agentyard_core::api::QueueStats;
use agentyard_core::{
    Applied, LeaseToken, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use agentyard_store::{Claim, CreateOptions, Created, Page, Store, StoreError, TaskFilter};
use async_trait::async_trait;

use crate::checkpoint::Checkpointer;
use crate::connection::open_writer;
use crate::counts::Counts;
use crate::lock::StoreLock;
use crate::migrations::migrate;
use crate::readers::Readers;
use crate::tasks;
use crate::writer::{CommitStats, WriteCtx, Writer};
use crate::{Durability, SqliteOptions};

/// A store in one SQLite file. See the crate docs for how it writes and what survives a crash.
pub struct SqliteStore {
    // Field order is drop order: the writer finishes its queue and closes the database last.
    pub(crate) readers: Readers,
    counts: Counts,
    pub(crate) writer: Writer,
    path: PathBuf,
    durability: Durability,
    /// Let go last, once the database is closed.
    _lock: StoreLock,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, brings its schema up to date and starts the
    /// checkpoint thread and the reader pool. Blocking: call it at startup, not on a hot path.
    ///
    /// Only one store may have a database open: while this one is, opening it again (in this
    /// process or another) fails, naming the file (see `lock.rs`).
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let lock = StoreLock::take(&path)?;
        let mut conn = open_writer(&path, options.durability)?;
        migrate(&mut conn)?;
        let counts = Counts::load(&conn)?;
        let readers = Readers::open(path.clone(), options.readers)?;
        let checkpointer = Checkpointer::start(&path, options.durability)?;
        let writer = Writer::start(
            conn,
            counts.clone(),
            checkpointer,
            options.durability == Durability::Full,
        )?;
        tracing::info!(path = %path.display(), durability = %options.durability, readers = options.readers.max(1), "opened the SQLite store");
        Ok(SqliteStore {
            readers,
            counts,
            writer,
            path,
            durability: options.durability,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many commit groups the writer ran and how many commands they held (for metrics).
    pub fn commit_stats(&self) -> CommitStats {
        self.writer.stats()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tasks(
        &self,
        ns: &Namespace,
        tasks: Vec<NewTask>,
        options: CreateOptions,
        now: Timestamp,
    ) -> Result<Vec<Created>, StoreError> {
        let ns = ns.clone();
        self.writer
            .run_checked(move |ctx| create(ctx, &ns, tasks, options, now))
            .await
    }

    async fn get_task(&self, ns: &Namespace, id: TaskId) -> Result<Task, StoreError> {
        let ns = ns.clone();
        self.readers.run(move |conn| tasks::load(conn, &ns, id)).await
    }

    async fn list_tasks(
        &self,
        ns: &Namespace,
        filter: &TaskFilter,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (ns, filter) = (ns.clone(), filter.clone());
        self.readers
            .run(move |conn| tasks::list(conn, &ns, &filter, after, limit))
            .await
    }

    async fn apply(
        &self,
        ns: &Namespace,
        id: TaskId,
        command: TaskCommand,
        now: Timestamp,
    ) -> Result<Task, StoreError> {
        let ns = ns.clone();
        self.writer
            .run_checked(move |ctx| apply(ctx, &ns, id, command, now))
            .await
    }

    async fn apply_many(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        now: Timestamp,
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        let ns = ns.clone();
        // One writer command, so one transaction, whatever the other callers do: each item
        // checks before it writes, so one refused item leaves the others alone.
        self.writer
            .run_checked(move |ctx| Ok(apply_each(ctx, &ns, commands, now)))
            .await
    }

    async fn apply_then_claim(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<(Vec<Result<Task, StoreError>>, Vec<Task>), StoreError> {
        let (ns, claim) = (ns.clone(), claim.clone());
        // One writer command: one transaction for the completions and the claim.
        self.writer
            .run_checked(move |ctx| {
                let applied = apply_each(ctx, &ns, commands, now);
                let claimed = claim_tasks(ctx, &ns, &claim, now)?;
                Ok((applied, claimed))
            })
            .await
    }

    async fn claim_tasks(&self, ns: &Namespace, claim: &Claim, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        let (ns, claim) = (ns.clone(), claim.clone());
        self.writer
            .run_checked(move |ctx| claim_tasks(ctx, &ns, &claim, now))
            .await
    }

    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.writer.run_checked(move |ctx| expire_leases(ctx, now, limit)).await
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.writer.run_checked(move |ctx| promote_due(ctx, now, limit)).await
    }

    async fn next_wakeup(&self) -> Result<Option<Timestamp>, StoreError> {
        self.readers.run(tasks::next_wakeup).await
    }

    async fn redrive_failed(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Task>, StoreError> {
        let (ns, queue) = (ns.clone(), queue.clone());
        self.writer
            .run_checked(move |ctx| redrive_failed(ctx, &ns, &queue, limit, now))
            .await
    }

    fn storage_stats(&self) -> agentyard_store::StorageStats {
        crate::stats::storage_stats(self)
    }

    async fn queue_stats(
        &self,
        ns: &Namespace,
        queue: Option<&QueueName>,
        now: Timestamp,
    ) -> Result<Vec<QueueStats>, StoreError> {
        let counts = self.counts.of_namespace(ns, queue);
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let ns = ns.clone();
        self.readers
            .run(move |conn| {
                counts
                    .into_iter()
                    .map(|(queue, counts)| {
                        let oldest = tasks::oldest_ready(conn, &ns, &queue)?;
                        Ok(QueueStats {
                            queue,
                            counts,
                            depth: counts.depth(),
                            oldest_ready_at: oldest,
                            oldest_ready_age_ms: oldest.map(|o| now.millis_since(o)),
                        })
                    })
                    .collect()
            })
            .await
    }
}

pub(crate) fn create(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    new_tasks: Vec<NewTask>,
    options: CreateOptions,
    now: Timestamp,
) -> Result<Vec<Created>, StoreError> {
    // First pass: resolve idempotency keys (reading the tasks that already exist) and check the
    // depth, changing nothing. This command runs without a savepoint, so nothing may fail once
    // the inserts began.
    enum Planned {
        New(Task),
        /// Stored before under the same key.
        Existing(Task),
        /// The same key as the task planned at this index of this batch.
        SameAs(usize),
    }
    let mut plan: Vec<Planned> = Vec::with_capacity(new_tasks.len());
    let mut batch_keys: HashMap<String, usize> = HashMap::new();
    let mut added: BTreeMap<QueueName, u64> = BTreeMap::new();
    for new in new_tasks {
        if let Some(key) = &new.idempotency_key {
            if let Some(id) = tasks::find_by_idempotency_key(ctx.conn(), ns, key)? {
                plan.push(Planned::Existing(tasks::load(ctx.conn(), ns, id)?));
                continue;
            }
            if let Some(&first) = batch_keys.get(key) {
                plan.push(Planned::SameAs(first));
                continue;
            }
        }
        let task = new.into_task(TaskId::generate(), ns.clone(), now);
        if let Some(key) = &task.idempotency_key {
            batch_keys.insert(key.clone(), plan.len());
        }
        *added.entry(task.queue.clone()).or_default() += 1;
        plan.push(Planned::New(task));
    }
    if let Some(limit) = options.max_queue_depth {
        for (queue, n) in &added {
            let depth = ctx.depth(ns, queue);
            if depth.saturating_add(*n) > limit {
                return Err(StoreError::Backpressure {
                    queue: queue.clone(),
                    depth,
                    limit,
                });
            }
        }
    }
    let mut out: Vec<Created> = Vec::with_capacity(plan.len());
    for item in plan {
        let created = match item {
            Planned::New(task) => {
                ctx.insert(&task)?;
                Created { task, created: true }
            }
            Planned::Existing(task) => Created { task, created: false },
            // Planned earlier in this batch, so already in `out`.
            Planned::SameAs(first) => Created {
                task: out[first].task.clone(),
                created: false,
            },
        };
        out.push(created);
    }
    Ok(out)
}

fn apply(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    id: TaskId,
    command: TaskCommand,
    now: Timestamp,
) -> Result<Task, StoreError> {
    let current = ctx.take_task(ns, id)?;
    let mut task = current.clone();
    match task.apply(command, now) {
        Ok(Applied::Changed) => {
            ctx.update(current.status, &task)?;
            Ok(task)
        }
        Ok(Applied::Unchanged) => {
            ctx.keep(task);
            Ok(current)
        }
        Err(e) => {
            let e = StoreError::from_transition(e, &current);
            ctx.keep(current);
            Err(e)
        }
    }
}

/// Applies each command on its own (see `Store::apply_many`); the outcomes in order.
fn apply_each(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    commands: Vec<(TaskId, TaskCommand)>,
    now: Timestamp,
) -> Vec<Result<Task, StoreError>> {
    commands
        .into_iter()
        .map(|(id, command)| apply(ctx, ns, id, command, now))
        .collect()
}

fn claim_tasks(ctx: &mut WriteCtx<'_>, ns: &Namespace, claim: &Claim, now: Timestamp) -> Result<Vec<Task>, StoreError> {
    let max = usize::try_from(claim.max).unwrap_or(usize::MAX);
    let conn = ctx.conn();
    let mut taken_per_key: HashMap<String, u64> = HashMap::new();
    // Dispatch limits, in claim order: concurrency first (it costs no token), then the rate.
    let admit = |task: &Task| -> Result<bool, StoreError> {
        if let Some(k) = &task.concurrency_key {
            let taken = taken_per_key.get(k).copied().unwrap_or(0);
            if tasks::running_with_key(conn, ns, k)? + taken >= claim.max_concurrent(k) {
                return Ok(false);
            }
        }
        if let Some(k) = &task.rate_limit_key
            && !claim.take_rate_token(k, now)
        {
            return Ok(false);
        }
        if let Some(k) = &task.concurrency_key {
            *taken_per_key.entry(k.clone()).or_default() += 1;
        }
        Ok(true)
    };
    let picked = tasks::claimable(conn, ns, &claim.queue, &claim.capabilities, max, admit)?;
    let mut out = Vec::with_capacity(picked.len());
    for mut task in picked {
        let before = task.status;
        if task
            .claim(&claim.agent, LeaseToken::generate(), claim.lease_ms, now)
            .is_ok()
        {
            ctx.update(before, &task)?;
            out.push(task);
        }
    }
    Ok(out)
}

fn expire_leases(ctx: &mut WriteCtx<'_>, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
    let due = tasks::expired_leases(ctx.conn(), now, limit)?;
    change_each(ctx, due, |t| t.expire_lease(now))
}

fn promote_due(ctx: &mut WriteCtx<'_>, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
    let due = tasks::due_scheduled(ctx.conn(), now, limit)?;
    change_each(ctx, due, |t| t.promote_if_due(now))
}

fn redrive_failed(
    ctx: &mut WriteCtx<'_>,
    ns: &Namespace,
    queue: &QueueName,
    limit: usize,
    now: Timestamp,
) -> Result<Vec<Task>, StoreError> {
    let failed = tasks::failed(ctx.conn(), ns, queue, limit)?;
    change_each(ctx, failed, |t| t.apply(TaskCommand::Redrive, now).is_ok())
}

/// Applies `change` to each task and stores (and returns) those it changed.
fn change_each(
    ctx: &mut WriteCtx<'_>,
    found: Vec<Task>,
    mut change: impl FnMut(&mut Task) -> bool,
) -> Result<Vec<Task>, StoreError> {
    let mut out = Vec::with_capacity(found.len());
    for mut task in found {
        let before: TaskStatus = task.status;
        if change(&mut task) {
            ctx.update(before, &task)?;
            out.push(task);
        }
    }
    Ok(out)
}
