//! Tokens, roles and namespaces with `--auth`: every route refuses a request without a valid
//! token, a token of one namespace reaches nothing of another, readers never see lease tokens
//! and an agent token acts as its own agent only.

use agentyard_client::{Client, kinds};
use agentyard_core::Namespace;
use agentyard_core::api::{ClaimRequest, CompleteRequest, SendMessageRequest};
use agentyard_core::auth::{Namespaces, NewToken, Role};
use agentyard_core::message::Recipient;
use agentyard_server::ServerConfig;
use agentyard_server::auth::issue::issue;
use serde_json::{Value, json};

use crate::openapi::{ROUTES, concrete};
use crate::{Backend, TestApp, agent, problem, q};

async fn with_auth(backend: Backend) -> TestApp {
    let config = ServerConfig {
        auth: true,
        ..ServerConfig::default()
    };
    TestApp::spawn_with(backend, config).await
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).expect("valid")
}

/// Makes a token straight in the store (as `agentyard token create --store` does) and returns
/// its text.
async fn token(app: &TestApp, role: Role, namespaces: Option<Namespaces>, agent_name: Option<&str>) -> String {
    let new = NewToken {
        role,
        namespaces,
        agent: agent_name.map(agent),
        name: format!("test {role}"),
    };
    issue(&*app.state.store, new, app.state.clock.now())
        .await
        .expect("issue")
        .token
}

fn only(name: &str) -> Option<Namespaces> {
    Some(Namespaces::Only(vec![ns(name)]))
}

/// A client of the app with `token`, in namespace `namespace`.
fn client(app: &TestApp, token: &str, namespace: &str) -> Client {
    Client::new(format!("http://{}", app.addr))
        .with_namespace(ns(namespace))
        .with_token(token)
        .expect("a header-safe token")
}

