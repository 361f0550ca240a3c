//! Optimistic concurrency over HTTP: stale versions, If-Match, merges, fenced leases.

use agentyard_core::api::{CompleteRequest, HeartbeatRequest, UpdateTaskRequest};
use agentyard_core::{LeaseToken, TaskStatus};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{Backend, TestApp, problem, redact};

fn context(v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn titled(title: &str) -> UpdateTaskRequest {
    UpdateTaskRequest {
        title: Some(title.into()),
        ..UpdateTaskRequest::default()
    }
}

async fn a_stale_version_gets_409_with_both_versions_and_the_current_task(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let task = app.create("docs", json!({"doc": 1})).await;
    let v2 = c.update_task(task.id, 1, &titled("first"), false).await.unwrap();
    assert_eq!((v2.version, v2.title.as_deref()), (2, Some("first")));

    let e = c.update_task(task.id, 1, &titled("second"), false).await.unwrap_err();
    assert_eq!(e.status().unwrap(), 409);
    assert!(e.is_version_conflict());
    let p = problem(&e);
    assert_eq!((p.expected_version, p.actual_version), (Some(1), Some(2)));
    assert_eq!(p.current.as_ref().unwrap().title.as_deref(), Some("first"));
    assert_eq!(
        c.get_task(task.id).await.unwrap().title.as_deref(),
        Some("first"),
        "lost update"
    );

    let (status, body) = app
        .send_raw(
            Method::PATCH,
            &format!("/v1/tasks/{}", task.id),
            r#"{"expected_version": 1, "title": "third"}"#,
        )
        .await;
    assert_eq!(status, 409);
    insta::assert_json_snapshot!("version_conflict_over_http", redact(body));
}

async fn if_match_guards_updates_and_a_mismatch_is_412(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let task = app.create("docs", json!(1)).await;
    let path = app.url(&format!("/v1/tasks/{}", task.id));
    let patch = |etag: &str, body: &'static str| {
        app.http
            .patch(&path)
            .header("content-type", "application/json")
            .header("if-match", etag)
            .body(body)
            .send()
    };
    let ok = patch("\"1\"", r#"{"title": "a"}"#).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["etag"], "\"2\"");

    let stale = patch("\"1\"", r#"{"title": "b"}"#).await.unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.headers()["content-type"], "application/problem+json");
    let body: Value = stale.json().await.unwrap();
    assert_eq!(
        (body["expected_version"].as_u64(), body["actual_version"].as_u64()),
        (Some(1), Some(2))
    );
    insta::assert_json_snapshot!("precondition_failed_over_http", redact(body));

    let garbage = patch("yesterday", r#"{"title": "b"}"#).await.unwrap();
    assert_eq!(garbage.status(), 422);
    let body: Value = garbage.json().await.unwrap();
    assert_eq!(body["field"], "If-Match");

    let disagree = patch("\"2\"", r#"{"title": "b", "expected_version": 1}"#)
        .await
        .unwrap();
    assert_eq!(disagree.status(), 422);

    let (status, body) = app
        .send_raw(Method::PATCH, &format!("/v1/tasks/{}", task.id), r#"{"title": "c"}"#)
        .await;
    assert_eq!(status, 428);
    assert_eq!(body["type"], "/problems/precondition-required");
}

async fn merge_combines_disjoint_context_keys_and_refuses_the_same_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let task = app.create("plans", json!(null)).await;
    let set = |v: Value| UpdateTaskRequest {
        context: context(v),
        ..UpdateTaskRequest::default()
    };
    // Two agents read version 1; the first writes `a`.
    c.update_task(task.id, 1, &set(json!({"a": 1})), false).await.unwrap();
    // Without merge the second is refused; with merge its disjoint key `b` goes in.
    let e = c
        .update_task(task.id, 1, &set(json!({"b": 2})), false)
        .await
        .unwrap_err();
    assert!(e.is_version_conflict());
    let merged = c.update_task(task.id, 1, &set(json!({"b": 2})), true).await.unwrap();
    assert_eq!(Value::Object(merged.context.clone()), json!({"a": 1, "b": 2}));
    assert_eq!(merged.version, 3);

    // A third, also from version 1, changes `a` again: a real conflict.
    let e = c
        .update_task(task.id, 1, &set(json!({"a": 5})), true)
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 409);
    let p = problem(&e);
    assert_eq!(p.kind, "/problems/merge-conflict");
    assert_eq!(p.conflicts.as_deref(), Some(&["/a".to_owned()][..]));
    assert_eq!((p.expected_version, p.actual_version), (Some(1), Some(3)));
    let now = c.get_task(task.id).await.unwrap();
    assert_eq!(Value::Object(now.context), json!({"a": 1, "b": 2}));

    // Status changes are never merged.
    let cancel = UpdateTaskRequest {
        status: Some(TaskStatus::Cancelled),
        ..UpdateTaskRequest::default()
    };
    let e = c.update_task(task.id, 1, &cancel, true).await.unwrap_err();
    assert_eq!(problem(&e).kind, "/problems/version-conflict");
    let cancelled = c.update_task(task.id, 3, &cancel, false).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
}

async fn a_wrong_lease_token_gets_409_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let task = app.create("work", json!(1)).await;
    let claimed = app.claim_one("work", "w").await.unwrap();
    let before = c.get_task(task.id).await.unwrap();

    let e = c
        .complete(
            task.id,
            &CompleteRequest {
                lease_token: LeaseToken::new("not-the-token"),
                result: Some(json!("forged")),
                artifacts: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 409);
    let p = problem(&e);
    assert_eq!(p.kind, "/problems/lease-conflict");
    assert_eq!(p.task_status, Some(TaskStatus::Running));
    assert!(
        p.current.is_none(),
        "a lease conflict must not reveal the current lease"
    );

    let hb = HeartbeatRequest {
        lease_token: LeaseToken::new("not-the-token"),
        lease_ms: None,
        progress: None,
    };
    assert!(c.heartbeat(task.id, &hb).await.unwrap_err().is_lease_conflict());
    assert_eq!(c.get_task(task.id).await.unwrap(), before);
    assert_eq!(claimed.version, before.version);
}

backend_tests!(
    a_stale_version_gets_409_with_both_versions_and_the_current_task,
    if_match_guards_updates_and_a_mismatch_is_412,
    merge_combines_disjoint_context_keys_and_refuses_the_same_key,
    a_wrong_lease_token_gets_409_and_changes_nothing,
);
