//! Conformance cases of `EventStore`: every change of a task, an agent, a message or a limit logs
//! exactly one event, in order, in the same call; a refused change logs none; reads filter and
//! page without gaps or repeats.

use std::collections::BTreeSet;
use std::sync::Arc;

use agentyard_core::agent::AgentRegistration;
use agentyard_core::event::{Event, EventType};
use agentyard_core::flow::KeyLimit;
use agentyard_core::message::{NewMessage, Recipient};
use agentyard_core::{
    AgentName, Backoff, Completion, LeaseToken, Namespace, NewTask, Progress, QueueName, Task, TaskCommand, TaskError,
    TaskId, TaskPatch, Timestamp,
};
use serde_json::json;

use crate::agents::{AgentOptions, AgentStore, MessageStore, SendOptions};
use crate::events::{EventFilter, EventStore};
use crate::limits::LimitStore;
use crate::{Claim, CreateOptions, Store};

/// Everything a case drives: tasks, agents, messages, limits, and the log that records them.
pub trait EventTestYard: Store + AgentStore + MessageStore + LimitStore + EventStore {}

impl<T: Store + AgentStore + MessageStore + LimitStore + EventStore> EventTestYard for T {}

/// A store under test seen with its event log.
pub struct EventTestStore {
    pub store: Arc<dyn EventTestYard>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Expands every event case into a `#[tokio::test]` using `$factory` (see `conformance_tests!`).
#[macro_export]
macro_rules! event_conformance_tests {
    ($factory:path) => {
        $crate::event_conformance_tests!(@each cases $factory);
    };
    (optional $factory:path) => {
        $crate::event_conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::event_conformance_tests!(@$mode $factory;
            every_task_change_logs_one_event_in_order,
            expiry_promotion_and_redrive_log_their_events,
            agent_message_and_limit_changes_log_events,
            a_refused_change_logs_nothing,
            reads_filter_and_page_without_gaps,
            concurrent_changes_get_distinct_increasing_seqs,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::events::$case(&test_store).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::events::$case(&test_store).await;
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

fn subject(t: &Task) -> String {
    format!("task:{}", t.id)
}

fn token(t: &Task) -> LeaseToken {
    t.lease.as_ref().expect("a claimed task has a lease").token.clone()
}

async fn create(s: &Arc<dyn EventTestYard>, task: NewTask, now: Timestamp) -> Task {
    let mut out = s
        .create_tasks(&ns(), vec![task], CreateOptions::default(), now)
        .await
        .expect("create");
    out.pop().expect("one task").task
}

async fn claim_one(s: &Arc<dyn EventTestYard>, queue: &str, who: &str, now: Timestamp) -> Task {
    let mut got = s
        .claim_tasks(&ns(), &Claim::new(q(queue), agent(who), 1, 1_000), now)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "expected one claimable task in {queue}");
    got.pop().expect("one task")
}

/// Every event of the default namespace, read page by page through `next`.
async fn all_events(s: &Arc<dyn EventTestYard>) -> Vec<Event> {
    read_all(s, &ns(), &EventFilter::default(), 3).await
}

async fn read_all(s: &Arc<dyn EventTestYard>, namespace: &Namespace, filter: &EventFilter, page: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let got = s
            .read_events(namespace, filter, after, page)
            .await
            .expect("read events");
        assert!(got.next >= after, "a read never goes back ({} after {after})", got.next);
        if let Some(last) = got.events.last() {
            assert!(got.next >= last.seq, "next covers what was returned");
        }
        let done = got.next == after;
        out.extend(got.events);
        if done {
            return out;
        }
        after = got.next;
    }
}

fn kinds(events: &[Event]) -> Vec<(EventType, String)> {
    events.iter().map(|e| (e.kind, e.subject.clone())).collect()
}

fn assert_increasing(events: &[Event]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "seqs grow: {} then {}",
            pair[0].seq,
            pair[1].seq
        );
    }
}

fn error(retryable: bool) -> TaskError {
    TaskError {
        kind: "boom".into(),
        message: "it broke".into(),
        retryable,
    }
}

