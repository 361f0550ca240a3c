//! SQLite-specific behaviour beyond the shared conformance suite: what survives a reopen or a
//! `kill -9`, durability settings, group commit under concurrency, damaged rows; agents and
//! messages (`agents.rs`); dispatch limits (`limits.rs`); API tokens (`tokens.rs`); the stored
//! documents (`documents.rs`); the event log across a reopen (`events.rs`); one store per file
//! (`lock.rs`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use agentyard_core::{
    AgentName, Completion, LeaseToken, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskPatch, TaskStatus,
    Timestamp,
};
use agentyard_store::{Claim, CreateOptions, Store, StoreError, TaskFilter};
use agentyard_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use serde_json::json;
use tempfile::TempDir;

mod agent_model;
mod agents;
mod documents;
mod events;
mod limits;
mod lock;
mod model;
mod tokens;

const T0: i64 = 1_800_000_000_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn ns() -> Namespace {
    Namespace::default_namespace()
}

fn q(name: &str) -> QueueName {
    QueueName::parse(name).expect("valid queue")
}

fn claim(queue: &str, who: &str, max: u32) -> Claim {
    Claim {
        queue: q(queue),
        agent: AgentName::parse(who).expect("valid agent"),
        capabilities: Vec::new(),
        max,
        lease_ms: 1_000,
        gate: None,
    }
}

fn token(t: &Task) -> LeaseToken {
    t.lease.as_ref().expect("leased").token.clone()
}

fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("yard.db")
}

fn open(path: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path, SqliteOptions::default()).expect("open"))
}

async fn create(store: &SqliteStore, tasks: Vec<NewTask>, now: Timestamp) -> Vec<Task> {
    store
        .create_tasks(&ns(), tasks, CreateOptions::default(), now)
        .await
        .expect("create")
        .into_iter()
        .map(|c| c.task)
        .collect()
}

