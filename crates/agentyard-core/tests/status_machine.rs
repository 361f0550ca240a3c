//! Property tests: any sequence of commands keeps a task's invariants.

use agentyard_core::{
    AgentName, Applied, Backoff, Completion, LeaseToken, Namespace, NewArtifact, NewTask, QueueName, Task, TaskCommand,
    TaskError, TaskId, TaskPatch, TaskStatus, Timestamp,
};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Claim,
    Heartbeat {
        stale: bool,
    },
    Complete {
        stale: bool,
    },
    Fail {
        stale: bool,
        retryable: bool,
        sample: f64,
    },
    Update {
        stale_by: u64,
        merge: bool,
        key: u8,
        status: Option<TaskStatus>,
    },
    Release {
        stale: bool,
        delay_ms: u64,
    },
    Cancel,
    Redrive,
    Expire,
    Promote,
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Claim),
        1 => any::<bool>().prop_map(|stale| Op::Heartbeat { stale }),
        1 => any::<bool>().prop_map(|stale| Op::Complete { stale }),
        1 => (any::<bool>(), any::<bool>(), 0.0..1.0f64).prop_map(|(stale, retryable, sample)| Op::Fail { stale, retryable, sample }),
        2 => (0..3u64, any::<bool>(), 0..4u8, prop::option::of(prop::sample::select(TaskStatus::ALL.to_vec())))
            .prop_map(|(stale_by, merge, key, status)| Op::Update { stale_by, merge, key, status }),
        1 => (any::<bool>(), prop::sample::select(vec![0u64, 500])).prop_map(|(stale, delay_ms)| Op::Release { stale, delay_ms }),
        1 => Just(Op::Cancel),
        1 => Just(Op::Redrive),
        2 => Just(Op::Expire),
        2 => Just(Op::Promote),
        2 => (0..5_000u64).prop_map(Op::Tick),
    ]
}

fn check_invariants(t: &Task) {
    assert_eq!(
        t.status == TaskStatus::Running,
        t.lease.is_some(),
        "a task runs exactly when it holds a lease: {t:?}"
    );
    assert_eq!(
        t.status.is_terminal(),
        t.finished_at.is_some(),
        "finished_at is set exactly on terminal tasks: {t:?}"
    );
    assert!(t.attempt <= t.max_attempts, "attempts never exceed the maximum: {t:?}");
    if t.status == TaskStatus::Succeeded {
        assert!(t.meta.finished_by.is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_command_sequence_keeps_the_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let mut now = Timestamp::from_millis(1_000_000);
        let mut spec = NewTask::on(QueueName::parse("q").unwrap(), json!(null));
        spec.backoff = Backoff { initial_ms: 100, max_ms: 1_000, multiplier: 2.0, jitter: 0.5 };
        let mut task = spec.into_task(TaskId::generate(), Namespace::default(), now);
        let agent = AgentName::parse("a").unwrap();
        let mut last_token = LeaseToken::new("none");
        for op in ops {
            let before = task.clone();
            let token = |stale: bool| if stale { LeaseToken::new("stale") } else { last_token.clone() };
            let result = match op {
                Op::Claim => {
                    let t = LeaseToken::generate();
                    let r = task.claim(&agent, t.clone(), 1_000, now).map(|_| Applied::Changed);
                    if r.is_ok() {
                        last_token = t;
                    }
                    r
                }
                Op::Heartbeat { stale } => task.apply(TaskCommand::Heartbeat { token: token(stale), lease_ms: 1_000, progress: None }, now),
                Op::Complete { stale } => task.apply(TaskCommand::Complete { token: token(stale), completion: Completion::default() }, now),
                Op::Fail { stale, retryable, sample } => task.apply(
                    TaskCommand::Fail { token: token(stale), error: TaskError { kind: "k".into(), message: "m".into(), retryable }, jitter_sample: sample },
                    now,
                ),
                Op::Update { stale_by, merge, key, status } => {
                    let patch = TaskPatch {
                        context: json!({ format!("k{key}"): now.as_millis() }).as_object().cloned(),
                        artifacts: vec![NewArtifact { name: format!("a{key}"), uri: Some("u".into()), content: None, media_type: None }],
                        status,
                        ..TaskPatch::default()
                    };
                    let expected = task.version.saturating_sub(stale_by);
                    task.apply(TaskCommand::Update { patch, expected_version: expected, merge }, now)
                }
                Op::Release { stale, delay_ms } => task.apply(TaskCommand::Release { token: token(stale), delay_ms }, now),
                Op::Cancel => task.apply(TaskCommand::Cancel, now),
                Op::Redrive => task.apply(TaskCommand::Redrive, now),
                Op::Expire => Ok(if task.expire_lease(now) { Applied::Changed } else { Applied::Unchanged }),
                Op::Promote => Ok(if task.promote_if_due(now) { Applied::Changed } else { Applied::Unchanged }),
                Op::Tick(ms) => {
                    now = now.add_millis(ms);
                    Ok(Applied::Unchanged)
                }
            };
            match result {
                Ok(Applied::Changed) => prop_assert_eq!(task.version, before.version + 1, "a change bumps the version by one"),
                Ok(Applied::Unchanged) | Err(_) => prop_assert_eq!(&task, &before, "a refused or empty command changes nothing"),
            }
            check_invariants(&task);
        }
    }
}

/// A release gives the attempt back: claiming and releasing forever never fails the task.
#[test]
fn a_released_task_keeps_its_attempts() {
    let now = Timestamp::from_millis(1_000_000);
    let mut spec = NewTask::on(QueueName::parse("q").unwrap(), json!(null));
    spec.max_attempts = 1;
    let mut task = spec.into_task(TaskId::generate(), Namespace::default(), now);
    let agent = AgentName::parse("a").unwrap();
    for _ in 0..3 {
        let token = LeaseToken::generate();
        task.claim(&agent, token.clone(), 1_000, now).expect("claimable again");
        assert_eq!(task.attempt, 1);
        let stranger = TaskCommand::Release {
            token: LeaseToken::new("other"),
            delay_ms: 0,
        };
        assert!(task.apply(stranger, now).is_err(), "only the lease holder releases");
        task.apply(TaskCommand::Release { token, delay_ms: 0 }, now)
            .expect("released");
        assert_eq!(
            (task.status, task.attempt, task.lease.is_none()),
            (TaskStatus::Queued, 0, true)
        );
    }
    let token = LeaseToken::generate();
    task.claim(&agent, token.clone(), 1_000, now).expect("claim");
    task.apply(TaskCommand::Release { token, delay_ms: 500 }, now)
        .expect("released for later");
    assert_eq!(task.status, TaskStatus::Scheduled);
    assert_eq!(task.run_at, now.add_millis(500));
}
