//! Micro-benchmarks of the store's hot paths, SQLite beside memory: creating a task, creating a
//! batch, and a claim followed by a completion, one at a time and with ten callers at once (where
//! the SQLite writer can group their commits). Run with `cargo bench -p agentyard-store-sqlite`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentyard_core::task::Completion;
use agentyard_core::{AgentName, Namespace, NewTask, QueueName, Task, TaskCommand, Timestamp};
use agentyard_store::{Claim, CreateOptions, MemoryStore, Store};
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;

fn now() -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000)
}

fn queue() -> QueueName {
    QueueName::parse("bench").expect("valid")
}

async fn fill(store: &dyn Store, n: usize) {
    let ns = Namespace::default();
    let mut left = n;
    while left > 0 {
        let size = left.min(1_000);
        let tasks = (0..size).map(|i| NewTask::on(queue(), json!({ "i": i }))).collect();
        store
            .create_tasks(&ns, tasks, CreateOptions::default(), now())
            .await
            .expect("create");
        left -= size;
    }
}

/// Claims one task and completes it.
async fn claim_complete(store: &dyn Store, agent: &AgentName) {
    let ns = Namespace::default();
    let claim = Claim::new(queue(), agent.clone(), 1, 30_000);
    let mut tasks = store.claim_tasks(&ns, &claim, now()).await.expect("claim");
    let task = tasks.pop().expect("a task to claim");
    let token = task.lease.expect("leased").token;
    let completion = Completion {
        result: None,
        artifacts: Vec::new(),
    };
    store
        .apply(&ns, task.id, TaskCommand::Complete { token, completion }, now())
        .await
        .expect("complete");
}

/// A worker's loop with the completion inside the next claim: completes `held` (if any) and
/// claims the next task in one store call; returns the claimed task.
async fn complete_then_claim(store: &dyn Store, agent: &AgentName, held: Option<Task>) -> Option<Task> {
    let ns = Namespace::default();
    let claim = Claim::new(queue(), agent.clone(), 1, 30_000);
    let commands = held
        .into_iter()
        .map(|task| {
            let token = task.lease.expect("leased").token;
            let completion = Completion::default();
            (task.id, TaskCommand::Complete { token, completion })
        })
        .collect();
    let (applied, mut claimed) = store
        .apply_then_claim(&ns, commands, &claim, now())
        .await
        .expect("complete and claim");
    assert!(applied.iter().all(Result::is_ok), "completions succeed");
    claimed.pop()
}

fn stores(rt: &Runtime) -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite =
        rt.block_on(async { SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::default()).expect("open") });
    vec![
        ("sqlite", Arc::new(sqlite) as Arc<dyn Store>, Some(dir)),
        ("memory", Arc::new(MemoryStore::new()) as Arc<dyn Store>, None),
    ]
}

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (name, store, _dir) in stores(&rt) {
        let ns = Namespace::default();
        let mut group = c.benchmark_group(name);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));

        group.bench_function("create one", |b| {
            b.iter(|| {
                rt.block_on(store.create_tasks(
                    &ns,
                    vec![NewTask::on(queue(), json!({}))],
                    CreateOptions::default(),
                    now(),
                ))
                .expect("create")
            })
        });

        group.bench_function("create batch of 100", |b| {
            b.iter(|| {
                let tasks = (0..100).map(|_| NewTask::on(queue(), json!({}))).collect();
                rt.block_on(store.create_tasks(&ns, tasks, CreateOptions::default(), now()))
                    .expect("create")
            })
        });

        let agent = AgentName::parse("bench-agent").expect("valid");
        group.bench_function("claim and complete", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    fill(&*store, iters as usize).await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        claim_complete(&*store, &agent).await;
                    }
                    start.elapsed()
                })
            })
        });

        // The same loop with each completion inside the next claim: one store call per task.
        group.bench_function("complete inside the next claim", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    fill(&*store, iters as usize).await;
                    let start = Instant::now();
                    let mut held = None;
                    for _ in 0..iters {
                        held = complete_then_claim(&*store, &agent, held).await;
                        assert!(held.is_some(), "a task to claim");
                    }
                    let took = start.elapsed();
                    // Not timed: the last one, so the next sample starts with nothing running.
                    let task = held.expect("held");
                    let token = task.lease.expect("leased").token;
                    let completion = Completion::default();
                    let done = TaskCommand::Complete { token, completion };
                    store.apply(&ns, task.id, done, now()).await.expect("complete");
                    took
                })
            })
        });

        // Ten callers at once: the time per task, with the SQLite writer free to group commits.
        group.bench_function("claim and complete, 10 callers", |b| {
            b.iter_custom(|iters| {
                let per_caller = iters.div_ceil(10) as usize;
                rt.block_on(async {
                    fill(&*store, per_caller * 10).await;
                    let start = Instant::now();
                    let mut callers = Vec::with_capacity(10);
                    for _ in 0..10 {
                        let (store, agent) = (store.clone(), agent.clone());
                        callers.push(tokio::spawn(async move {
                            for _ in 0..per_caller {
                                claim_complete(&*store, &agent).await;
                            }
                        }));
                    }
                    for c in callers {
                        c.await.expect("caller");
                    }
                    start.elapsed().mul_f64(iters as f64 / (per_caller * 10) as f64)
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
