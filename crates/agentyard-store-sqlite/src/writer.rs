//! The single writer: one read-write connection, and every change committed through it in
//! groups.
//!
//! A caller puts its command in the waiting queue. If nobody holds the connection, it takes it
//! and commits one group of whatever is waiting (up to [`MAX_GROUP`] commands, its own among
//! them) on its own thread; if commands are still waiting after that, it starts a relay on the
//! runtime's blocking pool, which commits groups until none is left. If somebody holds the
//! connection, the caller just waits: the holder looks at the queue after letting go. So at low
//! load a command is committed on its caller's thread with no hand-off (against a writer thread,
//! two thread wake-ups saved per command: one request at a time, creates went from 5,000 to
//! 6,700 per second on this 2-core machine, BENCHMARKS.md), while under load the relay is the
//! writer and the groups grow with the load; and no caller ever commits more than one group, so
//! none waits out the others' load. A commit that waits for an fsync (`Durability::Full`) runs
//! in `block_in_place`, so the async runtime moves the caller's other work elsewhere. The
//! checkpoint a commit may call for when the write-ahead log passed its limit (`checkpoint.rs`)
//! is never run by a caller: the relay runs it, before its next group.
//!
//! A group runs in one `BEGIN IMMEDIATE … COMMIT`. A command that fails (a version conflict, a
//! lease mismatch) fails alone: task commands check everything before they write
//! ([`Guard::CheckFirst`]), the others run inside a `SAVEPOINT` rolled back on error. Callers are
//! answered only after the `COMMIT` returned, so an acknowledged write is in the WAL; if the
//! `COMMIT` fails, every command of the group fails with that error. The cost of a commit (and
//! of its fsync with `Durability::Full`) is shared by everyone in the group.
//!
//! With one writer there is never a second writer to be `SQLITE_BUSY` against.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use agentyard_core::event::{NewEvent, task_event};
use agentyard_core::{Namespace, QueueName, Task, TaskId, TaskStatus};
use agentyard_store::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::checkpoint::{Checkpointer, reset_wal_pages, take_wal_pages};
use crate::counts::{Counts, Deltas};
use crate::error::sql_error;
use crate::events;
use crate::running::RunningTasks;
use crate::tasks;

/// Most commands committed together. Bounds the latency one group adds to the next.
pub(crate) const MAX_GROUP: usize = 512;

/// What a command sees while it runs: the connection, inside the group's transaction, and the
/// counts as they will be if everything before it commits.
pub(crate) struct WriteCtx<'a> {
    conn: &'a Connection,
    counts: &'a Counts,
    running: &'a mut RunningTasks,
    /// Tasks written by this group so far, to forget if it does not commit.
    touched: &'a mut Vec<TaskId>,
    /// Changes of the commands of this group that succeeded so far.
    group: &'a Deltas,
    /// Changes of this command.
    deltas: Deltas,
}

impl WriteCtx<'_> {
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// Waiting tasks of a queue, counting what this group did so far.
    pub(crate) fn depth(&self, ns: &Namespace, queue: &QueueName) -> u64 {
        self.counts.depth(ns, queue, &[self.group, &self.deltas])
    }

    /// The task as stored: from the running tasks the writer keeps if it is one, else from its
    /// row. Hand it back with [`WriteCtx::keep`] if it is not written.
    pub(crate) fn take_task(&mut self, ns: &Namespace, id: TaskId) -> Result<Task, StoreError> {
        match self.running.take(ns, id) {
            Some(task) => Ok(task),
            None => tasks::load(self.conn, ns, id),
        }
    }

    /// Hands back a task taken with [`WriteCtx::take_task`] and left as it was.
    pub(crate) fn keep(&mut self, task: Task) {
        self.running.keep(task);
    }

    /// Refuses to write once SQLite ended the group's transaction on its own (it does after
    /// some I/O, disk-full or out-of-memory errors): a write now would be committed at once,
    /// outside the group, while the group itself fails. A command of several items (a batch
    /// completion) meets this on the item after the one that failed.
    fn in_transaction(&self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Err(StoreError::Unavailable(
                "SQLite rolled back the transaction after an error; nothing more is written in it".into(),
            ));
        }
        Ok(())
    }

    /// Appends an event to the log, in this command's transaction (see `events.rs`).
    pub(crate) fn log(&mut self, event: &NewEvent) -> Result<(), StoreError> {
        self.in_transaction()?;
        events::append(self.conn, event)
    }

    /// The event of a task's change, if it logs one: every write of a task goes through here,
    /// once per change (a task read back, from its row or from the running tasks, carries none).
    fn log_task(&mut self, task: &Task) -> Result<(), StoreError> {
        match task_event(task, task.updated_at) {
            Some(event) => events::append(self.conn, &event),
            None => Ok(()),
        }
    }

    pub(crate) fn insert(&mut self, task: &Task) -> Result<(), StoreError> {
        self.in_transaction()?;
        self.touched.push(task.id);
        tasks::insert(self.conn, task)?;
        self.log_task(task)?;
        self.deltas.record(&task.namespace, &task.queue, None, task.status);
        Ok(())
    }

    /// Stores a changed task that had status `before`, with the event of its change.
    pub(crate) fn update(&mut self, before: TaskStatus, task: &Task) -> Result<(), StoreError> {
        self.in_transaction()?;
        self.touched.push(task.id);
        self.running.forget(task.id);
        tasks::update(self.conn, before, task)?;
        self.log_task(task)?;
        if task.status == TaskStatus::Running {
            self.running.keep(task.clone());
        }
        self.deltas
            .record(&task.namespace, &task.queue, Some(before), task.status);
        Ok(())
    }
}

