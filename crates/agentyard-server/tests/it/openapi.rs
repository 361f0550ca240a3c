//! The OpenAPI document describes exactly the routes the server answers.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{Backend, TestApp};

/// Every route of the API. Adding a route means adding it here, to the router (through
/// `api::routes`) and so to the document; this test fails when any of the three disagree.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/health/detailed"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("POST", "/v1/admin/prune"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{name}"),
    ("PUT", "/v1/agents/{name}"),
    ("DELETE", "/v1/agents/{name}"),
    ("POST", "/v1/agents/{name}/drain"),
    ("POST", "/v1/agents/{name}/heartbeat"),
    ("GET", "/v1/agents/{name}/inbox"),
    ("POST", "/v1/agents/{name}/inbox/ack"),
    ("GET", "/v1/agents/{name}/inbox/stream"),
    ("GET", "/v1/agents/{name}/subscriptions"),
    ("PUT", "/v1/agents/{name}/subscriptions/{topic}"),
    ("DELETE", "/v1/agents/{name}/subscriptions/{topic}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/limits"),
    ("GET", "/v1/limits/{key}"),
    ("DELETE", "/v1/limits/{key}"),
    ("PUT", "/v1/limits/{key}"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/queues"),
    ("GET", "/v1/queues/{queue}"),
    ("POST", "/v1/queues/{queue}/claim"),
    ("POST", "/v1/queues/{queue}/redrive"),
    ("GET", "/v1/tasks"),
    ("POST", "/v1/tasks"),
    ("POST", "/v1/tasks/batch"),
    ("POST", "/v1/tasks/complete"),
    ("GET", "/v1/tasks/{id}"),
    ("PATCH", "/v1/tasks/{id}"),
    ("POST", "/v1/tasks/{id}/cancel"),
    ("POST", "/v1/tasks/{id}/complete"),
    ("POST", "/v1/tasks/{id}/fail"),
    ("POST", "/v1/tasks/{id}/heartbeat"),
    ("POST", "/v1/tasks/{id}/redrive"),
    ("POST", "/v1/tasks/{id}/release"),
    ("GET", "/v1/tokens"),
    ("GET", "/v1/traces/{correlation_id}"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{id}"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("POST", "/v1/tokens"),
    ("DELETE", "/v1/tokens/{id}"),
];

/// `path` with every parameter filled in: a route the server answers (with 404 or 422 at worst).
pub fn concrete(path: &str) -> String {
    path.replace("{id}", &agentyard_core::TaskId::generate().to_string())
        .replace("{queue}", "some-queue")
        .replace("{name}", "some-agent")
        .replace("{topic}", "some-topic")
        .replace("{key}", "some-key")
}

async fn the_document_lists_every_route_and_the_router_serves_every_documented_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            if path.starts_with("/v1/") && !path.starts_with("/v1/tokens") && !path.starts_with("/v1/admin/") {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params.iter().any(|p| p["name"] == "Agentyard-Namespace"),
                    "{method} {path} does not document the namespace header"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path} has no success response"
            );
        }
    }
    let expected: BTreeSet<_> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(
        documented, expected,
        "the OpenAPI document and the expected route list differ"
    );

    for (method, path) in ROUTES {
        let concrete = concrete(path);
        let r = app
            .http
            .request(method.parse().unwrap(), app.url(&concrete))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = r.status();
        // An event stream never ends: its status and headers say it is served.
        let streams = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body: Value = if streams {
            Value::Null
        } else {
            r.json().await.unwrap_or(Value::Null)
        };
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert_ne!(
            body["type"], "/problems/no-such-route",
            "{method} {path} is documented but not routed"
        );
    }
}

backend_tests!(the_document_lists_every_route_and_the_router_serves_every_documented_one,);
