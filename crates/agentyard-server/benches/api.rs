//! What the HTTP API costs per request without the network: the whole router (routing, the
//! layers, extractors, JSON in and out, the memory store) called in process, no socket. A task
//! claimed and then completed is two requests; creating one is one. Run with
//! `cargo bench -p agentyard-server --bench api`.
//!
//! The figures include what this loop does as a client: building each request and reading the
//! id and lease token out of the claim's answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentyard_core::time::SystemClock;
use agentyard_server::startup::router;
use agentyard_server::{AppState, ServerConfig};
use agentyard_store::MemoryStore;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use serde_json::json;
use tokio::runtime::Runtime;
use tower::Service;

#[derive(Deserialize)]
struct Claimed {
    tasks: Vec<ClaimedTask>,
}

#[derive(Deserialize)]
struct ClaimedTask {
    id: String,
    lease: Lease,
}

#[derive(Deserialize)]
struct Lease {
    token: String,
}

fn post(path: &str, body: &serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("request")
}

/// Sends one request through the router; the answer's body, after checking its status.
async fn call(app: &mut Router, req: Request<Body>, expect: StatusCode) -> axum::body::Bytes {
    let response = app.call(req).await.expect("infallible");
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
    assert_eq!(status, expect, "{}", String::from_utf8_lossy(&body));
    body
}

async fn fill(app: &mut Router, n: u64) {
    let mut left = n;
    while left > 0 {
        let size = left.min(1_000);
        let tasks: Vec<_> = (0..size)
            .map(|i| json!({"queue": "bench", "input": {"i": i}}))
            .collect();
        call(
            app,
            post("/v1/tasks/batch", &json!({ "tasks": tasks })),
            StatusCode::CREATED,
        )
        .await;
        left -= size;
    }
}

/// The whole API over an empty memory store.
fn fresh() -> Router {
    router(AppState::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        ServerConfig::default(),
    ))
}

fn api(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut app = rt.block_on(async { fresh() });
    let mut group = c.benchmark_group("api in process, memory store");
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("create one task", |b| {
        let body = json!({"queue": "created", "input": {"i": 1}});
        b.iter_custom(|iters| {
            rt.block_on(async {
                // A yard of its own for each sample, so the queue never reaches its depth limit.
                let mut app = fresh();
                let start = Instant::now();
                for _ in 0..iters {
                    call(&mut app, post("/v1/tasks", &body), StatusCode::CREATED).await;
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("claim one task, then complete it", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                fill(&mut app, iters).await;
                let claim = json!({"agent": "worker-1", "max": 1});
                let start = Instant::now();
                for _ in 0..iters {
                    let body = call(&mut app, post("/v1/queues/bench/claim", &claim), StatusCode::OK).await;
                    let mut claimed: Claimed = serde_json::from_slice(&body).expect("claim answer");
                    let task = claimed.tasks.pop().expect("a task to claim");
                    let complete = json!({"lease_token": task.lease.token});
                    let path = format!("/v1/tasks/{}/complete", task.id);
                    call(&mut app, post(&path, &complete), StatusCode::OK).await;
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, api);
criterion_main!(benches);