type Op<R> = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send>;

/// How a command is kept apart from the others of its group when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// Inside its own `SAVEPOINT`: an error after a write rolls back this command alone.
    Savepoint,
    /// No savepoint: the command finds every reason to fail before its first write, so a
    /// failure leaves nothing to undo. Should one come after a write anyway (an I/O error, a bug),
    /// the whole group is rolled back and every command of it fails, so nothing half done is
    /// ever committed. Saves the savepoint's statements and, above all, the copy of every page
    /// the command touches into the savepoint journal: ~10 % of the writer's time (BENCHMARKS.md).
    CheckFirst,
}

/// A command with its reply handle, its result type erased so one queue holds them all.
trait Job: Send {
    fn guard(&self) -> Guard;
    /// Runs the command and keeps its outcome. Returns whether it succeeded.
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool;
    /// Answers the caller: with the kept outcome if the group committed, else with its error.
    fn answer(self: Box<Self>, group: Result<(), &StoreError>);
    /// The command's own error, once it ran and failed.
    fn error(&self) -> Option<&StoreError>;
}

struct Pending<R> {
    guard: Guard,
    op: Option<Op<R>>,
    outcome: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R: Send> Job for Pending<R> {
    fn guard(&self) -> Guard {
        self.guard
    }

    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool {
        let Some(op) = self.op.take() else { return false };
        let outcome = op(ctx);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, group: Result<(), &StoreError>) {
        let answer = match group {
            Ok(()) => self
                .outcome
                .unwrap_or_else(|| Err(StoreError::Other("the command panicked in the SQLite writer".into()))),
            Err(e) => Err(e.clone()),
        };
        // The caller may have stopped waiting (its future was dropped); the write stands anyway.
        let _ = self.reply.send(answer);
    }

    fn error(&self) -> Option<&StoreError> {
        self.outcome.as_ref().and_then(|o| o.as_ref().err())
    }
}

/// How much grouping the writer achieved since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions the writer committed (or tried to).
    pub groups: u64,
    /// Commands run in them; `commands / groups` is the mean group size.
    pub commands: u64,
    /// Pages the commits appended to the write-ahead log (2 KiB each in a database this store
    /// created).
    pub wal_pages: u64,
}

#[derive(Debug, Default)]
struct Tally {
    groups: AtomicU64,
    commands: AtomicU64,
    wal_pages: AtomicU64,
}

/// The handle the store holds. A caller commits its own command (and whatever waits with it) if
/// it finds the connection free; a relay on a blocking thread commits what is left (see the
/// module docs).
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

struct Shared {
    commits_block: bool,
    /// Commands waiting for a group.
    waiting: Mutex<VecDeque<Box<dyn Job>>>,
    /// The connection and what goes with it; held by whoever commits a group. `None` once closed.
    conn: Mutex<Option<Connected>>,
    /// A relay is committing (or about to): callers need not start another.
    relay: AtomicBool,
    /// The write-ahead log passed its limit: the relay checkpoints it before its next group.
    checkpoint_due: AtomicBool,
    tally: Tally,
}

struct Connected {
    conn: Connection,
    counts: Counts,
    running: RunningTasks,
    checkpointer: Checkpointer,
}

impl Writer {
    /// `commits_block`: a commit waits for the disk (an fsync, `Durability::Full`), so the
    /// caller committing tells the async runtime it blocks.
    pub(crate) fn start(
        conn: Connection,
        counts: Counts,
        checkpointer: Checkpointer,
        commits_block: bool,
    ) -> Result<Self, StoreError> {
        let shared = Shared {
            commits_block,
            waiting: Mutex::new(VecDeque::new()),
            conn: Mutex::new(Some(Connected {
                conn,
                counts,
                running: RunningTasks::default(),
                checkpointer,
            })),
            relay: AtomicBool::new(false),
            checkpoint_due: AtomicBool::new(false),
            tally: Tally::default(),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    pub(crate) fn stats(&self) -> CommitStats {
        let tally = &self.shared.tally;
        CommitStats {
            groups: tally.groups.load(Ordering::Relaxed),
            commands: tally.commands.load(Ordering::Relaxed),
            wal_pages: tally.wal_pages.load(Ordering::Relaxed),
        }
    }

    /// Runs `op` in the writer's next group, inside a savepoint, and returns its outcome once
    /// the group committed.
    pub(crate) async fn run<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        self.run_guarded(Guard::Savepoint, op).await
    }

    /// Like [`Writer::run`] for a command that checks everything before it writes (see
    /// [`Guard::CheckFirst`]): it runs without a savepoint.
    pub(crate) async fn run_checked<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        self.run_guarded(Guard::CheckFirst, op).await
    }

