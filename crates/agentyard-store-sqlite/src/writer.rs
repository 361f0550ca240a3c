//! The single writer: one OS thread owns the only read-write connection and commits the commands
//! it receives in groups.
//!
//! The loop blocks for one command, then takes whatever else is already waiting (up to
//! [`MAX_GROUP`]) and runs them all in one `BEGIN IMMEDIATE … COMMIT`, each inside its own
//! `SAVEPOINT`: a command that fails (a version conflict, a constraint) rolls back to its
//! savepoint and fails alone, the others go on. Callers are answered only after the `COMMIT`
//! returned, so an acknowledged write is in the WAL; if the `COMMIT` fails, every command of the
//! group fails with that error. Under load the groups grow by themselves, so the cost of a
//! commit (and of its fsync with `Durability::Full`) is shared by everyone who was waiting.
//!
//! With one writer there is never a second writer to be `SQLITE_BUSY` against.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;

use agentyard_core::{Namespace, QueueName, Task, TaskStatus};
use agentyard_store::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::counts::{Counts, Deltas};
use crate::error::sql_error;
use crate::tasks;

/// Most commands committed together. Bounds the latency one group adds to the next.
pub(crate) const MAX_GROUP: usize = 512;

/// Commands that may wait for the writer; beyond that, senders wait (asynchronously).
const QUEUE_CAPACITY: usize = 8 * MAX_GROUP;

/// What a command sees while it runs: the connection, inside the group's transaction, and the
/// counts as they will be if everything before it commits.
pub(crate) struct WriteCtx<'a> {
    conn: &'a Connection,
    counts: &'a Counts,
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

    pub(crate) fn insert(&mut self, task: &Task) -> Result<(), StoreError> {
        tasks::insert(self.conn, task)?;
        self.deltas.record(&task.namespace, &task.queue, None, task.status);
        Ok(())
    }

    /// Stores a changed task that had status `before`.
    pub(crate) fn update(&mut self, before: TaskStatus, task: &Task) -> Result<(), StoreError> {
        tasks::update(self.conn, task)?;
        self.deltas
            .record(&task.namespace, &task.queue, Some(before), task.status);
        Ok(())
    }
}

type Op<R> = Box<dyn FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send>;

/// A command with its reply handle, its result type erased so one channel carries them all.
trait Job: Send {
    /// Runs the command and keeps its outcome. Returns whether it succeeded.
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> bool;
    /// Answers the caller: with the kept outcome if the group committed, else with its error.
    fn answer(self: Box<Self>, group: Result<(), &StoreError>);
}

struct Pending<R> {
    op: Option<Op<R>>,
    outcome: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R: Send> Job for Pending<R> {
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
}

/// The handle the store holds: sends commands to the writer thread.
pub(crate) struct Writer {
    /// `None` only while dropping: closing the channel is what stops the thread.
    commands: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn start(conn: Connection, counts: Counts) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("agentyard-sqlite-writer".into())
            .spawn(move || write_loop(conn, counts, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self {
            commands: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `op` in the writer's next group and returns its outcome once the group committed.
    pub(crate) async fn run<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        let stopped = || StoreError::Unavailable("the SQLite writer has stopped".into());
        let commands = self.commands.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            op: Some(Box::new(op)),
            outcome: None,
            reply,
        });
        commands.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    /// Closes the channel and waits for the thread to finish the commands already sent, so the
    /// database is closed (and checkpointed) when the store is gone: a reopen right after finds
    /// everything and no second writer.
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

fn write_loop(conn: Connection, counts: Counts, mut commands: mpsc::Receiver<Box<dyn Job>>) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = commands.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_group(&conn, &counts, &mut group);
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
    }
    tracing::debug!("the SQLite writer stops: the store was dropped");
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(sql_error)
}

/// Runs one group in one transaction. Returns the count changes of the commands that
/// succeeded, or the error that kept the group from committing.
fn commit_group(conn: &Connection, counts: &Counts, group: &mut [Box<dyn Job>]) -> Result<Deltas, StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let outcome = run_commands(conn, counts, group).and_then(|deltas| exec(conn, "COMMIT").map(|()| deltas));
    if outcome.is_err()
        && !conn.is_autocommit()
        && let Err(e) = exec(conn, "ROLLBACK")
    {
        tracing::error!(error = %e, "rolling back a failed SQLite commit group failed");
    }
    outcome
}

fn run_commands(conn: &Connection, counts: &Counts, group: &mut [Box<dyn Job>]) -> Result<Deltas, StoreError> {
    let mut committed = Deltas::default();
    for job in group.iter_mut() {
        exec(conn, "SAVEPOINT command")?;
        let mut ctx = WriteCtx {
            conn,
            counts,
            group: &committed,
            deltas: Deltas::default(),
        };
        // A panic in one command (a bug) must not take the writer, and with it the store, down.
        let ok = catch_unwind(AssertUnwindSafe(|| job.run(&mut ctx))).unwrap_or_else(|_| {
            tracing::error!("a command panicked in the SQLite writer; it is rolled back, its group goes on");
            false
        });
        let deltas = ctx.deltas;
        if ok {
            exec(conn, "RELEASE command")?;
            committed.merge(deltas);
        } else if conn.is_autocommit() {
            // On some errors (I/O, disk full, out of memory) SQLite rolls back the whole
            // transaction itself: the commands before this one are gone too.
            return Err(StoreError::Unavailable(
                "SQLite aborted the transaction after an error; nothing of this commit group was stored".into(),
            ));
        } else {
            exec(conn, "ROLLBACK TO command")?;
            exec(conn, "RELEASE command")?;
        }
    }
    Ok(committed)
}
