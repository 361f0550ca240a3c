//! Webhooks against a real receiver (an HTTP server in the test): signed deliveries in order;
//! a receiver that fails gets retries, then a paused webhook, then, once it works again, every
//! event, none lost; and the same across a server restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentyard_client::Client;
use agentyard_core::api::{CreateWebhookRequest, WebhookState};
use agentyard_core::event::Event;
use agentyard_server::config::WebhookConfig;
use agentyard_server::dispatch::webhooks::signature;
use agentyard_server::{AppState, ServerConfig, startup};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::{Backend, TestApp};

const SECRET: &str = "0123456789abcdef-secret";

/// What the receiver took (answered 2xx), by delivery id, and how many requests it saw.
#[derive(Default)]
struct Received {
    taken: Mutex<BTreeMap<u64, Event>>,
    requests: Mutex<u64>,
    failing: AtomicBool,
    bad_signatures: Mutex<Vec<String>>,
}

async fn receiver() -> (SocketAddr, Arc<Received>) {
    let got = Arc::new(Received::default());
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let got = state.clone();
            async move {
                *got.requests.lock().unwrap() += 1;
                if got.failing.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let timestamp: i64 = header("agentyard-timestamp").parse().unwrap_or(-1);
                if header("agentyard-signature") != signature(SECRET, timestamp, &body) {
                    got.bad_signatures.lock().unwrap().push(header("agentyard-delivery-id"));
                    return StatusCode::UNAUTHORIZED;
                }
                let doc: Value = serde_json::from_slice(&body).expect("a JSON body");
                let event: Event = serde_json::from_value(doc["event"].clone()).expect("an event");
                assert_eq!(
                    doc["delivery_id"],
                    format!("{}:{}", doc["webhook_id"].as_str().unwrap(), event.seq)
                );
                assert_eq!(header("agentyard-delivery-id"), doc["delivery_id"].as_str().unwrap());
                assert_eq!(header("agentyard-event-type"), event.kind.as_str());
                got.taken.lock().unwrap().insert(event.seq, event);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, got)
}

