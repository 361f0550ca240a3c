//! A task's life over HTTP: create, claim, heartbeat, complete; idempotency; batches; retries,
//! dead-lettering and redrive; lease expiry.

use std::time::Duration;

use agentyard_core::api::{
    BackoffRequest, ClaimRequest, CompleteRequest, CreateTaskRequest, FailRequest, FailureReport, HeartbeatRequest,
};
use agentyard_core::{NewArtifact, Progress, TaskStatus};
use reqwest::Method;
use serde_json::json;

use crate::{Backend, TestApp, agent, problem, q};

async fn a_task_goes_from_create_to_complete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let created = app.create("emails", json!({"to": "a@b.c"})).await;
    assert_eq!(created.status, TaskStatus::Queued);
    assert_eq!(created.version, 1);

    let claimed = app.claim_one("emails", "worker-1").await.expect("a task to claim");
    assert_eq!(claimed.id, created.id);
    assert_eq!(claimed.status, TaskStatus::Running);
    assert_eq!(claimed.attempt, 1);
    let lease = claimed.lease.clone().expect("a lease");
    assert_eq!(lease.agent, agent("worker-1"));
    assert!(app.claim_one("emails", "worker-2").await.is_none(), "claimed twice");

    let beat = c
        .heartbeat(
            created.id,
            &HeartbeatRequest {
                lease_token: lease.token.clone(),
                lease_ms: Some(120_000),
                progress: Some(Progress {
                    percent: Some(50.0),
                    message: Some("half way".into()),
                }),
            },
        )
        .await
        .unwrap();
    assert!(beat.lease.as_ref().unwrap().expires_at > lease.expires_at);
    assert_eq!(beat.progress.as_ref().unwrap().percent, Some(50.0));

    let artifact = NewArtifact {
        name: "report".into(),
        uri: Some("s3://bucket/report.md".into()),
        content: None,
        media_type: Some("text/markdown".into()),
    };
    let done = c
        .complete(
            created.id,
            &CompleteRequest {
                lease_token: lease.token.clone(),
                result: Some(json!({"sent": true})),
                artifacts: Some(vec![artifact]),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded);

    let got = c.get_task(created.id).await.unwrap();
    assert_eq!(got, done);
    assert_eq!(got.result, Some(json!({"sent": true})));
    assert_eq!(got.artifacts.len(), 1);
    assert_eq!(got.artifacts[0].uri.as_deref(), Some("s3://bucket/report.md"));
    assert!(got.lease.is_none());
    assert!(got.finished_at.is_some());

    let r = app
        .http
        .get(app.url(&format!("/v1/tasks/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], format!("\"{}\"", got.version).as_str());

    // Completing again with the same token is harmless.
    let again = c
        .complete(
            created.id,
            &CompleteRequest {
                lease_token: lease.token,
                result: None,
                artifacts: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.version, got.version);

    let stats = c.queue_stats(&q("emails")).await.unwrap();
    assert_eq!(stats.counts.succeeded, 1);
    assert_eq!(stats.depth, 0);
    let all = c.queues().await.unwrap();
    assert_eq!(all.queues.len(), 1);
    let unknown = c.queue_stats(&q("never-used")).await.unwrap();
    assert_eq!((unknown.depth, unknown.counts.succeeded), (0, 0));
}

async fn create_answers_201_with_location_then_200_for_a_seen_idempotency_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = r#"{"queue": "emails", "input": {"n": 1}, "idempotency_key": "order-42"}"#;
    let first = app
        .http
        .post(app.url("/v1/tasks"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: agentyard_core::Task = first.json().await.unwrap();
    assert_eq!(location, format!("/v1/tasks/{}", first.id));

    let second = app.send_raw(Method::POST, "/v1/tasks", body).await;
    assert_eq!(second.0, 200);
    assert_eq!(second.1["id"], first.id.to_string());

    let mut req = CreateTaskRequest::new(q("emails"), json!({"n": 1}));
    req.idempotency_key = Some("order-42".into());
    let third = app.client.create_task_outcome(&req).await.unwrap();
    assert!(!third.created);
    assert_eq!(third.task.id, first.id);
    assert_eq!(app.client.queue_stats(&q("emails")).await.unwrap().counts.queued, 1);
}

async fn a_batch_is_created_whole_or_not_at_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad = r#"{"tasks": [{"queue": "a"}, {"queue": "a"}, {"queue": "a", "max_attempts": 0}]}"#;
    let (status, body) = app.send_raw(Method::POST, "/v1/tasks/batch", bad).await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "tasks[2].max_attempts");

    let bad_name = r#"{"tasks": [{"queue": "a"}, {"queue": "a"}, {"queue": "a"}, {"queue": "Not Valid"}]}"#;
    let (status, body) = app.send_raw(Method::POST, "/v1/tasks/batch", bad_name).await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "tasks[3].queue");
    let (status, body) = app.send_raw(Method::POST, "/v1/tasks/batch", r#"{"tasks": []}"#).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("tasks")));

    let page = app.client.list_tasks(None, None, None, None).await.unwrap();
    assert!(page.items.is_empty(), "a refused batch created {:?}", page.items);

    let mut keyed = CreateTaskRequest::new(q("a"), json!(3));
    keyed.idempotency_key = Some("k".into());
    let reqs = vec![
        CreateTaskRequest::new(q("a"), json!(1)),
        CreateTaskRequest::new(q("b"), json!(2)),
        keyed.clone(),
        keyed,
    ];
    let res = app.client.create_tasks(&reqs).await.unwrap();
    assert_eq!(res.created, 3);
    assert_eq!(res.tasks.len(), 4);
    assert_eq!(res.tasks[2].id, res.tasks[3].id);
    assert_eq!(res.tasks[1].queue, q("b"));
}

fn quick_retries(queue: &str, max_attempts: u32) -> CreateTaskRequest {
    let mut req = CreateTaskRequest::new(q(queue), json!({"flaky": true}));
    req.max_attempts = Some(max_attempts);
    req.backoff = Some(BackoffRequest {
        initial_ms: Some(10),
        max_ms: Some(20),
        multiplier: Some(2.0),
        jitter: Some(0.0),
    });
    req
}

fn failure(token: agentyard_core::LeaseToken, retryable: bool) -> FailRequest {
    FailRequest {
        lease_token: token,
        error: FailureReport {
            kind: Some("boom".into()),
            message: "it broke".into(),
            retryable: Some(retryable),
        },
    }
}

async fn failures_retry_with_backoff_then_dead_letter_and_redrive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let task = c.create_task(&quick_retries("flaky", 3)).await.unwrap();
    let mut claim = ClaimRequest::new(agent("w"));
    claim.wait_ms = Some(10_000);
    for attempt in 1..=3 {
        // The retry is scheduled 10-20 ms out: the timer loop promotes it and wakes this claim.
        let claimed = c.claim(&q("flaky"), &claim).await.unwrap().tasks;
        assert_eq!(claimed.len(), 1, "attempt {attempt}");
        assert_eq!(claimed[0].id, task.id);
        assert_eq!(claimed[0].attempt, attempt);
        let token = claimed[0].lease.clone().unwrap().token;
        let failed = c.fail(task.id, &failure(token, true)).await.unwrap();
        if attempt < 3 {
            assert_eq!(failed.status, TaskStatus::Scheduled, "attempt {attempt}");
            assert!(failed.run_at > failed.updated_at);
        } else {
            assert_eq!(failed.status, TaskStatus::Failed);
            assert_eq!(failed.error.as_ref().unwrap().kind, "boom");
        }
    }
    let dead = c
        .list_tasks(Some(&q("flaky")), Some(TaskStatus::Failed), None, None)
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].id, task.id);

    let redriven = c.redrive(task.id).await.unwrap();
    assert_eq!(redriven.status, TaskStatus::Queued);
    assert_eq!(redriven.attempt, 0);
    let again = app.claim_one("flaky", "w").await.unwrap();
    assert_eq!((again.id, again.attempt), (task.id, 1));

    let e = c.redrive(task.id).await.unwrap_err();
    assert_eq!(e.status().unwrap(), 409);
    assert_eq!(problem(&e).kind, "/problems/invalid-transition");
    assert_eq!(problem(&e).task_status, Some(TaskStatus::Running));
}

