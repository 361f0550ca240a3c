//! Differential test: random operation sequences run against `MemoryStore` (the reference) and
//! `SqliteStore`, every result compared. Ids and lease tokens are random in each store, so tasks
//! are compared by creation index and tokens by presence.
//!
//! Every task gets a distinct priority, which makes the claim order fully determined; bulk
//! operations (expiry, promotion, redrive, listing) take everything due and are compared as sets,
//! because ties among them are broken by the random ids.

use std::collections::{BTreeSet, HashMap};

use agentyard_core::event::LastChange;
use agentyard_core::{
    AgentName, Backoff, Capability, Completion, LeaseToken, NewTask, Task, TaskCommand, TaskError, TaskId, TaskPatch,
    TaskStatus,
};
use agentyard_store::{Claim, CreateOptions, MemoryStore, Store, StoreError, TaskFilter};
use serde_json::json;

use super::{at, ns, q};
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};

/// xorshift64*: deterministic, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One store under test and what it handed out: ids by creation index, the last lease token of
/// each task.
struct Side {
    store: Box<dyn Store>,
    ids: Vec<TaskId>,
    index: HashMap<TaskId, usize>,
    tokens: HashMap<usize, LeaseToken>,
}

type Outcome = Result<Vec<Task>, String>;

impl Side {
    fn new(store: Box<dyn Store>) -> Self {
        Self {
            store,
            ids: Vec::new(),
            index: HashMap::new(),
            tokens: HashMap::new(),
        }
    }

    fn normalize(&self, t: &Task) -> Task {
        let mut t = t.clone();
        let index = self.index.get(&t.id).copied().unwrap_or(usize::MAX);
        t.id = TaskId::from_parts(0, index as u128);
        if let Some(lease) = t.lease.as_mut() {
            lease.token = LeaseToken::new("token");
        }
        if t.meta.finished_by.is_some() {
            t.meta.finished_by = Some(LeaseToken::new("token"));
        }
        // What changed a task last is no part of its value (equal tasks may differ in it): the
        // memory store keeps it on every task, this store only on those it just wrote.
        t.meta.change = LastChange::default();
        t
    }

    fn remember_tokens(&mut self, tasks: &[Task]) {
        for t in tasks {
            if let (Some(i), Some(lease)) = (self.index.get(&t.id), &t.lease) {
                self.tokens.insert(*i, lease.token.clone());
            }
        }
    }

    /// Normalized tasks (sorted by index when `as_set`), or the error's kind with the task it
    /// carries.
    fn outcome(&mut self, r: Result<Vec<Task>, StoreError>, as_set: bool) -> Outcome {
        match r {
            Ok(tasks) => {
                self.remember_tokens(&tasks);
                let mut out: Vec<Task> = tasks.iter().map(|t| self.normalize(t)).collect();
                if as_set {
                    out.sort_by_key(|t| t.id);
                }
                Ok(out)
            }
            Err(e) => {
                let current = match &e {
                    StoreError::VersionConflict { current, .. }
                    | StoreError::MergeConflict { current, .. }
                    | StoreError::LeaseConflict { current, .. }
                    | StoreError::InvalidTransition { current, .. } => Some(self.normalize(current)),
                    _ => None,
                };
                Err(format!("{} {current:?}", e.kind()))
            }
        }
    }

    fn token(&self, index: usize) -> LeaseToken {
        self.tokens
            .get(&index)
            .cloned()
            .unwrap_or_else(|| LeaseToken::new("never-leased"))
    }
}

/// One operation, built once from the random stream and run on both sides; `index`-based ones
/// are resolved against each side's own ids and tokens.
#[derive(Clone, Debug)]
enum Op {
    Create(Vec<NewTask>, CreateOptions),
    Claim(Claim),
    Complete(usize),
    Fail(usize, bool),
    Heartbeat(usize),
    Cancel(usize),
    Redrive(usize),
    Update(usize, TaskPatch, bool, bool),
    ExpireLeases,
    PromoteDue,
    RedriveFailed(&'static str),
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Create(..) => "create",
            Op::Claim(..) => "claim",
            Op::Complete(..) => "complete",
            Op::Fail(..) => "fail",
            Op::Heartbeat(..) => "heartbeat",
            Op::Cancel(..) => "cancel",
            Op::Redrive(..) => "redrive",
            Op::Update(..) => "update",
            Op::ExpireLeases => "expire_leases",
            Op::PromoteDue => "promote_due",
            Op::RedriveFailed(..) => "redrive_failed",
        }
    }
}

