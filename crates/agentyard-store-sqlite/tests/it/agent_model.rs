//! Differential test of agents and messages: random sequences of registrations, heartbeats,
//! drains, removals, expiries, sends, reads, acks and subscriptions (with tasks claimed in
//! between, so leases get released) run against `MemoryStore` (the reference) and
//! `SqliteStore`, every result compared. Message ids and task ids are random in each store, so
//! messages are compared without their id and tasks by creation index.

use std::collections::HashMap;

use agentyard_core::agent::AgentRegistration;
use agentyard_core::message::{Message, NewMessage, Recipient, TopicName};
use agentyard_core::{AgentName, Capability, NewTask, Task, TaskId};
use agentyard_store::{AgentOptions, Claim, CreateOptions, MemoryStore, SendOptions, StoreError, Yard};
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

use super::{at, ns, q};

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

/// "a4" is never registered by `Register`, only by `Touch`; "ghost" never exists.
const AGENTS: [&str; 6] = ["a0", "a1", "a2", "a3", "a4", "ghost"];
const TOPICS: [&str; 2] = ["t0", "t1"];

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("valid agent")
}

fn topic(name: &str) -> TopicName {
    TopicName::parse(name).expect("valid topic")
}

#[derive(Clone, Debug)]
enum Op {
    Register(&'static str, u32),
    Touch(&'static str, bool),
    Heartbeat(&'static str),
    Drain(&'static str),
    Delete(&'static str),
    Expire(u64),
    Send(NewMessage, SendOptions),
    Read(&'static str, Option<u64>, usize),
    Ack(&'static str, u64),
    Subscribe(&'static str, &'static str),
    Unsubscribe(&'static str, &'static str),
    /// With a priority of its own, so the claim order never depends on the random ids.
    CreateTask(i32),
    Claim(&'static str, u32),
    ExpireLeases,
}

fn random_op(rng: &mut Rng, sends: u64, created: &mut i32) -> Op {
    let who = |rng: &mut Rng| AGENTS[rng.below(AGENTS.len())];
    let registered = |rng: &mut Rng| AGENTS[rng.below(4)];
    let on = |rng: &mut Rng| TOPICS[rng.below(TOPICS.len())];
    match rng.below(100) {
        0..=7 => Op::Register(registered(rng), 1 + rng.below(3) as u32),
        8..=11 => Op::Touch(who(rng), rng.chance(50)),
        12..=17 => Op::Heartbeat(who(rng)),
        18..=20 => Op::Drain(who(rng)),
        21..=22 => Op::Delete(who(rng)),
        23..=26 => Op::Expire([150, 400][rng.below(2)]),
        27..=51 => {
            let to = match rng.below(10) {
                0..=4 => Recipient::Agent { agent: agent(who(rng)) },
                5..=7 => Recipient::Topic { topic: topic(on(rng)) },
                _ => Recipient::Broadcast { broadcast: true },
            };
            let message = NewMessage {
                from: Some(agent(who(rng))),
                to,
                body: json!({ "r": rng.next() % 1000 }),
                correlation_id: rng.chance(20).then(|| "corr".to_owned()),
                reply_to: None,
                ttl_ms: rng.chance(30).then(|| 50 * (1 + rng.below(6) as u64)),
                idempotency_key: rng.chance(15).then(|| format!("key-{}", rng.below(5))),
            };
            let options = SendOptions {
                max_inbox_depth: rng.chance(20).then(|| 1 + rng.below(4) as u64),
            };
            Op::Send(message, options)
        }
        52..=66 => {
            let after = rng.chance(30).then(|| rng.below(sends as usize + 3) as u64);
            Op::Read(who(rng), after, rng.below(6))
        }
        67..=74 => Op::Ack(who(rng), rng.below(sends as usize + 3) as u64),
        75..=80 => Op::Subscribe(who(rng), on(rng)),
        81..=83 => Op::Unsubscribe(who(rng), on(rng)),
        84..=89 => {
            *created += 1;
            // Distinct, but not in creation order.
            Op::CreateTask((*created * 7919) % 100_003)
        }
        90..=96 => Op::Claim(who(rng), 1 + rng.below(2) as u32),
        _ => Op::ExpireLeases,
    }
}

/// One store under test and the task ids it handed out, by creation index.
struct Side {
    store: Box<dyn Yard>,
    index: HashMap<TaskId, usize>,
}

impl Side {
    fn task(&self, t: &Task) -> String {
        let i = self.index.get(&t.id).copied().unwrap_or(usize::MAX);
        let holder = t.lease.as_ref().map(|l| l.agent.as_str().to_owned());
        format!(
            "#{i} {} attempt {} lease {holder:?} error {:?}",
            t.status, t.attempt, t.error
        )
    }

    /// By creation index: bulk releases come in id order, and ids are random.
    fn tasks(&self, tasks: &[Task]) -> String {
        let mut sorted: Vec<&Task> = tasks.iter().collect();
        sorted.sort_by_key(|t| self.index.get(&t.id).copied().unwrap_or(usize::MAX));
        sorted.iter().map(|t| self.task(t)).collect::<Vec<_>>().join("; ")
    }
}

fn message(m: &Message) -> String {
    let mut m = m.clone();
    m.id = String::new();
    format!("{m:?}")
}

fn messages(ms: &[Message]) -> String {
    ms.iter().map(message).collect::<Vec<_>>().join("; ")
}

fn shown<T>(r: Result<T, StoreError>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => show(v),
        Err(e) => format!("error {}", e.kind()),
    }
}

async fn run_op(side: &mut Side, op: Op, now_ms: i64) -> String {
    let now = at(now_ms);
    let s = &side.store;
    match op {
        Op::Register(name, slots) => {
            let reg = AgentRegistration {
                capabilities: vec![Capability::parse("rust").expect("valid")],
                slots,
                metadata: json!({ "slots": slots }),
            };
            shown(
                s.register_agent(&ns(), &agent(name), reg, AgentOptions::default(), now)
                    .await,
                |a| format!("{a:?}"),
            )
        }
        Op::Touch(name, caps) => {
            let caps = caps.then(|| vec![Capability::parse("go").expect("valid")]);
            shown(
                s.touch_agent(&ns(), &agent(name), caps, AgentOptions::default(), now)
                    .await,
                |a| format!("{a:?}"),
            )
        }
        Op::Heartbeat(name) => shown(s.heartbeat_agent(&ns(), &agent(name), now).await, |a| format!("{a:?}")),
        Op::Drain(name) => shown(s.drain_agent(&ns(), &agent(name), now).await, |a| format!("{a:?}")),
        Op::Delete(name) => {
            let r = s.delete_agent(&ns(), &agent(name), now).await;
            shown(r, |t| side.tasks(&t))
        }
        Op::Expire(timeout) => {
            let r = s.expire_agents(now, timeout).await;
            shown(r, |gone| {
                gone.iter()
                    .map(|(a, t)| format!("{a:?} lost [{}]", side.tasks(t)))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Op::Send(m, options) => shown(s.send_message(&ns(), m, options, now).await, |sent| {
            format!("created {} {}", sent.created, message(&sent.message))
        }),
        Op::Read(name, after, limit) => shown(s.read_inbox(&ns(), &agent(name), after, limit, now).await, |p| {
            format!("cursor {} [{}]", p.cursor, messages(&p.messages))
        }),
        Op::Ack(name, cursor) => shown(s.ack_inbox(&ns(), &agent(name), cursor).await, |a| format!("{a:?}")),
        Op::Subscribe(name, t) => shown(s.subscribe(&ns(), &agent(name), &topic(t)).await, |b| b.to_string()),
        Op::Unsubscribe(name, t) => shown(s.unsubscribe(&ns(), &agent(name), &topic(t)).await, |b| b.to_string()),
        Op::CreateTask(priority) => {
            let mut task = NewTask::on(q("work"), json!({}));
            task.priority = priority;
            task.max_attempts = 2;
            let r = s.create_tasks(&ns(), vec![task], CreateOptions::default(), now).await;
            if let Ok(created) = &r {
                for c in created {
                    let next = side.index.len();
                    side.index.insert(c.task.id, next);
                }
            }
            shown(r, |c| side.tasks(&c.into_iter().map(|c| c.task).collect::<Vec<_>>()))
        }
        Op::Claim(name, max) => {
            let claim = Claim::new(q("work"), agent(name), max, 200);
            shown(s.claim_tasks(&ns(), &claim, now).await, |t| side.tasks(&t))
        }
        Op::ExpireLeases => shown(s.expire_leases(now, 10_000).await, |t| side.tasks(&t)),
    }
}

/// Everything a client could read about agents and messages, normalized.
async fn snapshot(side: &Side, now_ms: i64) -> String {
    let s = &side.store;
    let now = at(now_ms);
    let mut parts = vec![shown(s.list_agents(&ns()).await, |a| format!("{a:?}"))];
    for name in AGENTS {
        let name = agent(name);
        parts.push(shown(s.get_agent(&ns(), &name).await, |a| format!("{a:?}")));
        parts.push(shown(s.subscriptions(&ns(), &name).await, |t| format!("{t:?}")));
        parts.push(shown(s.inbox_depth(&ns(), &name, now).await, |d| d.to_string()));
        parts.push(shown(s.read_inbox(&ns(), &name, None, 1_000, now).await, |p| {
            format!("cursor {} [{}]", p.cursor, messages(&p.messages))
        }));
        parts.push(shown(s.read_inbox(&ns(), &name, Some(0), 1_000, now).await, |p| {
            format!("from 0: cursor {} [{}]", p.cursor, messages(&p.messages))
        }));
    }
    parts.push(shown(s.message_count(&ns()).await, |n| n.to_string()));
    parts.push(shown(s.queue_stats(&ns(), None, now).await, |st| format!("{st:?}")));
    parts.join("\n")
}

async fn compare(seed: u64, steps: usize) -> usize {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open");
    let mut reference = Side {
        store: Box::new(MemoryStore::new()),
        index: HashMap::new(),
    };
    let mut tested = Side {
        store: Box::new(sqlite),
        index: HashMap::new(),
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut now_ms, mut sends, mut delivered, mut created) = (0, 0, 0, 0);
    for step in 0..steps {
        now_ms += 50 * (1 + rng.below(3) as i64);
        let op = random_op(&mut rng, sends, &mut created);
        if matches!(op, Op::Send(..)) {
            sends += 1;
        }
        let want = run_op(&mut reference, op.clone(), now_ms).await;
        let got = run_op(&mut tested, op.clone(), now_ms).await;
        assert_eq!(got, want, "seed {seed}, step {step}: {op:?}");
        if matches!(op, Op::Read(..)) && !want.ends_with("[]") && !want.starts_with("error") {
            delivered += 1;
        }
        if step % 25 == 24 || step + 1 == steps {
            let want = snapshot(&reference, now_ms).await;
            let got = snapshot(&tested, now_ms).await;
            assert_eq!(got, want, "seed {seed}, state after step {step}");
        }
    }
    delivered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_agent_and_message_operations_match_the_memory_store() {
    let mut delivered = 0;
    for seed in 1..=10 {
        delivered += compare(seed, 300).await;
    }
    // Guards against a generator that drifted into reads that never return anything.
    assert!(delivered > 50, "only {delivered} reads returned messages");
}