    async fn run_guarded<R, F>(&self, guard: Guard, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            guard,
            op: Some(Box::new(op)),
            outcome: None,
            reply,
        });
        lock(&self.shared.waiting).push_back(job);
        Shared::commit_one_group(&self.shared);
        // Answered already if this caller committed the group; else whoever holds the
        // connection answers once the group holding this command committed.
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

impl Shared {
    /// A caller's turn: if nobody holds the connection, commits one group of the waiting
    /// commands (its own is among them) and, if more are waiting, makes sure a relay commits
    /// them. A caller never commits more than one group, so no request waits on other callers'
    /// load. If somebody holds the connection, returns at once: that one looks at the waiting
    /// commands after letting go.
    fn commit_one_group(shared: &Arc<Shared>) {
        let mut held = match shared.conn.try_lock() {
            Ok(held) => held,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let mut commit = || match held.as_mut() {
            Some(connected) => {
                let mut group = shared.take_group();
                if !group.is_empty() {
                    shared.commit(connected, &mut group);
                }
            }
            None => fail_all(&mut lock(&shared.waiting), "the SQLite store is closed"),
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if shared.commits_block && multi_thread {
            // An fsync takes milliseconds: the runtime hands this worker's other tasks to
            // another thread meanwhile, so no connection stalls behind the disk.
            tokio::task::block_in_place(commit);
        } else {
            commit();
        }
        drop(held);
        // Commands that came in meanwhile (and found the connection held) are the relay's, and
        // so is a checkpoint this commit called for: it may take seconds, and this is the
        // caller's thread, an async runtime worker.
        if !lock(&shared.waiting).is_empty() || shared.checkpoint_due.load(Ordering::Acquire) {
            Shared::start_relay(shared);
        }
    }

    /// Starts a relay unless one runs: on the runtime's blocking pool, or right here outside a
    /// runtime.
    fn start_relay(shared: &Arc<Shared>) {
        if shared.relay.swap(true, Ordering::AcqRel) {
            return;
        }
        let relay = shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || relay.relay());
            }
            Err(_) => relay.relay(),
        }
    }

    /// Commits groups until nothing waits, and runs the checkpoint a commit called for. Under
    /// steady load this is the writer: callers queue their commands and it commits them in
    /// groups as large as the load makes them.
    fn relay(&self) {
        loop {
            {
                let mut held = lock(&self.conn);
                match held.as_mut() {
                    Some(connected) => {
                        self.checkpoint_if_due(connected);
                        self.commit_until_none_waits(connected);
                    }
                    None => {
                        // Closed: the connection's close checkpointed the whole log.
                        self.checkpoint_due.store(false, Ordering::Release);
                        fail_all(&mut lock(&self.waiting), "the SQLite store is closed");
                    }
                }
            }
            self.relay.store(false, Ordering::Release);
            // A command (or a checkpoint) may have come in after the last look, seen the flag
            // still up and left it to this relay.
            let idle = lock(&self.waiting).is_empty() && !self.checkpoint_due.load(Ordering::Acquire);
            if idle || self.relay.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// Off the callers' threads only: the relay, or the store closing.
    fn commit_until_none_waits(&self, connected: &mut Connected) {
        loop {
            let mut group = self.take_group();
            if group.is_empty() {
                return;
            }
            self.commit(connected, &mut group);
            self.checkpoint_if_due(connected);
        }
    }

    fn checkpoint_if_due(&self, connected: &mut Connected) {
        if self.checkpoint_due.swap(false, Ordering::AcqRel) {
            connected.checkpointer.checkpoint_at_limit(&connected.conn);
        }
    }

    fn take_group(&self) -> Vec<Box<dyn Job>> {
        let mut waiting = lock(&self.waiting);
        let n = waiting.len().min(MAX_GROUP);
        waiting.drain(..n).collect()
    }

    fn commit(&self, connected: &mut Connected, group: &mut Vec<Box<dyn Job>>) {
        let Connected {
            conn,
            counts,
            running,
            checkpointer,
        } = connected;
        reset_wal_pages();
        // Commands run inside their own `catch_unwind`; this one is for a bug in the writer
        // itself, which must neither leave a transaction open nor a written-but-undone task in
        // the cache.
        let outcome =
            catch_unwind(AssertUnwindSafe(|| commit_group(conn, counts, running, group))).unwrap_or_else(|_| {
                tracing::error!("the SQLite writer panicked committing a group; the group is rolled back");
                if !conn.is_autocommit()
                    && let Err(e) = exec(conn, "ROLLBACK")
                {
                    tracing::error!(error = %e, "rolling back after a panic failed");
                }
                *running = RunningTasks::default();
                Err(StoreError::Other(
                    "the SQLite writer failed on a bug; nothing of this commit group was stored".into(),
                ))
            });
        // Read on this thread, right after this commit: the hook reported it here, if at all.
        let pages = take_wal_pages();
        self.tally.groups.fetch_add(1, Ordering::Relaxed);
        self.tally.commands.fetch_add(group.len() as u64, Ordering::Relaxed);
        let answer = match outcome {
            Ok(deltas) => {
                // Before answering, so a caller that reads the stats next sees its own write.
                counts.apply(deltas);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, commands = group.len(), "a SQLite commit group failed");
                Err(e)
            }
        };
        for job in group.drain(..) {
            job.answer(answer.as_ref().map(|_| ()));
        }
        // After answering: a checkpoint at the log's limit must not hold back this group, and
        // it runs where `checkpoint_if_due` is called, never on a caller's thread.
        if let Some(pages) = pages {
            let after = checkpointer.after_commit(pages);
            self.tally
                .wal_pages
                .fetch_add(u64::from(after.appended), Ordering::Relaxed);
            if after.at_limit {
                self.checkpoint_due.store(true, Ordering::Release);
            }
        }
    }
}