fn gpu() -> Capability {
    Capability::parse("gpu").expect("valid")
}

fn random_op(rng: &mut Rng, created: usize, next_priority: &mut i32) -> Op {
    let queue = ["a", "b"][rng.below(2)];
    let mut fresh_priority = || {
        *next_priority += 1;
        // Distinct, but not in creation order.
        (*next_priority * 7919) % 100_003
    };
    let pick = |rng: &mut Rng| rng.below(created.max(1));
    match rng.below(100) {
        0..=24 => {
            let n = 1 + rng.below(3);
            let tasks = (0..n)
                .map(|_| {
                    let mut t = NewTask::on(q(queue), json!({ "r": rng.next() % 1000 }));
                    t.priority = fresh_priority();
                    t.max_attempts = 1 + rng.below(3) as u32;
                    t.backoff = Backoff {
                        initial_ms: 50,
                        max_ms: 10_000,
                        multiplier: 2.0,
                        jitter: 0.0,
                    };
                    if rng.chance(20) {
                        t.run_at = Some(at(rng.below(400) as i64 * 50));
                    }
                    if rng.chance(15) {
                        t.idempotency_key = Some(format!("key-{}", rng.below(6)));
                    }
                    if rng.chance(15) {
                        t.required_capabilities = vec![gpu()];
                    }
                    t
                })
                .collect();
            let options = CreateOptions {
                max_queue_depth: rng.chance(20).then(|| 3 + rng.below(10) as u64),
            };
            Op::Create(tasks, options)
        }
        25..=44 => Op::Claim(Claim {
            queue: q(queue),
            agent: AgentName::parse(format!("w{}", rng.below(3))).expect("valid"),
            capabilities: if rng.chance(30) { vec![gpu()] } else { Vec::new() },
            max: rng.below(4) as u32,
            lease_ms: 100,
            gate: None,
        }),
        45..=54 => Op::Complete(pick(rng)),
        55..=62 => Op::Fail(pick(rng), rng.chance(70)),
        63..=67 => Op::Heartbeat(pick(rng)),
        68..=70 => Op::Cancel(pick(rng)),
        71..=73 => Op::Redrive(pick(rng)),
        74..=82 => {
            let mut patch = TaskPatch::default();
            match rng.below(4) {
                0 => patch.title = Some(format!("t{}", rng.below(100))),
                1 => patch.priority = Some(fresh_priority()),
                2 => {
                    patch.status = Some([TaskStatus::Cancelled, TaskStatus::Queued, TaskStatus::Running][rng.below(3)])
                }
                _ => patch.context = json!({ "k": rng.below(3) }).as_object().cloned(),
            }
            Op::Update(pick(rng), patch, rng.chance(70), rng.chance(50))
        }
        83..=89 => Op::ExpireLeases,
        90..=95 => Op::PromoteDue,
        _ => Op::RedriveFailed(queue),
    }
}

