//! The event log over HTTP: pages and filters (`GET /v1/events`), traces, and the live stream
//! (`GET /v1/events/stream`) that a follower leaves and resumes with no gap and no repeat.

use std::collections::HashSet;
use std::time::Duration;

use agentyard_client::{EventQuery, EventStream};
use agentyard_core::Task;
use agentyard_core::api::{CompleteRequest, CreateTaskRequest};
use agentyard_core::event::{Event, EventType};
use serde_json::json;

use crate::{Backend, TestApp, q};

async fn create_with(app: &TestApp, queue: &str, correlation: &str) -> Task {
    let mut req = CreateTaskRequest::new(q(queue), json!({}));
    req.correlation_id = Some(correlation.to_owned());
    app.client.create_task(&req).await.expect("create")
}

async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("read the stream")
        .expect("the stream goes on")
}

async fn the_log_pages_filters_and_traces_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let task = create_with(&app, "jobs", "run-42").await;
    create_with(&app, "jobs", "other").await;
    let held = app.claim_one("jobs", "w1").await.expect("claimed");
    assert_eq!(held.id, task.id);
    let token = held.lease.expect("leased").token;
    let done = CompleteRequest {
        lease_token: token,
        result: None,
        artifacts: None,
    };
    app.client.complete(task.id, &done).await.expect("complete");

    let everything = app.client.all_events(&EventQuery::default()).await.expect("events");
    let kinds: Vec<EventType> = everything.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::TaskCreated,
            EventType::TaskCreated,
            EventType::AgentRegistered,
            EventType::TaskClaimed,
            EventType::TaskCompleted
        ],
        "the claim registered its agent first"
    );
    let page = app
        .client
        .events(&EventQuery::default(), 0, Some(2))
        .await
        .expect("a page");
    assert_eq!(page.events, everything[..2].to_vec());
    assert_eq!(page.next_after, everything[1].seq);
    assert_eq!(page.last_seq, everything[4].seq);

    let history = app
        .client
        .all_events(&EventQuery::task(task.id))
        .await
        .expect("history");
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|e| e.subject == format!("task:{}", task.id)));
    assert_eq!(history[2].actor.as_deref(), Some("w1"));

    let trace = app.client.trace("run-42").await.expect("trace");
    assert_eq!(trace.events, history, "everything under run-42 is the task's history");
    assert!(!trace.truncated);
    assert!(
        app.client
            .trace("nothing")
            .await
            .expect("empty trace")
            .events
            .is_empty()
    );

    let only = EventQuery {
        types: Some("task.claimed,agent.*".into()),
        ..EventQuery::default()
    };
    let got = app.client.all_events(&only).await.expect("filtered");
    assert_eq!(
        got.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventType::AgentRegistered, EventType::TaskClaimed]
    );

    let (status, body) = app
        .send_raw(reqwest::Method::GET, "/v1/events?type=task.nope", "")
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "type", "{body}");
    assert!(body["detail"].as_str().unwrap_or("").contains("task.nope"), "{body}");
    let (status, body) = app.send_raw(reqwest::Method::GET, "/v1/events?after=-1", "").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("after")), "{body}");
    let (status, body) = app.send_raw(reqwest::Method::GET, "/v1/events?limit=0", "").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("limit")), "{body}");
    let other_ns = app
        .http
        .get(app.url("/v1/events"))
        .header("agentyard-namespace", "elsewhere")
        .send()
        .await
        .expect("send");
    let list: serde_json::Value = other_ns.json().await.expect("json");
    assert_eq!(list["events"], json!([]), "another namespace's log is its own");
}

async fn a_follower_resumes_with_no_gap_and_no_repeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_with(&app, "jobs", "before").await;
    // From now on: the task made before the stream started is not sent.
    let mut live = app
        .client
        .event_stream(&EventQuery::default(), None)
        .await
        .expect("stream");
    let mut resumed = app
        .client
        .event_stream(&EventQuery::default(), Some(0))
        .await
        .expect("stream");
    let first = next(&mut resumed).await;
    assert_eq!(
        first.correlation_id.as_deref(),
        Some("before"),
        "after 0 is from the start"
    );

    let mut made = Vec::new();
    for n in 0..5 {
        made.push(create_with(&app, "jobs", &format!("t{n}")).await.id);
    }
    let mut seen: Vec<Event> = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut live).await);
    }
    let last = live.last_event_id().expect("an id");
    drop(live);
    for n in 5..10 {
        made.push(create_with(&app, "jobs", &format!("t{n}")).await.id);
    }
    let mut again = app
        .client
        .event_stream(&EventQuery::default(), Some(last))
        .await
        .expect("resume");
    while seen.len() < 10 {
        seen.push(next(&mut again).await);
    }
    for pair in seen.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "in order, none repeated: {} then {}",
            pair[0].seq,
            pair[1].seq
        );
    }
    let subjects: Vec<String> = seen.iter().map(|e| e.subject.clone()).collect();
    let expected: Vec<String> = made.iter().map(|id| format!("task:{id}")).collect();
    assert_eq!(subjects, expected, "every task made while following, once, in order");
    let unique: HashSet<&String> = subjects.iter().collect();
    assert_eq!(unique.len(), 10);

    // A filtered stream sends only what matches.
    let only = EventQuery {
        types: Some("task.claimed".into()),
        ..EventQuery::default()
    };
    let mut claims = app.client.event_stream(&only, None).await.expect("stream");
    let claimed = app.claim_one("jobs", "w1").await.expect("claimed");
    let e = next(&mut claims).await;
    assert_eq!(
        (e.kind, e.subject.clone()),
        (EventType::TaskClaimed, format!("task:{}", claimed.id))
    );

    // A bad Last-Event-ID is refused, naming the header.
    let r = app
        .http
        .get(app.url("/v1/events/stream"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["field"], "Last-Event-ID", "{body}");
}

backend_tests!(
    the_log_pages_filters_and_traces_over_http,
    a_follower_resumes_with_no_gap_and_no_repeat,
);
