//! Conformance cases of `AgentStore` and `MessageStore`.

use std::sync::Arc;

use agentyard_core::agent::{AgentRegistration, AgentStatus};
use agentyard_core::message::{NewMessage, Recipient, TopicName};
use agentyard_core::{Capability, TaskStatus};
use serde_json::json;

use super::{agent, at, claim_one, complete_cmd, create, new_task, ns};
use crate::agents::{AgentOptions, AgentStore, MessageStore, SendOptions};
use crate::{Store, StoreError};

/// A store under test seen through each of its traits.
pub struct AgentTestStore {
    pub tasks: Arc<dyn Store>,
    pub agents: Arc<dyn AgentStore>,
    pub messages: Arc<dyn MessageStore>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

fn reg(caps: &[&str], slots: u32) -> AgentRegistration {
    AgentRegistration {
        capabilities: caps.iter().map(|c| Capability::parse(*c).expect("valid")).collect(),
        slots,
        metadata: json!({"host": "box-1"}),
    }
}

fn topic(name: &str) -> TopicName {
    TopicName::parse(name).expect("valid topic")
}

fn msg(from: &str, to: Recipient, body: serde_json::Value) -> NewMessage {
    NewMessage {
        from: Some(agent(from)),
        to,
        body,
        correlation_id: None,
        reply_to: None,
        ttl_ms: None,
        idempotency_key: None,
    }
}

fn direct(name: &str) -> Recipient {
    Recipient::Agent { agent: agent(name) }
}

pub async fn agents_register_drain_and_delete(s: &AgentTestStore) {
    let a = s
        .agents
        .register_agent(
            &ns(),
            &agent("coder-1"),
            reg(&["rust", "git"], 4),
            AgentOptions::default(),
            at(0),
        )
        .await
        .expect("register");
    assert_eq!((a.status, a.slots, a.running), (AgentStatus::Active, 4, 0));
    assert_eq!(a.capabilities.len(), 2);
    s.agents
        .register_agent(&ns(), &agent("coder-0"), reg(&[], 1), AgentOptions::default(), at(1))
        .await
        .expect("register");
    let all = s.agents.list_agents(&ns()).await.expect("list");
    assert_eq!(
        all.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["coder-0", "coder-1"]
    );
    create(&s.tasks, new_task("work"), at(2)).await;
    let t = claim_one(&s.tasks, "work", "coder-1", at(3)).await;
    assert_eq!(
        s.agents.get_agent(&ns(), &agent("coder-1")).await.expect("get").running,
        1
    );
    let drained = s
        .agents
        .drain_agent(&ns(), &agent("coder-1"), at(4))
        .await
        .expect("drain");
    assert_eq!(drained.status, AgentStatus::Draining);
    let released = s
        .agents
        .delete_agent(&ns(), &agent("coder-1"), at(5))
        .await
        .expect("delete");
    assert_eq!(released.iter().map(|t| t.id).collect::<Vec<_>>(), vec![t.id]);
    assert_eq!(released[0].status, TaskStatus::Queued);
    match s.agents.get_agent(&ns(), &agent("coder-1")).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(
        claim_one(&s.tasks, "work", "coder-0", at(6)).await.id,
        t.id,
        "its task went to another agent"
    );
}

pub async fn running_counts_follow_claims_completions_and_expiry(s: &AgentTestStore) {
    let running =
        |name: &'static str| async move { s.agents.get_agent(&ns(), &agent(name)).await.expect("get").running };
    for name in ["a", "b"] {
        s.agents
            .register_agent(&ns(), &agent(name), reg(&[], 4), AgentOptions::default(), at(0))
            .await
            .expect("register");
    }
    for _ in 0..3 {
        create(&s.tasks, new_task("work"), at(0)).await;
    }
    let first = claim_one(&s.tasks, "work", "a", at(1)).await;
    let second = claim_one(&s.tasks, "work", "a", at(1)).await;
    claim_one(&s.tasks, "work", "b", at(1_500)).await;
    assert_eq!((running("a").await, running("b").await), (2, 1));
    s.tasks
        .apply(&ns(), first.id, complete_cmd(&first), at(2))
        .await
        .expect("complete");
    assert_eq!(running("a").await, 1, "a completion ends the count");
    let expired = s.tasks.expire_leases(at(1_001), 10).await.expect("expire");
    assert_eq!(expired.iter().map(|t| t.id).collect::<Vec<_>>(), vec![second.id]);
    assert_eq!(
        (running("a").await, running("b").await),
        (0, 1),
        "an expired lease ends it"
    );
    let again = claim_one(&s.tasks, "work", "b", at(1_002)).await;
    assert_eq!(again.id, second.id);
    assert_eq!((running("a").await, running("b").await), (0, 2));
    let listed = s.agents.list_agents(&ns()).await.expect("list");
    assert_eq!(listed.iter().map(|a| a.running).collect::<Vec<_>>(), [0, 2]);
}

pub async fn silent_agents_go_and_lose_their_leases(s: &AgentTestStore) {
    s.agents
        .touch_agent(&ns(), &agent("quiet"), None, AgentOptions::default(), at(0))
        .await
        .expect("implicit registration");
    s.agents
        .touch_agent(&ns(), &agent("chatty"), None, AgentOptions::default(), at(0))
        .await
        .expect("implicit registration");
    create(&s.tasks, new_task("work"), at(0)).await;
    let t = claim_one(&s.tasks, "work", "quiet", at(0)).await;
    s.agents
        .heartbeat_agent(&ns(), &agent("chatty"), at(9_000))
        .await
        .expect("heartbeat");
    assert!(
        s.agents
            .expire_agents(at(9_999), 10_000)
            .await
            .expect("expire")
            .is_empty()
    );
    let gone = s.agents.expire_agents(at(10_000), 10_000).await.expect("expire");
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0.name.as_str(), "quiet");
    assert_eq!(gone[0].0.status, AgentStatus::Gone);
    assert_eq!(gone[0].1.iter().map(|t| t.id).collect::<Vec<_>>(), vec![t.id]);
    assert!(
        s.agents
            .expire_agents(at(10_001), 10_000)
            .await
            .expect("expire")
            .is_empty(),
        "gone only once"
    );
    let again = claim_one(&s.tasks, "work", "chatty", at(10_002)).await;
    assert_eq!((again.id, again.attempt), (t.id, 2));
    let back = s
        .agents
        .heartbeat_agent(&ns(), &agent("quiet"), at(11_000))
        .await
        .expect("heartbeat");
    assert_eq!(back.status, AgentStatus::Active, "a heartbeat brings a gone agent back");
    match s.agents.heartbeat_agent(&ns(), &agent("never-seen"), at(0)).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

/// A claim's agent is implicit; registering makes it explicit for good.
pub async fn registering_makes_an_implicit_agent_explicit(s: &AgentTestStore) {
    let none = AgentOptions::default();
    let a = s
        .agents
        .touch_agent(&ns(), &agent("claimer"), None, none, at(0))
        .await
        .expect("implicit registration");
    assert!(a.implicit);
    assert!(
        s.agents
            .get_agent(&ns(), &agent("claimer"))
            .await
            .expect("get")
            .implicit
    );
    let a = s
        .agents
        .register_agent(&ns(), &agent("claimer"), reg(&[], 2), none, at(1))
        .await
        .expect("register");
    assert!(!a.implicit, "registered: explicit");
    let a = s
        .agents
        .touch_agent(&ns(), &agent("claimer"), None, none, at(2))
        .await
        .expect("touch");
    assert!(!a.implicit, "a claim does not make it implicit again");
    let b = s
        .agents
        .register_agent(&ns(), &agent("declared"), reg(&[], 1), none, at(0))
        .await
        .expect("register");
    assert!(!b.implicit);
    let listed = s.agents.list_agents(&ns()).await.expect("list");
    assert!(listed.iter().all(|a| !a.implicit));
}

/// Implicit agents gone since the cutoff are removed, longest silent first, `limit` at a
/// time, with their subscriptions; explicit, live and recently silent ones stay.
pub async fn gone_implicit_agents_are_forgotten(s: &AgentTestStore) {
    let none = AgentOptions::default();
    for (name, t) in [("old-b", 0), ("old-a", 0), ("older", -5), ("recent", 500)] {
        s.agents
            .touch_agent(&ns(), &agent(name), None, none, at(t))
            .await
            .expect("implicit registration");
    }
    s.agents
        .register_agent(&ns(), &agent("declared"), reg(&[], 1), none, at(0))
        .await
        .expect("register");
    s.messages
        .subscribe(&ns(), &agent("older"), &topic("news"))
        .await
        .expect("subscribe");
    // Not gone yet: silence alone is not enough.
    assert!(
        s.agents
            .forget_agents(at(20_000), at(1_000), 10)
            .await
            .expect("forget")
            .is_empty()
    );
    let gone = s.agents.expire_agents(at(10_000), 1_000).await.expect("expire");
    assert_eq!(gone.len(), 5);
    s.agents
        .touch_agent(&ns(), &agent("live"), None, none, at(0))
        .await
        .expect("implicit registration");
    let forgotten = s.agents.forget_agents(at(20_000), at(100), 2).await.expect("forget");
    let names = |v: &[(agentyard_core::agent::Agent, Vec<agentyard_core::Task>)]| {
        v.iter().map(|(a, _)| a.name.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&forgotten),
        ["older", "old-a"],
        "longest silent first, then by name"
    );
    assert!(forgotten.iter().all(|(a, released)| a.implicit && released.is_empty()));
    assert_eq!(forgotten[0].0.status, AgentStatus::Gone, "as it was");
    match s.agents.get_agent(&ns(), &agent("older")).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("a forgotten agent is removed, got {other:?}"),
    }
    let rest = s.agents.forget_agents(at(20_000), at(100), 10).await.expect("forget");
    assert_eq!(names(&rest), ["old-b"], "recent is silent since after the cutoff");
    let mut left: Vec<String> = s
        .agents
        .list_agents(&ns())
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.name.to_string())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["declared", "live", "recent"],
        "explicit, active and recent ones stay"
    );
    let last = s
        .agents
        .forget_agents(at(20_000), at(10_000), 10)
        .await
        .expect("forget");
    assert_eq!(names(&last), ["recent"]);
    assert!(
        s.agents
            .forget_agents(at(20_000), at(20_000), 10)
            .await
            .expect("forget")
            .is_empty(),
        "never an explicit or active agent"
    );
    let back = s
        .agents
        .touch_agent(&ns(), &agent("older"), None, none, at(30_000))
        .await
        .expect("a new claim registers it anew");
    assert_eq!(back.registered_at, at(30_000));
    assert!(
        s.messages
            .subscriptions(&ns(), &agent("older"))
            .await
            .expect("subscriptions")
            .is_empty(),
        "its subscriptions went with it"
    );
}

