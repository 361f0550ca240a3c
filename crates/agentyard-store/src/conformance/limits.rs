//! Conformance cases of `LimitStore`.

use std::sync::Arc;

use agentyard_core::Namespace;
use agentyard_core::flow::{KeyLimit, RateLimit};

use crate::limits::{LimitStore, StoredLimit};

/// A store under test seen as a `LimitStore`.
pub struct LimitTestStore {
    pub limits: Arc<dyn LimitStore>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Expands every limit case into a `#[tokio::test]` using `$factory` (see `conformance_tests!`).
#[macro_export]
macro_rules! limit_conformance_tests {
    ($factory:path) => {
        $crate::limit_conformance_tests!(@each cases $factory);
    };
    (optional $factory:path) => {
        $crate::limit_conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::limit_conformance_tests!(@$mode $factory; limits_are_kept_per_namespace);
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::limits::$case(&test_store).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::limits::$case(&test_store).await;
            }
        )*
    };
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).expect("valid namespace")
}

fn rate(per_minute: u32, burst: u32) -> KeyLimit {
    KeyLimit {
        rate: Some(RateLimit {
            rate_per_minute: per_minute,
            burst,
        }),
        max_concurrent: None,
    }
}

fn stored(namespace: &str, key: &str, limit: KeyLimit) -> StoredLimit {
    StoredLimit {
        namespace: ns(namespace),
        key: key.to_owned(),
        limit,
    }
}

pub async fn limits_are_kept_per_namespace(s: &LimitTestStore) {
    let l = &s.limits;
    assert!(l.list_limits().await.expect("list").is_empty());
    let two = KeyLimit {
        rate: None,
        max_concurrent: Some(2),
    };
    l.put_limit(
        &ns("tenant-b"),
        "openai",
        two,
        agentyard_core::Timestamp::from_millis(1_800_000_000_000),
    )
    .await
    .expect("put");
    l.put_limit(
        &ns("tenant-a"),
        "openai",
        rate(60, 5),
        agentyard_core::Timestamp::from_millis(1_800_000_000_000),
    )
    .await
    .expect("put");
    l.put_limit(
        &ns("tenant-a"),
        "repo:acme/web",
        two,
        agentyard_core::Timestamp::from_millis(1_800_000_000_000),
    )
    .await
    .expect("put");
    assert_eq!(
        l.list_limits().await.expect("list"),
        vec![
            stored("tenant-a", "openai", rate(60, 5)),
            stored("tenant-a", "repo:acme/web", two),
            stored("tenant-b", "openai", two),
        ],
        "by namespace, then key; one namespace's key does not touch another's"
    );
    l.put_limit(
        &ns("tenant-a"),
        "openai",
        rate(10, 1),
        agentyard_core::Timestamp::from_millis(1_800_000_000_000),
    )
    .await
    .expect("replace");
    assert!(
        l.delete_limit(
            &ns("tenant-b"),
            "openai",
            agentyard_core::Timestamp::from_millis(1_800_000_000_000)
        )
        .await
        .expect("delete")
    );
    assert!(
        !l.delete_limit(
            &ns("tenant-b"),
            "openai",
            agentyard_core::Timestamp::from_millis(1_800_000_000_000)
        )
        .await
        .expect("delete again")
    );
    assert!(
        !l.delete_limit(
            &ns("tenant-c"),
            "openai",
            agentyard_core::Timestamp::from_millis(1_800_000_000_000)
        )
        .await
        .expect("never set")
    );
    assert_eq!(
        l.list_limits().await.expect("list"),
        vec![
            stored("tenant-a", "openai", rate(10, 1)),
            stored("tenant-a", "repo:acme/web", two),
        ]
    );
}
