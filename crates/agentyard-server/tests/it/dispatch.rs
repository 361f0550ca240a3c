//! Long-poll claims, the timer loop, and many claimers competing for the same tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest};
use agentyard_core::{AgentName, ManualClock, Namespace, NewTask, TaskStatus, Timestamp};
use agentyard_server::dispatch::{Tick, Timers};
use agentyard_server::{AppState, ServerConfig};
use agentyard_store::{Claim, CreateOptions};
use serde_json::json;

use crate::{Backend, TestApp, agent, q};

async fn until_parked(app: &TestApp, n: usize) {
    for _ in 0..5_000 {
        if app.state.dispatch.waiters.parked() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{n} claimers never parked");
}

async fn a_long_poll_is_woken_by_a_create(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client.clone();
    let claimer = tokio::spawn(async move {
        let mut req = ClaimRequest::new(agent("patient"));
        req.wait_ms = Some(60_000);
        client.claim(&q("later"), &req).await
    });
    until_parked(&app, 1).await;
    let task = app.create("later", json!({"hello": "world"})).await;
    // Far below the 60 s wait: only a wake-up can answer in time.
    let res = tokio::time::timeout(Duration::from_secs(10), claimer)
        .await
        .expect("the claim was not woken")
        .unwrap()
        .unwrap();
    assert_eq!(res.tasks.len(), 1);
    assert_eq!(res.tasks[0].id, task.id);
    assert_eq!(res.tasks[0].status, TaskStatus::Running);
}

async fn a_long_poll_gets_a_delayed_task_when_it_comes_due(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut req = CreateTaskRequest::new(q("delayed"), json!(1));
    req.delay_ms = Some(300);
    let task = app.client.create_task(&req).await.unwrap();
    assert_eq!(task.status, TaskStatus::Scheduled);
    let mut claim = ClaimRequest::new(agent("w"));
    claim.wait_ms = Some(20_000);
    let res = tokio::time::timeout(Duration::from_secs(10), app.client.claim(&q("delayed"), &claim))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.tasks.len(), 1);
    assert_eq!(res.tasks[0].id, task.id);
}

async fn a_long_poll_with_nothing_to_claim_answers_empty(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut claim = ClaimRequest::new(agent("w"));
    claim.wait_ms = Some(50);
    let res = app.client.claim(&q("empty"), &claim).await.unwrap();
    assert!(res.tasks.is_empty());
    assert_eq!(app.state.dispatch.waiters.parked(), 0);
}

async fn shutdown_releases_parked_claimers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client.clone();
    let claimer = tokio::spawn(async move {
        let mut req = ClaimRequest::new(agent("w"));
        req.wait_ms = Some(60_000);
        client.claim(&q("idle"), &req).await
    });
    until_parked(&app, 1).await;
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("shutdown waited for the long poll");
    let res = claimer.await.unwrap().unwrap();
    assert!(res.tasks.is_empty());
}

async fn fifty_claimers_over_http_take_each_of_300_tasks_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reqs: Vec<_> = (0..300).map(|i| CreateTaskRequest::new(q("race"), json!(i))).collect();
    let created = app.client.create_tasks(&reqs).await.unwrap();
    assert_eq!(created.created, 300);
    let workers = (0..50).map(|w| {
        let client = app.client.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut req = ClaimRequest::new(AgentName::parse(format!("worker-{w}")).unwrap());
            req.max = Some(1 + (w % 3) as u32);
            req.wait_ms = Some(100);
            loop {
                let tasks = client.claim(&q("race"), &req).await.unwrap().tasks;
                if tasks.is_empty() {
                    return mine;
                }
                for t in tasks {
                    let token = t.lease.clone().unwrap().token;
                    let done = CompleteRequest {
                        lease_token: token,
                        result: Some(json!(w)),
                        artifacts: None,
                    };
                    client.complete(t.id, &done).await.unwrap();
                    mine.push(t.id);
                }
            }
        })
    });
    let mut seen = HashMap::new();
    for worker in futures::future::join_all(workers).await {
        for id in worker.unwrap() {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1), "a task was claimed twice");
    for t in &created.tasks {
        assert!(seen.contains_key(&t.id));
    }
    let stats = app.client.queue_stats(&q("race")).await.unwrap();
    assert_eq!((stats.counts.succeeded, stats.counts.running, stats.depth), (300, 0, 0));
}

async fn tick_promotes_due_tasks_and_expires_leases_on_the_injected_clock(backend: Backend) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = backend.store.clone();
    let state = AppState::new(store.clone(), Arc::new(clock.clone()), ServerConfig::default());
    let timers = Timers::new(state.clone());
    let ns = Namespace::default();
    let now = || agentyard_core::Clock::now(&clock);

    let mut later = NewTask::on(q("t"), json!(1));
    later.run_at = Some(now().add_millis(1_000));
    store
        .create_tasks(&ns, vec![later], CreateOptions::default(), now())
        .await
        .unwrap();
    assert_eq!(timers.tick().await.unwrap(), Tick::default());
    clock.advance(1_000);
    assert_eq!(
        timers.tick().await.unwrap(),
        Tick {
            promoted: 1,
            expired: 0
        }
    );

    let claim = Claim {
        queue: q("t"),
        agent: agent("w"),
        capabilities: Vec::new(),
        max: 1,
        lease_ms: 500,
        gate: None,
    };
    let claimed = store.claim_tasks(&ns, &claim, now()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    clock.advance(499);
    assert_eq!(timers.tick().await.unwrap(), Tick::default());
    clock.advance(1);
    assert_eq!(
        timers.tick().await.unwrap(),
        Tick {
            promoted: 0,
            expired: 1
        }
    );
    let task = store.get_task(&ns, claimed[0].id).await.unwrap();
    assert_eq!((task.status, task.attempt), (TaskStatus::Queued, 1));
}

backend_tests!(
    a_long_poll_is_woken_by_a_create,
    a_long_poll_gets_a_delayed_task_when_it_comes_due,
    a_long_poll_with_nothing_to_claim_answers_empty,
    shutdown_releases_parked_claimers,
    fifty_claimers_over_http_take_each_of_300_tasks_exactly_once,
    tick_promotes_due_tasks_and_expires_leases_on_the_injected_clock,
);
