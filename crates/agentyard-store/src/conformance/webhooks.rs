//! Conformance cases of `WebhookStore`.

use std::sync::Arc;

use agentyard_core::event::EventType;
use agentyard_core::webhook::Webhook;
use agentyard_core::{Namespace, Timestamp};

use crate::webhooks::{StoredWebhook, WebhookStore};

/// A store under test seen as a `WebhookStore`.
pub struct WebhookTestStore {
    pub webhooks: Arc<dyn WebhookStore>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Expands every webhook case into a `#[tokio::test]` using `$factory` (see `conformance_tests!`).
#[macro_export]
macro_rules! webhook_conformance_tests {
    ($factory:path) => {
        $crate::webhook_conformance_tests!(@each cases $factory);
    };
    (optional $factory:path) => {
        $crate::webhook_conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::webhook_conformance_tests!(@$mode $factory;
            webhooks_are_kept_with_their_secret_and_cursor,
            one_holder_at_a_time_delivers_a_webhook,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::webhooks::$case(&test_store).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::webhooks::$case(&test_store).await;
            }
        )*
    };
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).expect("valid namespace")
}

fn hook(namespace: &str, id: &str, cursor: u64) -> StoredWebhook {
    StoredWebhook {
        hook: Webhook {
            id: id.to_owned(),
            namespace: ns(namespace),
            url: format!("http://127.0.0.1:9/{id}"),
            types: vec![EventType::TaskCompleted, EventType::TaskDeadLettered],
            created_at: at(0),
            cursor,
        },
        secret: format!("secret-of-{id}"),
    }
}

pub async fn webhooks_are_kept_with_their_secret_and_cursor(s: &WebhookTestStore) {
    let w = &s.webhooks;
    assert!(w.list_webhooks().await.expect("list").is_empty());
    w.create_webhook(hook("b", "h1", 0)).await.expect("create");
    w.create_webhook(hook("a", "h2", 7)).await.expect("create");
    w.create_webhook(hook("a", "h1", 3))
        .await
        .expect("the same id in another namespace");
    let taken = w.create_webhook(hook("a", "h2", 0)).await.expect_err("the id is taken");
    assert_eq!(taken.kind(), "invalid");
    let all = w.list_webhooks().await.expect("list");
    assert_eq!(
        all,
        vec![hook("a", "h1", 3), hook("a", "h2", 7), hook("b", "h1", 0)],
        "by namespace, then id"
    );

    assert!(w.advance_webhook(&ns("a"), "h2", 9).await.expect("advance"));
    assert!(w.advance_webhook(&ns("a"), "h2", 8).await.expect("never back"));
    assert!(!w.advance_webhook(&ns("a"), "nope", 9).await.expect("unknown"));
    let h2 = w
        .list_webhooks()
        .await
        .expect("list")
        .into_iter()
        .find(|h| h.hook.namespace == ns("a") && h.hook.id == "h2")
        .expect("h2");
    assert_eq!(h2.hook.cursor, 9);

    assert!(w.delete_webhook(&ns("a"), "h2").await.expect("delete"));
    assert!(!w.delete_webhook(&ns("a"), "h2").await.expect("delete again"));
    assert!(!w.delete_webhook(&ns("c"), "h1").await.expect("no such namespace"));
    assert_eq!(
        w.list_webhooks().await.expect("list"),
        vec![hook("a", "h1", 3), hook("b", "h1", 0)]
    );
}

pub async fn one_holder_at_a_time_delivers_a_webhook(s: &WebhookTestStore) {
    let w = &s.webhooks;
    w.create_webhook(hook("a", "h1", 0)).await.expect("create");
    assert!(
        w.lease_webhook(&ns("a"), "h1", "node-1", at(0), at(10_000))
            .await
            .expect("lease")
    );
    assert!(
        !w.lease_webhook(&ns("a"), "h1", "node-2", at(5_000), at(15_000))
            .await
            .expect("held")
    );
    assert!(
        w.lease_webhook(&ns("a"), "h1", "node-1", at(5_000), at(20_000))
            .await
            .expect("extended")
    );
    assert!(
        !w.lease_webhook(&ns("a"), "h1", "node-2", at(15_000), at(25_000))
            .await
            .expect("still held")
    );
    assert!(
        w.lease_webhook(&ns("a"), "h1", "node-2", at(20_000), at(30_000))
            .await
            .expect("taken over at expiry")
    );
    assert!(
        !w.lease_webhook(&ns("a"), "h1", "node-1", at(21_000), at(31_000))
            .await
            .expect("node-2 has it now")
    );
    assert!(
        !w.lease_webhook(&ns("a"), "nope", "node-1", at(0), at(1))
            .await
            .expect("unknown webhook")
    );
    w.delete_webhook(&ns("a"), "h1").await.expect("delete");
    assert!(
        !w.lease_webhook(&ns("a"), "h1", "node-2", at(22_000), at(32_000))
            .await
            .expect("gone")
    );
}
