//! Backpressure: a full inbox refuses direct messages with 429, and `/health` reports
//! `degraded` (still 200) once a queue or an inbox reaches 80 % of its limit.

use agentyard_core::api::SendMessageRequest;
use agentyard_server::ServerConfig;
use agentyard_server::metrics::BACKPRESSURE_EVENTS_TOTAL;
use serde_json::json;

use crate::{Backend, TestApp, agent, problem, redact, register};

async fn a_full_inbox_refuses_direct_messages(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        ServerConfig {
            max_inbox_depth: Some(3),
            ..ServerConfig::default()
        },
    )
    .await;
    register(&app, "busy").await;
    for i in 0..3 {
        app.client
            .send_message(&SendMessageRequest::to_agent(agent("busy"), json!(i)))
            .await
            .unwrap();
    }
    let e = app
        .client
        .send_message(&SendMessageRequest::to_agent(agent("busy"), json!("one too many")))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(e.retry_after_secs(), Some(1));
    assert_eq!(problem(&e).kind, agentyard_client::kinds::INBOX_FULL);
    assert_eq!(app.state.counters.get(BACKPRESSURE_EVENTS_TOTAL), Some(1));
    let (status, body) = app
        .send_raw(
            reqwest::Method::POST,
            "/v1/messages",
            r#"{"to": {"agent": "busy"}, "body": 4}"#,
        )
        .await;
    assert_eq!(status, 429);
    insta::assert_json_snapshot!("inbox_full", redact(body));
    // Acknowledging makes room.
    let inbox = app.client.inbox(&agent("busy"), None, None, None).await.unwrap();
    app.client.ack(&agent("busy"), inbox.cursor).await.unwrap();
    app.client
        .send_message(&SendMessageRequest::to_agent(agent("busy"), json!("fits again")))
        .await
        .unwrap();
    app.stop().await;
}

async fn health_is_degraded_at_eighty_percent_of_a_limit(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        ServerConfig {
            max_inbox_depth: Some(10),
            max_queue_depth: Some(10),
            ..ServerConfig::default()
        },
    )
    .await;
    register(&app, "slow").await;
    for i in 0..7 {
        app.create("backlog", json!(i)).await;
        app.client
            .send_message(&SendMessageRequest::to_agent(agent("slow"), json!(i)))
            .await
            .unwrap();
    }
    let h = app.client.health().await.unwrap();
    assert_eq!((h.status.as_str(), h.reasons.len()), ("ok", 0), "{h:?}");
    app.create("backlog", json!(7)).await;
    app.client
        .send_message(&SendMessageRequest::to_agent(agent("slow"), json!(7)))
        .await
        .unwrap();
    // The verdict is cached for half a second.
    let h = loop {
        let h = app.client.health().await.unwrap();
        if h.status != "ok" {
            break h;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(h.status, "degraded");
    let mut kinds: Vec<(&str, &str, u64, u64)> = h
        .reasons
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.depth, r.limit))
        .collect();
    kinds.sort();
    assert_eq!(kinds, [("inbox", "slow", 8, 10), ("queue", "backlog", 8, 10)]);
    insta::assert_json_snapshot!("health_degraded", h);
    // Live and ready do not care.
    assert_eq!(app.client.live().await.unwrap().status, "ok");
    assert_eq!(app.client.ready().await.unwrap().status, "ready");
    app.stop().await;
}

backend_tests!(
    a_full_inbox_refuses_direct_messages,
    health_is_degraded_at_eighty_percent_of_a_limit,
);
