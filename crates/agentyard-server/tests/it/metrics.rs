//! `GET /metrics` counts what happened, correlation ids come back on every response, and with
//! `--auth` the metrics need a token (a reader's is enough). The metric names the shipped
//! dashboard and alert rules (`deploy/`) use are all in a scrape.

use std::collections::BTreeSet;
use std::sync::Arc;

use agentyard_core::api::{ClaimRequest, CompleteRequest, FailRequest, FailureReport};
use agentyard_core::auth::{Namespaces, NewToken, Role};
use agentyard_core::{ManualClock, Namespace, Timestamp};
use agentyard_server::ServerConfig;
use agentyard_server::auth::issue::issue;
use agentyard_server::dispatch::timers::Timers;
use serde_json::{Value, json};

use crate::{Backend, TestApp, agent, q};

/// The value of the sample `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (series_name == name && all).then(|| value.parse().expect("a number"))
    })
}

async fn scrape(app: &TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.expect("text")
}

async fn metrics_count_what_a_workload_did(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let mut tasks = Vec::new();
    for i in 0..5 {
        tasks.push(app.create("work", json!({"i": i})).await);
    }
    let mut claimed = Vec::new();
    for _ in 0..4 {
        let task = c
            .claim(&q("work"), &ClaimRequest::new(agent("w")))
            .await
            .expect("claim")
            .tasks
            .pop()
            .expect("a task");
        claimed.push(task);
    }
    for task in &claimed[..2] {
        let req = CompleteRequest {
            lease_token: task.lease.clone().expect("a lease").token,
            result: None,
            artifacts: None,
        };
        c.complete(task.id, &req).await.expect("complete");
    }
    let failure = FailRequest {
        lease_token: claimed[2].lease.clone().expect("a lease").token,
        error: FailureReport {
            kind: None,
            message: "no".into(),
            retryable: Some(false),
        },
    };
    c.fail(claimed[2].id, &failure).await.expect("fail");
    // One request no route matches.
    let r = app.http.get(app.url("/nowhere/at/all")).send().await.expect("send");
    assert_eq!(r.status(), 404);

    let text = scrape(&app).await;
    let requests = |method: &str, route: &str, status: &str| {
        let labels = [("method", method), ("route", route), ("status", status)];
        sample(&text, "agentyard_http_requests_total", &labels)
    };
    assert_eq!(requests("POST", "/v1/tasks", "201"), Some(5.0), "{text}");
    assert_eq!(requests("POST", "/v1/queues/{queue}/claim", "200"), Some(4.0));
    assert_eq!(requests("POST", "/v1/tasks/{id}/complete", "200"), Some(2.0));
    assert_eq!(requests("POST", "/v1/tasks/{id}/fail", "200"), Some(1.0));
    assert_eq!(requests("GET", "unmatched", "404"), Some(1.0));
    let claims = [
        ("method", "POST"),
        ("route", "/v1/queues/{queue}/claim"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "agentyard_http_request_duration_seconds_count", &claims),
        Some(4.0)
    );
    let inf = [claims.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        sample(&text, "agentyard_http_request_duration_seconds_bucket", &inf),
        Some(4.0)
    );
    // Route templates only, never a raw path or a task id.
    for task in &tasks {
        assert!(!text.contains(&task.id.to_string()), "a task id in the metrics");
    }
    assert!(!text.contains("/nowhere"));

    let work = [("namespace", "default"), ("queue", "work")];
    let status = |s: &'static str| [work[0], work[1], ("status", s)];
    assert_eq!(sample(&text, "agentyard_queue_depth", &work), Some(1.0));
    assert_eq!(sample(&text, "agentyard_tasks_running", &work), Some(1.0));
    assert_eq!(sample(&text, "agentyard_tasks", &status("succeeded")), Some(2.0));
    assert_eq!(sample(&text, "agentyard_tasks", &status("failed")), Some(1.0));
    assert_eq!(sample(&text, "agentyard_tasks", &status("queued")), Some(1.0));
    let age = sample(&text, "agentyard_queue_oldest_ready_age_seconds", &work).expect("an age");
    assert!((0.0..60.0).contains(&age), "{age}");
    let active = [("namespace", "default"), ("status", "active")];
    assert_eq!(sample(&text, "agentyard_agents", &active), Some(1.0));
    assert_eq!(sample(&text, "agentyard_store_up", &[]), Some(1.0));
    // The counters kept before there was an endpoint are exported too.
    assert_eq!(sample(&text, "agentyard_messages_sent_total", &[]), Some(0.0));
    assert_eq!(sample(&text, "agentyard_backpressure_events_total", &[]), Some(0.0));
    if cfg!(target_os = "linux") {
        assert!(sample(&text, "process_resident_memory_bytes", &[]).expect("rss") > 1e6);
        assert!(sample(&text, "process_cpu_seconds_total", &[]).expect("cpu") >= 0.0);
    }

    // A scrape is a request too, counted once it is answered.
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "agentyard_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ),
        Some(1.0)
    );
}

