//! Kill the real server with SIGKILL in the middle of a mixed load, start it again on the same
//! store, and check that nothing acknowledged was lost and nothing was completed twice: once on
//! the SQLite store, once on the log store, once on PostgreSQL (a fresh schema of the database
//! named by `AGENTYARD_TEST_POSTGRES_URL`; skipped when it is unset).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentyard_client::Client;
use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest};
use agentyard_core::{AgentName, QueueName, TaskStatus};

const TASKS: usize = 3_000;
/// On PostgreSQL every request of this load is a network round trip and a commit of its own to a
/// database other tests share: a third of the tasks keeps the case well inside the time limit.
const PG_TASKS: usize = 1_000;
const PRODUCERS: usize = 4;
const CLAIMERS: usize = 24;

/// Starts `agentyard serve` on `store` (a store URL) and returns it with its address.
fn start_server(store: &str, listen: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args([
            "serve",
            "--listen",
            listen,
            "--lease-ms",
            "1000",
            "--log-format",
            "json",
        ])
        .args(["--store", store])
        .env("AGENTYARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start agentyard serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr.to_owned())
}

#[derive(Default)]
struct Ledger {
    /// idempotency key → task id, for every create the server acknowledged.
    created: Mutex<HashMap<String, String>>,
    /// (task id, lease token) of every complete the server acknowledged.
    completed: Mutex<Vec<(String, String)>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_and_completes_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    sigkill_under_load(&format!("sqlite://{}", dir.path().join("crash.db").display()), TASKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_on_the_log_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    sigkill_under_load(&format!("log://{}", dir.path().join("crash.log").display()), TASKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_on_postgres() {
    let Some(schema) = agentyard_store_postgres::testing::TestSchema::create("sigkill under load on postgres").await
    else {
        return;
    };
    sigkill_under_load(&schema.url, PG_TASKS).await;
}

async fn sigkill_under_load(store: &str, tasks: usize) {
    let (mut server, addr) = start_server(store, "127.0.0.1:0");
    let url = format!("http://{addr}");
    let client = Client::new(url.clone());
    let queue = QueueName::parse("crash").expect("valid");
    let ledger = Arc::new(Ledger::default());
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let (client, queue, ledger, next) = (client.clone(), queue.clone(), ledger.clone(), next.clone());
        producers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= tasks {
                    return;
                }
                let key = format!("task-{i}");
                let mut req = CreateTaskRequest::new(queue.clone(), serde_json::json!({ "i": i }));
                req.idempotency_key = Some(key.clone());
                // Retry until acknowledged: the idempotency key makes a retry of a create that
                // did commit (but whose answer was lost in the crash) return the original.
                loop {
                    match client.create_task(&req).await {
                        Ok(task) => {
                            ledger.created.lock().expect("ledger").insert(key, task.id.to_string());
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }

    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let (client, queue, ledger, stop) = (client.clone(), queue.clone(), ledger.clone(), stop.clone());
        claimers.push(tokio::spawn(async move {
            let mut req = ClaimRequest::new(AgentName::parse(format!("worker-{c}")).expect("valid"));
            req.wait_ms = Some(200);
            req.lease_ms = Some(1_000);
            while !stop.load(Ordering::SeqCst) {
                let tasks = match client.claim(&queue, &req).await {
                    Ok(r) => r.tasks,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                for task in tasks {
                    let token = task.lease.as_ref().expect("a claimed task has a lease").token.clone();
                    let done = CompleteRequest {
                        lease_token: token.clone(),
                        result: None,
                        artifacts: None,
                    };
                    if client.complete(task.id, &done).await.is_ok() {
                        ledger
                            .completed
                            .lock()
                            .expect("ledger")
                            .push((task.id.to_string(), token.to_string()));
                    }
                }
            }
        }));
    }

    // Let the load build up, then kill the server without warning.
    let started = Instant::now();
    while ledger.completed.lock().expect("ledger").len() < tasks / 4 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().expect("SIGKILL the server");
    server.wait().expect("reap the server");
    let acked_before_crash: HashMap<String, String> = ledger.created.lock().expect("ledger").clone();
    assert!(!acked_before_crash.is_empty(), "the load ran before the crash");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Same database, same address: the clients carry on by themselves.
    let (mut server, _) = start_server(store, &addr);

    for p in producers {
        p.await.expect("producer");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = client.queue_stats(&queue).await.expect("queue stats");
        if stats.counts.succeeded as usize == tasks {
            break;
        }
        assert!(Instant::now() < deadline, "not all tasks finished: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in claimers {
        c.await.expect("claimer");
    }

    // Every acknowledged task is there, succeeded, exactly once per idempotency key.
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .list_tasks(Some(&queue), None, Some(1_000), cursor.as_deref())
            .await
            .expect("list");
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        all.len(),
        tasks,
        "one task per idempotency key, none lost, none duplicated"
    );
    let by_id: HashMap<String, TaskStatus> = all.iter().map(|t| (t.id.to_string(), t.status)).collect();
    let created = ledger.created.lock().expect("ledger").clone();
    assert_eq!(created.len(), tasks);
    for (key, id) in acked_before_crash.iter().chain(created.iter()) {
        assert_eq!(
            by_id.get(id),
            Some(&TaskStatus::Succeeded),
            "task {id} ({key}) was acknowledged"
        );
    }
    // No task was completed under two different leases.
    let completed = ledger.completed.lock().expect("ledger").clone();
    let mut tokens_by_task: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (id, token) in &completed {
        tokens_by_task.entry(id).or_default().insert(token);
    }
    let twice: Vec<_> = tokens_by_task.iter().filter(|(_, t)| t.len() > 1).collect();
    assert!(twice.is_empty(), "completed twice: {twice:?}");
    server.kill().expect("stop the server");
    server.wait().expect("reap the server");
}