fn many(queue: &str, n: usize) -> Vec<NewTask> {
    (0..n).map(|i| NewTask::on(q(queue), json!({ "i": i }))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_claimers_take_every_task_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db(&dir));
    create(&store, many("hot", 500), at(0)).await;
    let mut claimers = Vec::new();
    for c in 0..64 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_tasks(&ns(), &claim("hot", &format!("c{c}"), 2), at(1))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.expect("claimer"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (500, 500), "each task claimed exactly once");
    let stats = store.queue_stats(&ns(), Some(&q("hot")), at(2)).await.expect("stats");
    assert_eq!((stats[0].counts.queued, stats[0].counts.running), (0, 500));
    assert_eq!(stats[0].oldest_ready_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_overshoot_the_depth_limit() {
    // Many creates land in one commit group: each must see the ones before it in the group.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db(&dir));
    let opts = CreateOptions {
        max_queue_depth: Some(10),
    };
    let mut creates = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        creates.push(tokio::spawn(async move {
            store.create_tasks(&ns(), many("tight", 1), opts, at(0)).await
        }));
    }
    let mut accepted = 0;
    for c in creates {
        match c.await.expect("creator") {
            Ok(_) => accepted += 1,
            Err(StoreError::Backpressure { limit: 10, .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(accepted, 10);
    let stats = store.queue_stats(&ns(), Some(&q("tight")), at(1)).await.expect("stats");
    assert_eq!(stats[0].depth, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_of_one_idempotency_key_create_one_task() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db(&dir));
    let mut creates = Vec::new();
    for i in 0..30 {
        let store = store.clone();
        creates.push(tokio::spawn(async move {
            let mut t = NewTask::on(q("work"), json!({ "i": i }));
            t.idempotency_key = Some("once".into());
            let mut out = store
                .create_tasks(&ns(), vec![t], CreateOptions::default(), at(i))
                .await
                .expect("create");
            out.pop().expect("one")
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for c in creates {
        let c = c.await.expect("creator");
        ids.insert(c.task.id);
        created += usize::from(c.created);
    }
    assert_eq!((ids.len(), created), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_fails_only_its_own_command() {
    // Half the updates carry a stale version; sent together they share commit groups, and each
    // conflict must leave the other commands of its group intact.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db(&dir));
    let tasks = create(&store, many("work", 100), at(0)).await;
    let mut updates = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let (store, id) = (store.clone(), t.id);
        let expected_version = if i % 2 == 0 { 1 } else { 7 };
        updates.push(tokio::spawn(async move {
            let patch = TaskPatch {
                title: Some(format!("t{i}")),
                ..TaskPatch::default()
            };
            let command = TaskCommand::Update {
                patch,
                expected_version,
                merge: false,
            };
            store.apply(&ns(), id, command, at(1)).await
        }));
    }
    for (i, u) in updates.into_iter().enumerate() {
        let result = u.await.expect("updater");
        if i % 2 == 0 {
            assert_eq!(result.expect("fresh version").version, 2);
        } else {
            assert_eq!(result.map_err(|e| e.kind()).err(), Some("version_conflict"));
        }
    }
    for (i, t) in tasks.iter().enumerate() {
        let got = store.get_task(&ns(), t.id).await.expect("get");
        let want = if i % 2 == 0 { Some(format!("t{i}")) } else { None };
        assert_eq!(got.title, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_keeps_tasks_meta_counts_and_leases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let (done, running, scheduled, keyed) = {
        let store = open(&path);
        create(&store, many("work", 5), at(0)).await;
        let mut later = NewTask::on(q("work"), json!({}));
        later.run_at = Some(at(60_000));
        let scheduled = create(&store, vec![later], at(0)).await.remove(0);
        let mut keyed = NewTask::on(q("other"), json!({}));
        keyed.idempotency_key = Some("k".into());
        keyed.context = json!({"plan": {"step": 1}}).as_object().cloned().unwrap_or_default();
        let keyed = create(&store, vec![keyed], at(0)).await.remove(0);
        let claimed = store
            .claim_tasks(&ns(), &claim("work", "w", 2), at(1))
            .await
            .expect("claim");
        let complete = TaskCommand::Complete {
            token: token(&claimed[0]),
            completion: Completion {
                result: Some(json!({"ok": true})),
                artifacts: Vec::new(),
            },
        };
        let done = store
            .apply(&ns(), claimed[0].id, complete, at(2))
            .await
            .expect("complete");
        (done, claimed[1].clone(), scheduled, keyed)
    };
    let store = open(&path);
    let got = store.get_task(&ns(), done.id).await.expect("get");
    assert_eq!(got, done, "the task and its meta survive");
    assert!(got.meta.finished_by.is_some(), "meta is stored beside the document");
    assert_eq!(store.get_task(&ns(), keyed.id).await.expect("get"), keyed);
    let stats = store.queue_stats(&ns(), None, at(3)).await.expect("stats");
    let work = stats.iter().find(|s| s.queue == q("work")).expect("work queue");
    let c = work.counts;
    assert_eq!((c.queued, c.scheduled, c.running, c.succeeded), (3, 1, 1, 1));
    assert_eq!(stats.len(), 2);
    // Idempotency keys still hold.
    let mut again = NewTask::on(q("other"), json!({}));
    again.idempotency_key = Some("k".into());
    let dup = store
        .create_tasks(&ns(), vec![again], CreateOptions::default(), at(4))
        .await
        .expect("create");
    assert!(!dup[0].created);
    assert_eq!(dup[0].task.id, keyed.id);
    // The lease and the schedule are still found, and still fence.
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(1_001)));
    let expired = store.expire_leases(at(1_001), 10).await.expect("expire");
    assert_eq!(expired.iter().map(|t| t.id).collect::<Vec<_>>(), vec![running.id]);
    let stale = TaskCommand::Complete {
        token: token(&running),
        completion: Completion::default(),
    };
    let refused = store.apply(&ns(), running.id, stale, at(1_002)).await;
    assert_eq!(refused.map_err(|e| e.kind()).err(), Some("lease_conflict"));
    let promoted = store.promote_due(at(60_000), 10).await.expect("promote");
    assert_eq!(promoted.iter().map(|t| t.id).collect::<Vec<_>>(), vec![scheduled.id]);
}

#[tokio::test]
async fn full_durability_works_and_persists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let options = SqliteOptions {
        durability: Durability::Full,
        readers: 1,
    };
    let id = {
        let store = SqliteStore::open(&path, options).expect("open");
        let t = create(&store, many("work", 3), at(0)).await;
        let got = store
            .claim_tasks(&ns(), &claim("work", "w", 3), at(1))
            .await
            .expect("claim");
        assert_eq!(got.len(), 3);
        t[0].id
    };
    let store = SqliteStore::open(&path, options).expect("reopen");
    let t = store.get_task(&ns(), id).await.expect("get");
    assert_eq!(t.status, TaskStatus::Running);
}

#[tokio::test]
async fn readers_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db(&dir));
    for i in 0..50 {
        let t = create(&store, many("work", 1), at(i)).await.remove(0);
        assert_eq!(store.get_task(&ns(), t.id).await.expect("read your write"), t);
        let page = store
            .list_tasks(&ns(), &TaskFilter::default(), None, 1_000)
            .await
            .expect("list");
        assert_eq!(page.items.len(), usize::try_from(i + 1).expect("small"));
    }
}

#[tokio::test]
async fn a_damaged_row_is_an_error_naming_the_task() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let (bad, good) = {
        let store = open(&path);
        let t = create(&store, many("work", 2), at(0)).await;
        (t[0].id, t[1].id)
    };
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute("UPDATE tasks SET doc = '{not json' WHERE id = ?1", [bad.to_string()])
            .expect("damage");
    }
    let store = open(&path);
    let err = store.get_task(&ns(), bad).await.expect_err("damaged");
    assert_eq!(err.kind(), "other");
    assert!(err.to_string().contains(&bad.to_string()), "{err}");
    assert!(store.get_task(&ns(), good).await.is_ok(), "other rows are unaffected");
    let cancel = store.apply(&ns(), bad, TaskCommand::Cancel, at(1)).await;
    assert_eq!(cancel.map_err(|e| e.kind()).err(), Some("other"));
    assert!(store.apply(&ns(), good, TaskCommand::Cancel, at(1)).await.is_ok());
}

#[test]
fn a_bad_path_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = SqliteStore::open(dir.path().join("missing/dir/yard.db"), SqliteOptions::default())
        .expect_err("cannot create the file");
    assert_eq!(err.kind(), "unavailable", "{err}");
}

/// With `AGENTYARD_CRASH_DB` set, this is the child of `acknowledged_writes_survive_kill_9`:
/// it creates tasks one at a time, claims and completes every third, claims and keeps every
/// third, printing each id once the write was acknowledged, until it is killed. Without it, it
/// does nothing.
#[test]
fn crash_child_writes_until_killed() {
    let Some(path) = std::env::var_os("AGENTYARD_CRASH_DB") else {
        return;
    };
    let durability = match std::env::var("AGENTYARD_CRASH_DURABILITY").as_deref() {
        Ok("full") => Durability::Full,
        _ => Durability::Normal,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async {
        let options = SqliteOptions { durability, readers: 1 };
        let store = SqliteStore::open(PathBuf::from(path), options).expect("open");
        for i in 0.. {
            let t = create(&store, many("crash", 1), at(i)).await.remove(0);
            println!("created {}", t.id);
            if i % 3 == 0 {
                continue;
            }
            let claimed = store
                .claim_tasks(&ns(), &claim("crash", "w", 1), at(i))
                .await
                .expect("claim");
            let Some(task) = claimed.into_iter().next() else {
                continue;
            };
            if i % 3 == 1 {
                let done = TaskCommand::Complete {
                    token: token(&task),
                    completion: Completion::default(),
                };
                store.apply(&ns(), task.id, done, at(i)).await.expect("complete");
                println!("done {}", task.id);
            } else {
                println!("running {}", task.id);
            }
        }
    });
}

fn kill_mid_write_then_check(durability: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_writes_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AGENTYARD_CRASH_DB", &path)
        .env("AGENTYARD_CRASH_DURABILITY", durability)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped stdout");
    // Enough writes for the log to pass several checkpoints (every 2,000 pages), so writes
    // already copied into the database file and writes only in the log are both checked.
    const CREATED: usize = 1_500;
    let (mut acked, mut done, mut running) = (Vec::new(), Vec::new(), Vec::new());
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        let (what, id) = line.split_once(' ').unwrap_or_default();
        let Ok(id) = TaskId::parse(id) else { continue };
        match what {
            "created" => acked.push(id),
            "done" => done.push(id),
            "running" => running.push(id),
            _ => {}
        }
        if acked.len() == CREATED {
            break;
        }
    }
    // SIGKILL while it is still writing: no destructor, no checkpoint, no clean close.
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_eq!(acked.len(), CREATED, "the child acknowledged its writes");
    assert!(
        done.len() > 400 && running.len() > 400,
        "{} done, {} running",
        done.len(),
        running.len()
    );
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async {
        let store = open(&path);
        for id in &acked {
            store.get_task(&ns(), *id).await.expect("an acknowledged task survives");
        }
        for (ids, status) in [(&done, TaskStatus::Succeeded), (&running, TaskStatus::Running)] {
            for id in ids {
                let task = store.get_task(&ns(), *id).await.expect("stored");
                assert_eq!(task.status, status, "{id}");
            }
        }
        let stats = store.queue_stats(&ns(), Some(&q("crash")), at(0)).await.expect("stats");
        let counts = stats[0].counts;
        assert!(
            counts.succeeded >= done.len() as u64,
            "counts are rebuilt from what is stored"
        );
        assert!(counts.running >= running.len() as u64);
        assert!(counts.queued + counts.running + counts.succeeded >= CREATED as u64);
        // The queued listing (from ids rebuilt at open) holds exactly the queued tasks.
        let filter = TaskFilter {
            queue: Some(q("crash")),
            status: Some(TaskStatus::Queued),
        };
        let listed = store.list_tasks(&ns(), &filter, None, 10_000).await.expect("list");
        assert_eq!(listed.items.len() as u64, counts.queued);
        assert!(listed.items.iter().all(|t| t.status == TaskStatus::Queued));
        // A claim after the reopen never hands out a task that was running at the crash.
        let claimed = store
            .claim_tasks(&ns(), &claim("crash", "after", 10_000), at(0))
            .await
            .expect("claim");
        let running: HashSet<TaskId> = running.into_iter().collect();
        assert!(claimed.iter().all(|t| !running.contains(&t.id)));
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    kill_mid_write_then_check("normal");
}

#[test]
fn acknowledged_writes_survive_kill_9_with_full_durability() {
    kill_mid_write_then_check("full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commit_groups() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions {
        durability: Durability::Full,
        readers: 1,
    };
    let store = Arc::new(SqliteStore::open(db(&dir), options).expect("open"));
    let before = store.commit_stats();
    let mut writers = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..20 {
                create(&store, many("work", 1), at(i)).await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let after = store.commit_stats();
    let (groups, commands) = (after.groups - before.groups, after.commands - before.commands);
    assert_eq!(commands, 640);
    // 32 writers each waiting on an fsync: commits must be shared, or this is 640 groups.
    assert!(groups < commands / 2, "{groups} groups for {commands} commands");
}
