//! Cursor pagination of `GET /v1/tasks` and `GET /v1/agents`, and their parameter checks.

use std::collections::HashSet;

use agentyard_core::TaskStatus;
use agentyard_core::api::CreateTaskRequest;
use serde_json::{Value, json};

use crate::{Backend, TestApp, q};

async fn pages_walk_every_task_exactly_once_in_creation_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = &app.client;
    let mut created = Vec::new();
    for chunk in 0..5 {
        let reqs: Vec<_> = (0..50)
            .map(|i| CreateTaskRequest::new(q(if i % 2 == 0 { "even" } else { "odd" }), json!(chunk * 50 + i)))
            .collect();
        created.extend(c.create_tasks(&reqs).await.unwrap().tasks.into_iter().map(|t| t.id));
    }
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c.list_tasks(None, None, Some(7), cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 7);
        pages += 1;
        walked.extend(page.items.iter().map(|t| t.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 250usize.div_ceil(7));
    assert_eq!(walked.len(), 250);
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 250);
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(walked, sorted);

    let mut evens = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = c
            .list_tasks(
                Some(&q("even")),
                Some(TaskStatus::Queued),
                Some(1000),
                cursor.as_deref(),
            )
            .await
            .unwrap();
        assert!(page.items.iter().all(|t| t.queue == q("even")));
        evens += page.items.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(evens, 125);
    let default_page = c.list_tasks(None, None, None, None).await.unwrap();
    assert_eq!(default_page.items.len(), 100);
    assert!(default_page.next_cursor.is_some());
}

async fn bad_list_parameters_are_422_naming_the_parameter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (query, field) in [
        ("status=bogus", "status"),
        ("queue=Not%20Valid", "queue"),
        ("cursor=nope", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
    ] {
        let r = app
            .http
            .get(app.url(&format!("/v1/tasks?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}");
    }
}

/// Big tasks: a page stops at the answer budget and its cursor leads to the rest.
async fn a_page_of_big_tasks_stops_at_the_answer_budget(backend: Backend) {
    let config = agentyard_server::config::ServerConfig {
        answer_budget_bytes: 256 * 1024,
        ..agentyard_server::config::ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    let c = &app.client;
    let big = "x".repeat(100 * 1024);
    let mut created = Vec::new();
    for i in 0..9 {
        let task = CreateTaskRequest::new(q("big"), json!({"i": i, "blob": big}));
        created.push(c.create_task(&task).await.unwrap().id);
    }
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let page = c.list_tasks(None, None, Some(1000), cursor.as_deref()).await.unwrap();
        sizes.push(page.items.len());
        walked.extend(page.items.iter().map(|t| t.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // About 100 KB a task under a 256 KiB budget: two a page.
    assert_eq!(sizes, [2, 2, 2, 2, 1], "page sizes");
    assert_eq!(walked, created, "every task once, in creation order");

    // A task over the budget on its own still comes, alone.
    let huge = "y".repeat(300 * 1024);
    for _ in 0..2 {
        c.create_task(&CreateTaskRequest::new(q("huge"), json!({"blob": huge})))
            .await
            .unwrap();
    }
    let first = c.list_tasks(Some(&q("huge")), None, None, None).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let rest = c
        .list_tasks(Some(&q("huge")), None, None, first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!((rest.items.len(), rest.next_cursor), (1, None));
    app.stop().await;
}

async fn pages_of_agents_walk_every_agent_once_by_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut names: Vec<String> = (0..7).map(|i| format!("agent-{i}")).collect();
    names.reverse();
    for name in &names {
        crate::register(&app, name).await;
    }
    names.sort();
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/agents?limit=3&cursor={c}"),
            None => "/v1/agents?limit=3".to_owned(),
        };
        let page: Value = app.http.get(app.url(&path)).send().await.unwrap().json().await.unwrap();
        let agents = page["agents"].as_array().expect("agents");
        assert!(agents.len() <= 3, "{page}");
        pages += 1;
        walked.extend(agents.iter().map(|a| a["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, names, "every agent once, by name");
    assert_eq!(pages, 3);
    let all = app.client.agents(None).await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.name.to_string()).collect::<Vec<_>>(),
        names,
        "the client follows the pages"
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("cursor=Bad", "cursor"),
    ] {
        let r = app
            .http
            .get(app.url(&format!("/v1/agents?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }
}

backend_tests!(
    pages_of_agents_walk_every_agent_once_by_name,
    pages_walk_every_task_exactly_once_in_creation_order,
    bad_list_parameters_are_422_naming_the_parameter,
    a_page_of_big_tasks_stops_at_the_answer_budget,
);
