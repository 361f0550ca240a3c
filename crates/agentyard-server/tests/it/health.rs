//! `GET /health/detailed`: the verdict of `/health` with the figures behind it, and with
//! `--auth` only the queues, inboxes and reasons of the token's namespaces.

use agentyard_core::Namespace;
use agentyard_core::auth::{Namespaces, NewToken, Role};
use agentyard_server::ServerConfig;
use agentyard_server::auth::issue::issue;
use serde_json::{Value, json};

use crate::{Backend, TestApp};

async fn detailed(app: &TestApp, token: Option<&str>) -> (u16, Value) {
    let mut rb = app.http.get(app.url("/health/detailed"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn the_detailed_health_shows_the_figures_behind_the_verdict(backend: Backend) {
    let config = ServerConfig {
        max_queue_depth: Some(10),
        max_inbox_depth: Some(2),
        ..ServerConfig::default()
    };
    let name = backend.name;
    let app = TestApp::spawn_with(backend, config).await;
    let (status, h) = detailed(&app, None).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["queues"], json!([]));
    for _ in 0..9 {
        app.create("work", json!({})).await;
    }
    crate::register(&app, "reader").await;
    let (status, _) = app
        .send_raw(
            reqwest::Method::POST,
            "/v1/messages",
            &json!({"to": {"agent": "reader"}, "body": "hi"}).to_string(),
        )
        .await;
    assert_eq!(status, 201);

    let (status, h) = detailed(&app, None).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "9 of 10 is past 80 %: {h}");
    let reasons = h["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 1, "{h}");
    assert_eq!(
        (reasons[0]["kind"].as_str(), reasons[0]["name"].as_str()),
        (Some("queue"), Some("work"))
    );
    let queue = &h["queues"][0];
    assert_eq!(
        (queue["queue"].as_str(), queue["depth"].as_u64()),
        (Some("work"), Some(9))
    );
    assert_eq!(
        (queue["limit"].as_u64(), queue["running"].as_u64()),
        (Some(10), Some(0))
    );
    assert!(queue["oldest_ready_age_ms"].as_u64().is_some(), "{queue}");
    let inbox = &h["inboxes"][0];
    assert_eq!(inbox["namespace"], "default");
    assert_eq!(
        (inbox["agents"].as_u64(), inbox["unacknowledged"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (inbox["deepest_agent"].as_str(), inbox["limit"].as_u64()),
        (Some("reader"), Some(2))
    );
    let rtt = h["store"]["round_trip_ms"].as_f64().expect("a round trip");
    assert!((0.0..5_000.0).contains(&rtt), "{rtt}");
    // Disk free only where the store has files; SQLite reports its commits, the log its compactions.
    let files = matches!(name, "sqlite" | "log");
    assert_eq!(h["disk"]["free_bytes"].as_u64().is_some(), files, "{h}");
    assert_eq!(h["store"]["commit_groups"].as_u64().is_some(), name == "sqlite", "{h}");
    assert_eq!(h["store"]["compactions"].as_u64().is_some(), name == "log", "{h}");
    if cfg!(target_os = "linux") {
        assert!(h["process"]["resident_bytes"].as_u64().expect("rss") > 1_000_000, "{h}");
    }
}

/// With `--auth`: no token, 401; a token of another namespace sees none of `default`'s queues
/// or reasons (and `ok`); one of every namespace sees them.
async fn with_auth_a_token_sees_only_its_namespaces_in_the_detailed_health(backend: Backend) {
    let config = ServerConfig {
        auth: true,
        max_queue_depth: Some(10),
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let now = app.state.clock.now();
    let reader = |namespaces| NewToken {
        role: Role::Reader,
        namespaces: Some(namespaces),
        agent: None,
        name: "watcher".into(),
    };
    let operator = NewToken {
        role: Role::Operator,
        namespaces: Some(Namespaces::All),
        agent: None,
        name: "ops".into(),
    };
    let ops = issue(&*app.state.store, operator, now).await.expect("issue").token;
    for _ in 0..9 {
        let r = app
            .http
            .post(app.url("/v1/tasks"))
            .bearer_auth(&ops)
            .json(&json!({"queue": "work"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
    }
    let team_a = Namespaces::Only(vec![Namespace::parse("team-a").expect("valid")]);
    let other = issue(&*app.state.store, reader(team_a), now)
        .await
        .expect("issue")
        .token;
    assert_eq!(detailed(&app, None).await.0, 401);
    let (status, h) = detailed(&app, Some(&other)).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["queues"], json!([]));
    assert_eq!(h["inboxes"], json!([]));
    let (status, h) = detailed(&app, Some(&ops)).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["queues"][0]["depth"], 9);
}

backend_tests!(
    the_detailed_health_shows_the_figures_behind_the_verdict,
    with_auth_a_token_sees_only_its_namespaces_in_the_detailed_health,
);