/// A namespace at its cap refuses new agents (by claim or registration) and keeps serving
/// the ones it has; other namespaces count their own.
pub async fn new_agents_stop_at_the_namespace_cap(s: &AgentTestStore) {
    let cap = AgentOptions { max_agents: Some(2) };
    s.agents
        .touch_agent(&ns(), &agent("a"), None, cap, at(0))
        .await
        .expect("first");
    s.agents
        .register_agent(&ns(), &agent("b"), reg(&[], 1), cap, at(0))
        .await
        .expect("second");
    match s.agents.touch_agent(&ns(), &agent("c"), None, cap, at(1)).await {
        Err(StoreError::TooManyAgents {
            namespace,
            agent: who,
            limit,
        }) => {
            assert_eq!((namespace, who.as_str(), limit), (ns(), "c", 2));
        }
        other => panic!("expected too many agents, got {other:?}"),
    }
    match s
        .agents
        .register_agent(&ns(), &agent("c"), reg(&[], 1), cap, at(1))
        .await
    {
        Err(StoreError::TooManyAgents { .. }) => {}
        other => panic!("expected too many agents, got {other:?}"),
    }
    match s.agents.get_agent(&ns(), &agent("c")).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("a refused agent is not created, got {other:?}"),
    }
    s.agents
        .touch_agent(&ns(), &agent("a"), None, cap, at(2))
        .await
        .expect("an existing agent is never refused");
    s.agents
        .register_agent(&ns(), &agent("a"), reg(&[], 1), cap, at(2))
        .await
        .expect("nor re-registered");
    let other = agentyard_core::Namespace::parse("other").expect("valid");
    s.agents
        .touch_agent(&other, &agent("c"), None, cap, at(2))
        .await
        .expect("another namespace has room");
    s.agents.delete_agent(&ns(), &agent("b"), at(3)).await.expect("delete");
    s.agents
        .touch_agent(&ns(), &agent("c"), None, cap, at(4))
        .await
        .expect("room again");
    s.agents
        .touch_agent(&ns(), &agent("d"), None, AgentOptions::default(), at(4))
        .await
        .expect("no cap");
}

