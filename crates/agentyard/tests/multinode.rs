//! Many `agentyard serve` nodes on one PostgreSQL, driven by the real client (issue 15): each
//! case runs in a fresh schema of the database named by `AGENTYARD_TEST_POSTGRES_URL` (skipped,
//! and said so, when it is unset), except the PostgreSQL restart, which runs a throwaway cluster
//! of its own so that it never touches the shared one.
//!
//! Nothing here measures throughput: the assertions are exact counts, except the cross-node
//! wake-up latency, which only has to beat the nodes' 1 s periodic re-check (so the wake-up came
//! by the notification).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentyard_client::{Client, ClientError};
use agentyard_core::api::{
    ClaimRequest, CompleteItem, CreateTaskRequest, FailRequest, FailureReport, LimitRequest, RegisterAgentRequest,
    SendMessageRequest,
};
use agentyard_core::message::TopicName;
use agentyard_core::{AgentName, QueueName, Task, TaskId, TaskStatus};
use agentyard_store_postgres::testing::TestSchema;
use serde_json::json;
use support::{Node, list_all, wait_all_listening};

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).expect("valid queue name")
}

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("valid agent name")
}

/// Milliseconds since the epoch on the clock the nodes use (they run on this machine).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The lease token a completion writes into the task's result, so the stored task tells which
/// lease completed it.
fn completion(task: &Task) -> CompleteItem {
    let token = task.lease.as_ref().expect("a claimed task has a lease").token.clone();
    CompleteItem {
        id: task.id,
        result: Some(json!({ "token": token.as_str() })),
        lease_token: token,
        artifacts: None,
    }
}

fn result_token(task: &Task) -> Option<&str> {
    task.result.as_ref()?.get("token")?.as_str()
}

// ---------------------------------------------------------------------------------------------
// 1. Cross-node wake-ups.

/// The wake-up must beat the nodes' 1 s periodic re-check: then the notification delivered it.
const WAKE_BOUND: Duration = Duration::from_millis(900);
/// How long the waiter has been parked when the change is made: just past one re-check (so a
/// re-check-only delivery would take ~950 ms), or well inside the first one.
const LATE: Duration = Duration::from_millis(1_050);
const EARLY: Duration = Duration::from_millis(300);

/// A claim long-polling (10 s) on `client`: the tasks it got and the moment (epoch ms) it ended.
fn park_claim(client: &Client, queue: &QueueName, name: &str) -> tokio::task::JoinHandle<(Vec<Task>, Instant, i64)> {
    let (client, queue) = (client.clone(), queue.clone());
    let mut req = ClaimRequest::new(agent(name));
    req.wait_ms = Some(10_000);
    req.lease_ms = Some(30_000);
    tokio::spawn(async move {
        let r = client.claim(&queue, &req).await.expect("claim");
        (r.tasks, Instant::now(), now_ms())
    })
}

struct Latencies(Vec<(String, Duration)>);

impl Latencies {
    fn add(&mut self, what: impl Into<String>, latency: Duration) {
        let what = what.into();
        eprintln!("cross-node wake-up: {what}: {:.1} ms", latency.as_secs_f64() * 1e3);
        self.0.push((what, latency));
    }

