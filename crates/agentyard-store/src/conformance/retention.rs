//! Conformance cases of `RetentionStore`: a prune deletes exactly what is older than its cutoffs
//! (and only what is finished, acknowledged or expired), a bounded amount at a time, and frees
//! idempotency keys without touching their tasks.

use std::sync::Arc;

use agentyard_core::agent::AgentRegistration;
use agentyard_core::message::{NewMessage, Recipient};
use agentyard_core::{
    AgentName, Completion, Namespace, NewTask, QueueName, Task, TaskCommand, TaskError, TaskStatus, Timestamp,
};
use serde_json::json;

use crate::agents::{AgentOptions, AgentStore, MessageStore, SendOptions};
use crate::events::{EventFilter, EventStore};
use crate::retention::{PruneCutoffs, Pruned, RetentionStore};
use crate::{Claim, CreateOptions, Store, TaskFilter};

/// Everything a case drives.
pub trait RetentionTestYard: Store + AgentStore + MessageStore + EventStore + RetentionStore {}

impl<T: Store + AgentStore + MessageStore + EventStore + RetentionStore> RetentionTestYard for T {}

/// A store under test seen with its retention.
pub struct RetentionTestStore {
    pub store: Arc<dyn RetentionTestYard>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Expands every retention case into a `#[tokio::test]` using `$factory` (see `conformance_tests!`).
#[macro_export]
macro_rules! retention_conformance_tests {
    ($factory:path) => {
        $crate::retention_conformance_tests!(@each cases $factory);
    };
    (optional $factory:path) => {
        $crate::retention_conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::retention_conformance_tests!(@$mode $factory;
            prune_deletes_finished_tasks_and_events_older_than_the_cutoffs,
            each_prune_deletes_at_most_its_limit,
            messages_go_once_acknowledged_or_expired,
            idempotency_keys_are_freed_and_their_tasks_kept,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::retention::$case(&test_store).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::retention::$case(&test_store).await;
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

async fn create(s: &Arc<dyn RetentionTestYard>, task: NewTask, now: Timestamp) -> Task {
    let mut out = s
        .create_tasks(&ns(), vec![task], CreateOptions::default(), now)
        .await
        .expect("create");
    out.pop().expect("one task").task
}

/// A task created, claimed and finished at `t` (completed, failed for good, or cancelled).
async fn finished(s: &Arc<dyn RetentionTestYard>, how: TaskStatus, t: i64) -> Task {
    let task = create(s, NewTask::on(q("work"), json!({ "t": t })), at(t)).await;
    if how == TaskStatus::Cancelled {
        return s
            .apply(&ns(), task.id, TaskCommand::Cancel, at(t))
            .await
            .expect("cancel");
    }
    let claimed = s
        .claim_tasks(&ns(), &Claim::new(q("work"), agent("w"), 1, 1_000), at(t))
        .await
        .expect("claim")
        .pop()
        .expect("claimed");
    let token = claimed.lease.expect("leased").token;
    let command = match how {
        TaskStatus::Succeeded => TaskCommand::Complete {
            token,
            completion: Completion::default(),
        },
        _ => TaskCommand::Fail {
            token,
            error: TaskError {
                kind: "boom".into(),
                message: "for good".into(),
                retryable: false,
            },
            jitter_sample: 0.0,
        },
    };
    s.apply(&ns(), task.id, command, at(t)).await.expect("finish")
}

async fn prune_all(s: &Arc<dyn RetentionTestYard>, cutoffs: PruneCutoffs, now: Timestamp) -> Pruned {
    let mut total = Pruned::default();
    loop {
        let got = s.prune(&cutoffs, now, 1_000).await.expect("prune");
        if got.total() == 0 {
            return total;
        }
        total.add(got);
    }
}

pub async fn prune_deletes_finished_tasks_and_events_older_than_the_cutoffs(t: &RetentionTestStore) {
    let s = &t.store;
    let done = finished(s, TaskStatus::Succeeded, 10).await;
    let dead = finished(s, TaskStatus::Failed, 20).await;
    let cancelled = finished(s, TaskStatus::Cancelled, 30).await;
    let queued_old = create(s, NewTask::on(q("waiting"), json!("old but waiting")), at(40)).await;
    let recent = finished(s, TaskStatus::Succeeded, 2_000).await;
    let before = s
        .read_events(&ns(), &EventFilter::default(), 0, 100)
        .await
        .expect("events");
    let last = s.last_event_seq().await.expect("last seq");

    assert_eq!(
        prune_all(s, PruneCutoffs::default(), at(5_000)).await,
        Pruned::default(),
        "no cutoff, nothing goes"
    );
    let cutoffs = PruneCutoffs {
        finished_tasks: Some(at(1_000)),
        events: Some(at(1_000)),
        ..PruneCutoffs::default()
    };
    let pruned = prune_all(s, cutoffs, at(5_000)).await;
    assert_eq!(pruned.tasks, 3);
    for gone in [&done, &dead, &cancelled] {
        let err = s.get_task(&ns(), gone.id).await.expect_err("deleted");
        assert_eq!(err.kind(), "not_found");
    }
    for kept in [&queued_old, &recent] {
        s.get_task(&ns(), kept.id).await.expect("kept");
    }
    let listed = s
        .list_tasks(&ns(), &TaskFilter::default(), None, 100)
        .await
        .expect("list");
    assert_eq!(
        listed.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![queued_old.id, recent.id]
    );
    let stats = s.queue_stats(&ns(), Some(&q("work")), at(5_000)).await.expect("stats");
    assert_eq!(stats[0].counts.succeeded, 1, "the counts follow");
    assert_eq!(stats[0].counts.failed, 0);
    assert_eq!(stats[0].counts.cancelled, 0);
    let waiting = s
        .queue_stats(&ns(), Some(&q("waiting")), at(5_000))
        .await
        .expect("stats");
    assert_eq!(waiting[0].counts.queued, 1);

    let old_events = before.events.iter().filter(|e| e.ts <= at(1_000)).count() as u64;
    assert_eq!(pruned.events, old_events);
    let kept = s
        .read_events(&ns(), &EventFilter::default(), 0, 100)
        .await
        .expect("events");
    let expected: Vec<_> = before.events.iter().filter(|e| e.ts > at(1_000)).cloned().collect();
    assert_eq!(kept.events, expected, "the oldest go, the rest stay as they were");
    assert_eq!(
        s.last_event_seq().await.expect("last seq"),
        last,
        "a seq is never given again"
    );
    create(s, NewTask::on(q("work"), json!("after")), at(6_000)).await;
    assert_eq!(s.last_event_seq().await.expect("last seq"), last + 1);
    assert_eq!(
        prune_all(s, cutoffs, at(7_000)).await,
        Pruned::default(),
        "a second prune finds nothing"
    );
}

pub async fn each_prune_deletes_at_most_its_limit(t: &RetentionTestStore) {
    let s = &t.store;
    for n in 0..5 {
        finished(s, TaskStatus::Succeeded, n).await;
    }
    let cutoffs = PruneCutoffs {
        finished_tasks: Some(at(100)),
        events: Some(at(100)),
        ..PruneCutoffs::default()
    };
    let mut rounds = Vec::new();
    loop {
        let got = s.prune(&cutoffs, at(200), 2).await.expect("prune");
        if got.total() == 0 {
            break;
        }
        rounds.push((got.tasks, got.events));
        assert!(rounds.len() <= 10, "prunes keep finding work: {rounds:?}");
    }
    assert_eq!(
        rounds.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2, 2, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        rounds.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![2, 2, 2, 2, 2, 2, 2, 1]
    );
    assert!(rounds.iter().all(|r| r.1 <= 2));
    assert_eq!(
        rounds.iter().map(|r| r.1).sum::<u64>(),
        15,
        "created, claimed and completed, five times"
    );
}

pub async fn messages_go_once_acknowledged_or_expired(t: &RetentionTestStore) {
    let s = &t.store;
    let reg = AgentRegistration {
        capabilities: Vec::new(),
        slots: 1,
        metadata: json!({}),
    };
    for name in ["a", "b"] {
        s.register_agent(&ns(), &agent(name), reg.clone(), AgentOptions::default(), at(0))
            .await
            .expect("register");
    }
    let send = |to: Recipient, ttl_ms: Option<u64>| NewMessage {
        from: None,
        to,
        body: json!("hi"),
        correlation_id: None,
        reply_to: None,
        ttl_ms,
        idempotency_key: None,
    };
    let direct = |name: &str| Recipient::Agent { agent: agent(name) };
    let opts = SendOptions::default();
    let to_a = s
        .send_message(&ns(), send(direct("a"), None), opts, at(1))
        .await
        .expect("send")
        .message;
    let to_b = s
        .send_message(&ns(), send(direct("b"), None), opts, at(2))
        .await
        .expect("send")
        .message;
    let all = s
        .send_message(&ns(), send(Recipient::Broadcast { broadcast: true }, None), opts, at(3))
        .await
        .expect("send")
        .message;
    s.send_message(&ns(), send(direct("b"), Some(10)), opts, at(4))
        .await
        .expect("send with a ttl");
    s.ack_inbox(&ns(), &agent("a"), all.seq)
        .await
        .expect("a read everything");
    assert_eq!(s.message_count(&ns()).await.expect("count"), 4);

    let cutoffs = PruneCutoffs {
        messages: Some(at(100)),
        ..PruneCutoffs::default()
    };
    let pruned = prune_all(s, cutoffs, at(1_000)).await;
    assert_eq!(pruned.messages, 2, "a's direct message and the expired one");
    assert_eq!(s.message_count(&ns()).await.expect("count"), 2);
    let inbox = s
        .read_inbox(&ns(), &agent("b"), None, 10, at(1_000))
        .await
        .expect("b's inbox");
    assert_eq!(
        inbox.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![to_b.seq, all.seq],
        "what b has not read stays"
    );
    assert!(to_a.seq < to_b.seq);
    s.ack_inbox(&ns(), &agent("b"), all.seq)
        .await
        .expect("b read everything");
    assert_eq!(prune_all(s, cutoffs, at(1_000)).await.messages, 2);
    assert_eq!(s.message_count(&ns()).await.expect("count"), 0);
    let next = s
        .send_message(&ns(), send(direct("a"), None), opts, at(2_000))
        .await
        .expect("send")
        .message;
    assert!(next.seq > all.seq, "message seqs go on");
}

pub async fn idempotency_keys_are_freed_and_their_tasks_kept(t: &RetentionTestStore) {
    let s = &t.store;
    let mut nt = NewTask::on(q("work"), json!({}));
    nt.idempotency_key = Some("once".into());
    let first = create(s, nt.clone(), at(0)).await;
    let again = s
        .create_tasks(&ns(), vec![nt.clone()], CreateOptions::default(), at(1))
        .await
        .expect("create again");
    assert!(!again[0].created, "the key holds");
    let msg = NewMessage {
        from: None,
        to: Recipient::Broadcast { broadcast: true },
        body: json!("hi"),
        correlation_id: None,
        reply_to: None,
        ttl_ms: None,
        idempotency_key: Some("once".into()),
    };
    let sent = s
        .send_message(&ns(), msg.clone(), SendOptions::default(), at(2))
        .await
        .expect("send");
    let cutoffs = PruneCutoffs {
        idempotency_keys: Some(at(100)),
        ..PruneCutoffs::default()
    };
    assert_eq!(prune_all(s, cutoffs, at(1_000)).await.idempotency_keys, 2);
    let kept = s.get_task(&ns(), first.id).await.expect("the task stays");
    assert_eq!(kept.idempotency_key, None);
    assert_eq!(kept.version, first.version, "freeing a key is no change of the task");
    let fresh = s
        .create_tasks(&ns(), vec![nt], CreateOptions::default(), at(1_001))
        .await
        .expect("create with the freed key");
    assert!(fresh[0].created, "the key is free again");
    assert_ne!(fresh[0].task.id, first.id);
    let resent = s
        .send_message(&ns(), msg, SendOptions::default(), at(1_002))
        .await
        .expect("send");
    assert!(resent.created, "the message key is free again");
    assert_ne!(resent.message.seq, sent.message.seq);
}