pub async fn inboxes_merge_direct_topic_and_broadcast(s: &AgentTestStore) {
    for name in ["a", "b", "c"] {
        s.agents
            .register_agent(&ns(), &agent(name), reg(&[], 1), AgentOptions::default(), at(0))
            .await
            .expect("register");
    }
    assert!(
        s.messages
            .subscribe(&ns(), &agent("a"), &topic("builds"))
            .await
            .expect("subscribe")
    );
    assert!(
        !s.messages
            .subscribe(&ns(), &agent("a"), &topic("builds"))
            .await
            .expect("subscribe again")
    );
    s.messages
        .subscribe(&ns(), &agent("b"), &topic("builds"))
        .await
        .expect("subscribe");
    let opts = SendOptions::default();
    s.messages
        .send_message(&ns(), msg("c", direct("a"), json!(1)), opts, at(1))
        .await
        .expect("send");
    s.messages
        .send_message(
            &ns(),
            msg("c", Recipient::Topic { topic: topic("builds") }, json!(2)),
            opts,
            at(2),
        )
        .await
        .expect("send");
    s.messages
        .send_message(
            &ns(),
            msg("c", Recipient::Broadcast { broadcast: true }, json!(3)),
            opts,
            at(3),
        )
        .await
        .expect("send");
    s.messages
        .send_message(&ns(), msg("a", direct("b"), json!(4)), opts, at(4))
        .await
        .expect("send");
    s.messages
        .send_message(
            &ns(),
            msg("c", Recipient::Topic { topic: topic("other") }, json!(5)),
            opts,
            at(5),
        )
        .await
        .expect("send");
    let bodies = |page: crate::agents::InboxPage| page.messages.iter().map(|m| m.body.clone()).collect::<Vec<_>>();
    let a = s
        .messages
        .read_inbox(&ns(), &agent("a"), None, 100, at(6))
        .await
        .expect("read");
    assert_eq!(bodies(a), vec![json!(1), json!(2), json!(3)]);
    let b = s
        .messages
        .read_inbox(&ns(), &agent("b"), None, 100, at(6))
        .await
        .expect("read");
    assert_eq!(bodies(b), vec![json!(2), json!(3), json!(4)]);
    let c = s
        .messages
        .read_inbox(&ns(), &agent("c"), None, 100, at(6))
        .await
        .expect("read");
    assert_eq!(bodies(c), vec![json!(3)]);
    assert_eq!(
        s.messages.message_count(&ns()).await.expect("count"),
        5,
        "a broadcast is stored once"
    );
    // A late agent sees no earlier broadcast; a late subscriber no earlier topic message.
    s.agents
        .register_agent(&ns(), &agent("late"), reg(&[], 1), AgentOptions::default(), at(7))
        .await
        .expect("register");
    s.messages
        .subscribe(&ns(), &agent("late"), &topic("builds"))
        .await
        .expect("subscribe");
    assert!(
        s.messages
            .read_inbox(&ns(), &agent("late"), None, 100, at(8))
            .await
            .expect("read")
            .messages
            .is_empty()
    );
    s.messages
        .send_message(
            &ns(),
            msg("c", Recipient::Broadcast { broadcast: true }, json!(6)),
            opts,
            at(9),
        )
        .await
        .expect("send");
    let late = s
        .messages
        .read_inbox(&ns(), &agent("late"), None, 100, at(10))
        .await
        .expect("read");
    assert_eq!(bodies(late), vec![json!(6)]);
    assert!(
        s.messages
            .unsubscribe(&ns(), &agent("a"), &topic("builds"))
            .await
            .expect("unsubscribe")
    );
    assert!(
        s.messages
            .subscriptions(&ns(), &agent("a"))
            .await
            .expect("subs")
            .is_empty()
    );
}