pub async fn every_task_change_logs_one_event_in_order(t: &EventTestStore) {
    let s = &t.store;
    let mut nt = NewTask::on(q("work"), json!({}));
    nt.correlation_id = Some("run-7".into());
    nt.max_attempts = 3;
    nt.backoff = Backoff {
        initial_ms: 0,
        max_ms: 0,
        multiplier: 1.0,
        jitter: 0.0,
    };
    let a = create(s, nt, at(0)).await;
    let claimed = claim_one(s, "work", "w1", at(5)).await;
    let lease = token(&claimed);
    let heartbeat = |progress: Option<Progress>| TaskCommand::Heartbeat {
        token: lease.clone(),
        lease_ms: 1_000,
        progress,
    };
    s.apply(&ns(), a.id, heartbeat(None), at(6)).await.expect("heartbeat");
    let half = Progress {
        percent: Some(50.0),
        message: Some("half way".into()),
    };
    s.apply(&ns(), a.id, heartbeat(Some(half.clone())), at(7))
        .await
        .expect("progress");
    s.apply(&ns(), a.id, heartbeat(Some(half)), at(8))
        .await
        .expect("the same progress again");
    let fail = TaskCommand::Fail {
        token: lease.clone(),
        error: error(true),
        jitter_sample: 0.0,
    };
    s.apply(&ns(), a.id, fail, at(9)).await.expect("fail, retried");
    let again = claim_one(s, "work", "w2", at(10)).await;
    let release = TaskCommand::Release {
        token: token(&again),
        delay_ms: 0,
    };
    s.apply(&ns(), a.id, release, at(11)).await.expect("release");
    let third = claim_one(s, "work", "w2", at(12)).await;
    let done = TaskCommand::Complete {
        token: token(&third),
        completion: Completion::default(),
    };
    let finished = s.apply(&ns(), a.id, done.clone(), at(13)).await.expect("complete");
    s.apply(&ns(), a.id, done, at(14))
        .await
        .expect("a repeated completion changes nothing");

    let b = create(s, NewTask::on(q("work"), json!({})), at(20)).await;
    let patch = TaskPatch {
        title: Some("renamed".into()),
        ..TaskPatch::default()
    };
    let edit = TaskCommand::Update {
        patch,
        expected_version: 1,
        merge: false,
    };
    s.apply(&ns(), b.id, edit, at(21)).await.expect("update");
    s.apply(&ns(), b.id, TaskCommand::Cancel, at(22)).await.expect("cancel");

    let events = all_events(s).await;
    let (sa, sb) = (subject(&a), subject(&b));
    assert_eq!(
        kinds(&events),
        vec![
            (EventType::TaskCreated, sa.clone()),
            (EventType::TaskClaimed, sa.clone()),
            (EventType::TaskProgress, sa.clone()),
            (EventType::TaskFailed, sa.clone()),
            (EventType::TaskClaimed, sa.clone()),
            (EventType::TaskReleased, sa.clone()),
            (EventType::TaskClaimed, sa.clone()),
            (EventType::TaskCompleted, sa.clone()),
            (EventType::TaskCreated, sb.clone()),
            (EventType::TaskUpdated, sb.clone()),
            (EventType::TaskCancelled, sb),
        ],
        "one event per change; heartbeats that only move the lease (or repeat the progress) and repeated completions log none"
    );
    assert_increasing(&events);
    let actors: Vec<Option<&str>> = events.iter().map(|e| e.actor.as_deref()).collect();
    assert_eq!(
        actors,
        vec![
            None,
            Some("w1"),
            Some("w1"),
            Some("w1"),
            Some("w2"),
            Some("w2"),
            Some("w2"),
            Some("w2"),
            None,
            None,
            None
        ]
    );
    assert!(events[..8].iter().all(|e| e.correlation_id.as_deref() == Some("run-7")));
    assert!(events[8..].iter().all(|e| e.correlation_id.is_none()));
    assert!(events.iter().all(|e| e.namespace == ns()));
    assert_eq!(events[0].ts, at(0));
    assert_eq!(events[7].ts, at(13));
    assert_eq!(events[0].data["queue"], "work");
    assert_eq!(events[1].data["attempt"], 1);
    assert_eq!(events[1].data["waited_ms"], 5);
    assert_eq!(events[2].data["progress"]["message"], "half way");
    assert_eq!(events[3].data["error"]["kind"], "boom");
    assert_eq!(events[3].data["retry_at"], json!(at(9)));
    assert_eq!(events[7].data["status"], "succeeded");
    assert_eq!(events[7].data["run_ms"], 1);
    assert_eq!(events[7].data["version"], json!(finished.version));
}