async fn correlation_ids_are_echoed_or_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-correlation-id")
            .expect("a correlation id")
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let get = |headers: &[(&str, String)]| {
        let mut rb = app.http.get(app.url("/v1/tasks"));
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        rb.send()
    };
    let r = get(&[("x-correlation-id", "job-42/step-7".into())])
        .await
        .expect("send");
    assert_eq!(id_of(&r), "job-42/step-7");
    let longest = "c".repeat(128);
    let r = get(&[("x-correlation-id", longest.clone())]).await.expect("send");
    assert_eq!(id_of(&r), longest);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = get(&[("traceparent", tp.into())]).await.expect("send");
    assert_eq!(id_of(&r), "4bf92f3577b34da6a3ce929d0e0e4736");
    // Absent or unsound: a new ULID each time.
    let mut made = Vec::new();
    for headers in [
        vec![],
        vec![("x-correlation-id", "c".repeat(129))],
        vec![("x-correlation-id", "has a space".to_owned())],
    ] {
        let r = get(&headers).await.expect("send");
        let id = id_of(&r);
        assert!(ulid::Ulid::from_string(&id).is_ok(), "{id} for {headers:?}");
        made.push(id);
    }
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 3);
    // Refusals carry it too.
    let r = app
        .http
        .get(app.url("/nowhere"))
        .header("x-correlation-id", "lost-1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(id_of(&r), "lost-1");
}

/// With `--auth`: no token, 401; a reader token of every namespace, 200; a token limited to
/// some namespaces, 403 (the metrics count every namespace's queues and agents).
async fn with_auth_metrics_need_a_token_and_a_reader_is_enough(backend: Backend) {
    let config = ServerConfig {
        auth: true,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let status = |token: Option<String>| {
        let mut rb = app.http.get(app.url("/metrics"));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move { rb.send().await.expect("send").status().as_u16() }
    };
    let reader = |namespaces: Namespaces| NewToken {
        role: Role::Reader,
        namespaces: Some(namespaces),
        agent: None,
        name: "prometheus".into(),
    };
    let now = app.state.clock.now();
    let everywhere = issue(&*app.state.store, reader(Namespaces::All), now)
        .await
        .expect("issue");
    let team_a = Namespaces::Only(vec![Namespace::parse("team-a").expect("valid")]);
    let one = issue(&*app.state.store, reader(team_a), now).await.expect("issue");
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("ayt_nonsense".into())).await, 401);
    assert_eq!(status(Some(everywhere.token)).await, 200);
    assert_eq!(status(Some(one.token)).await, 403);
}