pub async fn acks_move_the_cursor_forward_only(s: &AgentTestStore) {
    s.agents
        .register_agent(&ns(), &agent("r"), reg(&[], 1), AgentOptions::default(), at(0))
        .await
        .expect("register");
    let opts = SendOptions::default();
    for i in 0..5 {
        s.messages
            .send_message(&ns(), msg("s", direct("r"), json!(i)), opts, at(i))
            .await
            .expect("send");
    }
    let page = s
        .messages
        .read_inbox(&ns(), &agent("r"), None, 2, at(10))
        .await
        .expect("read");
    assert_eq!(page.messages.len(), 2);
    let again = s
        .messages
        .read_inbox(&ns(), &agent("r"), None, 2, at(10))
        .await
        .expect("read");
    assert_eq!(page, again, "unacknowledged messages come again");
    let next = s
        .messages
        .read_inbox(&ns(), &agent("r"), Some(page.cursor), 10, at(10))
        .await
        .expect("read");
    assert_eq!(
        next.messages.len(),
        3,
        "reading after a cursor pages on without acknowledging"
    );
    s.messages
        .ack_inbox(&ns(), &agent("r"), page.cursor)
        .await
        .expect("ack");
    assert_eq!(
        s.messages.inbox_depth(&ns(), &agent("r"), at(10)).await.expect("depth"),
        3
    );
    let after_ack = s
        .messages
        .read_inbox(&ns(), &agent("r"), None, 10, at(10))
        .await
        .expect("read");
    assert_eq!(after_ack.messages.first().map(|m| m.body.clone()), Some(json!(2)));
    let a = s
        .messages
        .ack_inbox(&ns(), &agent("r"), 1)
        .await
        .expect("an older ack is harmless");
    assert_eq!(a.inbox_cursor, page.cursor, "the cursor never moves back");
    match s.messages.ack_inbox(&ns(), &agent("r"), 1_000).await {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("expected invalid, got {other:?}"),
    }
}

