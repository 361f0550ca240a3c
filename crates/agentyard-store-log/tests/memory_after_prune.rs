//! The log store keeps everything in memory: pruning history must give that memory back, or a
//! long-running yard grows until it is killed. Measured on Linux from /proc/self/statm (each
//! nextest test is a process of its own).

#![cfg(target_os = "linux")]

use agentyard_core::{NewTask, QueueName, TaskCommand, Timestamp};
use agentyard_store::{CreateOptions, PruneCutoffs, RetentionStore, Store};
use agentyard_store_log::{LogOptions, LogStore};
use serde_json::json;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::test]
async fn pruning_history_gives_the_memory_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions {
        fsync: false,
        ..LogOptions::default()
    };
    let s = LogStore::open(dir.path().join("yard.log"), options).expect("open");
    let ns = agentyard_core::Namespace::default_namespace();
    let queue = QueueName::parse("work").expect("queue");
    let at = |ms: i64| Timestamp::from_millis(1_800_000_000_000 + ms);
    let before = rss_bytes();
    for batch in 0..20 {
        let tasks: Vec<NewTask> = (0..1_000)
            .map(|i| NewTask::on(queue.clone(), json!({ "payload": "x".repeat(200), "i": i })))
            .collect();
        let created = s
            .create_tasks(&ns, tasks, CreateOptions::default(), at(batch))
            .await
            .expect("create");
        for c in created {
            s.apply(&ns, c.task.id, TaskCommand::Cancel, at(batch))
                .await
                .expect("cancel");
        }
    }
    let full = rss_bytes();
    assert!(
        full > before + 20 * 1024 * 1024,
        "20,000 tasks and 40,000 events take room: {before} → {full}"
    );
    let cutoffs = PruneCutoffs {
        finished_tasks: Some(at(1_000)),
        events: Some(at(1_000)),
        ..PruneCutoffs::default()
    };
    loop {
        if s.prune(&cutoffs, at(2_000), 10_000).await.expect("prune").total() == 0 {
            break;
        }
    }
    let after = rss_bytes();
    eprintln!(
        "resident: {} MiB before, {} MiB full, {} MiB after pruning",
        before >> 20,
        full >> 20,
        after >> 20
    );
    let grown = full - before;
    assert!(
        after < before + grown / 2,
        "pruned, the store gives back most of what it took: {} MiB before, {} MiB full, {} MiB after",
        before >> 20,
        full >> 20,
        after >> 20
    );
}
