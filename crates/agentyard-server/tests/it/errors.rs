//! Bad requests get problem+json bodies with the right status and the field they are about.

use agentyard_core::api::CreateTaskRequest;
use agentyard_core::{Namespace, TaskId};
use agentyard_server::ServerConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, TestApp, q, redact};

async fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.send_raw(Method::POST, "/v1/tasks", r#"{"queue": "q", "#).await;
    assert_eq!(status, 400);
    insta::assert_json_snapshot!("malformed_json", body);
}

async fn a_wrong_type_is_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .send_raw(Method::POST, "/v1/tasks", r#"{"queue": "q", "priority": "high"}"#)
        .await;
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("wrong_type", body);
    let (status, body) = app
        .send_raw(Method::POST, "/v1/tasks", r#"{"queue": "q", "colour": 1}"#)
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("colour")));
    let (status, body) = app.send_raw(Method::POST, "/v1/tasks", r#"{"input": 1}"#).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("queue")));
}

async fn a_negative_delay_is_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .send_raw(Method::POST, "/v1/tasks", r#"{"queue": "q", "delay_ms": -5}"#)
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "delay_ms");
    let (status, body) = app
        .send_raw(
            Method::POST,
            "/v1/tasks",
            r#"{"queue": "q", "delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("delay_ms")));
}

async fn an_invalid_queue_name_in_the_path_is_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .send_raw(Method::POST, "/v1/queues/Bad%20Name/claim", r#"{"agent": "w"}"#)
        .await;
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("invalid_queue_in_path", body);
    let r = app.http.get(app.url("/v1/queues/UPPER")).send().await.unwrap();
    assert_eq!(r.status(), 422);
}

async fn task_ids_in_the_path_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.http.get(app.url("/v1/tasks/not-an-id")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["field"], "id");
    let missing = TaskId::generate();
    let e = app.client.get_task(missing).await.unwrap_err();
    assert!(e.is_not_found());
    let body = json!(e.problem().unwrap().detail);
    assert_eq!(body, json!(format!("no task {missing}")));
}

async fn a_body_over_the_limit_is_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let big = format!(r#"{{"queue": "q", "input": "{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let r = app
        .http
        .post(app.url("/v1/tasks"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    insta::assert_json_snapshot!("payload_too_large", body);
    // Just under the limit is fine.
    let fits = format!(r#"{{"queue": "q", "input": "{}"}}"#, "x".repeat(1024 * 1024 - 100));
    let r = app
        .http
        .post(app.url("/v1/tasks"))
        .header("content-type", "application/json")
        .body(fits)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn a_full_queue_answers_429_with_retry_after(backend: Backend) {
    let config = ServerConfig {
        max_queue_depth: Some(3),
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    for i in 0..3 {
        app.create("small", json!(i)).await;
    }
    let e = app
        .client
        .create_task(&CreateTaskRequest::new(q("small"), json!(4)))
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 429);
    assert_eq!(e.retry_after_secs(), Some(1));
    assert!(e.is_retryable());
    let r = app
        .http
        .post(app.url("/v1/tasks"))
        .header("content-type", "application/json")
        .body(r#"{"queue": "small"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    insta::assert_json_snapshot!("backpressure", body);
    // Other queues are not affected; draining the queue makes room again.
    app.create("other", json!(1)).await;
    app.claim_one("small", "w").await.unwrap();
    app.create("small", json!(5)).await;
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app
        .http
        .post(app.url("/v1/tasks"))
        .header("content-type", "text/plain")
        .body(r#"{"queue": "q"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "/problems/unsupported-media-type");
}

async fn namespaces_come_from_the_header_and_isolate_tasks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.client.clone().with_namespace(Namespace::parse("team-a").unwrap());
    let task = team
        .create_task(&CreateTaskRequest::new(q("jobs"), json!(1)))
        .await
        .unwrap();
    assert_eq!(task.namespace.as_str(), "team-a");
    assert!(app.client.get_task(task.id).await.unwrap_err().is_not_found());
    assert_eq!(team.get_task(task.id).await.unwrap().id, task.id);
    assert!(app.client.queues().await.unwrap().queues.is_empty());

    let r = app
        .http
        .get(app.url("/v1/queues"))
        .header("agentyard-namespace", "Team A")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    insta::assert_json_snapshot!("invalid_namespace", body);
}

async fn unknown_routes_and_methods_are_problems_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.http.get(app.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "/problems/no-such-route");
    let r = app.http.delete(app.url("/v1/tasks")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "/problems/method-not-allowed");
}

async fn bad_claims_and_transitions_name_what_is_wrong(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .send_raw(Method::POST, "/v1/queues/q/claim", r#"{"agent": "w", "max": 0}"#)
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("max")));
    let (status, body) = app.send_raw(Method::POST, "/v1/queues/q/claim", r#"{}"#).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("agent")));
    let task = app.create("q", json!(1)).await;
    let (status, body) = app
        .send_raw(
            Method::PATCH,
            &format!("/v1/tasks/{}", task.id),
            r#"{"expected_version": 1, "status": "succeeded"}"#,
        )
        .await;
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("status_by_update", redact(body));
}

backend_tests!(
    malformed_json_is_400,
    a_wrong_type_is_422_naming_the_field,
    a_negative_delay_is_422,
    an_invalid_queue_name_in_the_path_is_422,
    task_ids_in_the_path_are_checked,
    a_body_over_the_limit_is_413,
    a_full_queue_answers_429_with_retry_after,
    a_body_that_is_not_json_is_415,
    namespaces_come_from_the_header_and_isolate_tasks,
    unknown_routes_and_methods_are_problems_too,
    bad_claims_and_transitions_name_what_is_wrong,
);
