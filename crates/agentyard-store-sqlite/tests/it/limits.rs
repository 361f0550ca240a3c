//! Dispatch limits on SQLite beyond the conformance case: they survive closing and reopening the
//! file, and a database from before limits gains their table when it is opened.

use agentyard_core::Namespace;
use agentyard_core::flow::{KeyLimit, RateLimit};
use agentyard_store::{LimitStore, StoredLimit};

use super::{db, ns, open};

fn rate(rate_per_minute: u32, burst: u32, max_concurrent: Option<u64>) -> KeyLimit {
    KeyLimit {
        rate: Some(RateLimit { rate_per_minute, burst }),
        max_concurrent,
    }
}

fn stored(namespace: &Namespace, key: &str, limit: KeyLimit) -> StoredLimit {
    StoredLimit {
        namespace: namespace.clone(),
        key: key.to_owned(),
        limit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let tenant = Namespace::parse("tenant-b").expect("valid namespace");
    let only_concurrency = KeyLimit {
        rate: None,
        max_concurrent: Some(4),
    };
    {
        let store = open(&path);
        store
            .put_limit(
                &ns(),
                "openai",
                rate(60, 5, None),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        store
            .put_limit(
                &ns(),
                "gone",
                rate(1, 1, None),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        store
            .put_limit(
                &tenant,
                "openai",
                only_concurrency,
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        store
            .put_limit(
                &ns(),
                "openai",
                rate(10, 2, Some(3)),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("replace");
        assert!(
            store
                .delete_limit(&ns(), "gone", agentyard_core::Timestamp::from_millis(0))
                .await
                .expect("delete")
        );
    }
    let store = open(&path);
    assert_eq!(
        store.list_limits().await.expect("list"),
        vec![
            stored(&ns(), "openai", rate(10, 2, Some(3))),
            stored(&tenant, "openai", only_concurrency),
        ]
    );
    assert!(
        !store
            .delete_limit(&ns(), "gone", agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("delete"),
        "the removal survived too"
    );
}

/// A database at schema version 3 (before limits) is brought up to date at open, keeps what it
/// held, and stores limits from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_limits_gains_them_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    drop(open(&path));
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(
            "DROP TABLE webhooks; DROP TABLE events; DROP TABLE events_floor; DROP TABLE limits; DROP TABLE tokens; DROP INDEX agents_forgettable; \
             ALTER TABLE agents DROP COLUMN implicit; PRAGMA user_version = 3;",
        )
        .expect("back to version 3");
    }
    {
        let store = open(&path);
        store
            .put_limit(
                &ns(),
                "openai",
                rate(60, 5, None),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
    }
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 8, "every step since ran too");
    let store = open(&path);
    assert_eq!(
        store.list_limits().await.expect("list"),
        vec![stored(&ns(), "openai", rate(60, 5, None))]
    );
}
