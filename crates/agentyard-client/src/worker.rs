//! [`Worker`]: an agent's claim loop with handlers per queue, the shape of the Python SDK's.
//!
//! ```no_run
//! use agentyard_client::worker::{JobError, Worker};
//! use agentyard_client::Client;
//! use agentyard_core::{AgentName, QueueName};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), agentyard_client::ClientError> {
//! let agent = AgentName::parse("mailer-1").expect("a valid name");
//! let emails = QueueName::parse("emails").expect("a valid name");
//! let report = Worker::new(Client::new("http://127.0.0.1:7070"), agent)
//!     .concurrency(4)
//!     .handle(emails, |job| async move {
//!         let Some(to) = job.task.input.get("to") else {
//!             return Err(JobError::fatal("no recipient")); // dead-lettered, never retried
//!         };
//!         Ok(json!({ "sent_to": to })) // the task's result; JobError::retry(…) retries
//!     })
//!     .run() // until SIGTERM or Ctrl-C, then a graceful shutdown
//!     .await?;
//! println!("{} tasks done", report.completed);
//! # Ok(())
//! # }
//! ```
//!
//! What it does for you:
//! - registers the agent (its capabilities, `slots` = `concurrency`), claims with long polls and
//!   runs up to `concurrency` handlers at once, each a tokio task;
//! - heartbeats every running task's lease (every third of `lease_ms`) and the agent itself, so a
//!   handler may run far longer than the lease; a task whose lease is lost (cancelled, or expired
//!   and given to another agent) shows [`Job::lease_lost`], and its outcome is dropped;
//! - completes a finished task inside the next claim ("done, next": one round trip), or at once
//!   while the loop waits in a long poll;
//! - fails a task on an error: [`JobError::fatal`] sends it to the dead-letter view, anything
//!   else ([`JobError::retry`], a panic) retries after the task's backoff while attempts are left;
//! - shuts down gracefully: drains the agent (a parked claim ends at once), lets running
//!   handlers finish for `shutdown_grace`, then gives the rest back untried
//!   (`POST /v1/tasks/{id}/release`), so other agents get them without an attempt spent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentyard_core::api::{
    ClaimRequest, CompleteItem, FailRequest, FailureReport, HeartbeatRequest, RegisterAgentRequest, ReleaseRequest,
};
use agentyard_core::{AgentName, Capability, LeaseToken, QueueName, Task, TaskId};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::{Client, ClientError, kinds};

/// Why a handler did not finish its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// A short machine-readable kind, e.g. `timeout` (default `error`).
    pub kind: String,
    pub message: String,
    /// False sends the task to the dead-letter view at once.
    pub retryable: bool,
}

impl JobError {
    /// A failure worth another attempt (after the task's backoff, while it has attempts left).
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            kind: "error".to_owned(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can mend: the task goes to the dead-letter view.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            ..Self::retry(message)
        }
    }

    /// The same failure with another kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }
}

/// One claimed task, as its handler gets it.
pub struct Job {
    /// The task as claimed, with its lease.
    pub task: Task,
    lost: Arc<AtomicBool>,
}

impl Job {
    /// True once the lease is gone (the task was cancelled, or its lease expired and it moved
    /// on): whatever the handler returns is then dropped, so it may as well stop.
    pub fn lease_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;
type Handler = Arc<dyn Fn(Job) -> HandlerFuture + Send + Sync>;

/// What a worker did, when its run ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub completed: u64,
    pub failed: u64,
    /// Given back untried at shutdown.
    pub released: u64,
    /// Finished after their lease was lost: the outcome was dropped.
    pub lost: u64,
}

/// An agent's claim loop. See the [module docs](self).
pub struct Worker {
    client: Client,
    agent: AgentName,
    capabilities: Vec<Capability>,
    concurrency: usize,
    lease_ms: u64,
    poll_wait_ms: u64,
    shutdown_grace: Duration,
    handlers: Vec<(QueueName, Handler)>,
}

/// How often the agent itself says it is alive while its handlers run (its liveness timeout is
/// 30 s by default).
const AGENT_BEAT: Duration = Duration::from_secs(5);

/// What one finished handler left behind.
struct Finished {
    id: TaskId,
    token: LeaseToken,
    outcome: Result<Value, JobError>,
    lost: bool,
}

/// The handlers running, the leases they hold, and what is finished but not yet reported.
struct Running {
    tasks: JoinSet<Finished>,
    leases: HashMap<tokio::task::Id, (TaskId, LeaseToken)>,
    done: Vec<CompleteItem>,
    report: WorkerReport,
}

type Joined = Result<(tokio::task::Id, Finished), tokio::task::JoinError>;

impl Worker {
    pub fn new(client: Client, agent: AgentName) -> Self {
        Self {
            client,
            agent,
            capabilities: Vec::new(),
            concurrency: 1,
            lease_ms: 30_000,
            poll_wait_ms: 20_000,
            shutdown_grace: Duration::from_secs(30),
            handlers: Vec::new(),
        }
    }