async fn a_queue_redrives_its_dead_letters_in_bulk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let reqs: Vec<_> = (0..3).map(|_| quick_retries("bulk", 1)).collect();
    c.create_tasks(&reqs).await.unwrap();
    let mut claim = ClaimRequest::new(agent("w"));
    claim.max = Some(10);
    for t in c.claim(&q("bulk"), &claim).await.unwrap().tasks {
        let failed = c.fail(t.id, &failure(t.lease.unwrap().token, false)).await.unwrap();
        assert_eq!(failed.status, TaskStatus::Failed);
    }
    assert_eq!(c.queue_stats(&q("bulk")).await.unwrap().counts.failed, 3);
    assert_eq!(c.redrive_queue(&q("bulk")).await.unwrap(), 3);
    let stats = c.queue_stats(&q("bulk")).await.unwrap();
    assert_eq!((stats.counts.failed, stats.counts.queued), (0, 3));
    assert_eq!(c.redrive_queue(&q("bulk")).await.unwrap(), 0);
}

async fn an_expired_lease_makes_the_task_claimable_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let task = app.create("slow", json!(null)).await;
    let mut first = ClaimRequest::new(agent("sleepy"));
    first.lease_ms = Some(200);
    let claimed = c.claim(&q("slow"), &first).await.unwrap().tasks;
    let stale = claimed[0].lease.clone().unwrap().token;

    // The timer loop notices the expiry and wakes this long poll.
    let mut second = ClaimRequest::new(agent("eager"));
    second.wait_ms = Some(10_000);
    let reclaimed = tokio::time::timeout(Duration::from_secs(10), c.claim(&q("slow"), &second))
        .await
        .unwrap()
        .unwrap()
        .tasks;
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, task.id);
    assert_eq!(reclaimed[0].attempt, 2);
    assert_eq!(reclaimed[0].lease.as_ref().unwrap().agent, agent("eager"));

    // The stale holder is fenced off.
    let e = c
        .complete(
            task.id,
            &CompleteRequest {
                lease_token: stale,
                result: None,
                artifacts: None,
            },
        )
        .await
        .unwrap_err();
    assert!(e.is_lease_conflict(), "{e}");
    assert_eq!(c.get_task(task.id).await.unwrap().status, TaskStatus::Running);
}

