//! The storage conformance suite: written once, run against every backend.
//!
//! Each case is a `pub async fn(Arc<dyn Store>)` that panics on a violation. A backend crate
//! expands them into one `#[tokio::test]` each with [`conformance_tests!`](crate::conformance_tests),
//! giving every test a fresh store. Cases assert error kinds, never messages.

use std::any::Any;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use agentyard_core::{
    AgentName, Backoff, Capability, Completion, LeaseToken, Namespace, NewArtifact, NewTask, QueueName, Task,
    TaskCommand, TaskError, TaskId, TaskPatch, TaskStatus, Timestamp,
};
use serde_json::{Value, json};

use crate::{Claim, CreateOptions, Store, StoreError, TaskFilter};

pub mod events;
pub mod limits;
pub mod retention;
pub mod tokens;
pub mod webhooks;

/// A store under test and whatever must live as long as it (a temp dir, a schema).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub _guard: Box<dyn Any + Send + Sync>,
}

/// Expands every conformance case into a `#[tokio::test]` using `$factory`, an
/// `async fn() -> TestStore` that returns a fresh, empty store.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each cases $factory);
    };
    // `$factory` returns an `Option` of the store: `None` skips the case (a service not configured).
    (optional $factory:path) => {
        $crate::conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::conformance_tests!(@$mode $factory;
            create_and_get_round_trip,
            create_rejects_unknown_ids_and_namespaces,
            claim_order_is_priority_then_run_at_then_fifo,
            tasks_created_at_one_instant_are_claimed_in_creation_order,
            claim_respects_capabilities,
            claim_is_exclusive_under_concurrency,
            lease_expiry_redelivers_and_counts_the_attempt,
            stale_lease_holder_is_fenced,
            heartbeat_extends_the_lease,
            retries_back_off_then_dead_letter,
            non_retryable_failure_goes_straight_to_dead_letter,
            redrive_one_and_in_bulk,
            scheduled_tasks_become_ready_when_due,
            idempotency_keys_return_the_original,
            version_conflicts_are_reported,
            concurrent_writers_lose_no_update,
            merge_unions_artifacts_and_merges_context,
            status_changes_need_the_exact_version,
            complete_is_idempotent_for_the_same_lease,
            apply_many_applies_each_on_its_own,
            apply_then_claim_claims_after_applying,
            cancel_drops_the_lease,
            pagination_walks_everything_once,
            listings_by_status_follow_every_change,
            backpressure_refuses_the_whole_batch,
            queue_stats_count_by_status,
            oldest_ready_ignores_priority,
            namespaces_are_isolated,
            concurrency_keys_cap_running_tasks,
            a_claim_passing_over_a_task_returns_each_task_once,
            a_claimed_task_is_what_task_claim_makes_of_it,
            rate_limit_keys_hold_tasks_back
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::$case(test_store.store.clone()).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::$case(test_store.store.clone()).await;
            }
        )*
    };
}

const T0: i64 = 1_800_000_000_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn ns() -> Namespace {
    Namespace::default_namespace()
}

fn q(name: &str) -> QueueName {
    QueueName::parse(name).expect("valid queue name")
}

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("valid agent name")
}

fn new_task(queue: &str) -> NewTask {
    NewTask::on(q(queue), json!({"n": 1}))
}

fn claim(queue: &str, who: &str, max: u32) -> Claim {
    Claim::new(q(queue), agent(who), max, 1_000)
}

async fn create(store: &Arc<dyn Store>, task: NewTask, now: Timestamp) -> Task {
    let mut out = store
        .create_tasks(&ns(), vec![task], CreateOptions::default(), now)
        .await
        .expect("create");
    out.pop().expect("one task").task
}

async fn claim_one(store: &Arc<dyn Store>, queue: &str, who: &str, now: Timestamp) -> Task {
    let mut got = store
        .claim_tasks(&ns(), &claim(queue, who, 1), now)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "expected one claimable task in {queue}");
    got.pop().expect("one task")
}

fn token(t: &Task) -> LeaseToken {
    t.lease.as_ref().expect("a claimed task has a lease").token.clone()
}

/// Completes a claimed task, under its lease, with no result.
fn complete_cmd(t: &Task) -> TaskCommand {
    TaskCommand::Complete {
        token: token(t),
        completion: Completion::default(),
    }
}

fn expect_kind<T: std::fmt::Debug>(r: Result<T, StoreError>, kind: &str) -> StoreError {
    match r {
        Err(e) if e.kind() == kind => e,
        other => panic!("expected a {kind} error, got {other:?}"),
    }
}

fn update(patch: TaskPatch, expected_version: u64, merge: bool) -> TaskCommand {
    TaskCommand::Update {
        patch,
        expected_version,
        merge,
    }
}

fn fail(t: &Task, retryable: bool) -> TaskCommand {
    TaskCommand::Fail {
        token: token(t),
        error: TaskError {
            kind: "boom".into(),
            message: "it broke".into(),
            retryable,
        },
        jitter_sample: 0.0,
    }
}

pub async fn create_and_get_round_trip(store: Arc<dyn Store>) {
    let mut nt = new_task("emails");
    nt.title = Some("Send the digest".into());
    nt.priority = 5;
    nt.context = json!({"plan": {"step": 1}}).as_object().cloned().unwrap_or_default();
    nt.required_capabilities = vec![Capability::parse("smtp").expect("valid")];
    let created = create(&store, nt, at(0)).await;
    assert_eq!(created.status, TaskStatus::Queued);
    assert_eq!(created.version, 1);
    assert_eq!(created.attempt, 0);
    assert_eq!(created.run_at, at(0));
    assert!(created.lease.is_none());
    let got = store.get_task(&ns(), created.id).await.expect("get");
    assert_eq!(got, created, "what is read back equals what was created, meta included");
    assert_eq!(got.meta.context_versions.get("/plan/step"), Some(&1));
}

