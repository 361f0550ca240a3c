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