impl Drop for Writer {
    /// Commits what is still waiting (a caller that stopped waiting still gets its write), then
    /// closes the checkpoint connection and the writer's, last, so the whole log is checkpointed
    /// and removed: a reopen right after finds everything and no second writer. A relay still
    /// running finds the connection gone.
    fn drop(&mut self) {
        let shared = &self.shared;
        let Some(mut connected) = lock(&shared.conn).take() else {
            return;
        };
        shared.commit_until_none_waits(&mut connected);
        let Connected { conn, checkpointer, .. } = connected;
        drop(checkpointer);
        drop(conn);
        let tally = &shared.tally;
        tracing::info!(
            groups = tally.groups.load(Ordering::Relaxed),
            commands = tally.commands.load(Ordering::Relaxed),
            wal_pages = tally.wal_pages.load(Ordering::Relaxed),
            "the SQLite writer stops: the store was closed"
        );
    }
}

/// Locks a mutex whose holder may have panicked. The queue stays consistent whatever happens;
/// a panic while committing is caught in [`Shared::commit`], which rolls the group back, so the
/// connection is never left inside a transaction.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn fail_all(waiting: &mut VecDeque<Box<dyn Job>>, why: &str) {
    let error = StoreError::Unavailable(why.into());
    for job in waiting.drain(..) {
        job.answer(Err(&error));
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(sql_error)
}

/// Runs one group in one transaction. Returns the count changes of the commands that
/// succeeded, or the error that kept the group from committing.
fn commit_group(
    conn: &Connection,
    counts: &Counts,
    running: &mut RunningTasks,
    group: &mut [Box<dyn Job>],
) -> Result<Deltas, StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut touched = Vec::new();
    let outcome = run_commands(conn, counts, running, &mut touched, group)
        .and_then(|deltas| exec(conn, "COMMIT").map(|()| deltas));
    if outcome.is_err() {
        for id in touched {
            running.forget(id);
        }
        if !conn.is_autocommit()
            && let Err(e) = exec(conn, "ROLLBACK")
        {
            tracing::error!(error = %e, "rolling back a failed SQLite commit group failed");
        }
    }
    outcome
}