pub async fn create_rejects_unknown_ids_and_namespaces(store: Arc<dyn Store>) {
    let t = create(&store, new_task("a"), at(0)).await;
    let other = Namespace::parse("other").expect("valid");
    expect_kind(store.get_task(&other, t.id).await, "not_found");
    expect_kind(store.get_task(&ns(), TaskId::generate()).await, "not_found");
    expect_kind(
        store.apply(&ns(), TaskId::generate(), TaskCommand::Cancel, at(1)).await,
        "not_found",
    );
    expect_kind(store.apply(&other, t.id, TaskCommand::Cancel, at(1)).await, "not_found");
}

pub async fn claim_order_is_priority_then_run_at_then_fifo(store: Arc<dyn Store>) {
    // Created in an order that differs from the expected claim order.
    let mut specs = Vec::new();
    for (label, priority, delay) in [
        ("low-1", 0, 0),
        ("high-late", 9, 20),
        ("low-2", 0, 0),
        ("high-early", 9, 10),
        ("mid", 5, 0),
    ] {
        let mut t = new_task("work");
        t.title = Some(label.into());
        t.priority = priority;
        t.run_at = Some(at(delay));
        specs.push(t);
    }
    for (i, t) in specs.into_iter().enumerate() {
        create(&store, t, at(i as i64)).await;
    }
    let promoted = store.promote_due(at(100), 100).await.expect("promote");
    assert_eq!(promoted.len(), 2, "the two delayed tasks become ready");
    let mut order = Vec::new();
    for _ in 0..5 {
        let t = claim_one(&store, "work", "w", at(100)).await;
        order.push(t.title.unwrap_or_default());
    }
    assert_eq!(order, ["high-early", "high-late", "mid", "low-1", "low-2"]);
    let none = store
        .claim_tasks(&ns(), &claim("work", "w", 10), at(100))
        .await
        .expect("claim");
    assert!(none.is_empty(), "nothing left to claim");
}

/// Many creates within one millisecond (one by one, then one batch) all have the same time:
/// their claim order is the order they were created in.
pub async fn tasks_created_at_one_instant_are_claimed_in_creation_order(store: Arc<dyn Store>) {
    let mut expected = Vec::new();
    for i in 0..100 {
        let mut t = new_task("fifo");
        t.title = Some(format!("one-{i}"));
        create(&store, t, at(0)).await;
        expected.push(format!("one-{i}"));
    }
    let batch: Vec<NewTask> = (0..100)
        .map(|i| {
            let mut t = new_task("fifo");
            t.title = Some(format!("batch-{i}"));
            expected.push(format!("batch-{i}"));
            t
        })
        .collect();
    store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(0))
        .await
        .expect("create batch");
    let mut order = Vec::new();
    for _ in 0..expected.len() {
        let t = claim_one(&store, "fifo", "w", at(1)).await;
        order.push(t.title.unwrap_or_default());
    }
    assert_eq!(order, expected);
}

pub async fn claim_respects_capabilities(store: Arc<dyn Store>) {
    let mut gpu = new_task("work");
    gpu.required_capabilities = vec![Capability::parse("gpu").expect("valid")];
    let gpu = create(&store, gpu, at(0)).await;
    let plain = create(&store, new_task("work"), at(1)).await;
    let got = store
        .claim_tasks(&ns(), &claim("work", "cpu-only", 10), at(2))
        .await
        .expect("claim");
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![plain.id]);
    let mut c = claim("work", "gpu-box", 10);
    c.capabilities = vec![
        Capability::parse("gpu").expect("valid"),
        Capability::parse("x").expect("valid"),
    ];
    let got = store.claim_tasks(&ns(), &c, at(3)).await.expect("claim");
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![gpu.id]);
}

pub async fn claim_is_exclusive_under_concurrency(store: Arc<dyn Store>) {
    const TASKS: usize = 400;
    let batch: Vec<NewTask> = (0..TASKS).map(|_| new_task("hot")).collect();
    store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(0))
        .await
        .expect("create");
    let mut handles = Vec::new();
    for c in 0..64 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_tasks(&ns(), &claim("hot", &format!("c{c}"), 3), at(1))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                for t in got {
                    assert_eq!(t.status, TaskStatus::Running);
                    let done = store
                        .apply(&ns(), t.id, complete_cmd(&t), at(2))
                        .await
                        .expect("complete");
                    assert_eq!(done.status, TaskStatus::Succeeded);
                    mine.push(t.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("claimer"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), TASKS, "every task claimed");
    assert_eq!(unique.len(), TASKS, "no task claimed twice");
}

pub async fn lease_expiry_redelivers_and_counts_the_attempt(store: Arc<dyn Store>) {
    let t = create(&store, new_task("work"), at(0)).await;
    let first = claim_one(&store, "work", "a", at(0)).await;
    assert_eq!(first.attempt, 1);
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(1_000)));
    assert!(
        store.expire_leases(at(999), 100).await.expect("expire").is_empty(),
        "not expired yet"
    );
    let expired = store.expire_leases(at(1_000), 100).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, TaskStatus::Queued);
    assert_eq!(
        expired[0].error.as_ref().map(|e| e.kind.as_str()),
        Some("lease_expired")
    );
    let second = claim_one(&store, "work", "b", at(1_001)).await;
    assert_eq!(second.id, t.id);
    assert_eq!(second.attempt, 2);
    assert_ne!(token(&first), token(&second));
    // The last attempt's expiry dead-letters the task.
    store.expire_leases(at(3_000), 100).await.expect("expire");
    claim_one(&store, "work", "c", at(3_001)).await;
    let last = store.expire_leases(at(5_000), 100).await.expect("expire");
    assert_eq!(last[0].status, TaskStatus::Failed);
    assert_eq!(store.next_wakeup().await.expect("wakeup"), None);
}