async fn cancel_stops_a_task_and_cannot_be_repeated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let task = app.create("c", json!(1)).await;
    let cancelled = app.client.cancel(task.id).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert!(app.claim_one("c", "w").await.is_none());
    let e = app.client.cancel(task.id).await.unwrap_err();
    assert_eq!(problem(&e).kind, "/problems/invalid-transition");
}

async fn many_tasks_complete_in_one_request_each_on_its_own(backend: Backend) {
    use agentyard_client::kinds;
    use agentyard_core::LeaseToken;
    use agentyard_core::api::CompleteItem;

    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    for i in 0..3 {
        app.create("batch-done", json!({ "i": i })).await;
    }
    let mut claim = ClaimRequest::new(agent("worker-1"));
    claim.max = Some(2);
    let claimed = c.claim(&q("batch-done"), &claim).await.unwrap().tasks;
    assert_eq!(claimed.len(), 2);
    let waiting = app.claim_one("batch-done", "worker-2").await.expect("the third task");
    let item = |t: &agentyard_core::Task, token: LeaseToken| CompleteItem {
        id: t.id,
        lease_token: token,
        result: Some(json!({"ok": t.input["i"]})),
        artifacts: None,
    };
    let items = vec![
        item(&claimed[0], claimed[0].lease.clone().unwrap().token),
        // worker-2's task with a made-up token: refused alone.
        item(&waiting, LeaseToken::new("not-the-token")),
        item(&claimed[1], claimed[1].lease.clone().unwrap().token),
    ];
    let answer = c.complete_many(&items).await.unwrap();
    assert_eq!(answer.completed, 2);
    let ids: Vec<_> = answer.items.iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![claimed[0].id, waiting.id, claimed[1].id], "request order");
    assert_eq!(answer.items[0].version, Some(claimed[0].version + 1));
    let refused = answer.items[1].error.as_ref().expect("refused");
    assert_eq!(refused.kind, kinds::LEASE_CONFLICT);
    assert_eq!(refused.status, 409);
    for t in &claimed {
        let done = c.get_task(t.id).await.unwrap();
        assert_eq!(done.status, TaskStatus::Succeeded);
        assert_eq!(done.result, Some(json!({"ok": t.input["i"]})));
    }
    assert_eq!(c.get_task(waiting.id).await.unwrap().status, TaskStatus::Running);

    // Repeating a completion is harmless, as for one task.
    let again = c.complete_many(&items[..1]).await.unwrap();
    assert_eq!(again.completed, 1);

    let twice = vec![items[0].clone(), items[0].clone()];
    let err = c.complete_many(&twice).await.unwrap_err();
    assert_eq!(problem(&err).kind, kinds::INVALID_FIELD);
    let err = c.complete_many(&[]).await.unwrap_err();
    assert_eq!(problem(&err).kind, kinds::INVALID_FIELD);
}

