//! Retention on SQLite: the pages pruning frees are reused, so a yard whose history is pruned as
//! fast as it is made keeps its file size instead of growing forever.

use agentyard_core::{NewTask, TaskCommand, Timestamp};
use agentyard_store::{CreateOptions, PruneCutoffs, RetentionStore, Store};
use serde_json::json;

use crate::{db, ns, open, q};

/// The database file's size (measured closed: the last connection checkpoints the write-ahead
/// log into it).
fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_pages_are_reused_so_the_file_stops_growing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let at = |ms: i64| Timestamp::from_millis(1_800_000_000_000 + ms);
    let mut sizes = Vec::new();
    for round in 0..6i64 {
        let store = open(&path);
        // A round: 2,000 tasks made and finished, then everything from before the round pruned.
        for batch in 0..4 {
            let tasks: Vec<NewTask> = (0..500)
                .map(|i| NewTask::on(q("work"), json!({ "payload": "x".repeat(300), "i": i })))
                .collect();
            let now = at(round * 1_000 + batch);
            let created = store
                .create_tasks(&ns(), tasks, CreateOptions::default(), now)
                .await
                .expect("create");
            let cancels = created.iter().map(|c| (c.task.id, TaskCommand::Cancel)).collect();
            store.apply_many(&ns(), cancels, now).await.expect("cancel");
        }
        let cutoffs = PruneCutoffs {
            finished_tasks: Some(at(round * 1_000 - 1)),
            events: Some(at(round * 1_000 - 1)),
            ..PruneCutoffs::default()
        };
        while store
            .prune(&cutoffs, at(round * 1_000 + 500), 1_000)
            .await
            .expect("prune")
            .total()
            > 0
        {}
        drop(store);
        sizes.push(size(&path));
    }
    eprintln!("file sizes after each round: {sizes:?}");
    // Rounds 0 and 1 grow the file to hold two rounds; from then on each round fits in the
    // pages the previous prune freed.
    let settled = sizes[2];
    assert!(
        sizes[3..].iter().all(|&s| s <= settled + settled / 10),
        "the file keeps growing though history is pruned: {sizes:?}"
    );
}