pub async fn expiry_promotion_and_redrive_log_their_events(t: &EventTestStore) {
    let s = &t.store;
    let mut nt = NewTask::on(q("work"), json!({}));
    nt.max_attempts = 1;
    let a = create(s, nt, at(0)).await;
    claim_one(s, "work", "w1", at(0)).await;
    let expired = s.expire_leases(at(5_000), 10).await.expect("expire");
    assert_eq!(expired.len(), 1);
    s.apply(&ns(), a.id, TaskCommand::Redrive, at(5_001))
        .await
        .expect("redrive");
    let mut later = NewTask::on(q("work"), json!({}));
    later.run_at = Some(at(10_000));
    let b = create(s, later, at(5_002)).await;
    let promoted = s.promote_due(at(10_000), 10).await.expect("promote");
    assert_eq!(promoted.len(), 1);
    let mut c = NewTask::on(q("other"), json!({}));
    c.max_attempts = 3;
    let c = create(s, c, at(10_001)).await;
    claim_one(s, "other", "w2", at(10_002)).await;
    s.expire_leases(at(20_000), 10).await.expect("expire, retried");
    claim_one(s, "other", "w3", at(20_001)).await;
    let dead = TaskCommand::Fail {
        token: token(&s.get_task(&ns(), c.id).await.expect("get")),
        error: error(false),
        jitter_sample: 0.0,
    };
    s.apply(&ns(), c.id, dead, at(20_002)).await.expect("fail for good");
    let redriven = s
        .redrive_failed(&ns(), &q("other"), 10, at(20_003))
        .await
        .expect("bulk redrive");
    assert_eq!(redriven.len(), 1);

    let events = all_events(s).await;
    let (sa, sb, sc) = (subject(&a), subject(&b), subject(&c));
    assert_eq!(
        kinds(&events),
        vec![
            (EventType::TaskCreated, sa.clone()),
            (EventType::TaskClaimed, sa.clone()),
            (EventType::TaskDeadLettered, sa.clone()),
            (EventType::TaskRedriven, sa),
            (EventType::TaskCreated, sb.clone()),
            (EventType::TaskPromoted, sb),
            (EventType::TaskCreated, sc.clone()),
            (EventType::TaskClaimed, sc.clone()),
            (EventType::TaskLeaseExpired, sc.clone()),
            (EventType::TaskClaimed, sc.clone()),
            (EventType::TaskDeadLettered, sc.clone()),
            (EventType::TaskRedriven, sc),
        ]
    );
    assert_increasing(&events);
    assert_eq!(events[2].data["error"]["kind"], "lease_expired");
    assert_eq!(events[2].data["agent"], "w1");
    assert_eq!(events[4].data["run_at"], json!(at(10_000)));
    assert_eq!(events[8].data["agent"], "w2");
    assert_eq!(events[8].data["retry_at"], json!(at(20_000)));
    assert_eq!(events[10].actor.as_deref(), Some("w3"));
}

