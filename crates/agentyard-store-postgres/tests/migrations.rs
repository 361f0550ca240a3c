//! Start-up against the schema: nodes starting at the same moment take turns migrating it, and a
//! schema written by a newer agentyard is refused with an error that says so.

use agentyard_store_postgres::testing::TestSchema;
use agentyard_store_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once_and_all_start() {
    let Some(schema) = TestSchema::create("concurrent start").await else {
        return;
    };
    let mut starts = Vec::new();
    for _ in 0..6 {
        let url = schema.url.clone();
        starts.push(tokio::spawn(async move {
            PgStore::connect(PgOptions::parse(&url).expect("url")).await
        }));
    }
    for s in starts {
        s.await.expect("task").expect("every node starts");
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_error() {
    let Some(schema) = TestSchema::create("newer schema").await else {
        return;
    };
    let options = PgOptions::parse(&schema.url).expect("url");
    drop(PgStore::connect(options.clone()).await.expect("first start migrates"));
    let base = std::env::var(agentyard_store_postgres::testing::URL_VAR).expect("set when a schema was made");
    let (client, conn) = tokio_postgres::connect(&base, NoTls).await.expect("connect");
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("UPDATE {}.schema_version SET version = 999", schema.schema()))
        .await
        .expect("pretend a newer agentyard wrote it");
    drop(client);
    let _ = driver.await;
    let err = PgStore::connect(options).await.expect_err("refused").to_string();
    assert!(
        err.contains("999") && err.contains("newer agentyard") && err.contains(schema.schema()),
        "{err}"
    );
}