/// A worker's "done, next" in one request: the claim finishes the listed tasks first (each on
/// its own, outcomes in request order), then claims; a wrong token refuses only its item.
async fn a_claim_can_finish_the_previous_tasks_first(backend: Backend) {
    use agentyard_client::kinds;
    use agentyard_core::LeaseToken;
    use agentyard_core::api::CompleteItem;

    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    // The first and the last task share a concurrency key (one running at a time by default):
    // the last can only be claimed once the first is finished, so getting it proves the order.
    for (i, key) in [(0, Some("repo")), (1, None), (2, Some("repo"))] {
        let mut req = CreateTaskRequest::new(q("done-next"), json!({ "i": i }));
        req.concurrency_key = key.map(str::to_owned);
        c.create_task(&req).await.unwrap();
    }
    let first = app.claim_one("done-next", "worker-1").await.expect("a task");
    let other = app.claim_one("done-next", "worker-2").await.expect("a task");
    assert_eq!(
        (first.input["i"].clone(), other.input["i"].clone()),
        (json!(0), json!(1))
    );
    assert!(
        app.claim_one("done-next", "worker-3").await.is_none(),
        "the last task waits for the key's slot"
    );
    let item = |t: &agentyard_core::Task, token: LeaseToken| CompleteItem {
        id: t.id,
        lease_token: token,
        result: Some(json!({"ok": t.input["i"]})),
        artifacts: None,
    };
    let mut claim = ClaimRequest::new(agent("worker-1"));
    claim.max = Some(5);
    claim.complete = Some(vec![
        item(&first, first.lease.clone().unwrap().token),
        item(&other, LeaseToken::new("not-the-token")),
    ]);
    let answer = c.claim(&q("done-next"), &claim).await.unwrap();
    let completed = answer.completed.expect("outcomes of the completions");
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0].id, first.id);
    assert_eq!(completed[0].version, Some(first.version + 1));
    assert_eq!(
        completed[1].error.as_ref().expect("refused").kind,
        kinds::LEASE_CONFLICT
    );
    assert_eq!(answer.tasks.len(), 1, "the task the completion let through");
    let next = &answer.tasks[0];
    assert_eq!(next.input["i"], json!(2));
    assert_eq!(next.lease.as_ref().unwrap().agent, agent("worker-1"));
    let done = c.get_task(first.id).await.unwrap();
    assert_eq!(
        (done.status, done.result),
        (TaskStatus::Succeeded, Some(json!({"ok": first.input["i"]})))
    );
    assert_eq!(c.get_task(other.id).await.unwrap().status, TaskStatus::Running);

    // Finishing the last task with an empty queue answers the outcome and no task.
    let mut claim = ClaimRequest::new(agent("worker-1"));
    claim.complete = Some(vec![item(next, next.lease.clone().unwrap().token)]);
    let answer = c.claim(&q("done-next"), &claim).await.unwrap();
    assert!(answer.tasks.is_empty());
    assert_eq!(answer.completed.unwrap()[0].version, Some(next.version + 1));
    // Without `complete`, the answer has no `completed` at all.
    let plain = app
        .send_raw(Method::POST, "/v1/queues/done-next/claim", r#"{"agent": "worker-1"}"#)
        .await;
    assert_eq!(plain, (200, json!({"tasks": []})));

    // The list is checked like a batch completion, under its own name.
    claim.complete = Some(Vec::new());
    let err = c.claim(&q("done-next"), &claim).await.unwrap_err();
    assert_eq!(problem(&err).kind, kinds::INVALID_FIELD);
    assert_eq!(problem(&err).field.as_deref(), Some("complete"));
    let twice = item(next, next.lease.clone().unwrap().token);
    claim.complete = Some(vec![twice.clone(), twice]);
    let err = c.claim(&q("done-next"), &claim).await.unwrap_err();
    assert_eq!(problem(&err).field.as_deref(), Some("complete[1].id"));
}