async fn run_op(side: &mut Side, op: Op, now_ms: i64) -> Outcome {
    let now = at(now_ms);
    let store = &side.store;
    let id = |i: usize| side.ids.get(i).copied().unwrap_or_else(|| TaskId::from_parts(1, 1));
    let (result, as_set) = match op {
        Op::Create(tasks, options) => {
            let r = store.create_tasks(&ns(), tasks, options, now).await;
            let r = r.map(|created| {
                created
                    .into_iter()
                    .map(|c| {
                        if c.created {
                            side.index.insert(c.task.id, side.ids.len());
                            side.ids.push(c.task.id);
                        }
                        let mut t = c.task;
                        // Fold the flag into the compared value.
                        t.title = Some(format!("{:?} created={}", t.title, c.created));
                        t
                    })
                    .collect()
            });
            (r, false)
        }
        Op::Claim(claim) => (store.claim_tasks(&ns(), &claim, now).await, false),
        Op::Complete(i) => {
            let command = TaskCommand::Complete {
                token: side.token(i),
                completion: Completion {
                    result: Some(json!(i)),
                    artifacts: Vec::new(),
                },
            };
            (store.apply(&ns(), id(i), command, now).await.map(|t| vec![t]), false)
        }
        Op::Fail(i, retryable) => {
            let command = TaskCommand::Fail {
                token: side.token(i),
                error: TaskError {
                    kind: "boom".into(),
                    message: "failed".into(),
                    retryable,
                },
                jitter_sample: 0.5,
            };
            (store.apply(&ns(), id(i), command, now).await.map(|t| vec![t]), false)
        }
        Op::Heartbeat(i) => {
            let command = TaskCommand::Heartbeat {
                token: side.token(i),
                lease_ms: 100,
                progress: None,
            };
            (store.apply(&ns(), id(i), command, now).await.map(|t| vec![t]), false)
        }
        Op::Cancel(i) => (
            store
                .apply(&ns(), id(i), TaskCommand::Cancel, now)
                .await
                .map(|t| vec![t]),
            false,
        ),
        Op::Redrive(i) => (
            store
                .apply(&ns(), id(i), TaskCommand::Redrive, now)
                .await
                .map(|t| vec![t]),
            false,
        ),
        Op::Update(i, patch, fresh, merge) => {
            let version = match store.get_task(&ns(), id(i)).await {
                Ok(t) if fresh => t.version,
                Ok(t) => t.version.saturating_sub(1),
                Err(_) => 1,
            };
            let command = TaskCommand::Update {
                patch,
                expected_version: version,
                merge,
            };
            (store.apply(&ns(), id(i), command, now).await.map(|t| vec![t]), false)
        }
        Op::ExpireLeases => (store.expire_leases(now, 10_000).await, true),
        Op::PromoteDue => (store.promote_due(now, 10_000).await, true),
        Op::RedriveFailed(queue) => (store.redrive_failed(&ns(), &q(queue), 10_000, now).await, true),
    };
    side.outcome(result, as_set)
}

/// Everything a client could read, normalized.
async fn snapshot(side: &mut Side, now_ms: i64) -> String {
    let store = &side.store;
    let all = store
        .list_tasks(&ns(), &TaskFilter::default(), None, 100_000)
        .await
        .map(|p| p.items);
    let mut parts = vec![format!("{:?}", side.outcome(all, true))];
    for queue in ["a", "b"] {
        for status in TaskStatus::ALL {
            let filter = TaskFilter {
                queue: Some(q(queue)),
                status: Some(status),
            };
            let page = side.store.list_tasks(&ns(), &filter, None, 100_000).await;
            let ids: Result<Vec<usize>, _> = page.map(|p| {
                p.items
                    .iter()
                    .map(|t| side.index[&t.id])
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            });
            parts.push(format!("{queue}/{status}: {:?}", ids.map_err(|e| e.kind())));
        }
    }
    let stats = side
        .store
        .queue_stats(&ns(), None, at(now_ms))
        .await
        .map_err(|e| e.kind());
    parts.push(format!("{stats:?}"));
    parts.push(format!("{:?}", side.store.next_wakeup().await.map_err(|e| e.kind())));
    parts.join("\n")
}

/// Runs one sequence; returns the kinds of operation that changed something at least once.
async fn compare(seed: u64, steps: usize) -> BTreeSet<&'static str> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open");
    let mut reference = Side::new(Box::new(MemoryStore::new()));
    let mut tested = Side::new(Box::new(sqlite));
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut next_priority = 0;
    let mut now_ms = 0;
    let mut effective = BTreeSet::new();
    for step in 0..steps {
        // Coarse steps, so `now` often lands exactly on a lease expiry or a due time.
        now_ms += 50 * (1 + rng.below(3) as i64);
        let op = random_op(&mut rng, reference.ids.len(), &mut next_priority);
        let want = run_op(&mut reference, op.clone(), now_ms).await;
        let got = run_op(&mut tested, op.clone(), now_ms).await;
        assert_eq!(got, want, "seed {seed}, step {step}: {op:?}");
        if want.is_ok_and(|tasks| !tasks.is_empty()) {
            effective.insert(op.name());
        }
        if step % 20 == 19 || step + 1 == steps {
            let want = snapshot(&mut reference, now_ms).await;
            let got = snapshot(&mut tested, now_ms).await;
            assert_eq!(got, want, "seed {seed}, state after step {step}");
        }
    }
    effective
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_the_memory_store() {
    let mut effective = BTreeSet::new();
    for seed in 1..=12 {
        effective.extend(compare(seed, 300).await);
    }
    // Guards against a generator that drifted into only producing refused operations.
    assert_eq!(
        effective.len(),
        11,
        "operations that ever changed something: {effective:?}"
    );
}