pub async fn agent_message_and_limit_changes_log_events(t: &EventTestStore) {
    let s = &t.store;
    let reg = AgentRegistration {
        capabilities: Vec::new(),
        slots: 2,
        metadata: json!({}),
    };
    let opts = AgentOptions::default();
    s.register_agent(&ns(), &agent("a1"), reg.clone(), opts, at(0))
        .await
        .expect("register");
    s.register_agent(&ns(), &agent("a1"), reg, opts, at(1))
        .await
        .expect("register again");
    s.touch_agent(&ns(), &agent("imp"), None, opts, at(2))
        .await
        .expect("implicit");
    s.touch_agent(&ns(), &agent("imp"), None, opts, at(3))
        .await
        .expect("a touch");
    s.heartbeat_agent(&ns(), &agent("a1"), at(4)).await.expect("heartbeat");
    s.drain_agent(&ns(), &agent("a1"), at(5)).await.expect("drain");
    s.drain_agent(&ns(), &agent("a1"), at(6)).await.expect("drain again");
    let task = create(s, NewTask::on(q("work"), json!({})), at(7)).await;
    claim_one(s, "work", "imp", at(8)).await;
    let gone = s.expire_agents(at(60_000), 10_000).await.expect("expire agents");
    assert_eq!(gone.len(), 2, "both went silent");
    s.touch_agent(&ns(), &agent("imp"), None, opts, at(60_001))
        .await
        .expect("back");
    claim_one(s, "work", "imp", at(60_002)).await;
    s.delete_agent(&ns(), &agent("imp"), at(60_003)).await.expect("delete");
    let msg = NewMessage {
        from: Some(agent("a1")),
        to: Recipient::Broadcast { broadcast: true },
        body: json!({"hi": 1}),
        correlation_id: Some("c-9".into()),
        reply_to: None,
        ttl_ms: None,
        idempotency_key: Some("once".into()),
    };
    let sent = s
        .send_message(&ns(), msg.clone(), SendOptions::default(), at(60_004))
        .await
        .expect("send");
    s.send_message(&ns(), msg, SendOptions::default(), at(60_005))
        .await
        .expect("send again: the original comes back");
    s.ack_inbox(&ns(), &agent("a1"), sent.message.seq).await.expect("ack");
    let limit = KeyLimit {
        rate: None,
        max_concurrent: Some(2),
    };
    s.put_limit(&ns(), "openai", limit, at(60_006))
        .await
        .expect("put limit");
    s.delete_limit(&ns(), "openai", at(60_007)).await.expect("delete limit");
    s.delete_limit(&ns(), "openai", at(60_008))
        .await
        .expect("delete no limit");

    let events = all_events(s).await;
    let (a1, imp, st) = ("agent:a1".to_owned(), "agent:imp".to_owned(), subject(&task));
    assert_eq!(
        kinds(&events),
        vec![
            (EventType::AgentRegistered, a1.clone()),
            (EventType::AgentRegistered, a1.clone()),
            (EventType::AgentRegistered, imp.clone()),
            (EventType::AgentDraining, a1.clone()),
            (EventType::TaskCreated, st.clone()),
            (EventType::TaskClaimed, st.clone()),
            (EventType::AgentGone, a1),
            (EventType::AgentGone, imp.clone()),
            (EventType::TaskLeaseRevoked, st.clone()),
            (EventType::AgentBack, imp.clone()),
            (EventType::TaskClaimed, st.clone()),
            (EventType::AgentRemoved, imp),
            (EventType::TaskLeaseRevoked, st),
            (EventType::MessageSent, format!("message:{}", sent.message.seq)),
            (EventType::LimitSet, "limit:openai".into()),
            (EventType::LimitRemoved, "limit:openai".into()),
        ],
        "agents gone in name order, each before the leases it lost; nothing for touches, heartbeats, acks, repeats"
    );
    assert_increasing(&events);
    assert_eq!(events[2].data["implicit"], true);
    assert_eq!(events[0].data["slots"], 2);
    assert_eq!(events[11].data["released"], 1);
    assert_eq!(events[13].actor.as_deref(), Some("a1"));
    assert_eq!(events[13].correlation_id.as_deref(), Some("c-9"));
    assert_eq!(events[13].data["id"], json!(sent.message.id));
    assert_eq!(events[14].data["max_concurrent"], 2);
}