/// A draining agent gets no new task, but the tasks it finishes inside its claim are finished.
async fn a_draining_agent_still_finishes_inside_its_claim(backend: Backend) {
    use agentyard_core::api::CompleteItem;

    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    app.create("wind-down", json!({ "i": 1 })).await;
    app.create("wind-down", json!({ "i": 2 })).await;
    let held = app.claim_one("wind-down", "worker-1").await.expect("a task");
    c.drain_agent(&agent("worker-1")).await.unwrap();
    let mut claim = ClaimRequest::new(agent("worker-1"));
    claim.complete = Some(vec![CompleteItem {
        id: held.id,
        lease_token: held.lease.clone().unwrap().token,
        result: None,
        artifacts: None,
    }]);
    let answer = c.claim(&q("wind-down"), &claim).await.unwrap();
    assert!(answer.tasks.is_empty(), "draining: nothing new");
    assert_eq!(answer.completed.unwrap()[0].version, Some(held.version + 1));
    assert_eq!(c.get_task(held.id).await.unwrap().status, TaskStatus::Succeeded);
}

/// `complete` with a long-poll: the completions are applied once, at the start, and the wait
/// then ends with a task created meanwhile.
async fn a_long_poll_claim_finishes_first_then_waits(backend: Backend) {
    use agentyard_core::api::CompleteItem;

    let app = TestApp::spawn(backend).await;
    let c = app.client.clone();
    app.create("poll-done", json!({ "i": 0 })).await;
    let held = app.claim_one("poll-done", "worker-1").await.expect("a task");
    let mut claim = ClaimRequest::new(agent("worker-1"));
    claim.wait_ms = Some(5_000);
    claim.complete = Some(vec![CompleteItem {
        id: held.id,
        lease_token: held.lease.clone().unwrap().token,
        result: None,
        artifacts: None,
    }]);
    let waiting = tokio::spawn(async move { c.claim(&q("poll-done"), &claim).await });
    // The completion is stored before the wait begins.
    let client = app.client.clone();
    crate::eventually(5, "the held task is finished while the claim waits", || {
        let client = client.clone();
        async move { client.get_task(held.id).await.unwrap().status == TaskStatus::Succeeded }
    })
    .await;
    assert!(!waiting.is_finished(), "still waiting: nothing was ready");
    let created = app.create("poll-done", json!({ "i": 1 })).await;
    let answer = waiting.await.unwrap().unwrap();
    assert_eq!(answer.tasks.len(), 1);
    assert_eq!(answer.tasks[0].id, created.id);
    let completed = answer.completed.expect("the outcome of the completion");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].version, Some(held.version + 1));
    assert_eq!(
        app.client.get_task(held.id).await.unwrap().version,
        held.version + 1,
        "applied once"
    );
}

backend_tests!(
    a_task_goes_from_create_to_complete,
    create_answers_201_with_location_then_200_for_a_seen_idempotency_key,
    a_batch_is_created_whole_or_not_at_all,
    failures_retry_with_backoff_then_dead_letter_and_redrive,
    a_queue_redrives_its_dead_letters_in_bulk,
    an_expired_lease_makes_the_task_claimable_again,
    cancel_stops_a_task_and_cannot_be_repeated,
    many_tasks_complete_in_one_request_each_on_its_own,
    a_claim_can_finish_the_previous_tasks_first,
    a_draining_agent_still_finishes_inside_its_claim,
    a_long_poll_claim_finishes_first_then_waits,
);