/// A correlation id the client gave is carried into the tasks and messages the request makes
/// (unless their body names one); one the server made up is not.
async fn a_given_correlation_id_is_carried_into_tasks_and_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |path: &str, body: serde_json::Value, headers: Vec<(&'static str, &'static str)>| {
        let mut rb = app.http.post(app.url(path)).json(&body);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let task: serde_json::Value = post(
        "/v1/tasks",
        json!({"queue": "jobs"}),
        vec![("x-correlation-id", "order-42")],
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    assert_eq!(task["correlation_id"], "order-42");
    let own: serde_json::Value = post(
        "/v1/tasks",
        json!({"queue": "jobs", "correlation_id": "its-own"}),
        vec![("x-correlation-id", "order-42")],
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    assert_eq!(own["correlation_id"], "its-own", "the body's own id wins");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let batch: serde_json::Value = post(
        "/v1/tasks/batch",
        json!({"tasks": [{"queue": "jobs"}, {"queue": "jobs"}]}),
        vec![("traceparent", tp)],
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    for t in batch["tasks"].as_array().expect("tasks") {
        assert_eq!(t["correlation_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
    let plain: serde_json::Value = post("/v1/tasks", json!({"queue": "jobs"}), vec![])
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        plain.get("correlation_id").is_none_or(|c| c.is_null()),
        "no made-up id: {plain}"
    );
    crate::register(&app, "reader").await;
    let message: serde_json::Value = post(
        "/v1/messages",
        json!({"to": {"agent": "reader"}, "body": "hi"}),
        vec![("x-correlation-id", "chat-7")],
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    assert_eq!(message["correlation_id"], "chat-7");
}

/// POSTs `body` to `path` and answers the status with the JSON body.
async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.send_raw(reqwest::Method::POST, path, &body.to_string()).await
}

fn lease_token(task: &Value) -> Value {
    task["lease"]["token"].clone()
}

/// A scripted workload on a clock the test moves, then the task counters and histograms of
/// `/metrics` say exactly what happened: 8 created (an idempotent repeat is not), 8 claimed
/// after waiting 2 s each, 3 completed (a repeated completion counts once) and 3 failed after
/// 0.5 s of work each, 1 of them retried and 2 dead-lettered, 2 leases expired (both retried),
/// one lease revoked by removing its agent, one version conflict, one unread message.
async fn task_metrics_count_a_scripted_workload(backend: Backend) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let config = ServerConfig {
        max_queue_depth: Some(10),
        max_inbox_depth: Some(1),
        ..ServerConfig::default()
    };
    let backend_name = backend.name;
    let app = TestApp::spawn_with_clock(backend, config, Arc::new(clock.clone())).await;
    for _ in 0..5 {
        assert_eq!(post(&app, "/v1/tasks", json!({"queue": "work"})).await.0, 201);
    }
    let once = json!({"queue": "work", "idempotency_key": "once"});
    assert_eq!(post(&app, "/v1/tasks", once.clone()).await.0, 201);
    assert_eq!(post(&app, "/v1/tasks", once).await.0, 200);
    let batch = json!({"tasks": [{"queue": "work"}, {"queue": "work"}]});
    assert_eq!(post(&app, "/v1/tasks/batch", batch).await.0, 201);

    clock.advance(2_000);
    let claim = json!({"agent": "w", "max": 8, "lease_ms": 10_000});
    let (status, claimed) = post(&app, "/v1/queues/work/claim", claim).await;
    assert_eq!(status, 200, "{claimed}");
    let tasks = claimed["tasks"].as_array().expect("tasks").clone();
    assert_eq!(tasks.len(), 8);
    let path = |t: &Value, what: &str| format!("/v1/tasks/{}/{what}", t["id"].as_str().expect("an id"));

    clock.advance(500);
    for t in &tasks[..2] {
        let (status, body) = post(&app, &path(t, "complete"), json!({"lease_token": lease_token(t)})).await;
        assert_eq!(status, 200, "{body}");
    }
    let items = json!({"items": [{"id": tasks[2]["id"], "lease_token": lease_token(&tasks[2])}]});
    assert_eq!(post(&app, "/v1/tasks/complete", items).await.0, 200);
    let retryable = |retryable: bool, t: &Value| json!({"lease_token": lease_token(t), "error": {"message": "no", "retryable": retryable}});
    assert_eq!(
        post(&app, &path(&tasks[3], "fail"), retryable(true, &tasks[3])).await.0,
        200
    );
    for t in &tasks[4..6] {
        assert_eq!(post(&app, &path(t, "fail"), retryable(false, t)).await.0, 200);
    }
    // Completing again under the same lease, later: harmless, and not counted again.
    clock.advance(1);
    let again = json!({"lease_token": lease_token(&tasks[0])});
    assert_eq!(post(&app, &path(&tasks[0], "complete"), again).await.0, 200);

    // The last two leases run out; the server's own timer loop may get there first.
    clock.advance(10_000);
    Timers::new(app.state.clone()).tick().await.expect("tick");

    // A task on another queue whose agent is removed while it holds the lease.
    assert_eq!(post(&app, "/v1/tasks", json!({"queue": "side"})).await.0, 201);
    let (status, _) = post(&app, "/v1/queues/side/claim", json!({"agent": "x"})).await;
    assert_eq!(status, 200);
    let removed = app.http.delete(app.url("/v1/agents/x")).send().await.expect("send");
    assert_eq!(removed.status(), 200);

    // An update naming a stale version.
    let stale = json!({"expected_version": 1, "title": "late"});
    let task_path = format!("/v1/tasks/{}", tasks[6]["id"].as_str().expect("an id"));
    let (status, _) = app
        .send_raw(reqwest::Method::PATCH, &task_path, &stale.to_string())
        .await;
    assert_eq!(status, 409);
    // One unread message fills w's inbox (limit 1): a reason for `degraded`.
    let message = json!({"to": {"agent": "w"}, "body": "hi"});
    assert_eq!(post(&app, "/v1/messages", message).await.0, 201);

    let text = scrape(&app).await;
    let work = [("namespace", "default"), ("queue", "work")];
    let count = |name: &str| sample(&text, name, &work);
    assert_eq!(count("agentyard_tasks_created_total"), Some(8.0));
    assert_eq!(count("agentyard_tasks_claimed_total"), Some(8.0));
    assert_eq!(count("agentyard_tasks_completed_total"), Some(3.0));
    assert_eq!(count("agentyard_tasks_failed_total"), Some(3.0));
    assert_eq!(count("agentyard_tasks_retried_total"), Some(3.0));
    assert_eq!(count("agentyard_tasks_dead_lettered_total"), Some(2.0));
    assert_eq!(count("agentyard_tasks_lease_expired_total"), Some(2.0));
    assert_eq!(count("agentyard_tasks_lease_revoked_total"), None);
    let side = [("namespace", "default"), ("queue", "side")];
    assert_eq!(sample(&text, "agentyard_tasks_lease_revoked_total", &side), Some(1.0));
    assert_eq!(sample(&text, "agentyard_tasks_claimed_total", &side), Some(1.0));
    // Every claim of `work` waited 2 s; every run took 0.5 s.
    assert_eq!(
        count("agentyard_task_pickup_latency_seconds_count"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(count("agentyard_task_pickup_latency_seconds_sum"), Some(16.0));
    let le = |b: &'static str| [work[0], work[1], ("le", b)];
    assert_eq!(
        sample(&text, "agentyard_task_pickup_latency_seconds_bucket", &le("1")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "agentyard_task_pickup_latency_seconds_bucket", &le("2.5")),
        Some(8.0)
    );
    for outcome in ["succeeded", "failed"] {
        let run = [work[0], work[1], ("outcome", outcome)];
        assert_eq!(
            sample(&text, "agentyard_task_run_duration_seconds_count", &run),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "agentyard_task_run_duration_seconds_sum", &run),
            Some(1.5)
        );
    }
    assert_eq!(sample(&text, "agentyard_version_conflicts_total", &[]), Some(1.0));
    let default = [("namespace", "default")];
    assert_eq!(sample(&text, "agentyard_inbox_messages", &default), Some(1.0));
    assert_eq!(sample(&text, "agentyard_inbox_depth_max", &default), Some(1.0));
    let inbox = [default[0], ("kind", "inbox")];
    assert_eq!(sample(&text, "agentyard_health_degraded_reasons", &inbox), Some(1.0));
    let queue = [default[0], ("kind", "queue")];
    assert_eq!(sample(&text, "agentyard_health_degraded_reasons", &queue), Some(0.0));
    let rtt = sample(&text, "agentyard_store_round_trip_seconds", &[]).expect("a round trip");
    assert!((0.0..5.0).contains(&rtt), "{rtt}");
    // What only some backends keep.
    let has = |name: &str| sample(&text, name, &[]).is_some();
    assert_eq!(has("agentyard_store_commit_groups_total"), backend_name == "sqlite");
    assert_eq!(has("agentyard_store_compactions_total"), backend_name == "log");
    assert_eq!(
        has("agentyard_store_disk_free_bytes"),
        matches!(backend_name, "sqlite" | "log")
    );
    if backend_name == "sqlite" {
        let groups = sample(&text, "agentyard_store_commit_groups_total", &[]).expect("groups");
        let commands = sample(&text, "agentyard_store_commit_commands_total", &[]).expect("commands");
        assert!(groups >= 1.0 && commands >= groups, "{groups} {commands}");
    }
    the_deploy_files_use_only_scraped_metrics(&text, backend_name);
}

/// Backend-specific metrics the dashboard and alerts may use, with the backends that export them.
const BACKEND_ONLY: &[(&str, &[&str])] = &[
    ("agentyard_store_commit_groups_total", &["sqlite"]),
    ("agentyard_store_commit_commands_total", &["sqlite"]),
    ("agentyard_store_compactions_total", &["log"]),
    ("agentyard_store_disk_free_bytes", &["sqlite", "log"]),
];

/// Every metric name in a scrape: the series' names, and each family of a `# TYPE` line with the
/// names its samples take (so a family with no series yet still counts).
fn scraped_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// The metric names a PromQL-bearing file uses: identifiers starting `agentyard_` or `process_`.
fn used_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("agentyard_") || w.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

fn the_deploy_files_use_only_scraped_metrics(text: &str, backend_name: &str) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let scraped = scraped_names(text);
    for file in ["grafana/agentyard.json", "prometheus/alerts.yml"] {
        let content = std::fs::read_to_string(format!("{root}/{file}")).expect("a deploy file");
        let used = used_names(&content);
        assert!(used.len() > 5, "{file} names only {used:?}");
        for name in used {
            let elsewhere = BACKEND_ONLY
                .iter()
                .any(|(n, backends)| *n == name && !backends.contains(&backend_name));
            assert!(
                elsewhere || scraped.contains(&name),
                "deploy/{file} uses {name}, which a scrape on {backend_name} does not have"
            );
        }
    }
}

backend_tests!(
    task_metrics_count_a_scripted_workload,
    a_given_correlation_id_is_carried_into_tasks_and_messages,
    metrics_count_what_a_workload_did,
    correlation_ids_are_echoed_or_made,
    with_auth_metrics_need_a_token_and_a_reader_is_enough,
);