async fn raw(app: &TestApp, method: &str, path: &str, token: Option<&str>, namespace: &str) -> (u16, Value) {
    let mut rb = app
        .http
        .request(method.parse().expect("method"), app.url(path))
        .header("content-type", "application/json")
        .header("agentyard-namespace", namespace)
        .body("{}");
    if let Some(token) = token {
        rb = rb.bearer_auth(token);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let www = r.headers().get("www-authenticate").cloned();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status == 401 {
        assert!(www.is_some(), "{method} {path}: a 401 says how to authenticate");
    }
    (status, body)
}

async fn every_route_but_the_probes_needs_a_valid_token(backend: Backend) {
    let app = with_auth(backend).await;
    let admin = token(&app, Role::Admin, None, None).await;
    let revoked = token(&app, Role::Operator, Some(Namespaces::All), None).await;
    let revoked_id = revoked[4..16].to_owned();
    client(&app, &admin, "default")
        .revoke_token(&agentyard_core::auth::TokenId::parse(revoked_id).expect("id"))
        .await
        .expect("revoke");
    // Right shape and checksum, but a secret nobody issued under the admin's id.
    let forged = {
        let mut t = admin.clone();
        t.replace_range(20..21, if &admin[20..21] == "0" { "1" } else { "0" });
        t
    };
    for (method, path) in ROUTES {
        let path = concrete(path);
        let open = path == "/health/live" || path == "/health/ready";
        for (what, token) in [
            ("no token", None),
            ("a revoked token", Some(revoked.as_str())),
            ("a malformed token", Some("ayt_nonsense")),
            ("a mistyped token", Some(forged.as_str())),
        ] {
            let (status, body) = raw(&app, method, &path, token, "default").await;
            if open {
                assert_eq!(status, 200, "{method} {path} with {what} is open: {body}");
            } else {
                assert_eq!(status, 401, "{method} {path} with {what}: {body}");
                assert_eq!(body["type"], kinds::UNAUTHORIZED, "{method} {path}");
            }
        }
    }
    let (status, body) = raw(&app, "GET", "/v1/tasks", Some(&revoked), "default").await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    let (status, _) = raw(&app, "GET", "/v1/tasks", Some(&admin), "default").await;
    assert_eq!(status, 200);
}

async fn a_token_of_one_namespace_reaches_nothing_of_another(backend: Backend) {
    let app = with_auth(backend).await;
    let tokens = [
        ("operator", token(&app, Role::Operator, only("team-a"), None).await),
        ("reader", token(&app, Role::Reader, only("team-a"), None).await),
        (
            "agent",
            token(&app, Role::Agent, only("team-a"), Some("some-agent")).await,
        ),
    ];
    for (role, token) in &tokens {
        for (method, path) in ROUTES {
            if path.starts_with("/health") {
                continue;
            }
            let (status, body) = raw(&app, method, &concrete(path), Some(token), "team-b").await;
            assert_eq!(
                status, 403,
                "a {role} token of team-a: {method} {path} on team-b: {body}"
            );
            assert_eq!(body["type"], kinds::FORBIDDEN);
        }
        // Its own namespace answers.
        let (status, body) = raw(&app, "GET", "/v1/queues", Some(token), "team-a").await;
        assert_eq!(status, 200, "{role}: {body}");
    }
    // Nothing of team-b leaks into a team-a count either.
    let admin = token(&app, Role::Admin, None, None).await;
    let b = client(&app, &admin, "team-b");
    b.create_task(&agentyard_core::api::CreateTaskRequest::new(q("jobs"), json!(1)))
        .await
        .expect("create in team-b");
    let a = client(&app, &tokens[0].1, "team-a");
    assert!(a.queues().await.expect("queues").queues.is_empty());
    assert!(
        a.list_tasks(None, None, None, None)
            .await
            .expect("tasks")
            .items
            .is_empty()
    );
}

async fn a_reader_never_sees_a_lease_token_and_cannot_write(backend: Backend) {
    let app = with_auth(backend).await;
    let operator = client(
        &app,
        &token(&app, Role::Operator, only("default"), None).await,
        "default",
    );
    let reader = client(&app, &token(&app, Role::Reader, only("default"), None).await, "default");
    let task = operator
        .create_task(&agentyard_core::api::CreateTaskRequest::new(q("jobs"), json!(1)))
        .await
        .expect("create");
    let claimed = operator
        .claim(&q("jobs"), &ClaimRequest::new(agent("worker")))
        .await
        .expect("claim")
        .tasks;
    let lease = claimed[0].lease.clone().expect("leased");
    assert!(!lease.token.as_str().is_empty());

    let seen = reader.get_task(task.id).await.expect("read");
    let seen_lease = seen.lease.expect("the lease is shown");
    assert_eq!(seen_lease.agent, lease.agent);
    assert_eq!(seen_lease.token.as_str(), "", "the token is blanked");
    let listed = reader.list_tasks(None, None, None, None).await.expect("list");
    assert!(
        listed
            .items
            .iter()
            .all(|t| t.lease.as_ref().is_none_or(|l| l.token.as_str().is_empty()))
    );
    // The operator still sees it.
    let full = operator.get_task(task.id).await.expect("read");
    assert_eq!(full.lease.expect("lease").token, lease.token);

    let err = reader
        .create_task(&agentyard_core::api::CreateTaskRequest::new(q("jobs"), json!(2)))
        .await
        .expect_err("a reader does not write");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
    let done = CompleteRequest {
        lease_token: lease.token.clone(),
        result: None,
        artifacts: None,
    };
    let err = reader.complete(task.id, &done).await.expect_err("nor completes");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
}

async fn an_agent_token_acts_as_its_own_agent_only(backend: Backend) {
    let app = with_auth(backend).await;
    let operator = client(
        &app,
        &token(&app, Role::Operator, only("default"), None).await,
        "default",
    );
    let bot_a = client(
        &app,
        &token(&app, Role::Agent, only("default"), Some("bot-a")).await,
        "default",
    );
    let bot_b = client(
        &app,
        &token(&app, Role::Agent, only("default"), Some("bot-b")).await,
        "default",
    );
    let task = bot_a
        .create_task(&agentyard_core::api::CreateTaskRequest::new(q("jobs"), json!(1)))
        .await
        .expect("an agent creates tasks");

    let err = bot_a
        .claim(&q("jobs"), &ClaimRequest::new(agent("bot-b")))
        .await
        .expect_err("claims as another agent");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
    let claimed = bot_a
        .claim(&q("jobs"), &ClaimRequest::new(agent("bot-a")))
        .await
        .expect("claims as itself")
        .tasks;
    let lease = claimed[0].lease.clone().expect("leased");

    // bot-b holding bot-a's lease token (leaked) still cannot finish or extend bot-a's task.
    let done = CompleteRequest {
        lease_token: lease.token.clone(),
        result: None,
        artifacts: None,
    };
    let err = bot_b.complete(task.id, &done).await.expect_err("another agent's task");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
    let item = agentyard_core::api::CompleteItem {
        id: task.id,
        lease_token: lease.token.clone(),
        result: None,
        artifacts: None,
    };
    let err = bot_b.complete_many(&[item]).await.expect_err("nor in a batch");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
    // Nor does it see the token, while bot-a does.
    let seen = bot_b.get_task(task.id).await.expect("read");
    assert_eq!(seen.lease.expect("lease").token.as_str(), "");
    let own = bot_a.get_task(task.id).await.expect("read");
    assert_eq!(own.lease.expect("lease").token, lease.token);

    // Its own inbox only; messages go out from itself.
    let err = bot_a
        .inbox(&agent("bot-b"), None, None, None)
        .await
        .expect_err("another inbox");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
    let mut forged = SendMessageRequest::new(Recipient::Agent { agent: agent("bot-b") }, json!("hi"));
    forged.from = Some(agent("bot-b"));
    let err = bot_a.send_message(&forged).await.expect_err("sends as another agent");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);
    operator
        .register_agent(&agent("bot-b"), &Default::default())
        .await
        .expect("register");
    let sent = bot_a
        .send_message(&SendMessageRequest::new(
            Recipient::Agent { agent: agent("bot-b") },
            json!("hi"),
        ))
        .await
        .expect("send");
    assert_eq!(
        sent.from,
        Some(agent("bot-a")),
        "a message of an agent token is from its agent"
    );

    // Operator routes are not for agents.
    let err = bot_a.cancel(task.id).await.expect_err("cancel");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);

    bot_a.complete(task.id, &done).await.expect("its own task");
}

