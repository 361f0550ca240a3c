//! The event log in the database file: it survives closing and reopening the store, and its
//! seqs go on from the highest ever given, also once old events were deleted.

use agentyard_core::NewTask;
use agentyard_core::event::EventType;
use agentyard_store::{EventFilter, EventStore, Store};
use serde_json::json;

use super::{at, claim, create, db, ns, open, q};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_reopening_and_seqs_are_never_given_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let before = {
        let store = open(&path);
        let mut nt = NewTask::on(q("work"), json!({}));
        nt.correlation_id = Some("run-1".into());
        create(&store, vec![nt, NewTask::on(q("work"), json!({}))], at(0)).await;
        store
            .claim_tasks(&ns(), &claim("work", "w1", 1), at(1))
            .await
            .expect("claim");
        store
            .read_events(&ns(), &EventFilter::default(), 0, 100)
            .await
            .expect("read")
    };
    assert_eq!(
        before.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventType::TaskCreated, EventType::TaskCreated, EventType::TaskClaimed]
    );
    {
        let store = open(&path);
        let again = store
            .read_events(&ns(), &EventFilter::default(), 0, 100)
            .await
            .expect("read");
        assert_eq!(again, before, "read back from the file, field for field");
        let traced = EventFilter {
            correlation_id: Some("run-1".into()),
            ..EventFilter::default()
        };
        let trace = store.read_events(&ns(), &traced, 0, 100).await.expect("trace");
        assert_eq!(trace.events.len(), 2, "created and claimed");
        create(&store, vec![NewTask::on(q("work"), json!({}))], at(2)).await;
        assert_eq!(store.last_event_seq().await.expect("last"), 4, "numbered on");
    }
    // Old events deleted (as retention will): their seqs are not handed out again.
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute("DELETE FROM events", []).expect("delete every event");
    }
    let store = open(&path);
    assert_eq!(store.last_event_seq().await.expect("last"), 4, "kept past the deletion");
    create(&store, vec![NewTask::on(q("work"), json!({}))], at(3)).await;
    let after = store
        .read_events(&ns(), &EventFilter::default(), 0, 100)
        .await
        .expect("read");
    assert_eq!(after.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);
    assert_eq!(after.next, 5);
}