    fn check(&self) {
        let table: Vec<String> = self
            .0
            .iter()
            .map(|(w, l)| format!("{w}: {:.1} ms", l.as_secs_f64() * 1e3))
            .collect();
        eprintln!("cross-node wake-up latencies:\n  {}", table.join("\n  "));
        let slow: Vec<_> = self.0.iter().filter(|(_, l)| *l >= WAKE_BOUND).collect();
        assert!(
            slow.is_empty(),
            "woken later than {WAKE_BOUND:?}, so not by the notification: {slow:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_wakes_waiters_on_another_at_once() {
    let Some(schema) = TestSchema::create("multinode wake-ups").await else {
        return;
    };
    let nodes = Node::start_many(&schema.url, 2, &[]);
    wait_all_listening(&nodes).await;
    let (a, b) = (&nodes[0].client, &nodes[1].client);
    let q = queue("wake");
    let mut lat = Latencies(Vec::new());

    // Created through A, claimed by a claimer parked on B.
    for (round, offset) in [EARLY, LATE, LATE].into_iter().enumerate() {
        let parked = park_claim(b, &q, "claimer-b");
        tokio::time::sleep(offset).await;
        assert!(
            !parked.is_finished(),
            "the claim on B ended before anything was created"
        );
        let sent = Instant::now();
        let created = a
            .create_task(&CreateTaskRequest::new(q.clone(), json!({ "round": round })))
            .await
            .expect("create through A");
        let (tasks, at, _) = parked.await.expect("claimer");
        assert_eq!(
            tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![created.id],
            "B's claimer got the task A created"
        );
        lat.add(format!("create on A → claim on B (parked {offset:?})"), at - sent);
        a.complete_many(&[completion(&tasks[0])])
            .await
            .expect("complete through A");
    }

    // Scheduled through A: promoted by whichever node's timer comes first, claimed on B.
    {
        let parked = park_claim(b, &q, "claimer-b");
        let mut req = CreateTaskRequest::new(q.clone(), json!({ "promoted": true }));
        req.delay_ms = Some(LATE.as_millis() as u64);
        let created = a.create_task(&req).await.expect("create through A");
        assert_eq!(created.status, TaskStatus::Scheduled);
        let (tasks, _, at_ms) = parked.await.expect("claimer");
        assert_eq!(tasks.first().map(|t| t.id), Some(created.id));
        let late = at_ms - created.run_at.as_millis();
        lat.add("promotion of a task scheduled on A → claim on B", ms(late));
        a.complete_many(&[completion(&tasks[0])]).await.expect("complete");
    }

    // Leased through A for 500 ms and left to expire: re-queued, claimed on B.
    {
        let created = a
            .create_task(&CreateTaskRequest::new(q.clone(), json!({ "expires": true })))
            .await
            .expect("create");
        let mut req = ClaimRequest::new(agent("vanishing-a"));
        req.lease_ms = Some(500);
        let held = a.claim(&q, &req).await.expect("claim through A").tasks;
        assert_eq!(held.first().map(|t| t.id), Some(created.id));
        let expires_at = held[0].lease.as_ref().expect("lease").expires_at;
        let parked = park_claim(b, &q, "claimer-b");
        let (tasks, _, at_ms) = parked.await.expect("claimer");
        assert_eq!(tasks.first().map(|t| t.id), Some(created.id));
        assert_eq!(tasks[0].attempt, 2, "the expired attempt counted once");
        lat.add(
            "lease taken through A expires → claim on B",
            ms(at_ms - expires_at.as_millis()),
        );
        a.complete_many(&[completion(&tasks[0])]).await.expect("complete");
    }

    // Dead-lettered, then redriven through A: claimed on B.
    {
        let created = a
            .create_task(&CreateTaskRequest::new(q.clone(), json!({ "redriven": true })))
            .await
            .expect("create");
        let held = a
            .claim(&q, &ClaimRequest::new(agent("failing-a")))
            .await
            .expect("claim")
            .tasks;
        assert_eq!(held.first().map(|t| t.id), Some(created.id));
        let failed = a
            .fail(
                created.id,
                &FailRequest {
                    lease_token: held[0].lease.as_ref().expect("lease").token.clone(),
                    error: FailureReport {
                        kind: None,
                        message: "for the test".into(),
                        retryable: Some(false),
                    },
                },
            )
            .await
            .expect("fail");
        assert_eq!(failed.status, TaskStatus::Failed);
        let parked = park_claim(b, &q, "claimer-b");
        tokio::time::sleep(LATE).await;
        assert!(!parked.is_finished(), "nothing was ready for B");
        let sent = Instant::now();
        a.redrive(created.id).await.expect("redrive through A");
        let (tasks, at, _) = parked.await.expect("claimer");
        assert_eq!(tasks.first().map(|t| t.id), Some(created.id));
        lat.add("redrive on A → claim on B", at - sent);
        a.complete_many(&[completion(&tasks[0])]).await.expect("complete");
    }

    // Inbox long polls on B, messages sent through A: direct, topic, broadcast.
    let reader = agent("reader");
    let topic: TopicName = queue("news");
    a.register_agent(&reader, &RegisterAgentRequest::default())
        .await
        .expect("register through A");
    a.subscribe(&reader, &topic).await.expect("subscribe through A");
    let sends: Vec<(&str, Duration, SendMessageRequest)> = vec![
        (
            "direct",
            EARLY,
            SendMessageRequest::to_agent(reader.clone(), json!({ "n": 1 })),
        ),
        (
            "direct",
            LATE,
            SendMessageRequest::to_agent(reader.clone(), json!({ "n": 2 })),
        ),
        (
            "topic",
            LATE,
            SendMessageRequest::to_topic(topic.clone(), json!({ "n": 3 })),
        ),
        ("broadcast", LATE, SendMessageRequest::broadcast(json!({ "n": 4 }))),
    ];
    let mut cursor = 0;
    for (kind, offset, send) in sends {
        let read = {
            let (b, reader) = (b.clone(), reader.clone());
            tokio::spawn(async move {
                let page = b
                    .inbox(&reader, Some(cursor), Some(10_000), None)
                    .await
                    .expect("inbox read on B");
                (page, Instant::now())
            })
        };
        tokio::time::sleep(offset).await;
        assert!(
            !read.is_finished(),
            "the inbox read on B ended before anything was sent"
        );
        let sent = Instant::now();
        let message = a.send_message(&send).await.expect("send through A");
        let (page, at) = read.await.expect("reader");
        assert_eq!(
            page.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            vec![message.id],
            "B's reader got the {kind} message sent through A"
        );
        cursor = page.cursor;
        lat.add(
            format!("{kind} message sent on A → inbox long poll on B (parked {offset:?})"),
            at - sent,
        );
    }
    a.ack(&reader, cursor).await.expect("ack through A");
    assert_eq!(
        b.inbox(&reader, None, None, None).await.expect("read on B").messages,
        Vec::new(),
        "the acknowledgement through A holds on B"
    );

    // The same inbox as a Server-Sent-Events stream on B.
    let mut stream = b.inbox_stream(&reader, None).await.expect("stream on B");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let streamer = tokio::spawn(async move {
        while let Ok(Some(m)) = stream.next().await {
            if tx.send((m, Instant::now())).is_err() {
                return;
            }
        }
    });
    let sends = [
        (
            "direct",
            SendMessageRequest::to_agent(reader.clone(), json!({ "n": 5 })),
        ),
        ("topic", SendMessageRequest::to_topic(topic.clone(), json!({ "n": 6 }))),
        ("broadcast", SendMessageRequest::broadcast(json!({ "n": 7 }))),
    ];
    for (kind, send) in sends {
        // Just past a re-check of the stream (it re-checks 1 s after it last looked).
        tokio::time::sleep(LATE).await;
        assert!(rx.try_recv().is_err(), "nothing was sent yet");
        let sent = Instant::now();
        let message = a.send_message(&send).await.expect("send through A");
        let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the stream on B delivered within 10 s")
            .expect("the stream is open");
        assert_eq!(got.id, message.id, "the {kind} message");
        lat.add(format!("{kind} message sent on A → SSE stream on B"), at - sent);
    }
    streamer.abort();

    lat.check();
    drop(nodes);
    drop(schema);
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// The drain workers shared by the cases below.

/// What the workers of a drain saw acknowledged.
#[derive(Default)]
struct Ledger {
    /// idempotency key → task id, for every create a node acknowledged.
    created: Mutex<HashMap<String, TaskId>>,
    /// (task id, lease token, node index) of every task a claim handed out.
    claimed: Mutex<Vec<(TaskId, String, usize)>>,
    /// (task id, lease token) of every completion a node acknowledged.
    completed: Mutex<Vec<(TaskId, String)>>,
}

impl Ledger {
    fn completed_count(&self) -> usize {
        self.completed.lock().expect("ledger").len()
    }

    fn created_count(&self) -> usize {
        self.created.lock().expect("ledger").len()
    }
}

/// One agent draining a queue with "done, next" claims: each claim completes what the previous
/// one handed out. When its node does not answer at all (killed), it moves to the next node and
/// carries on with the leases it holds; when the node answers 503, it waits and asks again.
struct Worker {
    agent: AgentName,
    clients: Arc<Vec<Client>>,
    node: usize,
    queue: QueueName,
    max: u32,
    lease_ms: u64,
    wait_ms: u64,
}

#[derive(Debug, Default)]
struct WorkerReport {
    agent: String,
    /// Tasks handed out, by node index.
    by_node: BTreeMap<usize, usize>,
    failovers: usize,
    unavailable: usize,
    /// Completions a node refused (the lease had moved on), by problem type.
    refused: BTreeMap<String, usize>,
    /// Errors other than 503 and no answer.
    errors: Vec<String>,
    /// Leases still held when it stopped.
    held: usize,
}

impl Worker {
    async fn run(self, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) -> WorkerReport {
        let mut report = WorkerReport {
            agent: self.agent.to_string(),
            ..WorkerReport::default()
        };
        let mut node = self.node;
        let mut held: Vec<CompleteItem> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let mut req = ClaimRequest::new(self.agent.clone());
            req.max = Some(self.max);
            req.wait_ms = Some(self.wait_ms);
            req.lease_ms = Some(self.lease_ms);
            if !held.is_empty() {
                req.complete = Some(held.clone());
            }
            match self.clients[node].claim(&self.queue, &req).await {
                Ok(answer) => {
                    if let Some(outcomes) = answer.completed {
                        assert_eq!(outcomes.len(), held.len(), "one outcome per completion");
                        let mut completed = ledger.completed.lock().expect("ledger");
                        for (item, outcome) in held.iter().zip(outcomes) {
                            assert_eq!(item.id, outcome.id, "outcomes in request order");
                            match outcome.error {
                                None => completed.push((item.id, item.lease_token.to_string())),
                                Some(p) => *report.refused.entry(p.kind).or_default() += 1,
                            }
                        }
                    }
                    let mut claimed = ledger.claimed.lock().expect("ledger");
                    for task in &answer.tasks {
                        let token = task.lease.as_ref().expect("lease").token.to_string();
                        claimed.push((task.id, token, node));
                    }
                    *report.by_node.entry(node).or_default() += answer.tasks.len();
                    held = answer.tasks.iter().map(completion).collect();
                }
                Err(ClientError::Transport(_)) => {
                    node = (node + 1) % self.clients.len();
                    report.failovers += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) if e.status() == Some(reqwest::StatusCode::SERVICE_UNAVAILABLE) => {
                    report.unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    report.errors.push(e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        report.held = held.len();
        report
    }
}

fn spawn_workers(
    n: usize,
    clients: &Arc<Vec<Client>>,
    q: &QueueName,
    (max, lease_ms, wait_ms): (u32, u64, u64),
    ledger: &Arc<Ledger>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<WorkerReport>> {
    (0..n)
        .map(|i| {
            let worker = Worker {
                agent: agent(&format!("worker-{i:02}")),
                clients: clients.clone(),
                node: i % clients.len(),
                queue: q.clone(),
                max,
                lease_ms,
                wait_ms,
            };
            tokio::spawn(worker.run(ledger.clone(), stop.clone()))
        })
        .collect()
}

async fn join_workers(workers: Vec<tokio::task::JoinHandle<WorkerReport>>) -> Vec<WorkerReport> {
    let mut reports = Vec::new();
    for w in workers {
        reports.push(w.await.expect("worker"));
    }
    for r in &reports {
        eprintln!(
            "{}: handed out by node {:?}, failovers {}, 503s {}, refused {:?}, errors {}, held {}",
            r.agent,
            r.by_node,
            r.failovers,
            r.unavailable,
            r.refused,
            r.errors.len(),
            r.held
        );
    }
    reports
}

/// Waits until `succeeded` tasks of `q` succeeded, asking `client`; fails after `within`.
async fn wait_succeeded(client: &Client, q: &QueueName, succeeded: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let last = match client.queue_stats(q).await {
            Ok(stats) if stats.counts.succeeded == succeeded => return,
            Ok(stats) => format!("{stats:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "not all {succeeded} tasks succeeded within {within:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nothing acknowledged lost, nothing completed twice: every created task is there once and
/// succeeded, and each acknowledged completion is the one the task records.
fn check_exactly_once(all: &[Task], ledger: &Ledger, tasks: usize) {
    assert_eq!(
        all.len(),
        tasks,
        "one task per idempotency key: none lost, none duplicated"
    );
    let by_id: HashMap<TaskId, &Task> = all.iter().map(|t| (t.id, t)).collect();
    let created = ledger.created.lock().expect("ledger").clone();
    assert_eq!(created.len(), tasks, "every create was acknowledged in the end");
    for (key, id) in &created {
        let task = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged task {id} ({key}) is lost"));
        assert_eq!(task.status, TaskStatus::Succeeded, "task {id} ({key})");
    }
    let completed = ledger.completed.lock().expect("ledger").clone();
    let mut tokens_by_task: HashMap<TaskId, HashSet<&str>> = HashMap::new();
    for (id, token) in &completed {
        tokens_by_task.entry(*id).or_default().insert(token);
        let task = by_id
            .get(id)
            .unwrap_or_else(|| panic!("a completion was acknowledged for unknown task {id}"));
        assert_eq!(
            result_token(task),
            Some(token.as_str()),
            "task {id}: the acknowledged completion is the one the task records"
        );
    }
    let twice: Vec<_> = tokens_by_task.iter().filter(|(_, t)| t.len() > 1).collect();
    assert!(twice.is_empty(), "completed under two leases: {twice:?}");
    assert_eq!(
        completed.len(),
        tokens_by_task.len(),
        "one acknowledged completion per task at most"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. 10,000 tasks drained over 3 nodes, exactly once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_drain_over_three_nodes_exactly_once() {
    const TASKS: usize = 10_000;
    const WORKERS: usize = 12;
    let Some(schema) = TestSchema::create("multinode drain").await else {
        return;
    };
    let nodes = Node::start_many(&schema.url, 3, &[]);
    wait_all_listening(&nodes).await;
    let clients = Arc::new(nodes.iter().map(|n| n.client.clone()).collect::<Vec<_>>());
    let q = queue("drain");
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // Parked before the tasks exist: B's and C's claimers are woken by A's notifications.
    let workers = spawn_workers(WORKERS, &clients, &q, (10, 60_000, 500), &ledger, &stop);
    for batch in 0..TASKS / 1_000 {
        let reqs: Vec<CreateTaskRequest> = (0..1_000)
            .map(|i| CreateTaskRequest::new(q.clone(), json!({ "i": batch * 1_000 + i })))
            .collect();
        let answer = clients[0].create_tasks(&reqs).await.expect("batch create through A");
        assert_eq!(answer.created, 1_000);
        let mut created = ledger.created.lock().expect("ledger");
        for (i, task) in answer.tasks.iter().enumerate() {
            created.insert(format!("{}", batch * 1_000 + i), task.id);
        }
    }
    wait_succeeded(&clients[0], &q, TASKS as u64, Duration::from_secs(50)).await;
    stop.store(true, Ordering::SeqCst);
    let reports = join_workers(workers).await;
    eprintln!("drained {TASKS} tasks over 3 nodes in {:?}", started.elapsed());

    for r in &reports {
        assert!(r.errors.is_empty(), "{}: {:?}", r.agent, r.errors);
        assert!(r.refused.is_empty(), "{}: completions refused {:?}", r.agent, r.refused);
        assert_eq!(r.failovers + r.unavailable, 0, "{}: every node answered", r.agent);
        assert_eq!(r.held, 0, "{}: held a lease at the end", r.agent);
    }
    // No lease expired (60 s), so each task was handed out once and completed once.
    let claimed = ledger.claimed.lock().expect("ledger").clone();
    assert_eq!(claimed.len(), TASKS, "handed out exactly once each");
    assert_eq!(claimed.iter().map(|c| c.0).collect::<HashSet<_>>().len(), TASKS);
    let mut per_node = [0usize; 3];
    for (_, _, node) in &claimed {
        per_node[*node] += 1;
    }
    eprintln!("handed out by node a, b, c: {per_node:?}");
    assert_eq!(ledger.completed_count(), TASKS, "every completion acknowledged once");

    for node in &nodes {
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(
            (
                stats.counts.succeeded,
                stats.counts.queued,
                stats.counts.running,
                stats.depth
            ),
            (TASKS as u64, 0, 0, 0),
            "{}: {stats:?}",
            node.name
        );
        assert_eq!(
            stats.counts.failed + stats.counts.cancelled + stats.counts.scheduled,
            0,
            "{}: {stats:?}",
            node.name
        );
    }
    let all = list_all(&clients[2], &q).await;
    check_exactly_once(&all, &ledger, TASKS);
    assert!(all.iter().all(|t| t.attempt == 1), "every task ran once");
    drop(nodes);
    drop(schema);
}

// ---------------------------------------------------------------------------------------------
// 3. A keyed rate limit holds for the whole fleet.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_rate_limit_holds_for_the_whole_fleet() {
    const BURST: u32 = 5;
    const PER_MINUTE: u32 = 60;
    const INTERVAL_MS: i64 = 60_000 / PER_MINUTE as i64;
    const TASKS: usize = 40;
    /// Claimers stop this long after the first task was handed out: half-way between two
    /// tokens, away from a boundary.
    const WINDOW_MS: i64 = 4_500;
    let Some(schema) = TestSchema::create("multinode rate limit").await else {
        return;
    };
    let nodes = Node::start_many(&schema.url, 3, &[]);
    wait_all_listening(&nodes).await;
    let clients: Vec<Client> = nodes.iter().map(|n| n.client.clone()).collect();
    let set = clients[0]
        .set_limit(
            "openai",
            &LimitRequest {
                rate_per_minute: Some(PER_MINUTE),
                burst: Some(BURST),
                max_concurrent: None,
            },
        )
        .await
        .expect("PUT /v1/limits/openai through A");
    // The other nodes hear of it and list it (they serve GET /v1/limits from what they loaded).
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let limits = node.client.limits().await.expect("GET /v1/limits");
            if limits.contains(&set) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not list the limit set through node-a: {limits:?}",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let q = queue("rated");
    let stop = Arc::new(AtomicBool::new(false));
    // (lease acquired_at in epoch ms, task id, node index)
    let handed: Arc<Mutex<Vec<(i64, TaskId, usize)>>> = Arc::default();
    let mut claimers = Vec::new();
    for i in 0..6 {
        let node = i % 3;
        let (client, q, stop, handed) = (clients[node].clone(), q.clone(), stop.clone(), handed.clone());
        claimers.push(tokio::spawn(async move {
            let mut req = ClaimRequest::new(agent(&format!("rated-{i}")));
            req.max = Some(2);
            req.wait_ms = Some(1_500);
            req.lease_ms = Some(120_000);
            while !stop.load(Ordering::SeqCst) {
                let tasks = client.claim(&q, &req).await.expect("claim").tasks;
                let mut handed = handed.lock().expect("handed");
                for t in tasks {
                    let acquired = t.lease.as_ref().expect("lease").acquired_at.as_millis();
                    handed.push((acquired, t.id, node));
                }
            }
        }));
    }
    let reqs: Vec<CreateTaskRequest> = (0..TASKS)
        .map(|i| {
            let mut r = CreateTaskRequest::new(q.clone(), json!({ "i": i }));
            r.rate_limit_key = Some("openai".into());
            r
        })
        .collect();
    clients[1].create_tasks(&reqs).await.expect("batch create through B");

    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(first) = handed.lock().expect("handed").iter().map(|h| h.0).min() {
            break first;
        }
        assert!(Instant::now() < deadline, "no task was handed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    while now_ms() < first + WINDOW_MS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped_at = now_ms();
    stop.store(true, Ordering::SeqCst);
    for c in claimers {
        c.await.expect("claimer");
    }

    let mut handed = handed.lock().expect("handed").clone();
    handed.sort();
    let ids: HashSet<TaskId> = handed.iter().map(|h| h.1).collect();
    assert_eq!(ids.len(), handed.len(), "no task handed out twice");
    let t0 = handed[0].0;
    let mut per_node = [0usize; 3];
    for h in &handed {
        per_node[h.2] += 1;
    }
    let allowed = |t: i64| i64::from(BURST) + (t - t0) / INTERVAL_MS;
    let by_stop = handed.iter().filter(|h| h.0 <= stopped_at).count() as i64;
    eprintln!(
        "rate limit {PER_MINUTE}/min, burst {BURST}, over 3 nodes: {} handed out (by node a, b, c: {per_node:?}) \
         in {} ms; by the stop at {} ms: {by_stop}, the bucket allows {}; offsets from the first (ms): {:?}",
        handed.len(),
        handed.last().map_or(0, |h| h.0 - t0),
        stopped_at - t0,
        allowed(stopped_at),
        handed.iter().map(|h| h.0 - t0).collect::<Vec<_>>()
    );
    // Never more than the bucket allows: the k-th task handed out (from 1) came no earlier than
    // the bucket had k tokens for the whole fleet. Exact: the lease's acquired_at is the moment
    // the token was taken.
    for (k, h) in handed.iter().enumerate() {
        assert!(
            (k as i64) < allowed(h.0),
            "task {} was handed out at +{} ms as number {}, but {PER_MINUTE}/min with a burst of \
             {BURST} allows {} by then",
            h.1,
            h.0 - t0,
            k + 1,
            allowed(h.0)
        );
    }
    // And not fewer: claimers were waiting all along, so every token that came until the stop
    // was taken, but for the one that may have come in the last moment.
    assert!(
        by_stop >= allowed(stopped_at) - 1,
        "only {by_stop} handed out in {} ms, the bucket allows {}",
        stopped_at - t0,
        allowed(stopped_at)
    );
    for node in &nodes {
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(
            (stats.counts.running, stats.counts.queued),
            (handed.len() as u64, (TASKS - handed.len()) as u64),
            "{}",
            node.name
        );
    }
    // The limit is stored: a node started now has it from the start.
    let late = Node::start("node-d", &schema.url, &[]);
    let limits = late.client.limits().await.expect("GET /v1/limits on a new node");
    assert!(limits.contains(&set), "node-d lists {limits:?}");
    drop(late);
    drop(nodes);
    drop(schema);
}

// ---------------------------------------------------------------------------------------------
// 3b. A concurrency key holds for the whole fleet.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_key_holds_for_the_whole_fleet() {
    const MAX: u64 = 2;
    const TASKS: usize = 30;
    let Some(schema) = TestSchema::create("multinode concurrency key").await else {
        return;
    };
    let nodes = Node::start_many(&schema.url, 3, &[]);
    wait_all_listening(&nodes).await;
    let clients: Vec<Client> = nodes.iter().map(|n| n.client.clone()).collect();
    let set = clients[2]
        .set_limit(
            "repo",
            &LimitRequest {
                rate_per_minute: None,
                burst: None,
                max_concurrent: Some(MAX),
            },
        )
        .await
        .expect("PUT /v1/limits/repo through C");
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !node.client.limits().await.expect("limits").contains(&set) {
            assert!(Instant::now() < deadline, "{} does not list the limit", node.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let q = queue("keyed");
    let reqs: Vec<CreateTaskRequest> = (0..TASKS)
        .map(|i| {
            let mut r = CreateTaskRequest::new(q.clone(), json!({ "i": i }));
            r.concurrency_key = Some("repo".into());
            r
        })
        .collect();
    clients[0].create_tasks(&reqs).await.expect("batch create through A");

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for i in 0..6 {
        let client = clients[i % 3].clone();
        let (q, running, most, done) = (q.clone(), running.clone(), most.clone(), done.clone());
        claimers.push(tokio::spawn(async move {
            let mut req = ClaimRequest::new(agent(&format!("keyed-{i}")));
            req.max = Some(2);
            req.wait_ms = Some(300);
            req.lease_ms = Some(60_000);
            while done.load(Ordering::SeqCst) < TASKS {
                let tasks = client.claim(&q, &req).await.expect("claim").tasks;
                if tasks.is_empty() {
                    continue;
                }
                // Counted from the answer to the completion: inside the time the fleet holds
                // them as running, so more than MAX here would be more than MAX there.
                let now = running.fetch_add(tasks.len(), Ordering::SeqCst) + tasks.len();
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
                running.fetch_sub(tasks.len(), Ordering::SeqCst);
                let items: Vec<CompleteItem> = tasks.iter().map(completion).collect();
                let answer = client.complete_many(&items).await.expect("complete");
                assert_eq!(answer.completed, items.len(), "{answer:?}");
                done.fetch_add(items.len(), Ordering::SeqCst);
            }
        }));
    }
    let watch = tokio::time::timeout(Duration::from_secs(50), async {
        for c in claimers {
            c.await.expect("claimer");
        }
    });
    watch.await.expect("the keyed tasks drained within 50 s");
    let most = most.load(Ordering::SeqCst);
    eprintln!("concurrency key max {MAX} over 3 nodes: at most {most} held at once");
    assert!(
        most as u64 <= MAX,
        "{most} tasks of the key ran at once over the fleet; the limit is {MAX}"
    );
    for node in &nodes {
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(stats.counts.succeeded, TASKS as u64, "{}: {stats:?}", node.name);
    }
    drop(nodes);
    drop(schema);
}

// ---------------------------------------------------------------------------------------------
// Exact across nodes: idempotency keys, optimistic versions, lease expiry, agents' liveness.

/// The same idempotency key sent through the three nodes at the same moment makes one task (and
/// one message): every answer is the original; an update based on one version succeeds through
/// one node only; leases expiring while every node runs its expiry loop are expired once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_versions_and_expiry_are_exact_across_nodes() {
    const KEYS: usize = 40;
    let Some(schema) = TestSchema::create("multinode exactness").await else {
        return;
    };
    let nodes = Node::start_many(&schema.url, 3, &[]);
    wait_all_listening(&nodes).await;
    let clients: Vec<Client> = nodes.iter().map(|n| n.client.clone()).collect();
    let q = queue("exact");

    // Creates: every key through every node at once.
    let mut racing = Vec::new();
    for k in 0..KEYS {
        for client in &clients {
            let mut req = CreateTaskRequest::new(q.clone(), json!({ "k": k }));
            req.idempotency_key = Some(format!("key-{k}"));
            let client = client.clone();
            racing.push(tokio::spawn(async move { (k, client.create_task_outcome(&req).await) }));
        }
    }
    let mut by_key: BTreeMap<usize, Vec<(TaskId, bool)>> = BTreeMap::new();
    for r in racing {
        let (k, outcome) = r.await.expect("creator");
        let created = outcome.unwrap_or_else(|e| panic!("create of key-{k} refused: {e}"));
        by_key.entry(k).or_default().push((created.task.id, created.created));
    }
    for (k, answers) in &by_key {
        let ids: HashSet<TaskId> = answers.iter().map(|a| a.0).collect();
        assert_eq!(ids.len(), 1, "key-{k}: one task for all three nodes: {answers:?}");
        assert_eq!(
            answers.iter().filter(|a| a.1).count(),
            1,
            "key-{k}: created once, the others answered with the original: {answers:?}"
        );
    }
    for node in &nodes {
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(stats.counts.queued, KEYS as u64, "{}: {stats:?}", node.name);
    }

    // Messages: the same, to one agent.
    let reader = agent("exact-reader");
    clients[0]
        .register_agent(&reader, &RegisterAgentRequest::default())
        .await
        .expect("register");
    let mut racing = Vec::new();
    for k in 0..KEYS {
        for client in &clients {
            let mut req = SendMessageRequest::to_agent(reader.clone(), json!({ "k": k }));
            req.idempotency_key = Some(format!("message-{k}"));
            let client = client.clone();
            racing.push(tokio::spawn(
                async move { (k, client.send_message_outcome(&req).await) },
            ));
        }
    }
    let mut by_key: BTreeMap<usize, Vec<(String, bool)>> = BTreeMap::new();
    for r in racing {
        let (k, outcome) = r.await.expect("sender");
        let sent = outcome.unwrap_or_else(|e| panic!("send of message-{k} refused: {e}"));
        by_key.entry(k).or_default().push((sent.message.id, sent.created));
    }
    for (k, answers) in &by_key {
        let ids: HashSet<&String> = answers.iter().map(|a| &a.0).collect();
        assert_eq!(ids.len(), 1, "message-{k}: one message: {answers:?}");
        assert_eq!(answers.iter().filter(|a| a.1).count(), 1, "message-{k}: {answers:?}");
    }
    let inbox = clients[2]
        .inbox(&reader, None, None, Some(1_000))
        .await
        .expect("inbox through C");
    assert_eq!(inbox.messages.len(), KEYS, "one message per key in the inbox");

    // Versions: three updates based on the same version, one through each node.
    let id = by_key_first_task(&clients[0], &q).await;
    for round in 0..10 {
        let version = clients[0].get_task(id).await.expect("get").version;
        let mut racing = Vec::new();
        for (n, client) in clients.iter().enumerate() {
            let client = client.clone();
            let req = agentyard_core::api::UpdateTaskRequest {
                title: Some(format!("round {round} through node {n}")),
                ..Default::default()
            };
            racing.push(tokio::spawn(async move {
                client.update_task(id, version, &req, false).await
            }));
        }
        let mut won = 0;
        for r in racing {
            match r.await.expect("updater") {
                Ok(t) => {
                    assert_eq!(t.version, version + 1);
                    won += 1;
                }
                Err(e) => assert!(e.is_version_conflict(), "round {round}: {e}"),
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one update based on version {version} wins"
        );
    }

    // Expiry: leases taken through A run out while all three nodes run their expiry loops.
    let mut req = ClaimRequest::new(agent("ghost"));
    req.max = Some(KEYS as u32);
    req.lease_ms = Some(300);
    let held = clients[0].claim(&q, &req).await.expect("claim through A").tasks;
    assert_eq!(held.len(), KEYS);
    let versions: HashMap<TaskId, u64> = held.iter().map(|t| (t.id, t.version)).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = clients[1].queue_stats(&q).await.expect("stats");
        if stats.counts.running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "leases did not expire: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in &nodes {
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(
            (stats.counts.queued, stats.counts.running, stats.counts.failed),
            (KEYS as u64, 0, 0),
            "{}: each expiry counted once: {stats:?}",
            node.name
        );
    }
    for t in list_all(&clients[2], &q).await {
        assert_eq!(t.status, TaskStatus::Queued);
        assert_eq!(t.error.as_ref().map(|e| e.kind.as_str()), Some("lease_expired"));
        assert_eq!(t.version, versions[&t.id] + 1, "task {} was expired once", t.id);
    }
    drop(nodes);
    drop(schema);
}

/// The id of the first task of `q`.
async fn by_key_first_task(client: &Client, q: &QueueName) -> TaskId {
    client
        .list_tasks(Some(q), None, Some(1), None)
        .await
        .expect("list")
        .items
        .first()
        .expect("a task")
        .id
}

/// An agent heartbeating through one node, or parked in a long poll on another, is alive for the
/// whole fleet; agents that fall silent are declared gone and their leases released, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_liveness_is_shared_by_the_nodes() {
    const TIMEOUT_MS: u64 = 1_500;
    const SILENT: usize = 6;
    let Some(schema) = TestSchema::create("multinode liveness").await else {
        return;
    };
    let nodes = Node::start_many(&schema.url, 3, &["--agent-timeout-ms", "1500"]);
    wait_all_listening(&nodes).await;
    let clients: Vec<Client> = nodes.iter().map(|n| n.client.clone()).collect();
    let q = queue("liveness");
    let steady = agent("steady");
    let parked = agent("parked");
    clients[0]
        .register_agent(&steady, &RegisterAgentRequest::default())
        .await
        .expect("register");
    let silent: Vec<AgentName> = (0..SILENT).map(|i| agent(&format!("silent-{i}"))).collect();
    for a in &silent {
        clients[0]
            .register_agent(a, &RegisterAgentRequest::default())
            .await
            .expect("register");
    }
    // silent-0 takes a task through B and falls silent with it.
    let task = clients[0]
        .create_task(&CreateTaskRequest::new(q.clone(), json!({})))
        .await
        .expect("create");
    let mut req = ClaimRequest::new(silent[0].clone());
    req.lease_ms = Some(60_000);
    let held = clients[1].claim(&q, &req).await.expect("claim through B").tasks;
    assert_eq!(held.first().map(|t| t.id), Some(task.id));
    let held_version = held[0].version;

    let stop = Arc::new(AtomicBool::new(false));
    // `steady` heartbeats through A; `parked` waits in long polls on C (on another queue).
    let beats = {
        let (client, name, stop) = (clients[0].clone(), steady.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                client.heartbeat_agent(&name).await.expect("heartbeat through A");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let polls = {
        let (client, name, stop) = (clients[2].clone(), parked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut req = ClaimRequest::new(name);
            req.wait_ms = Some(5_000);
            while !stop.load(Ordering::SeqCst) {
                let got = client.claim(&queue("nothing-here"), &req).await.expect("claim on C");
                assert!(got.tasks.is_empty());
            }
        })
    };
    // For three timeouts, A and B see both alive (C too), while the silent ones go.
    let watch_until = Instant::now() + Duration::from_millis(3 * TIMEOUT_MS);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut looks = 0;
    while Instant::now() < watch_until {
        for node in &nodes {
            for name in [&steady, &parked] {
                let seen = node.client.agent(name).await.expect("agent");
                assert_eq!(
                    seen.status,
                    agentyard_core::agent::AgentStatus::Active,
                    "{} sees {name} as {:?} (last heartbeat {:?})",
                    node.name,
                    seen.status,
                    seen.last_heartbeat
                );
            }
        }
        looks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    beats.await.expect("heartbeats");
    polls.await.expect("long polls");
    eprintln!("{looks} looks at both agents on every node: always active");
    for node in &nodes {
        for a in &silent {
            let seen = node.client.agent(a).await.expect("agent");
            assert_eq!(
                seen.status,
                agentyard_core::agent::AgentStatus::Gone,
                "{} sees {a} as {:?}",
                node.name,
                seen.status
            );
        }
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(
            (stats.counts.queued, stats.counts.running),
            (1, 0),
            "{}: silent-0's lease was released once: {stats:?}",
            node.name
        );
    }
    let released = clients[2].get_task(task.id).await.expect("get");
    assert_eq!(released.status, TaskStatus::Queued);
    assert_eq!(released.version, held_version + 1, "released once");
    drop(nodes);
    drop(schema);
}

// ---------------------------------------------------------------------------------------------
// 4 and 5. Faults mid-drain: a node SIGKILLed, PostgreSQL restarted.

/// Producers creating `tasks` tasks in batches of `batch`, each task with its idempotency key,
/// retried until acknowledged (through the next node when one does not answer).
fn spawn_producers(
    n: usize,
    clients: &Arc<Vec<Client>>,
    q: &QueueName,
    tasks: usize,
    batch: usize,
    ledger: &Arc<Ledger>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let next = Arc::new(AtomicUsize::new(0));
    (0..n)
        .map(|p| {
            let (clients, q, ledger, next) = (clients.clone(), q.clone(), ledger.clone(), next.clone());
            tokio::spawn(async move {
                let mut node = p % clients.len();
                loop {
                    let first = next.fetch_add(batch, Ordering::SeqCst);
                    if first >= tasks {
                        return;
                    }
                    let reqs: Vec<CreateTaskRequest> = (first..(first + batch).min(tasks))
                        .map(|i| {
                            let mut r = CreateTaskRequest::new(q.clone(), json!({ "i": i }));
                            r.idempotency_key = Some(format!("task-{i}"));
                            // Leases of 1 s may run out on a loaded machine: never dead-letter.
                            r.max_attempts = Some(100);
                            r
                        })
                        .collect();
                    loop {
                        match clients[node].create_tasks(&reqs).await {
                            Ok(answer) => {
                                let mut created = ledger.created.lock().expect("ledger");
                                for (r, t) in reqs.iter().zip(&answer.tasks) {
                                    created.insert(r.idempotency_key.clone().expect("key"), t.id);
                                }
                                break;
                            }
                            Err(ClientError::Transport(_)) => {
                                node = (node + 1) % clients.len();
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
                            Err(e) => panic!("create refused: {e}"),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect()
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_drain_loses_nothing_and_completes_nothing_twice() {
    const TASKS: usize = 3_000;
    let Some(schema) = TestSchema::create("multinode sigkill").await else {
        return;
    };
    let mut nodes = Node::start_many(&schema.url, 3, &["--lease-ms", "1000"]);
    wait_all_listening(&nodes).await;
    let clients = Arc::new(nodes.iter().map(|n| n.client.clone()).collect::<Vec<_>>());
    let q = queue("killed");
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let producers = spawn_producers(3, &clients, &q, TASKS, 10, &ledger);
    let workers = spawn_workers(12, &clients, &q, (5, 1_000, 500), &ledger, &stop);

    wait_until("a third created and 300 completed", Duration::from_secs(40), || {
        ledger.created_count() >= TASKS / 3 && ledger.completed_count() >= 300
    })
    .await;
    // An agent of node-c takes tasks and vanishes with the node: its leases must expire and
    // the tasks go out again through the other nodes.
    let mut req = ClaimRequest::new(agent("victim"));
    req.max = Some(5);
    req.wait_ms = Some(5_000);
    req.lease_ms = Some(1_000);
    let victim = clients[2]
        .claim(&q, &req)
        .await
        .expect("the victim's claim on node-c")
        .tasks;
    assert!(!victim.is_empty(), "the victim got tasks");
    nodes[2].kill();
    let killed_at = Instant::now();
    let (created_then, completed_then) = (ledger.created_count(), ledger.completed_count());
    eprintln!(
        "SIGKILLed node-c with {created_then} created and {completed_then} completed; the victim held {}",
        victim.len()
    );

    for p in producers {
        p.await.expect("producer");
    }
    wait_succeeded(&clients[0], &q, TASKS as u64, Duration::from_secs(50)).await;
    stop.store(true, Ordering::SeqCst);
    let reports = join_workers(workers).await;
    eprintln!("drained {TASKS} tasks {:?} after the kill", killed_at.elapsed());
    for r in &reports {
        assert!(r.errors.is_empty(), "{}: {:?}", r.agent, r.errors);
    }
    let moved: usize = reports.iter().filter(|r| r.node_used_after(2)).count();
    eprintln!("{moved} workers of node-c carried on through other nodes");
    assert!(
        reports.iter().filter(|r| r.failovers > 0).count() >= 4,
        "node-c's four workers noticed it gone and moved on"
    );

    for node in &nodes[..2] {
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(
            (
                stats.counts.succeeded,
                stats.counts.queued,
                stats.counts.running,
                stats.counts.failed
            ),
            (TASKS as u64, 0, 0, 0),
            "{}: {stats:?}",
            node.name
        );
    }
    let all = list_all(&clients[0], &q).await;
    check_exactly_once(&all, &ledger, TASKS);
    let by_id: HashMap<TaskId, &Task> = all.iter().map(|t| (t.id, t)).collect();
    for t in &victim {
        let token = t.lease.as_ref().expect("lease").token.as_str();
        let now = by_id[&t.id];
        assert_eq!(now.status, TaskStatus::Succeeded);
        assert_ne!(result_token(now), Some(token), "the victim never completed {}", t.id);
        assert!(now.attempt >= 2, "{} ran again after the victim's lease expired", t.id);
    }
    drop(nodes);
    drop(schema);
}

impl WorkerReport {
    /// Whether it was handed tasks by a node other than `node` (it started there and moved on).
    fn node_used_after(&self, node: usize) -> bool {
        self.by_node.contains_key(&node) && self.by_node.keys().any(|n| *n != node)
    }
}

/// A PostgreSQL cluster of the test's own in a temporary directory, stopped when dropped.
struct Cluster {
    pg_ctl: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the tools as the `postgres` user (the test runs as root; PostgreSQL refuses root).
    as_postgres: bool,
    running: bool,
}

/// `name` on PATH, or in the newest /usr/lib/postgresql/*/bin.
fn pg_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(Path::parent)
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    on_path
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|p| p.is_file())
}

/// The uid and gid of `user` from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

impl Cluster {
    /// Creates and starts the cluster; `None` (printed) when PostgreSQL's tools are not here,
    /// which fails under `AGENTYARD_REQUIRE_SERVICES=1`.
    fn create() -> Option<Cluster> {
        let (Some(initdb), Some(pg_ctl)) = (pg_tool("initdb"), pg_tool("pg_ctl")) else {
            if std::env::var("AGENTYARD_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("initdb / pg_ctl not found (PATH, /usr/lib/postgresql/*/bin) but AGENTYARD_REQUIRE_SERVICES=1");
            }
            eprintln!("skipping the PostgreSQL restart case: initdb / pg_ctl not found");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        use std::os::unix::fs::MetadataExt;
        let as_postgres = std::fs::metadata(dir.path()).expect("tempdir").uid() == 0;
        if as_postgres {
            let (uid, gid) =
                user_ids("postgres").expect("running as root, and there is no postgres user to run PostgreSQL as");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster's directory");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cluster = Cluster {
            pg_ctl,
            dir,
            port,
            as_postgres,
            running: false,
        };
        let data = cluster.data();
        cluster.run(
            &initdb,
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self, schema: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres?schema={schema}", self.port)
    }

    fn run(&self, program: &Path, args: &[&str]) {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{} {args:?}: {}\n{}\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&mut self) {
        let data = self.data();
        let dir = self.dir.path().to_str().expect("utf-8 path").to_owned();
        let options = format!(
            "-p {} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            &self.pg_ctl.clone(),
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-o",
                &options,
                "-l",
                log.to_str().expect("utf-8 path"),
                "-w",
                "start",
            ],
        );
        self.running = true;
    }

    fn stop(&mut self, mode: &str) {
        let data = self.data();
        self.run(
            &self.pg_ctl.clone(),
            &["-D", data.to_str().expect("utf-8 path"), "-m", mode, "-w", "stop"],
        );
        self.running = false;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let mut cmd = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
                c
            } else {
                Command::new(&self.pg_ctl)
            };
            let _ = cmd
                .args(["-D", &data.to_string_lossy(), "-m", "immediate", "-w", "stop"])
                .current_dir(self.dir.path())
                .output();
        }
    }
}

/// A cluster of the test's own, where PostgreSQL testing is enabled (`AGENTYARD_TEST_POSTGRES_URL`
/// set, though this never uses that database); `None` (printed) elsewhere.
fn throwaway_cluster(case: &str) -> Option<Cluster> {
    if std::env::var_os(agentyard_store_postgres::testing::URL_VAR).is_none() {
        eprintln!(
            "skipping {case}: {} is unset (it runs where PostgreSQL testing is enabled)",
            agentyard_store_postgres::testing::URL_VAR
        );
        return None;
    }
    Cluster::create()
}

/// After every restart of PostgreSQL, each node listens for the others' changes again within
/// moments: the reconnection backoff starts over once a connection worked, instead of growing
/// with every outage of the node's life (after a few, a node would go 5 s without cross-node
/// wake-ups after each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_listen_again_promptly_after_every_postgres_restart() {
    const RESTARTS: usize = 6;
    const BOUND: Duration = Duration::from_secs(3);
    let Some(mut cluster) = throwaway_cluster("the repeated PostgreSQL restart case") else {
        return;
    };
    let nodes = Node::start_many(&cluster.url("relisten"), 2, &[]);
    wait_all_listening(&nodes).await;
    let q = queue("relisten");
    let mut delays = Vec::new();
    for restart in 1..=RESTARTS {
        cluster.stop("fast");
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.start();
        let up = Instant::now();
        for node in &nodes {
            node.wait_listening(restart + 1, Duration::from_secs(15)).await;
        }
        delays.push(up.elapsed());
        eprintln!(
            "restart {restart}: both nodes listen again {:?} after PostgreSQL is up",
            up.elapsed()
        );
        // And a change through A wakes a claimer parked on B again.
        let parked = park_claim(&nodes[1].client, &q, "claimer-b");
        tokio::time::sleep(EARLY).await;
        let sent = Instant::now();
        let created = loop {
            match nodes[0]
                .client
                .create_task(&CreateTaskRequest::new(q.clone(), json!({})))
                .await
            {
                Ok(t) => break t,
                Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("create: {e}"),
            }
        };
        let (tasks, at, _) = parked.await.expect("claimer");
        assert_eq!(tasks.first().map(|t| t.id), Some(created.id));
        eprintln!("restart {restart}: create on A → claim on B {:?}", at - sent);
    }
    let slow: Vec<_> = (1..).zip(&delays).filter(|(_, d)| **d >= BOUND).collect();
    assert!(
        slow.is_empty(),
        "a node listened again only seconds after PostgreSQL came back (restart number, delay): {slow:?}"
    );
    drop(nodes);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_drain_loses_nothing_and_nodes_recover_by_themselves() {
    const TASKS: usize = 2_000;
    let Some(mut cluster) = throwaway_cluster("the PostgreSQL restart case") else {
        return;
    };
    let nodes = Node::start_many(&cluster.url("restart"), 2, &[]);
    wait_all_listening(&nodes).await;
    let clients = Arc::new(nodes.iter().map(|n| n.client.clone()).collect::<Vec<_>>());
    let q = queue("restart");
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let producers = spawn_producers(2, &clients, &q, TASKS, 10, &ledger);
    let workers = spawn_workers(8, &clients, &q, (5, 5_000, 500), &ledger, &stop);

    wait_until("a third created and 200 completed", Duration::from_secs(40), || {
        ledger.created_count() >= TASKS / 3 && ledger.completed_count() >= 200
    })
    .await;
    cluster.stop("fast");
    let down_at = Instant::now();
    eprintln!(
        "stopped PostgreSQL with {} created and {} completed",
        ledger.created_count(),
        ledger.completed_count()
    );
    // While it is down, every node says so: 503 problem+json, and not ready.
    let http = reqwest::Client::new();
    for node in &nodes {
        let r = http
            .get(format!("{}/v1/queues/{q}", node.url))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE, "{}", node.name);
        let content_type = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            content_type.starts_with("application/problem+json"),
            "{}: content-type {content_type:?}",
            node.name
        );
        let body: serde_json::Value = r.json().await.expect("a problem body");
        assert_eq!(body["status"], 503, "{body}");
        let ready = http
            .get(format!("{}/health/ready", node.url))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(
            ready.status(),
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "{}: ready",
            node.name
        );
    }
    // Answers to what committed before the stop have arrived by now; nothing more may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let completed_while_down = ledger.completed_count();
    tokio::time::sleep(Duration::from_millis(1_500).saturating_sub(down_at.elapsed())).await;
    assert_eq!(
        ledger.completed_count(),
        completed_while_down,
        "nothing is acknowledged while the database is down"
    );
    cluster.start();
    eprintln!("started PostgreSQL again after {:?}", down_at.elapsed());

    for p in producers {
        p.await.expect("producer");
    }
    wait_succeeded(&clients[0], &q, TASKS as u64, Duration::from_secs(50)).await;
    stop.store(true, Ordering::SeqCst);
    let reports = join_workers(workers).await;
    for r in &reports {
        assert!(r.errors.is_empty(), "{}: {:?}", r.agent, r.errors);
        assert_eq!(r.failovers, 0, "{}: the nodes kept answering", r.agent);
    }
    assert!(
        reports.iter().any(|r| r.unavailable > 0),
        "some worker was told 503 while the database was down"
    );
    for node in &nodes {
        // Each node's listener connected again by itself, and it is ready.
        node.wait_listening(2, Duration::from_secs(15)).await;
        node.client.ready().await.expect("ready again");
        let stats = node.client.queue_stats(&q).await.expect("stats");
        assert_eq!(
            (
                stats.counts.succeeded,
                stats.counts.queued,
                stats.counts.running,
                stats.counts.failed
            ),
            (TASKS as u64, 0, 0, 0),
            "{}: {stats:?}",
            node.name
        );
    }
    let all = list_all(&clients[1], &q).await;
    check_exactly_once(&all, &ledger, TASKS);
    drop(nodes);
    drop(cluster);
}