async fn only_admins_make_list_and_revoke_tokens(backend: Backend) {
    let app = with_auth(backend).await;
    let admin = client(&app, &token(&app, Role::Admin, None, None).await, "default");
    let operator = client(
        &app,
        &token(&app, Role::Operator, Some(Namespaces::All), None).await,
        "default",
    );
    let err = operator.tokens().await.expect_err("an operator lists no tokens");
    assert_eq!(problem(&err).kind, kinds::FORBIDDEN);

    let new = NewToken {
        role: Role::Reader,
        namespaces: only("team-a"),
        agent: None,
        name: "dashboard".into(),
    };
    let issued = admin.create_token(&new).await.expect("create");
    assert!(issued.token.starts_with("ayt_"));
    let reader = client(&app, &issued.token, "team-a");
    reader.queues().await.expect("the new token works");
    let listed = admin.tokens().await.expect("list");
    let shown = listed.iter().find(|t| t.id == issued.info.id).expect("listed");
    assert_eq!(shown.name, "dashboard");
    let text = serde_json::to_string(&listed).expect("json");
    assert!(!text.contains(&issued.token[17..]), "no secret is ever listed");

    let revoked = admin.revoke_token(&issued.info.id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    let err = reader.queues().await.expect_err("revoked at once on this node");
    assert_eq!(problem(&err).kind, kinds::UNAUTHORIZED);

    // A grant that makes no sense is refused with the field at fault.
    let bad = NewToken {
        role: Role::Agent,
        namespaces: only("team-a"),
        agent: None,
        name: String::new(),
    };
    let err = admin
        .create_token(&bad)
        .await
        .expect_err("an agent token without an agent");
    assert_eq!(problem(&err).field.as_deref(), Some("agent"));
}

async fn health_shows_a_tenant_only_its_own_trouble(backend: Backend) {
    let config = ServerConfig {
        auth: true,
        max_queue_depth: Some(5),
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let admin = client(&app, &token(&app, Role::Admin, None, None).await, "team-b");
    let reqs: Vec<_> = (0..5)
        .map(|i| agentyard_core::api::CreateTaskRequest::new(q("backlog"), json!(i)))
        .collect();
    admin.create_tasks(&reqs).await.expect("fill team-b's queue");
    // Registered in team-b so /health looks there (it checks the namespaces it knows of).
    admin
        .register_agent(&agent("b-worker"), &Default::default())
        .await
        .expect("register");

    let seen_by_admin = admin.health().await.expect("health");
    assert_eq!(seen_by_admin.status, "degraded");
    assert!(
        seen_by_admin.reasons.iter().any(|r| r.name == "backlog"),
        "{seen_by_admin:?}"
    );
    let reader = client(&app, &token(&app, Role::Reader, only("team-a"), None).await, "team-a");
    let seen_by_a = reader.health().await.expect("health");
    assert_eq!(
        seen_by_a.status, "ok",
        "team-b's backlog is not team-a's: {seen_by_a:?}"
    );
    assert!(seen_by_a.reasons.is_empty());
}

backend_tests!(
    health_shows_a_tenant_only_its_own_trouble,
    every_route_but_the_probes_needs_a_valid_token,
    a_token_of_one_namespace_reaches_nothing_of_another,
    a_reader_never_sees_a_lease_token_and_cannot_write,
    an_agent_token_acts_as_its_own_agent_only,
    only_admins_make_list_and_revoke_tokens,
);
