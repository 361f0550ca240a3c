//! Giving tasks back untried: `POST /v1/tasks/{id}/release`, and a claim whose answer would
//! pass the answer budget, which hands out what fits and gives the rest back.

use std::collections::HashSet;
use std::time::Duration;

use agentyard_client::kinds;
use agentyard_core::api::{ClaimRequest, CreateTaskRequest, ReleaseRequest};
use agentyard_core::{LeaseToken, TaskStatus};
use agentyard_server::ServerConfig;
use serde_json::json;

use crate::{Backend, TestApp, agent, problem, q};

async fn a_released_task_goes_back_untried_and_wakes_a_waiting_claimer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = CreateTaskRequest::new(q("jobs"), json!(1));
    req.max_attempts = Some(1);
    let task = app.client.create_task(&req).await.unwrap();
    let held = app.claim_one("jobs", "first").await.expect("claimed");
    let token = held.lease.expect("leased").token;

    let err = app
        .client
        .release(task.id, &ReleaseRequest::new(LeaseToken::new("not-the-lease")))
        .await
        .expect_err("only the lease holder releases");
    assert_eq!(problem(&err).kind, kinds::LEASE_CONFLICT);

    // A claimer parked on the empty queue gets the task as soon as it is given back.
    let client = app.client.clone();
    let parked = tokio::spawn(async move {
        let mut claim = ClaimRequest::new(agent("second"));
        claim.wait_ms = Some(10_000);
        client.claim(&q("jobs"), &claim).await.unwrap().tasks
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let released = app.client.release(task.id, &ReleaseRequest::new(token)).await.unwrap();
    assert_eq!(released.attempt, 0, "the attempt is given back");
    let got = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .expect("woken by the release")
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, task.id);
    assert_eq!(got[0].attempt, 1, "its one attempt is still there to spend");

    let mut later = ReleaseRequest::new(got[0].lease.clone().expect("leased").token);
    later.delay_ms = Some(60_000);
    let scheduled = app.client.release(task.id, &later).await.unwrap();
    assert_eq!(scheduled.status, TaskStatus::Scheduled);
    let mut too_late = ReleaseRequest::new(LeaseToken::new("x"));
    too_late.delay_ms = Some(agentyard_core::api::MAX_DELAY_MS + 1);
    let err = app.client.release(task.id, &too_late).await.expect_err("past a year");
    assert_eq!(problem(&err).field.as_deref(), Some("delay_ms"));
}

async fn a_claim_answer_stops_at_the_budget_and_gives_the_rest_back(backend: Backend) {
    let config = ServerConfig {
        answer_budget_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let big = "x".repeat(20_000);
    let reqs: Vec<_> = (0..10)
        .map(|i| CreateTaskRequest::new(q("big"), json!({"i": i, "pad": big})))
        .collect();
    app.client.create_tasks(&reqs).await.unwrap();

    let mut seen = HashSet::new();
    let mut answers = Vec::new();
    loop {
        let mut claim = ClaimRequest::new(agent("worker"));
        claim.max = Some(10);
        let tasks = app.client.claim(&q("big"), &claim).await.unwrap().tasks;
        if tasks.is_empty() {
            break;
        }
        let bytes: usize = tasks.iter().map(|t| serde_json::to_vec(t).unwrap().len()).sum();
        assert!(
            bytes <= 64 * 1024,
            "an answer of {} tasks holds {bytes} bytes",
            tasks.len()
        );
        for t in &tasks {
            assert!(seen.insert(t.id), "task {} handed out twice", t.id);
            assert_eq!(t.attempt, 1, "a task given back did not spend an attempt");
        }
        answers.push(tasks.len());
        assert!(answers.len() <= 10, "claims keep coming: {answers:?}");
    }
    assert_eq!(seen.len(), 10, "every task handed out once: {answers:?}");
    assert_eq!(answers[0], 3, "20 KB tasks, three to a 64 KiB answer: {answers:?}");
}

backend_tests!(
    a_released_task_goes_back_untried_and_wakes_a_waiting_claimer,
    a_claim_answer_stops_at_the_budget_and_gives_the_rest_back,
);
