//! Keyed dispatch limits held across a fleet of claiming agents (a `rate_limit_key` token bucket
//! and a `concurrency_key` cap), limits set at run time, and the per-agent API rate.
//!
//! Bounds here come from the configured rates (burst + rate × elapsed) and are generous; no
//! assertion depends on how fast the machine is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest, LimitRequest};
use agentyard_core::flow::RateLimit;
use agentyard_server::ServerConfig;
use agentyard_server::config::LimitConfig;
use agentyard_server::metrics::{DISPATCH_RATE_LIMITED_TOTAL, RATE_LIMIT_HITS_TOTAL};
use serde_json::json;

use crate::{Backend, TestApp, agent, problem, q, redact, register};

async fn create_keyed(app: &TestApp, queue: &str, n: usize, rate_key: Option<&str>, concurrency_key: Option<&str>) {
    let reqs: Vec<CreateTaskRequest> = (0..n)
        .map(|i| {
            let mut r = CreateTaskRequest::new(q(queue), json!(i));
            r.rate_limit_key = rate_key.map(str::to_owned);
            r.concurrency_key = concurrency_key.map(str::to_owned);
            r
        })
        .collect();
    app.client.create_tasks(&reqs).await.unwrap();
}

async fn a_keyed_rate_limit_holds_a_fleet_of_twenty_to_its_rate(backend: Backend) {
    let mut config = ServerConfig::default();
    let rate = RateLimit {
        rate_per_minute: 120,
        burst: 5,
    };
    config.limits.insert(
        "openai".into(),
        LimitConfig {
            rate: Some(rate),
            // Enough that concurrency never is what holds tasks back.
            max_concurrent: Some(1_000),
        },
    );
    let app = TestApp::spawn_with(backend, config).await;
    create_keyed(&app, "llm", 200, Some("openai"), Some("openai")).await;
    let claimed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut fleet = Vec::new();
    for i in 0..20 {
        let (client, claimed, stop) = (app.client.clone(), claimed.clone(), stop.clone());
        fleet.push(tokio::spawn(async move {
            let mut req = ClaimRequest::new(agent(&format!("worker-{i}")));
            req.wait_ms = Some(300);
            while !stop.load(Ordering::SeqCst) {
                for t in client.claim(&q("llm"), &req).await.unwrap().tasks {
                    claimed.fetch_add(1, Ordering::SeqCst);
                    let done = CompleteRequest {
                        lease_token: t.lease.unwrap().token,
                        result: None,
                        artifacts: None,
                    };
                    client.complete(t.id, &done).await.unwrap();
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for f in fleet {
        f.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = claimed.load(Ordering::SeqCst) as f64;
    let most = f64::from(rate.burst) + f64::from(rate.rate_per_minute) / 60.0 * elapsed + 1.0;
    assert!(n > 0.0, "nothing was claimed");
    assert!(
        n <= most,
        "{n} claims in {elapsed:.2} s; the limit allows at most {most:.1}"
    );
    assert!(app.state.counters.get(DISPATCH_RATE_LIMITED_TOTAL).unwrap() > 0);
    // Tasks without the key are not held back meanwhile.
    create_keyed(&app, "llm", 30, None, None).await;
    let mut req = ClaimRequest::new(agent("free"));
    req.max = Some(100);
    let free = app.client.claim(&q("llm"), &req).await.unwrap().tasks;
    assert!(free.len() >= 30, "only {} of the unkeyed tasks came", free.len());
    app.stop().await;
}

async fn a_concurrency_key_never_exceeds_its_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let limit = app
        .client
        .set_limit(
            "repo:acme/web",
            &LimitRequest {
                max_concurrent: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limit.max_concurrent, Some(3));
    assert_eq!(app.client.limits().await.unwrap(), vec![limit]);
    let total = 60;
    create_keyed(&app, "edits", total, None, Some("repo:acme/web")).await;
    let done = Arc::new(AtomicU64::new(0));
    let mut fleet = Vec::new();
    for i in 0..20 {
        let (client, done) = (app.client.clone(), done.clone());
        fleet.push(tokio::spawn(async move {
            let mut req = ClaimRequest::new(agent(&format!("coder-{i}")));
            req.wait_ms = Some(200);
            req.max = Some(2);
            while done.load(Ordering::SeqCst) < total as u64 {
                for t in client.claim(&q("edits"), &req).await.unwrap().tasks {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let c = CompleteRequest {
                        lease_token: t.lease.unwrap().token,
                        result: None,
                        artifacts: None,
                    };
                    client.complete(t.id, &c).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < total as u64 {
        assert!(Instant::now() < deadline, "the fleet did not finish");
        let stats = app.client.queue_stats(&q("edits")).await.unwrap();
        assert!(
            stats.counts.running <= 3,
            "{} running with a limit of 3",
            stats.counts.running
        );
        most = most.max(stats.counts.running);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for f in fleet {
        f.await.unwrap();
    }
    assert!(most >= 1, "never saw a task running");
    let stats = app.client.queue_stats(&q("edits")).await.unwrap();
    assert_eq!(stats.counts.succeeded, total as u64);
    app.stop().await;
}

async fn an_unconfigured_concurrency_key_runs_one_at_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_keyed(&app, "serial", 3, None, Some("db-migration")).await;
    let mut req = ClaimRequest::new(agent("a"));
    req.max = Some(10);
    let first = app.client.claim(&q("serial"), &req).await.unwrap().tasks;
    assert_eq!(first.len(), 1);
    assert!(app.claim_one("serial", "b").await.is_none());
    // Finishing it wakes a waiting claimer for the next one.
    let client = app.client.clone();
    let waiting = tokio::spawn(async move {
        let mut req = ClaimRequest::new(agent("b"));
        req.wait_ms = Some(30_000);
        client.claim(&q("serial"), &req).await
    });
    crate::eventually(10, "b parks", || async { app.state.dispatch.waiters.parked() >= 1 }).await;
    let t = &first[0];
    let c = CompleteRequest {
        lease_token: t.lease.clone().unwrap().token,
        result: None,
        artifacts: None,
    };
    app.client.complete(t.id, &c).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.tasks.len(), 1);
    app.stop().await;
}

async fn limits_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.send_raw(reqwest::Method::PUT, "/v1/limits/openai", "{}").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("body")));
    let (status, body) = app
        .send_raw(reqwest::Method::PUT, "/v1/limits/openai", r#"{"burst": 3}"#)
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("rate_per_minute")));
    // A key that would forge a log line (newline, then escape codes) is refused.
    let (status, body) = app
        .send_raw(
            reqwest::Method::PUT,
            "/v1/limits/openai%0A2026-12-07%20INFO%20fine%1B%5B2K",
            r#"{"rate_per_minute": 60}"#,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("key")), "{body}");
    let set = app
        .client
        .set_limit(
            "openai",
            &LimitRequest {
                rate_per_minute: Some(60),
                burst: Some(10),
                max_concurrent: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (set.rate_per_minute, set.burst, set.max_concurrent),
        (Some(60), Some(10), None)
    );
    app.stop().await;
}

async fn an_agent_flooding_the_api_is_slowed_and_others_are_not(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        ServerConfig {
            agent_rate: Some(RateLimit {
                rate_per_minute: 60,
                burst: 5,
            }),
            ..ServerConfig::default()
        },
    )
    .await;
    register(&app, "flood").await;
    register(&app, "calm").await;
    let mut refused = None;
    for _ in 0..20 {
        if let Err(e) = app.client.heartbeat_agent(&agent("flood")).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("the flood was never refused");
    assert!(e.is_rate_limited(), "{e}");
    let secs = e.retry_after_secs().expect("Retry-After");
    assert!((1..=2).contains(&secs), "Retry-After {secs}");
    let p = problem(&e);
    assert_eq!(p.extra["agent"], "flood");
    // Its claims and sends are refused too; the calm agent's requests all go through.
    let e = app
        .client
        .claim(&q("any"), &ClaimRequest::new(agent("flood")))
        .await
        .unwrap_err();
    assert!(e.is_rate_limited());
    // Its registration took one token of five; a claim and three heartbeats take the rest.
    for _ in 0..3 {
        app.client.heartbeat_agent(&agent("calm")).await.unwrap();
    }
    assert!(app.claim_one("any", "calm").await.is_none());
    assert!(app.state.counters.get(RATE_LIMIT_HITS_TOTAL).unwrap() >= 2);

    let r = app
        .http
        .post(app.url("/v1/agents/flood/heartbeat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let mut body: serde_json::Value = r.json().await.unwrap();
    // The wait left depends on how fast the requests above went.
    body["retry_after_ms"] = json!("[ms]");
    body["detail"] = json!(body["detail"].as_str().unwrap().split("; retry in").next().unwrap());
    insta::assert_json_snapshot!("agent_rate_limited", redact(body));
    app.stop().await;
}

backend_tests!(
    a_keyed_rate_limit_holds_a_fleet_of_twenty_to_its_rate,
    a_concurrency_key_never_exceeds_its_limit,
    an_unconfigured_concurrency_key_runs_one_at_a_time,
    limits_are_checked,
    an_agent_flooding_the_api_is_slowed_and_others_are_not,
);
