//! The Rust `Worker` against a real server: results, retries and dead letters from handler
//! errors, a handler that outlives its lease, and a shutdown that gives unfinished tasks back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agentyard_client::worker::{JobError, Worker};
use agentyard_core::api::CreateTaskRequest;
use agentyard_core::{TaskId, TaskStatus};
use serde_json::json;
use tokio::sync::oneshot;

use crate::{Backend, TestApp, agent, q};

/// Waits until `pred` holds for the task, or fails after 10 s.
async fn until(app: &TestApp, id: TaskId, pred: impl Fn(&agentyard_core::Task) -> bool) -> agentyard_core::Task {
    for _ in 0..200 {
        let t = app.client.get_task(id).await.unwrap();
        if pred(&t) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "task {id} never got there: {:?}",
        app.client.get_task(id).await.unwrap()
    );
}

async fn a_worker_completes_retries_and_dead_letters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut flaky = CreateTaskRequest::new(q("jobs"), json!({"kind": "flaky"}));
    flaky.backoff = Some(agentyard_core::api::BackoffRequest {
        initial_ms: Some(10),
        jitter: Some(0.0),
        ..Default::default()
    });
    let flaky = app.client.create_task(&flaky).await.unwrap();
    let fine = app.create("jobs", json!({"kind": "fine"})).await;
    let broken = app.create("jobs", json!({"kind": "broken"})).await;
    let tries = Arc::new(AtomicU32::new(0));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let worker = {
        let tries = tries.clone();
        Worker::new(app.client.clone(), agent("rust-worker"))
            .concurrency(2)
            .poll_wait_ms(200)
            .handle(q("jobs"), move |job| {
                let tries = tries.clone();
                async move {
                    match job.task.input["kind"].as_str() {
                        Some("flaky") if tries.fetch_add(1, Ordering::SeqCst) == 0 => {
                            Err(JobError::retry("the upstream timed out").kind("timeout"))
                        }
                        Some("broken") => Err(JobError::fatal("no recipient")),
                        _ => Ok(json!({"ok": job.task.attempt})),
                    }
                }
            })
    };
    let run = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
    }));
    let done = until(&app, fine.id, |t| t.status == TaskStatus::Succeeded).await;
    assert_eq!(done.result, Some(json!({"ok": 1})));
    let retried = until(&app, flaky.id, |t| t.status == TaskStatus::Succeeded).await;
    assert_eq!(retried.attempt, 2, "failed once, then done");
    let dead = until(&app, broken.id, |t| t.status == TaskStatus::Failed).await;
    assert_eq!(dead.attempt, 1, "a fatal error is not retried");
    stop_tx.send(()).unwrap();
    let report = run.await.unwrap().expect("the worker ran");
    assert_eq!(
        (report.completed, report.failed, report.released),
        (2, 2, 0),
        "{report:?}"
    );
}

async fn a_handler_may_outlive_its_lease(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let task = app.create("slow", json!(1)).await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let worker = Worker::new(app.client.clone(), agent("slow-worker"))
        .lease_ms(300)
        .poll_wait_ms(200)
        .handle(q("slow"), |_job| async move {
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            Ok(json!("late but done"))
        });
    let run = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
    }));
    let done = until(&app, task.id, |t| t.status == TaskStatus::Succeeded).await;
    assert_eq!(done.attempt, 1, "heartbeats kept the one lease alive");
    stop_tx.send(()).unwrap();
    assert_eq!(run.await.unwrap().expect("ran").completed, 1);
}

async fn a_stopped_worker_gives_unfinished_tasks_back_untried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let task = app.create("long", json!(1)).await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let worker = Worker::new(app.client.clone(), agent("leaving"))
        .poll_wait_ms(200)
        .shutdown_grace(Duration::from_millis(100))
        .handle(q("long"), |_job| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(json!(null))
        });
    let run = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
    }));
    until(&app, task.id, |t| t.status == TaskStatus::Running).await;
    stop_tx.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the shutdown ends after its grace period")
        .unwrap()
        .expect("ran");
    assert_eq!(report.released, 1, "{report:?}");
    let back = app.client.get_task(task.id).await.unwrap();
    assert_eq!((back.status, back.attempt), (TaskStatus::Queued, 0), "back untried");
    let drained = app.client.agent(&agent("leaving")).await.unwrap();
    assert_eq!(drained.status, agentyard_core::agent::AgentStatus::Draining);
}

backend_tests!(
    a_worker_completes_retries_and_dead_letters,
    a_handler_may_outlive_its_lease,
    a_stopped_worker_gives_unfinished_tasks_back_untried,
);