/// Quick retries and a short breaker, so the test takes seconds.
fn quick() -> ServerConfig {
    ServerConfig {
        webhooks: WebhookConfig {
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_millis(400),
            ..WebhookConfig::default()
        },
        ..ServerConfig::default()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited 15 s for {what}");
}

fn subscribe(addr: SocketAddr) -> CreateWebhookRequest {
    CreateWebhookRequest {
        url: format!("http://{addr}/hook"),
        secret: SECRET.into(),
        types: vec!["task.created".into()],
    }
}

async fn make(client: &Client, n: usize, tag: &str) {
    for i in 0..n {
        client
            .create_task(&agentyard_core::api::CreateTaskRequest::new(
                crate::q("jobs"),
                json!({ "tag": tag, "i": i }),
            ))
            .await
            .expect("create");
    }
}

async fn deliveries_are_signed_in_order_and_resume_after_a_pause(backend: Backend) {
    let (addr, got) = receiver().await;
    let app = TestApp::spawn_with(backend, quick()).await;
    make(&app.client, 2, "before").await;
    let hook = app
        .client
        .create_webhook(&subscribe(addr))
        .await
        .expect("create webhook");
    assert_eq!(hook.state, WebhookState::Active);
    make(&app.client, 3, "first").await;
    eventually("three deliveries", || got.taken.lock().unwrap().len() == 3).await;
    assert!(got.bad_signatures.lock().unwrap().is_empty());
    let taken: Vec<Event> = got.taken.lock().unwrap().values().cloned().collect();
    assert!(taken.iter().all(|e| e.data["queue"] == "jobs"));
    assert!(
        taken
            .iter()
            .all(|e| e.kind == agentyard_core::event::EventType::TaskCreated),
        "only the types asked for"
    );

    got.failing.store(true, Ordering::SeqCst);
    make(&app.client, 2, "while failing").await;
    let client = app.client.clone();
    let id = hook.webhook.id.clone();
    let mut paused = None;
    for _ in 0..300 {
        let view = client.webhook(&id).await.expect("get webhook");
        if view.state == WebhookState::Paused {
            paused = Some(view);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = paused.expect("the breaker opened");
    assert!(paused.consecutive_failures >= 3);
    assert!(paused.paused_until.is_some());
    assert!(paused.last_error.as_deref().unwrap_or("").contains("500"), "{paused:?}");
    let attempts = client.deliveries(&id).await.expect("deliveries");
    assert!(
        attempts.iter().take(3).all(|d| !d.delivered && d.status == Some(500)),
        "{attempts:?}"
    );
    assert_eq!(
        attempts[0].id, attempts[1].id,
        "retries of one event share the delivery id"
    );
    assert!(attempts[0].attempt > attempts[1].attempt);

    got.failing.store(false, Ordering::SeqCst);
    eventually("every event, once the receiver works again", || {
        got.taken.lock().unwrap().len() == 5
    })
    .await;
    let view = client.webhook(&id).await.expect("get webhook");
    assert_eq!(view.state, WebhookState::Active);
    assert_eq!(view.consecutive_failures, 0);
    let all = client
        .all_events(&agentyard_client::EventQuery {
            types: Some("task.created".into()),
            ..Default::default()
        })
        .await
        .expect("events");
    let expected: Vec<u64> = all.iter().skip(2).map(|e| e.seq).collect();
    let delivered: Vec<u64> = got.taken.lock().unwrap().keys().copied().collect();
    assert_eq!(
        delivered, expected,
        "every event after the webhook was made, none before, none lost"
    );

    let bad = app
        .client
        .create_webhook(&CreateWebhookRequest {
            url: "ftp://example.com/x".into(),
            secret: SECRET.into(),
            types: Vec::new(),
        })
        .await
        .expect_err("not http");
    assert_eq!(crate::problem(&bad).field.as_deref(), Some("url"));
    let short = app
        .client
        .create_webhook(&CreateWebhookRequest {
            secret: "short".into(),
            ..subscribe(addr)
        })
        .await
        .expect_err("a short secret");
    assert_eq!(crate::problem(&short).field.as_deref(), Some("secret"));
    let typo = app
        .client
        .create_webhook(&CreateWebhookRequest {
            types: vec!["task.finished".into()],
            ..subscribe(addr)
        })
        .await
        .expect_err("no such type");
    assert_eq!(crate::problem(&typo).field.as_deref(), Some("types[0]"));

    let delivered = got.taken.lock().unwrap().len();
    app.client.delete_webhook(&id).await.expect("delete");
    assert!(app.client.webhooks().await.expect("list").is_empty());
    make(&app.client, 1, "after the webhook was removed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        got.taken.lock().unwrap().len(),
        delivered,
        "nothing more is delivered once removed"
    );
    let err = app.client.webhook(&id).await.expect_err("gone");
    assert_eq!(crate::problem(&err).status, 404);
}

backend_tests!(deliveries_are_signed_in_order_and_resume_after_a_pause);

/// A server stopped while its receiver is down delivers everything after it restarts on the
/// same store.
async fn nothing_is_lost_across_a_restart(open: impl Fn() -> Arc<dyn agentyard_store::Yard>) {
    let (addr, got) = receiver().await;
    got.failing.store(true, Ordering::SeqCst);
    let first = spawn(open(), quick()).await;
    first
        .client
        .create_webhook(&subscribe(addr))
        .await
        .expect("create webhook");
    make(&first.client, 4, "before the restart").await;
    eventually("a failed attempt", || *got.requests.lock().unwrap() >= 1).await;
    first.stop().await;

    got.failing.store(false, Ordering::SeqCst);
    let second = spawn(open(), quick()).await;
    make(&second.client, 2, "after the restart").await;
    eventually("all six events", || got.taken.lock().unwrap().len() == 6).await;
    let subjects: std::collections::HashSet<String> =
        got.taken.lock().unwrap().values().map(|e| e.subject.clone()).collect();
    assert_eq!(subjects.len(), 6, "six tasks, each delivered");
    second.stop().await;
}

struct Running {
    client: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.expect("server task").expect("server result");
    }
}

async fn spawn(store: Arc<dyn agentyard_store::Yard>, config: ServerConfig) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = AppState::new(store, Arc::new(agentyard_core::SystemClock), config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(startup::run(listener, state, async move {
        let _ = rx.await;
    }));
    Running {
        client: Client::new(format!("http://{addr}")),
        stop: tx,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_deliveries_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.db");
    nothing_is_lost_across_a_restart(|| {
        let store = agentyard_store_sqlite::SqliteStore::open(&path, agentyard_store_sqlite::SqliteOptions::default())
            .expect("open sqlite");
        Arc::new(store)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_deliveries_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    nothing_is_lost_across_a_restart(|| {
        let store =
            agentyard_store_log::LogStore::open(&path, agentyard_store_log::LogOptions::default()).expect("open log");
        Arc::new(store)
    })
    .await;
}