pub async fn stale_lease_holder_is_fenced(store: Arc<dyn Store>) {
    create(&store, new_task("work"), at(0)).await;
    let stale = claim_one(&store, "work", "slow", at(0)).await;
    store.expire_leases(at(2_000), 100).await.expect("expire");
    let fresh = claim_one(&store, "work", "fast", at(2_001)).await;
    let before = store.get_task(&ns(), fresh.id).await.expect("get");
    let complete = complete_cmd(&stale);
    expect_kind(
        store.apply(&ns(), stale.id, complete, at(2_002)).await,
        "lease_conflict",
    );
    let hb = TaskCommand::Heartbeat {
        token: token(&stale),
        lease_ms: 1_000,
        progress: None,
    };
    expect_kind(store.apply(&ns(), stale.id, hb, at(2_002)).await, "lease_conflict");
    expect_kind(
        store.apply(&ns(), stale.id, fail(&stale, true), at(2_002)).await,
        "lease_conflict",
    );
    let after = store.get_task(&ns(), fresh.id).await.expect("get");
    assert_eq!(before, after, "a fenced holder changes nothing");
    let done = store
        .apply(&ns(), fresh.id, complete_cmd(&fresh), at(2_003))
        .await
        .expect("the current holder completes");
    assert_eq!(done.status, TaskStatus::Succeeded);
}

pub async fn heartbeat_extends_the_lease(store: Arc<dyn Store>) {
    create(&store, new_task("work"), at(0)).await;
    let t = claim_one(&store, "work", "a", at(0)).await;
    let progress = agentyard_core::Progress {
        percent: Some(50.0),
        message: Some("half".into()),
    };
    let hb = TaskCommand::Heartbeat {
        token: token(&t),
        lease_ms: 5_000,
        progress: Some(progress.clone()),
    };
    let beat = store.apply(&ns(), t.id, hb, at(900)).await.expect("heartbeat");
    assert_eq!(beat.lease.as_ref().map(|l| l.expires_at), Some(at(5_900)));
    assert_eq!(beat.progress, Some(progress));
    assert!(beat.version > t.version);
    assert!(store.expire_leases(at(1_500), 100).await.expect("expire").is_empty());
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(5_900)));
}

