//! The event log after the log store is reopened: read back from its frames and from the
//! snapshot a compaction writes, and numbered on from where it stopped.

use agentyard_core::NewTask;
use agentyard_store::{CreateOptions, EventFilter, EventStore, Store};
use agentyard_store_log::{LogOptions, LogStore};
use serde_json::json;

use super::{at, ns, open, queue};

async fn create(s: &LogStore, n: i64) {
    s.create_tasks(
        &ns(),
        vec![NewTask::on(queue("work"), json!({ "n": n }))],
        CreateOptions::default(),
        at(n),
    )
    .await
    .expect("create");
}

#[tokio::test]
async fn events_survive_reopen_and_compaction_and_seqs_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let before = {
        let s = open(&path);
        for n in 0..3 {
            create(&s, n).await;
        }
        s.read_events(&ns(), &EventFilter::default(), 0, 100)
            .await
            .expect("read")
    };
    assert_eq!(before.events.len(), 3);
    {
        let s = open(&path);
        let again = s
            .read_events(&ns(), &EventFilter::default(), 0, 100)
            .await
            .expect("read");
        assert_eq!(again, before, "read back from the frames");
        create(&s, 3).await;
        assert_eq!(s.last_event_seq().await.expect("last"), 4, "numbered on, never reused");
    }
    let options = LogOptions {
        fsync: false,
        compact_at_bytes: 4 << 10,
        ..LogOptions::default()
    };
    let all = {
        let s = LogStore::open(&path, options).expect("open");
        super::churn(&s).await;
        s.finish_compaction();
        assert!(s.compactions() >= 1, "the log was compacted");
        s.read_events(&ns(), &EventFilter::default(), 0, 100)
            .await
            .expect("read")
    };
    let s = LogStore::open(&path, options).expect("reopen");
    assert_eq!(
        s.read_events(&ns(), &EventFilter::default(), 0, 100)
            .await
            .expect("read"),
        all
    );
    assert_eq!(all.events.len(), 5, "four tasks and the churning agent's registration");
    assert_eq!(s.last_event_seq().await.expect("last"), 5);
}

/// What a prune deleted stays deleted after a reopen, read back from the frames and from a
/// compaction's snapshot alike.
#[tokio::test]
async fn a_prune_survives_reopen_and_compaction() {
    use agentyard_store::{PruneCutoffs, RetentionStore, TaskFilter};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let cutoffs = PruneCutoffs {
        finished_tasks: Some(at(100)),
        events: Some(at(100)),
        idempotency_keys: Some(at(100)),
        ..PruneCutoffs::default()
    };
    let before = {
        let s = open(&path);
        for n in 0..4 {
            let mut task = NewTask::on(queue("work"), json!({ "n": n }));
            task.idempotency_key = Some(format!("k{n}"));
            let id = s
                .create_tasks(&ns(), vec![task], CreateOptions::default(), at(n))
                .await
                .expect("create")[0]
                .task
                .id;
            if n < 2 {
                s.apply(&ns(), id, agentyard_core::TaskCommand::Cancel, at(n))
                    .await
                    .expect("cancel");
            }
        }
        create(&s, 200).await;
        let pruned = s.prune(&cutoffs, at(300), 100).await.expect("prune");
        assert_eq!((pruned.tasks, pruned.events, pruned.idempotency_keys), (2, 6, 2));
        s.export()
    };
    let s = open(&path);
    assert_eq!(s.export(), before, "replayed from the frames");
    let tasks = s
        .list_tasks(&ns(), &TaskFilter::default(), None, 10)
        .await
        .expect("list");
    assert_eq!(tasks.items.len(), 3);
    assert!(tasks.items.iter().all(|t| t.idempotency_key.is_none()));
    drop(s);
    let options = LogOptions {
        fsync: false,
        compact_at_bytes: 4 << 10,
        ..LogOptions::default()
    };
    let compacted = {
        let s = LogStore::open(&path, options).expect("open");
        super::churn(&s).await;
        s.finish_compaction();
        assert!(s.compactions() >= 1);
        s.export()
    };
    let s = LogStore::open(&path, options).expect("reopen");
    assert_eq!(s.export(), compacted, "read back from the snapshot");
    assert_eq!(s.last_event_seq().await.expect("last"), 8, "seqs are not given again");
}

/// Webhooks and their cursors are read back after a reopen (and after a compaction).
#[tokio::test]
async fn webhooks_survive_reopen_and_compaction() {
    use agentyard_core::webhook::Webhook;
    use agentyard_store::{StoredWebhook, WebhookStore};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let hook = |id: &str| StoredWebhook {
        hook: Webhook {
            id: id.to_owned(),
            namespace: ns(),
            url: format!("http://127.0.0.1:9/{id}"),
            types: Vec::new(),
            created_at: at(0),
            cursor: 0,
        },
        secret: "s".into(),
    };
    {
        let s = open(&path);
        s.create_webhook(hook("a")).await.expect("create");
        s.create_webhook(hook("b")).await.expect("create");
        s.advance_webhook(&ns(), "a", 12).await.expect("advance");
        s.delete_webhook(&ns(), "b").await.expect("delete");
    }
    let options = LogOptions {
        fsync: false,
        compact_at_bytes: 4 << 10,
        ..LogOptions::default()
    };
    let expected = {
        let mut a = hook("a");
        a.hook.cursor = 12;
        vec![a]
    };
    {
        let s = LogStore::open(&path, options).expect("open");
        assert_eq!(
            s.list_webhooks().await.expect("list"),
            expected,
            "read back from the frames"
        );
        super::churn(&s).await;
        s.finish_compaction();
        assert!(s.compactions() >= 1);
    }
    let s = LogStore::open(&path, options).expect("reopen");
    assert_eq!(
        s.list_webhooks().await.expect("list"),
        expected,
        "read back from the snapshot"
    );
}