pub async fn a_refused_change_logs_nothing(t: &EventTestStore) {
    let s = &t.store;
    let a = create(s, NewTask::on(q("work"), json!({})), at(0)).await;
    let before = s.last_event_seq().await.expect("last seq");
    let stale = TaskCommand::Complete {
        token: LeaseToken::generate(),
        completion: Completion::default(),
    };
    assert!(s.apply(&ns(), a.id, stale, at(1)).await.is_err());
    let conflict = TaskCommand::Update {
        patch: TaskPatch {
            title: Some("x".into()),
            ..TaskPatch::default()
        },
        expected_version: 9,
        merge: false,
    };
    assert!(s.apply(&ns(), a.id, conflict, at(2)).await.is_err());
    assert!(
        s.apply(&ns(), TaskId::generate(), TaskCommand::Cancel, at(3))
            .await
            .is_err()
    );
    let full = CreateOptions {
        max_queue_depth: Some(1),
    };
    let refused = s
        .create_tasks(&ns(), vec![NewTask::on(q("work"), json!({}))], full, at(4))
        .await;
    assert!(refused.is_err(), "backpressure refuses the batch");
    assert!(
        s.claim_tasks(&ns(), &Claim::new(q("empty"), agent("w"), 5, 1_000), at(5))
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(s.expire_leases(at(6), 10).await.expect("expire").is_empty());
    assert_eq!(
        s.last_event_seq().await.expect("last seq"),
        before,
        "nothing was logged"
    );
    assert_eq!(all_events(s).await.len(), 1);
}

pub async fn reads_filter_and_page_without_gaps(t: &EventTestStore) {
    let s = &t.store;
    assert_eq!(s.last_event_seq().await.expect("empty log"), 0);
    let other = Namespace::parse("tenant-b").expect("valid");
    let mut ids = Vec::new();
    for n in 0..7 {
        let mut nt = NewTask::on(q("work"), json!({ "n": n }));
        nt.correlation_id = Some(if n % 2 == 0 { "even" } else { "odd" }.into());
        ids.push(create(s, nt, at(n)).await);
        s.create_tasks(
            &other,
            vec![NewTask::on(q("work"), json!({}))],
            CreateOptions::default(),
            at(n),
        )
        .await
        .expect("create elsewhere");
    }
    let claimed = claim_one(s, "work", "w1", at(10)).await;
    let everything = read_all(s, &ns(), &EventFilter::default(), 2).await;
    assert_eq!(everything.len(), 8, "this namespace's events only");
    assert_eq!(read_all(s, &ns(), &EventFilter::default(), 100).await, everything);
    assert_increasing(&everything);
    let last = s.last_event_seq().await.expect("last seq");
    assert_eq!(
        last,
        everything.last().expect("events").seq,
        "the claim was the latest event of the yard"
    );
    let theirs = read_all(s, &other, &EventFilter::default(), 100).await;
    assert_eq!(theirs.len(), 7);
    let seqs: BTreeSet<u64> = everything.iter().chain(&theirs).map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 15, "one seq per event across namespaces");

    let claims = EventFilter {
        types: vec![EventType::TaskClaimed],
        ..EventFilter::default()
    };
    let got = read_all(s, &ns(), &claims, 10).await;
    assert_eq!(kinds(&got), vec![(EventType::TaskClaimed, subject(&claimed))]);
    let of_first = EventFilter {
        subject: Some(subject(&ids[0])),
        ..EventFilter::default()
    };
    assert_eq!(read_all(s, &ns(), &of_first, 10).await.len(), 2, "created and claimed");
    let odd = EventFilter {
        correlation_id: Some("odd".into()),
        ..EventFilter::default()
    };
    let got = read_all(s, &ns(), &odd, 1).await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|e| e.correlation_id.as_deref() == Some("odd")));
    let both = EventFilter {
        types: vec![EventType::TaskCreated],
        correlation_id: Some("even".into()),
        ..EventFilter::default()
    };
    assert_eq!(read_all(s, &ns(), &both, 10).await.len(), 4);

    let page = s
        .read_events(&ns(), &EventFilter::default(), 0, 3)
        .await
        .expect("a page");
    assert_eq!(page.events, everything[..3].to_vec());
    assert_eq!(page.next, everything[2].seq, "a full page goes on after its last event");
    let rest = s
        .read_events(&ns(), &EventFilter::default(), page.next, 100)
        .await
        .expect("the rest");
    assert_eq!(rest.events, everything[3..].to_vec());
    assert_eq!(rest.next, last);
    let caught_up = s
        .read_events(&ns(), &EventFilter::default(), last, 100)
        .await
        .expect("nothing new");
    assert!(caught_up.events.is_empty());
    assert_eq!(caught_up.next, last);
}

pub async fn concurrent_changes_get_distinct_increasing_seqs(t: &EventTestStore) {
    let s = &t.store;
    let writers = 8;
    let per_writer = 10;
    let mut handles = Vec::new();
    for w in 0..writers {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for n in 0..per_writer {
                let queue = format!("q{w}");
                let mut nt = NewTask::on(q(&queue), json!({ "n": n }));
                nt.correlation_id = Some(format!("w{w}"));
                let task = create(&s, nt, at(n)).await;
                let got = claim_one(&s, &queue, &format!("w{w}"), at(n)).await;
                assert_eq!(got.id, task.id);
                let done = TaskCommand::Complete {
                    token: token(&got),
                    completion: Completion::default(),
                };
                s.apply(&ns(), task.id, done, at(n)).await.expect("complete");
            }
        }));
    }
    for h in handles {
        h.await.expect("writer");
    }
    let events = all_events(s).await;
    assert_eq!(
        events.len(),
        (writers * per_writer * 3) as usize,
        "three events a task, none lost"
    );
    assert_increasing(&events);
    for w in 0..writers {
        let mine: Vec<EventType> = events
            .iter()
            .filter(|e| e.correlation_id.as_deref() == Some(format!("w{w}").as_str()))
            .map(|e| e.kind)
            .collect();
        let expected: Vec<EventType> = (0..per_writer)
            .flat_map(|_| [EventType::TaskCreated, EventType::TaskClaimed, EventType::TaskCompleted])
            .collect();
        assert_eq!(mine, expected, "each writer's events in the order it made them");
    }
}