    /// Runs `handler` for the tasks of `queue`. With several queues, claims take turns.
    pub fn handle<F, Fut>(mut self, queue: QueueName, handler: F) -> Self
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |job| Box::pin(handler(job)));
        self.handlers.push((queue, handler));
        self
    }

    /// Most handlers running at once (default 1); also the agent's `slots`.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.clamp(1, 100);
        self
    }

    /// What this agent can do: it gets only tasks that need no more.
    pub fn capabilities(mut self, capabilities: Vec<Capability>) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Lease length of each claim (default 30 s); heartbeats renew it every third of it.
    pub fn lease_ms(mut self, ms: u64) -> Self {
        self.lease_ms = ms;
        self
    }

    /// How long a claim waits for a task when the queue is empty (default 20 s).
    pub fn poll_wait_ms(mut self, ms: u64) -> Self {
        self.poll_wait_ms = ms;
        self
    }

    /// How long running handlers may take to finish once a shutdown starts (default 30 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run(self) -> Result<WorkerReport, ClientError> {
        self.run_until(stop_signal()).await
    }

    /// Runs until `stop` completes, then shuts down gracefully. An error is one the worker cannot
    /// ride out (a refused registration, a claim the server calls invalid); a server that is
    /// unreachable or busy for a while is retried.
    ///
    /// # Panics
    /// Without a handler ([`Worker::handle`]): there would be nothing to claim for.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<WorkerReport, ClientError> {
        assert!(
            !self.handlers.is_empty(),
            "Worker::run needs at least one handle(queue, handler)"
        );
        let register = RegisterAgentRequest {
            capabilities: Some(self.capabilities.clone()),
            slots: u32::try_from(self.concurrency).ok(),
            metadata: None,
        };
        self.client.register_agent(&self.agent, &register).await?;
        let mut stop = std::pin::pin!(stop);
        let mut r = Running {
            tasks: JoinSet::new(),
            leases: HashMap::new(),
            done: Vec::new(),
            report: WorkerReport::default(),
        };
        let mut turn = 0usize;
        let mut errors = 0u32;
        let mut beat = tokio::time::interval(AGENT_BEAT);
        'claims: loop {
            // A free slot, or the stop, or a finished handler to account for.
            while r.tasks.len() >= self.concurrency {
                tokio::select! {
                    () = &mut stop => break 'claims,
                    Some(joined) = r.tasks.join_next_with_id() => self.settle(joined, &mut r).await,
                    _ = beat.tick() => self.beat().await,
                }
            }
            let (queue, handler) = &self.handlers[turn % self.handlers.len()];
            turn += 1;
            let free = self.concurrency - r.tasks.len();
            let mut req = ClaimRequest::new(self.agent.clone());
            req.capabilities = Some(self.capabilities.clone());
            req.max = Some(u32::try_from(free.min(100)).unwrap_or(1));
            req.wait_ms = Some(self.poll_wait_ms);
            req.lease_ms = Some(self.lease_ms);
            let sent = std::mem::take(&mut r.done);
            req.complete = (!sent.is_empty()).then(|| sent.clone());
            let claim = self.client.claim(queue, &req);
            let mut claim = std::pin::pin!(claim);
            let answer = loop {
                tokio::select! {
                    answer = &mut claim => break answer,
                    () = &mut stop => {
                        // The claim is dropped: its completions go out in the shutdown instead.
                        r.done.extend(sent);
                        break 'claims;
                    }
                    Some(joined) = r.tasks.join_next_with_id() => {
                        // Finished while the claim waits: complete it now rather than later.
                        self.settle(joined, &mut r).await;
                        let now = std::mem::take(&mut r.done);
                        self.complete_now(now).await;
                    }
                    _ = beat.tick() => self.beat().await,
                }
            };
            let answer = match answer {
                Ok(answer) => {
                    errors = 0;
                    answer
                }
                Err(e) if passing(&e) => {
                    r.done.extend(sent);
                    errors += 1;
                    let pause = Duration::from_millis((250u64 << errors.min(5)).min(5_000));
                    tracing::warn!(agent = %self.agent, error = %e, ?pause, "claim failed; retrying");
                    tokio::select! {
                        () = &mut stop => break 'claims,
                        () = tokio::time::sleep(pause) => continue 'claims,
                    }
                }
                Err(e) => {
                    r.done.extend(sent);
                    let report = self.shut_down(r).await;
                    tracing::error!(agent = %self.agent, error = %e, ?report, "the worker stops");
                    return Err(e);
                }
            };
            for outcome in answer.completed.unwrap_or_default() {
                if let Some(problem) = outcome.error {
                    tracing::warn!(agent = %self.agent, task = %outcome.id, detail = %problem.detail, "a completion was refused");
                }
            }
            for task in answer.tasks {
                let lease = (
                    task.id,
                    task.lease
                        .as_ref()
                        .map(|l| l.token.clone())
                        .unwrap_or_else(|| LeaseToken::new("")),
                );
                let handle = r.tasks.spawn(self.job(handler.clone(), task));
                r.leases.insert(handle.id(), lease);
            }
        }
        Ok(self.shut_down(r).await)
    }

    /// The handler of one task, with its lease heartbeats beside it.
    fn job(&self, handler: Handler, task: Task) -> impl Future<Output = Finished> + Send + 'static {
        let client = self.client.clone();
        let lease_ms = self.lease_ms;
        async move {
            let id = task.id;
            let token = task
                .lease
                .as_ref()
                .map(|l| l.token.clone())
                .unwrap_or_else(|| LeaseToken::new(""));
            let lost = Arc::new(AtomicBool::new(false));
            let job = Job {
                task,
                lost: lost.clone(),
            };
            let mut work = std::pin::pin!(handler(job));
            let mut beats = tokio::time::interval(Duration::from_millis((lease_ms / 3).max(50)));
            beats.tick().await;
            let outcome = loop {
                tokio::select! {
                    outcome = &mut work => break outcome,
                    _ = beats.tick(), if !lost.load(Ordering::Relaxed) => {
                        let req = HeartbeatRequest { lease_token: token.clone(), lease_ms: Some(lease_ms), progress: None };
                        if let Err(e) = client.heartbeat(id, &req).await
                            && e.problem().is_some_and(|p| p.kind == kinds::LEASE_CONFLICT || p.kind == kinds::NOT_FOUND)
                        {
                            tracing::warn!(task = %id, "the lease is lost: the task's outcome will be dropped");
                            lost.store(true, Ordering::Relaxed);
                        }
                    }
                }
            };
            Finished {
                id,
                token,
                outcome,
                lost: lost.load(Ordering::Relaxed),
            }
        }
    }

    /// Accounts for a finished handler: a result waits in `done` for the next claim, a failure is
    /// reported at once.
    async fn settle(&self, joined: Joined, r: &mut Running) {
        let (id, token, outcome) = match joined {
            Ok((handle, finished)) => {
                r.leases.remove(&handle);
                if finished.lost {
                    r.report.lost += 1;
                    return;
                }
                (finished.id, finished.token, finished.outcome)
            }
            Err(e) => {
                let Some((id, token)) = r.leases.remove(&e.id()) else {
                    return;
                };
                if e.is_cancelled() {
                    return;
                }
                tracing::error!(agent = %self.agent, task = %id, error = %e, "a handler panicked");
                (
                    id,
                    token,
                    Err(JobError::retry(format!("the handler panicked: {e}")).kind("panic")),
                )
            }
        };
        match outcome {
            Ok(result) => {
                r.report.completed += 1;
                r.done.push(CompleteItem {
                    id,
                    lease_token: token,
                    result: Some(result),
                    artifacts: None,
                });
            }
            Err(e) => {
                r.report.failed += 1;
                let req = FailRequest {
                    lease_token: token,
                    error: FailureReport {
                        kind: Some(e.kind),
                        message: e.message,
                        retryable: Some(e.retryable),
                    },
                };
                if let Err(e) = self.client.fail(id, &req).await {
                    tracing::warn!(task = %id, error = %e, "cannot report a failure; the lease runs out and the task retries");
                }
            }
        }
    }

    async fn complete_now(&self, items: Vec<CompleteItem>) {
        if items.is_empty() {
            return;
        }
        if let Err(e) = self.client.complete_many(&items).await {
            tracing::warn!(agent = %self.agent, error = %e, "cannot complete finished tasks; their leases run out and they retry");
        }
    }

    async fn beat(&self) {
        if let Err(e) = self.client.heartbeat_agent(&self.agent).await {
            tracing::debug!(agent = %self.agent, error = %e, "agent heartbeat failed");
        }
    }

    /// Drains the agent, lets running handlers finish for the grace period, completes what is
    /// done, and gives back untried what is not.
    async fn shut_down(&self, mut r: Running) -> WorkerReport {
        if let Err(e) = self.client.drain_agent(&self.agent).await {
            tracing::debug!(agent = %self.agent, error = %e, "cannot drain the agent");
        }
        let grace = tokio::time::sleep(self.shutdown_grace);
        let mut grace = std::pin::pin!(grace);
        while !r.tasks.is_empty() {
            tokio::select! {
                Some(joined) = r.tasks.join_next_with_id() => self.settle(joined, &mut r).await,
                () = &mut grace => break,
            }
        }
        let done = std::mem::take(&mut r.done);
        self.complete_now(done).await;
        r.tasks.abort_all();
        for (_, (id, token)) in r.leases.drain() {
            match self.client.release(id, &ReleaseRequest::new(token)).await {
                Ok(_) => r.report.released += 1,
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "cannot give a task back; its lease runs out and it retries")
                }
            }
        }
        tracing::info!(agent = %self.agent, report = ?r.report, "the worker stopped");
        r.report
    }
}

/// A claim failure worth waiting out: the server unreachable, busy or briefly unavailable.
fn passing(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(_) => true,
        ClientError::Api { status, .. } => status.as_u16() == 429 || status.is_server_error(),
        _ => false,
    }
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