pub async fn expired_and_duplicate_messages_are_not_delivered(s: &AgentTestStore) {
    s.agents
        .register_agent(&ns(), &agent("r"), reg(&[], 1), AgentOptions::default(), at(0))
        .await
        .expect("register");
    let opts = SendOptions::default();
    let mut short = msg("s", direct("r"), json!("short"));
    short.ttl_ms = Some(100);
    let sent = s.messages.send_message(&ns(), short, opts, at(0)).await.expect("send");
    assert_eq!(sent.message.expires_at, Some(at(100)));
    let mut keyed = msg("s", direct("r"), json!("once"));
    keyed.idempotency_key = Some("k-1".into());
    let first = s
        .messages
        .send_message(&ns(), keyed.clone(), opts, at(1))
        .await
        .expect("send");
    let second = s.messages.send_message(&ns(), keyed, opts, at(2)).await.expect("send");
    assert!(first.created && !second.created);
    assert_eq!(first.message.id, second.message.id);
    let early = s
        .messages
        .read_inbox(&ns(), &agent("r"), None, 10, at(99))
        .await
        .expect("read");
    assert_eq!(early.messages.len(), 2);
    let late = s
        .messages
        .read_inbox(&ns(), &agent("r"), None, 10, at(100))
        .await
        .expect("read");
    assert_eq!(
        late.messages.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        vec![json!("once")]
    );
    match s
        .messages
        .send_message(&ns(), msg("s", direct("nobody"), json!(0)), opts, at(3))
        .await
    {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("a direct message to an unknown agent is refused, got {other:?}"),
    }
}

pub async fn concurrent_senders_lose_nothing(s: &AgentTestStore) {
    s.agents
        .register_agent(&ns(), &agent("sink"), reg(&[], 1), AgentOptions::default(), at(0))
        .await
        .expect("register");
    let mut handles = Vec::new();
    for w in 0..100 {
        let m = s.messages.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..5 {
                let body = json!({"w": w, "i": i});
                m.send_message(&ns(), msg("src", direct("sink"), body), SendOptions::default(), at(1))
                    .await
                    .expect("send");
            }
        }));
    }
    for h in handles {
        h.await.expect("sender");
    }
    let page = s
        .messages
        .read_inbox(&ns(), &agent("sink"), None, 1_000, at(2))
        .await
        .expect("read");
    assert_eq!(page.messages.len(), 500);
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "strictly increasing sequence");
    for w in 0..100 {
        let mine: Vec<i64> = page
            .messages
            .iter()
            .filter(|m| m.body["w"] == json!(w))
            .filter_map(|m| m.body["i"].as_i64())
            .collect();
        assert_eq!(mine, vec![0, 1, 2, 3, 4], "each sender's messages arrive in its order");
    }
}

pub async fn full_inboxes_refuse_direct_messages(s: &AgentTestStore) {
    s.agents
        .register_agent(&ns(), &agent("r"), reg(&[], 1), AgentOptions::default(), at(0))
        .await
        .expect("register");
    let opts = SendOptions {
        max_inbox_depth: Some(2),
    };
    for i in 0..2 {
        s.messages
            .send_message(&ns(), msg("s", direct("r"), json!(i)), opts, at(i))
            .await
            .expect("send");
    }
    match s
        .messages
        .send_message(&ns(), msg("s", direct("r"), json!(9)), opts, at(3))
        .await
    {
        Err(StoreError::InboxFull { depth, limit, .. }) => assert_eq!((depth, limit), (2, 2)),
        other => panic!("expected a full inbox, got {other:?}"),
    }
    let page = s
        .messages
        .read_inbox(&ns(), &agent("r"), None, 10, at(4))
        .await
        .expect("read");
    s.messages
        .ack_inbox(&ns(), &agent("r"), page.cursor)
        .await
        .expect("ack");
    s.messages
        .send_message(&ns(), msg("s", direct("r"), json!(10)), opts, at(5))
        .await
        .expect("room again");
}
