//! Tokens as a person sets them up: the first admin token made in the store, `serve --auth`,
//! tokens made, used and revoked through the server with the CLI, a refused open start on a
//! reachable address, and (with PostgreSQL) a revocation on one node obeyed by another.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use agentyard_client::{Client, kinds};
use agentyard_store_postgres::testing::TestSchema;
use serde_json::Value;
use support::Node;

fn agentyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(args)
        .env_remove("AGENTYARD_URL")
        .env_remove("AGENTYARD_TOKEN")
        .env_remove("AGENTYARD_NAMESPACE")
        .env_remove("AGENTYARD_CONFIG")
        .env("AGENTYARD_LOG", "warn")
        .output()
        .expect("run agentyard")
}

/// Stdout of a command that must succeed.
fn ok(args: &[&str]) -> String {
    let out = agentyard(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "agentyard {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Stderr of a command that must fail.
fn fails(args: &[&str]) -> String {
    let out = agentyard(args);
    assert!(!out.status.success(), "agentyard {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_first_admin_token_is_made_in_the_store_and_the_rest_through_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("yard.db").display());
    let admin = ok(&[
        "token", "create", "--role", "admin", "--name", "first", "--store", &store,
    ]);
    let admin = admin.trim().to_owned();
    assert!(admin.starts_with("ayt_"), "{admin}");

    let node = Node::start("auth", &store, &["--auth"]);
    let url = node.url.as_str();
    // The server holds the SQLite file now: the store is not for a second writer.
    let err = fails(&["token", "create", "--role", "admin", "--store", &store]);
    assert!(err.contains("through the server"), "{err}");

    let err = fails(&["limit", "list", "--url", url]);
    assert!(err.contains("401"), "{err}");
    let reader = ok(&[
        "token",
        "create",
        "--role",
        "reader",
        "-n",
        "team-a",
        "--name",
        "dashboard",
        "--url",
        url,
        "--token",
        &admin,
    ]);
    let reader = reader.trim().to_owned();
    // (An empty list is a success too.)
    let empty = ok(&["queue", "list", "--url", url, "--token", &reader, "-n", "team-a"]);
    assert!(empty.contains("no queues yet"), "{empty}");
    let err = fails(&["limit", "list", "--url", url, "--token", &reader, "-n", "team-b"]);
    assert!(err.contains("403"), "{err}");

    let listed: Value =
        serde_json::from_str(&ok(&["token", "list", "--url", url, "--token", &admin, "--json"])).expect("json");
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 2);
    let dashboard = listed.iter().find(|t| t["name"] == "dashboard").expect("listed");
    assert_eq!(dashboard["role"], "reader");
    assert_eq!(dashboard["namespaces"], serde_json::json!(["team-a"]));
    let id = dashboard["id"].as_str().expect("id");
    let table = ok(&["token", "list", "--url", url, "--token", &admin]);
    assert!(table.contains(id) && table.contains("dashboard"), "{table}");
    assert!(!table.contains(&reader[17..]), "no secret is printed");

    ok(&["token", "revoke", id, "--url", url, "--token", &admin]);
    let err = fails(&["limit", "list", "--url", url, "--token", &reader, "-n", "team-a"]);
    assert!(err.contains("revoked"), "{err}");
}

#[test]
fn a_reachable_address_is_not_served_open_by_accident() {
    let err = fails(&["serve", "--listen", "0.0.0.0:0", "--store", "memory://"]);
    assert!(err.contains("--auth") && err.contains("--insecure-no-auth"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_node_stops_working_on_the_others() {
    let Some(schema) = TestSchema::create("token revocation across nodes").await else {
        return;
    };
    let admin = ok(&["token", "create", "--role", "admin", "--store", &schema.url]);
    let admin = admin.trim().to_owned();
    let operator = ok(&[
        "token",
        "create",
        "--role",
        "operator",
        "-n",
        "*",
        "--store",
        &schema.url,
    ]);
    let operator = operator.trim().to_owned();
    let nodes = Node::start_many(&schema.url, 2, &["--auth"]);
    let on_b = Client::new(nodes[1].url.clone()).with_token(&operator).expect("token");
    on_b.queues().await.expect("the token works on node b");
    let id = agentyard_core::auth::TokenId::parse(&operator[4..16]).expect("id");
    Client::new(nodes[0].url.clone())
        .with_token(&admin)
        .expect("token")
        .revoke_token(&id)
        .await
        .expect("revoked through node a");
    // The notice normally arrives in milliseconds; the cache's 5 s lifetime bounds it anyway.
    let start = Instant::now();
    loop {
        match on_b.queues().await {
            Err(e) if e.problem().is_some_and(|p| p.kind == kinds::UNAUTHORIZED) => break,
            Ok(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!(
                "node b still took the revoked token after {:?}: {other:?}",
                start.elapsed()
            ),
        }
    }
    drop(nodes);
    drop(schema);
}