fn run_commands(
    conn: &Connection,
    counts: &Counts,
    running: &mut RunningTasks,
    touched: &mut Vec<TaskId>,
    group: &mut [Box<dyn Job>],
) -> Result<Deltas, StoreError> {
    let mut committed = Deltas::default();
    for job in group.iter_mut() {
        let touched_before = touched.len();
        let guard = job.guard();
        if guard == Guard::Savepoint {
            exec(conn, "SAVEPOINT command")?;
        }
        let changes_before = conn.total_changes();
        let mut ctx = WriteCtx {
            conn,
            counts,
            running: &mut *running,
            touched: &mut *touched,
            group: &committed,
            deltas: Deltas::default(),
        };
        // A panic in one command (a bug) must not take the writer, and with it the store, down.
        let ok = catch_unwind(AssertUnwindSafe(|| job.run(&mut ctx))).unwrap_or_else(|_| {
            tracing::error!("a command panicked in the SQLite writer; it fails, and its writes are undone");
            false
        });
        let deltas = ctx.deltas;
        if conn.is_autocommit() {
            // On some errors (I/O, disk full, out of memory) SQLite rolls back the whole
            // transaction itself: the commands before this one are gone too, and so is this
            // one's work even if it reports success (a batch whose item met the error).
            return Err(StoreError::Unavailable(
                "SQLite aborted the transaction after an error; nothing of this commit group was stored".into(),
            ));
        }
        if ok {
            if guard == Guard::Savepoint {
                exec(conn, "RELEASE command")?;
            }
            committed.merge(deltas);
        } else if guard == Guard::Savepoint {
            exec(conn, "ROLLBACK TO command")?;
            exec(conn, "RELEASE command")?;
            for id in touched.drain(touched_before..) {
                running.forget(id);
            }
        } else if conn.total_changes() != changes_before {
            // Failed after writing, with no savepoint to undo just this command.
            tracing::error!(
                error = job.error().map(ToString::to_string),
                "a command failed after writing; its commit group is rolled back"
            );
            return Err(StoreError::Unavailable(
                "a command failed halfway through its writes; its commit group was rolled back, nothing of it was \
                 stored"
                    .into(),
            ));
        }
    }
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use agentyard_core::{NewTask, TaskId, Timestamp};
    use serde_json::json;

    use super::*;
    use crate::migrations::migrate;

    fn setup() -> (Connection, Counts) {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        let counts = Counts::load(&conn).expect("counts");
        (conn, counts)
    }

    fn ns() -> Namespace {
        Namespace::default_namespace()
    }

    fn queue() -> QueueName {
        QueueName::parse("q").expect("valid")
    }

    fn task() -> Task {
        NewTask::on(queue(), json!({})).into_task(TaskId::generate(), ns(), Timestamp::from_millis(0))
    }

    type Answer<R> = oneshot::Receiver<Result<R, StoreError>>;

    fn job<R: Send + 'static>(
        op: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, Answer<R>) {
        guarded_job(Guard::Savepoint, op)
    }

    fn guarded_job<R: Send + 'static>(
        guard: Guard,
        op: impl FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, Answer<R>) {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            guard,
            op: Some(Box::new(op) as Op<R>),
            outcome: None,
            reply,
        };
        (Box::new(job), answer)
    }

    /// Runs a group as the writer loop does and returns how it ended.
    fn run_group(conn: &Connection, counts: &Counts, mut group: Vec<Box<dyn Job>>) -> Result<(), StoreError> {
        let outcome =
            commit_group(conn, counts, &mut RunningTasks::default(), &mut group).map(|deltas| counts.apply(deltas));
        for job in group {
            job.answer(outcome.as_ref().map(|_| ()));
        }
        outcome
    }

    fn stored(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
            .expect("count")
    }

    fn depth(counts: &Counts) -> u64 {
        counts.depth(&ns(), &queue(), &[])
    }

    /// The events of the committed changes, as `(subject, type)` in seq order.
    fn logged(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT subject, type FROM events ORDER BY seq")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// A change that is rolled back, alone (its savepoint) or with its group, takes its event
    /// with it; the events of the commands that commit stay, in their order.
    #[test]
    fn a_rolled_back_change_leaves_no_event() {
        use agentyard_core::event::{agent_removed, task_subject};

        let (conn, counts) = setup();
        let (a, b, c, d) = (task(), task(), task(), task());
        let (sa, sc) = (task_subject(a.id), task_subject(c.id));
        let (first, _) = job(move |ctx| ctx.insert(&a));
        let (failing, _) = job(move |ctx| -> Result<(), StoreError> {
            ctx.insert(&b)?;
            let name = agentyard_core::AgentName::parse("w").expect("valid");
            ctx.log(&agent_removed(&ns(), &name, 0, Timestamp::from_millis(0)))?;
            Err(StoreError::Invalid {
                message: "refused".into(),
            })
        });
        let (third, _) = job(move |ctx| ctx.insert(&c));
        run_group(&conn, &counts, vec![first, failing, third]).expect("the group commits");
        let (halfway, _) = guarded_job(Guard::CheckFirst, move |ctx| -> Result<(), StoreError> {
            ctx.insert(&d)?;
            Err(StoreError::Invalid {
                message: "a bug".into(),
            })
        });
        run_group(&conn, &counts, vec![halfway]).expect_err("the group fails");
        let created = "task.created".to_owned();
        assert_eq!(logged(&conn), vec![(sa, created.clone()), (sc, created)]);
    }

    #[test]
    fn a_failed_command_rolls_back_alone() {
        let (conn, counts) = setup();
        let (a, b, c) = (task(), task(), task());
        let (b_id, c_id) = (b.id, c.id);
        let (first, first_answer) = job(move |ctx| ctx.insert(&a));
        // Writes, then fails: its write must vanish, the others' must stay.
        let (failing, failing_answer) = job(move |ctx| {
            ctx.insert(&b)?;
            Err::<(), _>(StoreError::Invalid {
                message: "refused".into(),
            })
        });
        // Sees the first command's insert through the group's pending counts.
        let (third, mut third_answer) = job(move |ctx| {
            let depth = ctx.depth(&ns(), &queue());
            ctx.insert(&c)?;
            Ok(depth)
        });
        run_group(&conn, &counts, vec![first, failing, third]).expect("the group commits");
        assert_eq!(stored(&conn), 2);
        assert!(
            tasks::load(&conn, &ns(), b_id).is_err(),
            "the failed command left nothing"
        );
        assert!(tasks::load(&conn, &ns(), c_id).is_ok());
        assert_eq!(depth(&counts), 2, "the failed command's count change was discarded");
        assert!(first_answer.blocking_recv().expect("answered").is_ok());
        assert_eq!(
            failing_answer.blocking_recv().expect("answered").map_err(|e| e.kind()),
            Err("invalid")
        );
        assert_eq!(third_answer.try_recv().expect("answered").expect("ok"), 1);
    }

    #[test]
    fn a_panicking_command_fails_alone() {
        let (conn, counts) = setup();
        let (a, b) = (task(), task());
        let (first, first_answer) = job(move |ctx| ctx.insert(&a));
        let (panics, panics_answer) = job(move |ctx| -> Result<(), StoreError> {
            ctx.insert(&b)?;
            panic!("a bug");
        });
        run_group(&conn, &counts, vec![first, panics]).expect("the group commits");
        assert_eq!(stored(&conn), 1);
        assert!(first_answer.blocking_recv().expect("answered").is_ok());
        assert_eq!(
            panics_answer.blocking_recv().expect("answered").map_err(|e| e.kind()),
            Err("other")
        );
    }

    #[test]
    fn an_aborted_transaction_fails_the_whole_group() {
        let (conn, counts) = setup();
        let (a, b) = (task(), task());
        let (first, first_answer) = job(move |ctx| ctx.insert(&a));
        // Stands in for SQLite rolling back the whole transaction on an I/O or full-disk error.
        let (aborts, aborts_answer) = job(move |ctx| -> Result<(), StoreError> {
            ctx.insert(&b)?;
            ctx.conn().execute_batch("ROLLBACK").expect("rollback");
            Err(StoreError::Unavailable("disk full".into()))
        });
        let (never, never_answer) = job(move |_| Ok(()));
        let err = run_group(&conn, &counts, vec![first, aborts, never]).expect_err("the group fails");
        assert_eq!(err.kind(), "unavailable");
        assert_eq!(stored(&conn), 0);
        assert_eq!(depth(&counts), 0, "no count change of a failed group is kept");
        for answer in [first_answer, aborts_answer, never_answer] {
            assert_eq!(
                answer.blocking_recv().expect("answered").map_err(|e| e.kind()),
                Err("unavailable")
            );
        }
        // The connection is usable again afterwards.
        let (next, next_answer) = job(move |ctx| ctx.insert(&task()));
        run_group(&conn, &counts, vec![next]).expect("the next group commits");
        assert!(next_answer.blocking_recv().expect("answered").is_ok());
        assert_eq!(depth(&counts), 1);
    }

    /// A batch (as `apply_many` is) whose item meets an error after which SQLite rolled the
    /// transaction back, and which goes on with its other items and reports success: those
    /// items must not be written outside the transaction, and the group fails.
    #[test]
    fn a_batch_that_goes_on_after_an_aborted_transaction_writes_nothing() {
        let (conn, counts) = setup();
        let (a, b) = (task(), task());
        let (batch, batch_answer) = guarded_job(Guard::CheckFirst, move |ctx| {
            let first = ctx.insert(&a);
            // Stands in for an item failing on an I/O error that made SQLite roll back.
            ctx.conn().execute_batch("ROLLBACK").expect("rollback");
            let second = ctx.insert(&b);
            Ok(vec![first, second])
        });
        let err = run_group(&conn, &counts, vec![batch]).expect_err("the group fails");
        assert_eq!(err.kind(), "unavailable");
        assert_eq!(stored(&conn), 0, "nothing was written outside the transaction");
        assert_eq!(depth(&counts), 0);
        let answer = batch_answer.blocking_recv().expect("answered");
        assert_eq!(answer.err().map(|e| e.kind()), Some("unavailable"));
    }

    #[test]
    fn a_checked_command_that_fails_before_writing_fails_alone() {
        let (conn, counts) = setup();
        let (a, c) = (task(), task());
        let (first, first_answer) = guarded_job(Guard::CheckFirst, move |ctx| ctx.insert(&a));
        let (refused, refused_answer) = guarded_job(Guard::CheckFirst, |_| {
            Err::<(), _>(StoreError::Invalid {
                message: "refused".into(),
            })
        });
        let (third, third_answer) = job(move |ctx| ctx.insert(&c));
        run_group(&conn, &counts, vec![first, refused, third]).expect("the group commits");
        assert_eq!(stored(&conn), 2);
        assert_eq!(depth(&counts), 2);
        assert!(first_answer.blocking_recv().expect("answered").is_ok());
        assert_eq!(
            refused_answer.blocking_recv().expect("answered").map_err(|e| e.kind()),
            Err("invalid")
        );
        assert!(third_answer.blocking_recv().expect("answered").is_ok());
    }

    /// Without a savepoint a write cannot be undone alone: the whole group is rolled back and
    /// fails, so nothing half done is committed and nothing is acknowledged.
    #[test]
    fn a_checked_command_that_fails_after_writing_fails_its_group() {
        let (conn, counts) = setup();
        let (a, b) = (task(), task());
        let (first, first_answer) = job(move |ctx| ctx.insert(&a));
        let (halfway, halfway_answer) = guarded_job(Guard::CheckFirst, move |ctx| -> Result<(), StoreError> {
            ctx.insert(&b)?;
            Err(StoreError::Invalid {
                message: "a bug".into(),
            })
        });
        let err = run_group(&conn, &counts, vec![first, halfway]).expect_err("the group fails");
        assert_eq!(err.kind(), "unavailable");
        assert_eq!(stored(&conn), 0);
        assert_eq!(depth(&counts), 0);
        for answer in [first_answer, halfway_answer] {
            assert_eq!(
                answer.blocking_recv().expect("answered").map_err(|e| e.kind()),
                Err("unavailable")
            );
        }
        let (next, next_answer) = guarded_job(Guard::CheckFirst, move |ctx| ctx.insert(&task()));
        run_group(&conn, &counts, vec![next]).expect("the next group commits");
        assert!(next_answer.blocking_recv().expect("answered").is_ok());
    }

    #[test]
    fn a_checked_command_that_panics_after_writing_fails_its_group() {
        let (conn, counts) = setup();
        let b = task();
        let (panics, panics_answer) = guarded_job(Guard::CheckFirst, move |ctx| -> Result<(), StoreError> {
            ctx.insert(&b)?;
            panic!("a bug");
        });
        run_group(&conn, &counts, vec![panics]).expect_err("the group fails");
        assert_eq!(stored(&conn), 0);
        assert!(panics_answer.blocking_recv().expect("answered").is_err());
    }

    /// A task written by a group that does not commit is forgotten by the writer's running
    /// tasks: the next command reads the row, which never changed.
    #[test]
    fn a_rolled_back_claim_is_not_remembered() {
        use agentyard_core::{AgentName, LeaseToken};

        let (conn, counts) = setup();
        let mut running = RunningTasks::default();
        let mut run = |group: Vec<Box<dyn Job>>| {
            let mut group = group;
            let outcome = commit_group(&conn, &counts, &mut running, &mut group).map(|d| counts.apply(d));
            for job in group {
                job.answer(outcome.as_ref().map(|_| ()));
            }
            outcome
        };
        let queued = task();
        let id = queued.id;
        let (insert, _) = job(move |ctx| ctx.insert(&queued));
        run(vec![insert]).expect("commits");
        let claim = move |ctx: &mut WriteCtx<'_>| -> Result<Task, StoreError> {
            let mut task = ctx.take_task(&ns(), id)?;
            let agent = AgentName::parse("w").expect("valid");
            task.claim(&agent, LeaseToken::generate(), 1_000, Timestamp::from_millis(1))
                .expect("claim");
            ctx.update(TaskStatus::Queued, &task)?;
            Ok(task)
        };
        let (claims, _) = guarded_job(Guard::CheckFirst, move |ctx| -> Result<(), StoreError> {
            claim(ctx)?;
            Err(StoreError::Invalid {
                message: "fails after writing".into(),
            })
        });
        run(vec![claims]).expect_err("the group fails");
        let (reads, read) = job(move |ctx| ctx.take_task(&ns(), id));
        run(vec![reads]).expect("commits");
        let task = read.blocking_recv().expect("answered").expect("found");
        assert_eq!(task.status, TaskStatus::Queued, "the claim was never committed");
        // A committed claim is remembered, and read back as written.
        let (claims, claimed) = guarded_job(Guard::CheckFirst, claim);
        run(vec![claims]).expect("commits");
        let claimed = claimed.blocking_recv().expect("answered").expect("claimed");
        let (reads, read) = job(move |ctx| ctx.take_task(&ns(), id));
        run(vec![reads]).expect("commits");
        assert_eq!(read.blocking_recv().expect("answered").expect("found"), claimed);
        assert_eq!(tasks::load(&conn, &ns(), id).expect("row"), claimed);
    }

    /// A batch whose idempotency key names a stored task that cannot be read fails before it
    /// inserts anything, so it fails alone and the rest of its group commits.
    #[test]
    fn a_batch_naming_a_damaged_task_fails_before_writing() {
        use agentyard_store::CreateOptions;

        let (conn, counts) = setup();
        let mut keyed = NewTask::on(queue(), json!({}));
        keyed.idempotency_key = Some("k".into());
        let existing = keyed
            .clone()
            .into_task(TaskId::generate(), ns(), Timestamp::from_millis(0));
        let (insert, _) = job(move |ctx| ctx.insert(&existing));
        run_group(&conn, &counts, vec![insert]).expect("commits");
        conn.execute("UPDATE tasks SET doc = '{' WHERE idempotency_key = 'k'", [])
            .expect("damage the row");
        let batch = vec![NewTask::on(queue(), json!({"new": true})), keyed];
        let (creates, created) = guarded_job(Guard::CheckFirst, move |ctx| {
            crate::store::create(ctx, &ns(), batch, CreateOptions::default(), Timestamp::from_millis(1))
        });
        let (other, other_answer) = guarded_job(Guard::CheckFirst, move |ctx| ctx.insert(&task()));
        run_group(&conn, &counts, vec![creates, other]).expect("the group commits");
        assert_eq!(
            created.blocking_recv().expect("answered").map_err(|e| e.kind()),
            Err("other"),
            "the damaged row is reported"
        );
        assert!(other_answer.blocking_recv().expect("answered").is_ok());
        assert_eq!(
            stored(&conn),
            2,
            "the stored task and the other command's; nothing of the batch"
        );
    }

    /// Many callers on a multi-threaded runtime, with commands that succeed, that fail before
    /// writing, that fail after writing inside a savepoint and (rarely) that fail after writing
    /// without one (failing their whole group): every caller is answered (no command is left
    /// waiting with nobody to commit it), and the database holds exactly the tasks whose insert
    /// was acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_caller_is_answered_and_acknowledged_means_stored() {
        use std::collections::HashSet;
        use std::time::Duration;

        use crate::checkpoint::Checkpointer;
        use crate::connection::open_writer;
        use crate::{Durability, migrations};

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let mut conn = open_writer(&path, Durability::Normal).expect("open");
        migrations::migrate(&mut conn).expect("migrate");
        let counts = Counts::load(&conn).expect("counts");
        let checkpointer = Checkpointer::start(&path, Durability::Normal).expect("checkpointer");
        let writer = Arc::new(Writer::start(conn, counts, checkpointer, false).expect("writer"));

        let mut callers = Vec::new();
        for caller in 0..48u64 {
            let writer = writer.clone();
            callers.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = Vec::new();
                for op in 0..40u64 {
                    let t = task();
                    let id = t.id;
                    let kind = (caller * 7 + op * 13) % 97;
                    type Answer<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;
                    let answer: Answer<'_> = match kind {
                        // Fails after writing, without a savepoint: its whole group fails.
                        0 => Box::pin(writer.run_checked(move |ctx| {
                            ctx.insert(&t)?;
                            Err::<(), _>(StoreError::Invalid {
                                message: "after".into(),
                            })
                        })),
                        // Fails after writing, inside a savepoint: it alone is undone.
                        1..=8 => Box::pin(writer.run(move |ctx| {
                            ctx.insert(&t)?;
                            Err::<(), _>(StoreError::Invalid {
                                message: "after".into(),
                            })
                        })),
                        // Fails before writing.
                        9..=16 => Box::pin(writer.run_checked(move |_| {
                            Err::<(), _>(StoreError::Invalid {
                                message: "before".into(),
                            })
                        })),
                        // Slow: others queue up behind it and must be committed by someone.
                        17..=22 => Box::pin(writer.run_checked(move |ctx| {
                            std::thread::sleep(Duration::from_millis(2));
                            ctx.insert(&t)
                        })),
                        _ if kind % 2 == 0 => Box::pin(writer.run_checked(move |ctx| ctx.insert(&t))),
                        _ => Box::pin(writer.run(move |ctx| ctx.insert(&t))),
                    };
                    let answer = tokio::time::timeout(Duration::from_secs(20), answer)
                        .await
                        .unwrap_or_else(|_| panic!("caller {caller}, command {op}: never answered"));
                    match answer {
                        Ok(()) => acknowledged.push(id),
                        Err(_) => refused.push(id),
                    }
                }
                (acknowledged, refused)
            }));
        }
        let mut acknowledged = HashSet::new();
        let mut refused = HashSet::new();
        for caller in callers {
            let (yes, no) = caller.await.expect("caller");
            acknowledged.extend(yes);
            refused.extend(no);
        }
        let stats = writer.stats();
        drop(Arc::into_inner(writer).expect("the only handle left"));
        let conn = Connection::open(&path).expect("reopen");
        let mut stmt = conn.prepare("SELECT id FROM tasks").expect("prepare");
        let stored: HashSet<TaskId> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .map(|id| TaskId::parse(&id.expect("row")).expect("id"))
            .collect();
        assert_eq!(acknowledged.len() + refused.len(), 48 * 40);
        // A group-failing command takes its group's inserts down with it; most still succeed.
        assert!(
            acknowledged.len() > 48 * 40 / 2,
            "most inserts succeed ({})",
            acknowledged.len()
        );
        assert_eq!(stored, acknowledged, "stored exactly what was acknowledged");
        assert_eq!(stats.commands, 48 * 40);
        assert!(
            stats.groups < stats.commands,
            "some commands shared a group ({stats:?})"
        );
    }

    /// A caller whose commit takes the write-ahead log past its limit is answered without
    /// checkpointing it: the checkpoint runs on the relay's blocking thread, never on the
    /// caller's (here the test's own thread, the current-thread runtime's only worker), and the
    /// log starts over.
    #[tokio::test]
    async fn the_checkpoint_at_the_limit_runs_off_the_callers_thread() {
        use std::time::Duration;

        use crate::checkpoint::Checkpointer;
        use crate::connection::open_writer;
        use crate::{Durability, migrations};

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let mut conn = open_writer(&path, Durability::Normal).expect("open");
        migrations::migrate(&mut conn).expect("migrate");
        let counts = Counts::load(&conn).expect("counts");
        let mut checkpointer = Checkpointer::start(&path, Durability::Normal).expect("checkpointer");
        checkpointer.set_limit(40);
        let ran_on = checkpointer.ran_on.clone();
        let writer = Writer::start(conn, counts, checkpointer, false).expect("writer");
        let caller = std::thread::current().id();
        for _ in 0..100 {
            let t = task();
            writer.run(move |ctx| ctx.insert(&t)).await.expect("insert");
        }
        for _ in 0..500 {
            if !ran_on.lock().expect("record").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let threads = ran_on.lock().expect("record").clone();
        assert!(!threads.is_empty(), "the log passed its limit and was checkpointed");
        assert!(
            threads.iter().all(|t| *t != caller),
            "never on the caller's thread: {threads:?} (caller {caller:?})"
        );
        let stats = writer.stats();
        assert!(stats.wal_pages > 40, "{stats:?}");
    }
}