pub async fn retries_back_off_then_dead_letter(store: Arc<dyn Store>) {
    let mut nt = new_task("flaky");
    nt.max_attempts = 3;
    nt.backoff = Backoff {
        initial_ms: 100,
        max_ms: 1_000,
        multiplier: 2.0,
        jitter: 0.0,
    };
    let id = create(&store, nt, at(0)).await.id;
    let mut now = 0;
    for (attempt, delay) in [(1, 100), (2, 200)] {
        let t = claim_one(&store, "flaky", "w", at(now)).await;
        assert_eq!(t.attempt, attempt);
        let failed = store.apply(&ns(), id, fail(&t, true), at(now)).await.expect("fail");
        assert_eq!(failed.status, TaskStatus::Scheduled);
        assert_eq!(failed.run_at, at(now + delay), "backoff after attempt {attempt}");
        assert!(
            store
                .claim_tasks(&ns(), &claim("flaky", "w", 1), at(now))
                .await
                .expect("claim")
                .is_empty()
        );
        assert_eq!(
            store.promote_due(at(now + delay - 1), 10).await.expect("promote").len(),
            0
        );
        assert_eq!(store.promote_due(at(now + delay), 10).await.expect("promote").len(), 1);
        now += delay;
    }
    let t = claim_one(&store, "flaky", "w", at(now)).await;
    assert_eq!(t.attempt, 3);
    let dead = store.apply(&ns(), id, fail(&t, true), at(now)).await.expect("fail");
    assert_eq!(dead.status, TaskStatus::Failed);
    assert_eq!(dead.finished_at, Some(at(now)));
    assert_eq!(dead.error.as_ref().map(|e| e.kind.as_str()), Some("boom"));
    let dlq = store
        .list_tasks(
            &ns(),
            &TaskFilter {
                queue: Some(q("flaky")),
                status: Some(TaskStatus::Failed),
            },
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(dlq.items.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
}

pub async fn non_retryable_failure_goes_straight_to_dead_letter(store: Arc<dyn Store>) {
    create(&store, new_task("work"), at(0)).await;
    let t = claim_one(&store, "work", "w", at(0)).await;
    let dead = store.apply(&ns(), t.id, fail(&t, false), at(1)).await.expect("fail");
    assert_eq!(dead.status, TaskStatus::Failed);
    assert_eq!(dead.attempt, 1);
}

pub async fn redrive_one_and_in_bulk(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..3 {
        create(&store, new_task("dlq"), at(i)).await;
        let t = claim_one(&store, "dlq", "w", at(10)).await;
        store.apply(&ns(), t.id, fail(&t, false), at(11)).await.expect("fail");
        ids.push(t.id);
    }
    let queued = create(&store, new_task("dlq"), at(12)).await;
    expect_kind(
        store.apply(&ns(), queued.id, TaskCommand::Redrive, at(13)).await,
        "invalid_transition",
    );
    let one = store
        .apply(&ns(), ids[0], TaskCommand::Redrive, at(13))
        .await
        .expect("redrive");
    assert_eq!(one.status, TaskStatus::Queued);
    assert_eq!(one.attempt, 0, "a redriven task gets its attempts back");
    assert_eq!(one.finished_at, None);
    let bulk = store
        .redrive_failed(&ns(), &q("dlq"), 100, at(14))
        .await
        .expect("bulk redrive");
    assert_eq!(
        bulk.iter().map(|t| t.id).collect::<BTreeSet<_>>(),
        ids[1..].iter().copied().collect()
    );
    let stats = store.queue_stats(&ns(), Some(&q("dlq")), at(15)).await.expect("stats");
    assert_eq!(stats[0].counts.failed, 0);
    assert_eq!(stats[0].counts.queued, 4);
}

pub async fn scheduled_tasks_become_ready_when_due(store: Arc<dyn Store>) {
    let mut nt = new_task("later");
    nt.run_at = Some(at(500));
    let t = create(&store, nt, at(0)).await;
    assert_eq!(t.status, TaskStatus::Scheduled);
    assert_eq!(store.next_wakeup().await.expect("wakeup"), Some(at(500)));
    assert!(
        store
            .claim_tasks(&ns(), &claim("later", "w", 1), at(600))
            .await
            .expect("claim")
            .is_empty(),
        "not promoted yet"
    );
    assert!(store.promote_due(at(499), 10).await.expect("promote").is_empty());
    let promoted = store.promote_due(at(500), 10).await.expect("promote");
    assert_eq!(promoted.len(), 1);
    assert_eq!(promoted[0].status, TaskStatus::Queued);
    assert_eq!(claim_one(&store, "later", "w", at(501)).await.id, t.id);
    // A run_at in the past means now.
    let mut past = new_task("later");
    past.run_at = Some(at(-10_000));
    let p = create(&store, past, at(600)).await;
    assert_eq!((p.status, p.run_at), (TaskStatus::Queued, at(600)));
}

pub async fn idempotency_keys_return_the_original(store: Arc<dyn Store>) {
    let mut a = new_task("work");
    a.idempotency_key = Some("order-42".into());
    let first = store
        .create_tasks(&ns(), vec![a.clone()], CreateOptions::default(), at(0))
        .await
        .expect("create");
    assert!(first[0].created);
    let mut again = a.clone();
    again.input = json!({"different": true});
    let second = store
        .create_tasks(&ns(), vec![again], CreateOptions::default(), at(1))
        .await
        .expect("create");
    assert!(!second[0].created);
    assert_eq!(second[0].task, first[0].task, "the original comes back unchanged");
    // Within one batch, the second use of a key refers to the first.
    let mut b = new_task("work");
    b.idempotency_key = Some("batch-key".into());
    let batch = store
        .create_tasks(&ns(), vec![b.clone(), b], CreateOptions::default(), at(2))
        .await
        .expect("create");
    assert!(batch[0].created && !batch[1].created);
    assert_eq!(batch[0].task.id, batch[1].task.id);
    // Keys are per namespace.
    let other = Namespace::parse("other").expect("valid");
    let elsewhere = store
        .create_tasks(&other, vec![a], CreateOptions::default(), at(3))
        .await
        .expect("create");
    assert!(elsewhere[0].created);
    let all = store
        .list_tasks(&ns(), &TaskFilter::default(), None, 100)
        .await
        .expect("list");
    assert_eq!(all.items.len(), 2);
}

pub async fn version_conflicts_are_reported(store: Arc<dyn Store>) {
    let t = create(&store, new_task("work"), at(0)).await;
    let patch = TaskPatch {
        title: Some("v2".into()),
        ..TaskPatch::default()
    };
    let v2 = store
        .apply(&ns(), t.id, update(patch.clone(), 1, false), at(1))
        .await
        .expect("update");
    assert_eq!(v2.version, 2);
    match store.apply(&ns(), t.id, update(patch, 1, false), at(2)).await {
        Err(StoreError::VersionConflict {
            expected,
            actual,
            current,
        }) => {
            assert_eq!((expected, actual), (1, 2));
            assert_eq!(current.version, 2);
            assert_eq!(current.title.as_deref(), Some("v2"));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let empty = store
        .apply(&ns(), t.id, update(TaskPatch::default(), 2, false), at(3))
        .await;
    expect_kind(empty, "invalid");
}

pub async fn concurrent_writers_lose_no_update(store: Arc<dyn Store>) {
    let t = create(&store, new_task("work"), at(0)).await;
    let mut handles = Vec::new();
    for w in 0..100 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            loop {
                let cur = store.get_task(&ns(), t.id).await.expect("get");
                let count = cur.context.get("count").and_then(Value::as_u64).unwrap_or(0);
                let patch = TaskPatch {
                    context: json!({ "count": count + 1 }).as_object().cloned(),
                    artifacts: vec![NewArtifact {
                        name: format!("w{w}"),
                        uri: None,
                        content: Some(json!(w)),
                        media_type: None,
                    }],
                    ..TaskPatch::default()
                };
                match store.apply(&ns(), t.id, update(patch, cur.version, false), at(1)).await {
                    Ok(_) => return conflicts,
                    Err(StoreError::VersionConflict { .. }) => conflicts += 1,
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("writer");
    }
    let end = store.get_task(&ns(), t.id).await.expect("get");
    assert_eq!(
        end.context.get("count").and_then(Value::as_u64),
        Some(100),
        "no lost update"
    );
    assert_eq!(end.artifacts.len(), 100);
    assert_eq!(end.version, 101, "one version per successful write");
}

pub async fn merge_unions_artifacts_and_merges_context(store: Arc<dyn Store>) {
    let mut nt = new_task("work");
    nt.context = json!({"a": 1, "shared": {"x": 1}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let t = create(&store, nt, at(0)).await;
    let art = |name: &str| NewArtifact {
        name: name.into(),
        uri: Some(format!("s3://b/{name}")),
        content: None,
        media_type: None,
    };
    // Writer 1 (based on v1) changes /a and adds an artifact.
    let w1 = TaskPatch {
        context: json!({"a": 2}).as_object().cloned(),
        artifacts: vec![art("one")],
        ..TaskPatch::default()
    };
    let v2 = store
        .apply(&ns(), t.id, update(w1, 1, true), at(1))
        .await
        .expect("first write");
    assert_eq!(v2.version, 2);
    // Writer 2, also based on v1, touches other keys: merged.
    let w2 = TaskPatch {
        context: json!({"b": true, "shared": {"y": 2}}).as_object().cloned(),
        artifacts: vec![art("two"), art("one")],
        title: Some("merged".into()),
        ..TaskPatch::default()
    };
    let v3 = store
        .apply(&ns(), t.id, update(w2, 1, true), at(2))
        .await
        .expect("disjoint merge");
    assert_eq!(v3.version, 3);
    assert_eq!(
        Value::Object(v3.context.clone()),
        json!({"a": 2, "shared": {"x": 1, "y": 2}, "b": true})
    );
    assert_eq!(
        v3.artifacts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["one", "two"],
        "artifacts are a union"
    );
    assert_eq!(v3.title.as_deref(), Some("merged"));
    // Writer 3, based on v1, changes /a too: a conflict naming the path.
    let w3 = TaskPatch {
        context: json!({"a": 3}).as_object().cloned(),
        ..TaskPatch::default()
    };
    match store.apply(&ns(), t.id, update(w3.clone(), 1, true), at(3)).await {
        Err(StoreError::MergeConflict {
            paths,
            expected,
            actual,
            ..
        }) => {
            assert_eq!(paths, vec!["/a".to_owned()]);
            assert_eq!((expected, actual), (1, 3));
        }
        other => panic!("expected a merge conflict, got {other:?}"),
    }
    // Without merge the same stale write is a plain version conflict.
    expect_kind(
        store.apply(&ns(), t.id, update(w3, 1, false), at(3)).await,
        "version_conflict",
    );
}

pub async fn status_changes_need_the_exact_version(store: Arc<dyn Store>) {
    let t = create(&store, new_task("work"), at(0)).await;
    store
        .apply(
            &ns(),
            t.id,
            update(
                TaskPatch {
                    title: Some("x".into()),
                    ..TaskPatch::default()
                },
                1,
                false,
            ),
            at(1),
        )
        .await
        .expect("update");
    let cancel = TaskPatch {
        status: Some(TaskStatus::Cancelled),
        ..TaskPatch::default()
    };
    expect_kind(
        store.apply(&ns(), t.id, update(cancel.clone(), 1, true), at(2)).await,
        "version_conflict",
    );
    let done = store
        .apply(&ns(), t.id, update(cancel, 2, true), at(2))
        .await
        .expect("cancel with exact version");
    assert_eq!(done.status, TaskStatus::Cancelled);
    let run = TaskPatch {
        status: Some(TaskStatus::Running),
        ..TaskPatch::default()
    };
    expect_kind(store.apply(&ns(), t.id, update(run, 3, false), at(3)).await, "invalid");
}

pub async fn complete_is_idempotent_for_the_same_lease(store: Arc<dyn Store>) {
    create(&store, new_task("work"), at(0)).await;
    let t = claim_one(&store, "work", "w", at(0)).await;
    let completion = Completion {
        result: Some(json!({"ok": true})),
        artifacts: vec![NewArtifact {
            name: "report".into(),
            uri: None,
            content: Some(json!("hi")),
            media_type: None,
        }],
    };
    let done = store
        .apply(
            &ns(),
            t.id,
            TaskCommand::Complete {
                token: token(&t),
                completion: completion.clone(),
            },
            at(1),
        )
        .await
        .expect("complete");
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert_eq!(done.artifacts.len(), 1);
    assert!(done.lease.is_none());
    let again = store
        .apply(
            &ns(),
            t.id,
            TaskCommand::Complete {
                token: token(&t),
                completion,
            },
            at(2),
        )
        .await
        .expect("a repeated complete by the same holder succeeds");
    assert_eq!(again.version, done.version, "and changes nothing");
    let other = TaskCommand::Complete {
        token: LeaseToken::new("not-the-token"),
        completion: Completion::default(),
    };
    expect_kind(store.apply(&ns(), t.id, other, at(3)).await, "lease_conflict");
}

/// "Done, next" in one call: each command succeeds or fails alone, and the claim comes after
/// them, so it sees the concurrency slot a completion freed and never hands back a task just
/// finished.
pub async fn apply_then_claim_claims_after_applying(store: Arc<dyn Store>) {
    let mut keyed = Vec::new();
    for _ in 0..2 {
        let mut t = new_task("git");
        t.concurrency_key = Some("repo".into());
        keyed.push(t);
    }
    store
        .create_tasks(&ns(), keyed, CreateOptions::default(), at(0))
        .await
        .expect("create");
    let first = claim_one(&store, "git", "w", at(0)).await;
    // The second task waits for the key's only slot.
    assert!(
        store
            .claim_tasks(&ns(), &claim("git", "w", 1), at(0))
            .await
            .expect("claim")
            .is_empty(),
        "the key is at its limit"
    );
    let done = complete_cmd(&first);
    let stranger = (TaskId::generate(), TaskCommand::Cancel);
    let (applied, claimed) = store
        .apply_then_claim(&ns(), vec![(first.id, done), stranger], &claim("git", "w", 10), at(1))
        .await
        .expect("the store answers");
    assert_eq!(applied.len(), 2, "one outcome per command, in order");
    assert_eq!(applied[0].as_ref().expect("completes").status, TaskStatus::Succeeded);
    expect_kind(applied[1].clone(), "not_found");
    assert_eq!(claimed.len(), 1, "the freed slot goes to the waiting task");
    assert_ne!(claimed[0].id, first.id);
    assert_eq!(claimed[0].status, TaskStatus::Running);
    assert_eq!(store.get_task(&ns(), claimed[0].id).await.expect("stored"), claimed[0]);
    assert_eq!(
        store.get_task(&ns(), first.id).await.expect("stored").status,
        TaskStatus::Succeeded
    );
    // Nothing to apply and nothing ready: both parts come back empty.
    let (applied, claimed) = store
        .apply_then_claim(&ns(), Vec::new(), &claim("git", "w", 10), at(2))
        .await
        .expect("the store answers");
    assert!(applied.is_empty() && claimed.is_empty());
}

pub async fn apply_many_applies_each_on_its_own(store: Arc<dyn Store>) {
    for _ in 0..3 {
        create(&store, new_task("work"), at(0)).await;
    }
    let (a, b, c) = (
        claim_one(&store, "work", "w", at(0)).await,
        claim_one(&store, "work", "w", at(0)).await,
        claim_one(&store, "work", "w", at(0)).await,
    );
    let complete = |t: &Task, token: LeaseToken| {
        (
            t.id,
            TaskCommand::Complete {
                token,
                completion: Completion {
                    result: Some(json!({"id": t.id.to_string()})),
                    artifacts: Vec::new(),
                },
            },
        )
    };
    let outcomes = store
        .apply_many(
            &ns(),
            vec![
                complete(&a, token(&a)),
                complete(&b, LeaseToken::new("not-the-token")),
                (TaskId::generate(), TaskCommand::Cancel),
                complete(&c, token(&c)),
            ],
            at(1),
        )
        .await
        .expect("the store answers");
    assert_eq!(outcomes.len(), 4, "one outcome per command, in order");
    let done = outcomes[0].as_ref().expect("a completes");
    assert_eq!((done.id, done.status), (a.id, TaskStatus::Succeeded));
    expect_kind(outcomes[1].clone(), "lease_conflict");
    expect_kind(outcomes[2].clone(), "not_found");
    let done = outcomes[3].as_ref().expect("c completes");
    assert_eq!((done.id, done.status), (c.id, TaskStatus::Succeeded));
    // What each outcome says is what is stored.
    assert_eq!(
        store.get_task(&ns(), a.id).await.expect("a").status,
        TaskStatus::Succeeded
    );
    assert_eq!(
        store.get_task(&ns(), b.id).await.expect("b"),
        b,
        "the refused item changed nothing"
    );
    assert_eq!(
        store.get_task(&ns(), c.id).await.expect("c").status,
        TaskStatus::Succeeded
    );
    assert_eq!(
        store.queue_stats(&ns(), Some(&q("work")), at(1)).await.expect("stats")[0]
            .counts
            .succeeded,
        2
    );
}

pub async fn cancel_drops_the_lease(store: Arc<dyn Store>) {
    create(&store, new_task("work"), at(0)).await;
    let t = claim_one(&store, "work", "w", at(0)).await;
    let cancelled = store
        .apply(&ns(), t.id, TaskCommand::Cancel, at(1))
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert!(cancelled.lease.is_none());
    let complete = complete_cmd(&t);
    expect_kind(store.apply(&ns(), t.id, complete, at(2)).await, "lease_conflict");
    expect_kind(
        store.apply(&ns(), t.id, TaskCommand::Cancel, at(3)).await,
        "invalid_transition",
    );
    assert!(store.expire_leases(at(10_000), 10).await.expect("expire").is_empty());
}

pub async fn pagination_walks_everything_once(store: Arc<dyn Store>) {
    let batch: Vec<NewTask> = (0..25)
        .map(|i| new_task(if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    let created = store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(0))
        .await
        .expect("create");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_tasks(&ns(), &TaskFilter::default(), after, 7)
            .await
            .expect("list");
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|t| t.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut expected: Vec<TaskId> = created.iter().map(|c| c.task.id).collect();
    expected.sort();
    assert_eq!(seen, expected, "every task once, in id order");
    let even = store
        .list_tasks(
            &ns(),
            &TaskFilter {
                queue: Some(q("even")),
                status: Some(TaskStatus::Queued),
            },
            None,
            100,
        )
        .await
        .expect("list");
    assert_eq!(even.items.len(), 13);
    assert!(even.next.is_none());
    let exact = store
        .list_tasks(
            &ns(),
            &TaskFilter {
                queue: Some(q("odd")),
                status: None,
            },
            None,
            12,
        )
        .await
        .expect("list");
    assert_eq!(exact.items.len(), 12);
    assert!(exact.next.is_none(), "no next cursor when the page holds the last item");
}

/// Every status's listing holds exactly the tasks in that status, in id order, across pages,
/// after creates, claims, a completion and cancels; per namespace and per queue.
pub async fn listings_by_status_follow_every_change(store: Arc<dyn Store>) {
    let batch: Vec<NewTask> = (0..10)
        .map(|i| new_task(if i % 2 == 0 { "left" } else { "right" }))
        .collect();
    store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(0))
        .await
        .expect("create");
    let claimed = store
        .claim_tasks(&ns(), &claim("left", "w", 3), at(1))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let done = complete_cmd(&claimed[0]);
    store.apply(&ns(), claimed[0].id, done, at(2)).await.expect("complete");
    let all = store
        .list_tasks(&ns(), &TaskFilter::default(), None, 100)
        .await
        .expect("list")
        .items;
    let queued_right = all.iter().find(|t| t.queue == q("right")).expect("a right task");
    store
        .apply(&ns(), queued_right.id, TaskCommand::Cancel, at(3))
        .await
        .expect("cancel");
    store
        .create_tasks(&ns(), vec![new_task("left")], CreateOptions::default(), at(4))
        .await
        .expect("create");
    let truth = store
        .list_tasks(&ns(), &TaskFilter::default(), None, 100)
        .await
        .expect("list")
        .items;
    for status in TaskStatus::ALL {
        for queue in [None, Some(q("left")), Some(q("right"))] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let filter = TaskFilter {
                    queue: queue.clone(),
                    status: Some(status),
                };
                let page = store.list_tasks(&ns(), &filter, after, 2).await.expect("list");
                assert!(page.items.len() <= 2);
                assert!(page.items.iter().all(|t| t.status == status));
                seen.extend(page.items.iter().map(|t| t.id));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let expected: Vec<TaskId> = truth
                .iter()
                .filter(|t| t.status == status && queue.as_ref().is_none_or(|want| &t.queue == want))
                .map(|t| t.id)
                .collect();
            assert_eq!(seen, expected, "{status:?} in {queue:?}");
        }
    }
    let other = Namespace::parse("elsewhere").expect("valid");
    let filter = TaskFilter {
        queue: None,
        status: Some(TaskStatus::Queued),
    };
    let page = store.list_tasks(&other, &filter, None, 100).await.expect("list");
    assert!(page.items.is_empty(), "another namespace sees none of them");
}

pub async fn backpressure_refuses_the_whole_batch(store: Arc<dyn Store>) {
    let opts = CreateOptions {
        max_queue_depth: Some(5),
    };
    let four: Vec<NewTask> = (0..4).map(|_| new_task("small")).collect();
    store
        .create_tasks(&ns(), four, opts, at(0))
        .await
        .expect("under the limit");
    let two: Vec<NewTask> = (0..2).map(|_| new_task("small")).collect();
    match store.create_tasks(&ns(), two, opts, at(1)).await {
        Err(StoreError::Backpressure { queue, depth, limit }) => {
            assert_eq!((queue.as_str(), depth, limit), ("small", 4, 5));
        }
        other => panic!("expected backpressure, got {other:?}"),
    }
    let stats = store.queue_stats(&ns(), Some(&q("small")), at(2)).await.expect("stats");
    assert_eq!(stats[0].depth, 4, "nothing of the refused batch was created");
    create(&store, new_task("other-queue"), at(2)).await;
    // Running tasks do not count towards the depth.
    claim_one(&store, "small", "w", at(3)).await;
    let two: Vec<NewTask> = (0..2).map(|_| new_task("small")).collect();
    store.create_tasks(&ns(), two, opts, at(4)).await.expect("room again");
}

pub async fn queue_stats_count_by_status(store: Arc<dyn Store>) {
    for i in 0..4 {
        create(&store, new_task("stats"), at(i)).await;
    }
    let mut later = new_task("stats");
    later.run_at = Some(at(10_000));
    create(&store, later, at(5)).await;
    let a = claim_one(&store, "stats", "w", at(6)).await;
    store
        .apply(&ns(), a.id, complete_cmd(&a), at(7))
        .await
        .expect("complete");
    let b = claim_one(&store, "stats", "w", at(8)).await;
    store.apply(&ns(), b.id, fail(&b, false), at(9)).await.expect("fail");
    claim_one(&store, "stats", "w", at(10)).await;
    let stats = store.queue_stats(&ns(), None, at(1_010)).await.expect("stats");
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.queue.as_str(), "stats");
    let c = s.counts;
    assert_eq!(
        (c.queued, c.scheduled, c.running, c.succeeded, c.failed, c.cancelled),
        (1, 1, 1, 1, 1, 0)
    );
    assert_eq!(s.depth, 2);
    assert_eq!(s.oldest_ready_at, Some(at(3)));
    assert_eq!(s.oldest_ready_age_ms, Some(1_007));
    assert!(
        store
            .queue_stats(&ns(), Some(&q("nothing-here")), at(0))
            .await
            .expect("stats")
            .iter()
            .all(|s| s.depth == 0)
    );
}

/// The oldest ready task is the one waiting longest, whatever its priority.
pub async fn oldest_ready_ignores_priority(store: Arc<dyn Store>) {
    // (queue, [(priority, ready since)], the oldest)
    type Case = (&'static str, &'static [(i32, i64)], i64);
    let cases: [Case; 3] = [
        ("lowest-oldest", &[(5, 30), (0, 20), (-3, 10), (0, 15), (5, 40)], 10),
        ("middle-oldest", &[(5, 30), (0, 12), (-3, 20)], 12),
        ("highest-oldest", &[(9, 1), (0, 12), (-3, 20)], 1),
    ];
    for (queue, tasks, _) in cases {
        for &(priority, run_at) in tasks {
            // Ready from the moment it is created.
            let mut t = new_task(queue);
            t.priority = priority;
            create(&store, t, at(run_at)).await;
        }
    }
    for (queue, _, oldest) in cases {
        let stats = store.queue_stats(&ns(), Some(&q(queue)), at(100)).await.expect("stats");
        assert_eq!(stats[0].oldest_ready_at, Some(at(oldest)), "{queue}");
        assert_eq!(stats[0].oldest_ready_age_ms, Some((100 - oldest) as u64), "{queue}");
    }
}

pub async fn namespaces_are_isolated(store: Arc<dyn Store>) {
    let other = Namespace::parse("team-b").expect("valid");
    create(&store, new_task("shared-name"), at(0)).await;
    let got = store
        .claim_tasks(&other, &claim("shared-name", "w", 10), at(1))
        .await
        .expect("claim");
    assert!(got.is_empty(), "a claim never crosses namespaces");
    assert!(
        store
            .list_tasks(&other, &TaskFilter::default(), None, 10)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        store
            .queue_stats(&other, None, at(1))
            .await
            .expect("stats")
            .iter()
            .all(|s| s.counts == Default::default())
    );
}

pub mod agents;

/// Expands the agent and message cases into `#[tokio::test]`s; `$factory` is an
/// `async fn() -> conformance::agents::AgentTestStore`.
#[macro_export]
macro_rules! agent_conformance_tests {
    ($factory:path) => {
        $crate::agent_conformance_tests!(@each cases $factory);
    };
    // `$factory` returns an `Option` of the store: `None` skips the case (a service not configured).
    (optional $factory:path) => {
        $crate::agent_conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::agent_conformance_tests!(@$mode $factory;
            agents_register_drain_and_delete,
            running_counts_follow_claims_completions_and_expiry,
            silent_agents_go_and_lose_their_leases,
            registering_makes_an_implicit_agent_explicit,
            gone_implicit_agents_are_forgotten,
            new_agents_stop_at_the_namespace_cap,
            inboxes_merge_direct_topic_and_broadcast,
            acks_move_the_cursor_forward_only,
            expired_and_duplicate_messages_are_not_delivered,
            concurrent_senders_lose_nothing,
            full_inboxes_refuse_direct_messages
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::agents::$case(&test_store).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::agents::$case(&test_store).await;
            }
        )*
    };
}

pub async fn concurrency_keys_cap_running_tasks(store: Arc<dyn Store>) {
    struct Two;
    impl crate::DispatchGate for Two {
        fn max_concurrent(&self, key: &str) -> u64 {
            if key == "repo-a" {
                2
            } else {
                crate::DEFAULT_MAX_CONCURRENT
            }
        }
        fn take_rate_token(&self, _key: &str, _now: Timestamp) -> bool {
            true
        }
    }
    let mut batch = Vec::new();
    for (i, key) in ["repo-a", "repo-a", "repo-a", "repo-b", "repo-b"]
        .into_iter()
        .enumerate()
    {
        let mut t = new_task("git");
        t.concurrency_key = Some(key.into());
        t.priority = 10 - i as i32;
        batch.push(t);
    }
    batch.push(new_task("git"));
    store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(0))
        .await
        .expect("create");
    let mut c = claim("git", "w", 10);
    c.gate = Some(Arc::new(Two));
    let got = store.claim_tasks(&ns(), &c, at(1)).await.expect("claim");
    let keys: Vec<Option<&str>> = got.iter().map(|t| t.concurrency_key.as_deref()).collect();
    assert_eq!(
        keys,
        vec![Some("repo-a"), Some("repo-a"), Some("repo-b"), None],
        "two of repo-a, one of repo-b (no configured limit)"
    );
    assert!(
        store.claim_tasks(&ns(), &c, at(2)).await.expect("claim").is_empty(),
        "the keys are at their limits"
    );
    let a = &got[0];
    store
        .apply(&ns(), a.id, complete_cmd(a), at(3))
        .await
        .expect("complete");
    let next = store.claim_tasks(&ns(), &c, at(4)).await.expect("claim");
    assert_eq!(
        next.iter().map(|t| t.concurrency_key.as_deref()).collect::<Vec<_>>(),
        vec![Some("repo-a")],
        "a finished task frees its slot"
    );
    // Without a gate, a key runs one task at a time.
    let plain = store
        .claim_tasks(&ns(), &claim("git", "w", 10), at(5))
        .await
        .expect("claim");
    assert!(plain.is_empty(), "repo-b already runs one: {plain:?}");
}

/// A claim that passes over a held-back task looks further down the queue: it must find the
/// next tasks, never the ones it already took (a store that locks what it picked and looks again
/// would find those first).
pub async fn a_claim_passing_over_a_task_returns_each_task_once(store: Arc<dyn Store>) {
    let mut keyed = new_task("git");
    keyed.concurrency_key = Some("repo".into());
    keyed.priority = 9;
    let running = create(&store, keyed.clone(), at(0)).await;
    claim_one(&store, "git", "w-0", at(1)).await;
    let mut batch = Vec::new();
    for (priority, key) in [(3, None), (2, Some("repo")), (1, None), (0, None)] {
        let mut t = new_task("git");
        t.priority = priority;
        t.concurrency_key = key.map(str::to_owned);
        batch.push(t);
    }
    let made = store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(2))
        .await
        .expect("create");
    let got = store
        .claim_tasks(&ns(), &claim("git", "w-1", 2), at(3))
        .await
        .expect("claim");
    let ids: Vec<TaskId> = got.iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        vec![made[0].task.id, made[2].task.id],
        "the first plain task, the held-back one passed over, then the next plain one; {running:?} holds the key"
    );
}

/// A store may lease tasks its own way (one SQL statement, say), but the task it hands out must be
/// exactly what `Task::claim` makes of the stored one: attempt, lease (capped by the task's
/// `timeout_ms`), progress cleared, version and time. Only the token is the store's choice.
pub async fn a_claimed_task_is_what_task_claim_makes_of_it(store: Arc<dyn Store>) {
    for timeout_ms in [None, Some(400), Some(5_000)] {
        let mut t = new_task("exact");
        t.timeout_ms = timeout_ms;
        let created = create(&store, t, at(0)).await;
        let mut heartbeat_first = store
            .claim_tasks(&ns(), &claim("exact", "w-1", 1), at(1))
            .await
            .expect("claim");
        let first = heartbeat_first.pop().expect("one task");
        // Back to the queue with progress set, so the second claim has something to clear.
        let progress = agentyard_core::Progress {
            percent: Some(50.0),
            message: None,
        };
        store
            .apply(
                &ns(),
                first.id,
                TaskCommand::Heartbeat {
                    token: token(&first),
                    lease_ms: 1_000,
                    progress: Some(progress),
                },
                at(2),
            )
            .await
            .expect("heartbeat");
        store.expire_leases(at(10_000), 10).await.expect("expire");
        let stored = store.get_task(&ns(), created.id).await.expect("get");
        assert!(stored.progress.is_some(), "{stored:?}");
        let claimed = claim_one(&store, "exact", "w-2", at(10_001)).await;
        let mut expected = stored.clone();
        expected
            .claim(&agent("w-2"), token(&claimed), 1_000, at(10_001))
            .expect("claimable");
        assert_eq!(claimed, expected, "timeout_ms {timeout_ms:?}");
        assert_ne!(token(&claimed), token(&first), "a fresh token");
        // The same holds for the completion, however the store writes it.
        let done = TaskCommand::Complete {
            token: token(&claimed),
            completion: Completion {
                result: Some(json!({"ok": true})),
                artifacts: Vec::new(),
            },
        };
        let completed = store
            .apply_many(&ns(), vec![(claimed.id, done.clone())], at(10_002))
            .await
            .expect("complete")
            .pop()
            .expect("one outcome")
            .expect("completed");
        let mut expected = claimed.clone();
        expected.apply(done, at(10_002)).expect("completable");
        assert_eq!(completed, expected, "timeout_ms {timeout_ms:?}");
        assert_eq!(store.get_task(&ns(), claimed.id).await.expect("get"), expected);
    }
}

pub async fn rate_limit_keys_hold_tasks_back(store: Arc<dyn Store>) {
    struct Budget(std::sync::Mutex<u32>);
    impl crate::DispatchGate for Budget {
        fn max_concurrent(&self, _key: &str) -> u64 {
            u64::MAX
        }
        fn take_rate_token(&self, key: &str, _now: Timestamp) -> bool {
            let mut left = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if key != "openai" || *left == 0 {
                return key != "openai";
            }
            *left -= 1;
            true
        }
    }
    let mut batch = Vec::new();
    for _ in 0..4 {
        let mut t = new_task("llm");
        t.rate_limit_key = Some("openai".into());
        batch.push(t);
    }
    batch.push(new_task("llm"));
    store
        .create_tasks(&ns(), batch, CreateOptions::default(), at(0))
        .await
        .expect("create");
    let mut c = claim("llm", "w", 10);
    c.gate = Some(Arc::new(Budget(std::sync::Mutex::new(2))));
    let got = store.claim_tasks(&ns(), &c, at(1)).await.expect("claim");
    assert_eq!(
        got.iter().filter(|t| t.rate_limit_key.is_some()).count(),
        2,
        "two tokens, two tasks"
    );
    assert_eq!(got.len(), 3, "the unlimited task is not held back");
    let stats = store.queue_stats(&ns(), Some(&q("llm")), at(2)).await.expect("stats");
    assert_eq!(stats[0].counts.queued, 2, "the rest stay queued");
}
