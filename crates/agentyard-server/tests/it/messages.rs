//! Messages: direct, topic and broadcast sends, inbox reads (long poll), acknowledgements,
//! the Server-Sent-Events stream resumed with `Last-Event-ID`, TTLs and idempotent sends.

use std::sync::Arc;
use std::time::Duration;

use agentyard_core::api::SendMessageRequest;
use agentyard_core::message::{Message, Recipient, TopicName};
use agentyard_core::{ManualClock, Namespace, Timestamp};
use agentyard_server::ServerConfig;
use agentyard_server::metrics::{BROADCAST_FANOUT_TOTAL, MESSAGES_SENT_TOTAL};
use serde_json::{Value, json};

use crate::{Backend, TestApp, agent, redact, register};

fn topic(s: &str) -> TopicName {
    TopicName::parse(s).unwrap()
}

fn bodies(messages: &[Message]) -> Vec<Value> {
    messages.iter().map(|m| m.body.clone()).collect()
}

async fn direct_topic_and_broadcast_share_one_inbox_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["ann", "bob", "cat"] {
        register(&app, name).await;
    }
    app.client.subscribe(&agent("ann"), &topic("news")).await.unwrap();
    let subs = app.client.subscribe(&agent("bob"), &topic("news")).await.unwrap();
    assert_eq!((subs.topics.clone(), subs.changed), (vec![topic("news")], true));
    assert!(
        !app.client
            .subscribe(&agent("bob"), &topic("news"))
            .await
            .unwrap()
            .changed
    );
    app.client.subscribe(&agent("bob"), &topic("alerts")).await.unwrap();
    assert_eq!(
        app.client.subscriptions(&agent("bob")).await.unwrap(),
        [topic("alerts"), topic("news")],
        "an agent's topics, in name order"
    );
    assert_eq!(app.client.subscriptions(&agent("cat")).await.unwrap(), []);
    let missing = app.client.subscriptions(&agent("nobody")).await.unwrap_err();
    assert_eq!(missing.status(), Some(reqwest::StatusCode::NOT_FOUND));
    app.client.unsubscribe(&agent("bob"), &topic("alerts")).await.unwrap();

    let mut direct = SendMessageRequest::to_agent(agent("ann"), json!("d1"));
    direct.from = Some(agent("cat"));
    direct.correlation_id = Some("conv-1".into());
    let sent = app.client.send_message_outcome(&direct).await.unwrap();
    assert!(sent.created);
    assert_eq!(sent.message.from, Some(agent("cat")));
    app.client
        .send_message(&SendMessageRequest::to_topic(topic("news"), json!("t1")))
        .await
        .unwrap();
    app.client
        .send_message(&SendMessageRequest::broadcast(json!("b1")))
        .await
        .unwrap();
    app.client
        .send_message(&SendMessageRequest::to_agent(agent("bob"), json!("d2")))
        .await
        .unwrap();

    let ann = app.client.inbox(&agent("ann"), None, None, None).await.unwrap();
    assert_eq!(bodies(&ann.messages), [json!("d1"), json!("t1"), json!("b1")]);
    assert_eq!(ann.cursor, ann.messages[2].seq);
    assert_eq!(ann.messages[0].correlation_id.as_deref(), Some("conv-1"));
    let bob = app.client.inbox(&agent("bob"), None, None, None).await.unwrap();
    assert_eq!(bodies(&bob.messages), [json!("t1"), json!("b1"), json!("d2")]);
    let cat = app.client.inbox(&agent("cat"), None, None, None).await.unwrap();
    assert_eq!(bodies(&cat.messages), [json!("b1")]);

    // Unacknowledged messages come again; acknowledged ones do not; `after` reads on.
    let again = app.client.inbox(&agent("ann"), None, None, Some(1)).await.unwrap();
    assert_eq!(bodies(&again.messages), [json!("d1")]);
    assert_eq!(app.client.ack(&agent("ann"), again.cursor).await.unwrap(), again.cursor);
    let rest = app.client.inbox(&agent("ann"), None, None, None).await.unwrap();
    assert_eq!(bodies(&rest.messages), [json!("t1"), json!("b1")]);
    let after = app
        .client
        .inbox(&agent("ann"), Some(rest.messages[0].seq), None, None)
        .await
        .unwrap();
    assert_eq!(bodies(&after.messages), [json!("b1")]);
    app.client.ack(&agent("ann"), ann.cursor).await.unwrap();
    // A cursor never moves back.
    assert_eq!(app.client.ack(&agent("ann"), 1).await.unwrap(), ann.cursor);
    let empty = app.client.inbox(&agent("ann"), None, None, None).await.unwrap();
    assert!(empty.messages.is_empty());
    assert_eq!(empty.cursor, ann.cursor);

    // Unsubscribed: no more topic messages.
    let subs = app.client.unsubscribe(&agent("ann"), &topic("news")).await.unwrap();
    assert!(subs.changed && subs.topics.is_empty());
    app.client
        .send_message(&SendMessageRequest::to_topic(topic("news"), json!("t2")))
        .await
        .unwrap();
    assert!(
        app.client
            .inbox(&agent("ann"), None, None, None)
            .await
            .unwrap()
            .messages
            .is_empty()
    );

    // A reply goes back to the sender with the correlation id.
    let reply = SendMessageRequest::reply(&ann.messages[0], json!("r1")).unwrap();
    app.client.send_message(&reply).await.unwrap();
    let cat = app.client.inbox(&agent("cat"), None, None, None).await.unwrap();
    let r = cat.messages.last().unwrap();
    assert_eq!(
        (r.body.clone(), r.correlation_id.as_deref()),
        (json!("r1"), Some("conv-1"))
    );
    assert_eq!(r.reply_to.as_deref(), Some(ann.messages[0].id.as_str()));

    assert_eq!(app.state.counters.get(MESSAGES_SENT_TOTAL), Some(6));
    assert_eq!(app.state.counters.get(BROADCAST_FANOUT_TOTAL), Some(3));
    app.stop().await;
}

async fn a_long_poll_is_woken_by_a_send(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    register(&app, "reader").await;
    register(&app, "other").await;
    let client = app.client.clone();
    let reader = tokio::spawn(async move { client.inbox(&agent("reader"), None, Some(60_000), None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A message for someone else does not end the wait.
    app.client
        .send_message(&SendMessageRequest::to_agent(agent("other"), json!("not yours")))
        .await
        .unwrap();
    app.client
        .send_message(&SendMessageRequest::to_agent(agent("reader"), json!("yours")))
        .await
        .unwrap();
    // Far below the 60 s wait: only a wake-up can answer in time.
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the read was not woken")
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&got.messages), [json!("yours")]);

    let client = app.client.clone();
    let reader = tokio::spawn(async move {
        client
            .inbox(&agent("reader"), Some(got.cursor), Some(60_000), None)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.client
        .send_message(&SendMessageRequest::broadcast(json!("all")))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the read was not woken by the broadcast")
        .unwrap()
        .unwrap();
    assert_eq!(bodies(&got.messages), [json!("all")]);
    app.stop().await;
}

async fn the_stream_delivers_in_order_and_resumes_after_the_last_event_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    register(&app, "tail").await;
    let mut stream = app.client.inbox_stream(&agent("tail"), None).await.unwrap();
    for i in 1..=3 {
        app.client
            .send_message(&SendMessageRequest::to_agent(agent("tail"), json!(i)))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream is open");
        seen.push(m);
    }
    assert_eq!(bodies(&seen), [json!(1), json!(2), json!(3)]);
    assert_eq!(stream.last_event_id(), Some(seen[2].seq));
    drop(stream);

    for i in 4..=5 {
        app.client
            .send_message(&SendMessageRequest::to_agent(agent("tail"), json!(i)))
            .await
            .unwrap();
    }
    // The client saw only the second event before it lost the connection: resume after it.
    let mut resumed = app
        .client
        .inbox_stream(&agent("tail"), Some(seen[1].seq))
        .await
        .unwrap();
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(
            tokio::time::timeout(Duration::from_secs(10), resumed.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(bodies(&rest), [json!(3), json!(4), json!(5)]);

    // A stream starts after the acknowledged cursor by default.
    app.client.ack(&agent("tail"), rest[1].seq).await.unwrap();
    let mut fresh = app.client.inbox_stream(&agent("tail"), None).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), fresh.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.body, json!(5));

    // An open stream does not hold up a graceful shutdown.
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("shutdown with open streams");
    assert!(fresh.next().await.unwrap_or(None).is_none(), "the stream ended");
}

async fn a_stream_sends_keep_alive_comments(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        ServerConfig {
            sse_keep_alive: Duration::from_millis(50),
            ..ServerConfig::default()
        },
    )
    .await;
    register(&app, "idle").await;
    let mut r = app
        .http
        .get(app.url("/v1/agents/idle/inbox/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(chunk.starts_with(b":"), "{chunk:?}");
    let (status, body) = app
        .send_raw(reqwest::Method::GET, "/v1/agents/nobody/inbox/stream", "")
        .await;
    assert_eq!((status, body["type"].as_str()), (404, Some("/problems/not-found")));
    let r = app
        .http
        .get(app.url("/v1/agents/idle/inbox/stream"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    drop(r);
    // Last-Event-ID wins over `after`, but a bad `after` is still refused, not ignored.
    let r = app
        .http
        .get(app.url("/v1/agents/idle/inbox/stream?after=-1"))
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    drop(r);
    app.stop().await;
}

async fn an_expired_message_is_never_delivered(backend: Backend) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let app = TestApp::spawn_with_clock(backend, ServerConfig::default(), Arc::new(clock.clone())).await;
    register(&app, "late").await;
    let mut short = SendMessageRequest::to_agent(agent("late"), json!("short-lived"));
    short.ttl_ms = Some(1_000);
    let sent = app.client.send_message(&short).await.unwrap();
    assert!(sent.expires_at.is_some());
    let mut long = SendMessageRequest::broadcast(json!("long-lived"));
    long.ttl_ms = Some(60_000);
    app.client.send_message(&long).await.unwrap();
    clock.advance(999);
    assert_eq!(
        app.client
            .inbox(&agent("late"), None, None, None)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    clock.advance(1);
    let inbox = app.client.inbox(&agent("late"), None, None, None).await.unwrap();
    assert_eq!(bodies(&inbox.messages), [json!("long-lived")]);
    let mut stream = app.client.inbox_stream(&agent("late"), None).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.body, json!("long-lived"));
    app.stop().await;
}

async fn the_same_idempotency_key_delivers_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    register(&app, "once").await;
    let mut req = SendMessageRequest::to_agent(agent("once"), json!("pay invoice 7"));
    req.idempotency_key = Some("invoice-7".into());
    let first = app.client.send_message_outcome(&req).await.unwrap();
    let second = app.client.send_message_outcome(&req).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.message.id, second.message.id);
    let inbox = app.client.inbox(&agent("once"), None, None, None).await.unwrap();
    assert_eq!(inbox.messages.len(), 1);
    assert_eq!(app.state.store.message_count(&Namespace::default()).await.unwrap(), 1);
    app.stop().await;
}

async fn a_broadcast_to_a_thousand_agents_is_one_stored_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ns = Namespace::default();
    // Straight into the store: a thousand registrations over HTTP would only make this slower.
    for i in 0..1_000 {
        app.state
            .store
            .register_agent(
                &ns,
                &agent(&format!("a{i:04}")),
                agentyard_core::agent::AgentRegistration {
                    capabilities: Vec::new(),
                    slots: 1,
                    metadata: Value::Null,
                },
                agentyard_store::AgentOptions::default(),
                app.state.clock.now(),
            )
            .await
            .unwrap();
    }
    let sent = app
        .client
        .send_message(&SendMessageRequest::broadcast(json!("hello, fleet")))
        .await
        .unwrap();
    assert_eq!(sent.to, Recipient::Broadcast { broadcast: true });
    assert_eq!(app.state.store.message_count(&ns).await.unwrap(), 1);
    for name in ["a0000", "a0500", "a0999"] {
        let inbox = app.client.inbox(&agent(name), None, None, None).await.unwrap();
        assert_eq!(bodies(&inbox.messages), [json!("hello, fleet")]);
    }
    assert_eq!(app.state.counters.get(BROADCAST_FANOUT_TOTAL), Some(1_000));
    // An agent that registers later does not get old broadcasts.
    register(&app, "newcomer").await;
    assert!(
        app.client
            .inbox(&agent("newcomer"), None, None, None)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    app.stop().await;
}

async fn bad_sends_name_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .send_raw(
            reqwest::Method::POST,
            "/v1/messages",
            r#"{"to": {"broadcast": false}, "body": 1}"#,
        )
        .await;
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("broadcast_false", redact(body));
    let (status, body) = app
        .send_raw(
            reqwest::Method::POST,
            "/v1/messages",
            r#"{"to": {"agent": "ghost"}, "body": 1}"#,
        )
        .await;
    assert_eq!((status, body["type"].as_str()), (404, Some("/problems/not-found")));
    let (status, body) = app
        .send_raw(
            reqwest::Method::POST,
            "/v1/messages",
            r#"{"to": {"agent": "x"}, "ttl_ms": 0}"#,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("ttl_ms")));
    register(&app, "x").await;
    let (status, body) = app
        .send_raw(reqwest::Method::GET, "/v1/agents/x/inbox?wait_ms=999999", "")
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("wait_ms")));
    // Seqs are signed 64-bit numbers in the stores: a cursor past i64::MAX is refused, as the
    // document's maximum says, where it was once taken (and echoed back as the cursor).
    for path in [
        "/v1/agents/x/inbox?after=9223372036854775808",
        "/v1/agents/x/inbox/stream?after=9223372036854775808",
    ] {
        let (status, body) = app.send_raw(reqwest::Method::GET, path, "").await;
        assert_eq!((status, body["field"].as_str()), (422, Some("after")), "{path}");
    }
    let (status, body) = app
        .send_raw(reqwest::Method::GET, "/v1/agents/x/inbox?after=9223372036854775807", "")
        .await;
    assert_eq!((status, body["cursor"].as_u64()), (200, Some(i64::MAX as u64)));
    let (status, body) = app
        .send_raw(reqwest::Method::POST, "/v1/agents/x/inbox/ack", r#"{"cursor": 99}"#)
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("cursor")));
    let (status, body) = app
        .send_raw(reqwest::Method::PUT, "/v1/agents/x/subscriptions/Bad", "")
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("topic")));
    app.stop().await;
}

/// Big messages: a read stops at the answer budget and its cursor leads to the rest.
async fn an_inbox_read_of_big_messages_stops_at_the_answer_budget(backend: Backend) {
    let config = ServerConfig {
        answer_budget_bytes: 256 * 1024,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with(backend, config).await;
    register(&app, "reader").await;
    let big = "z".repeat(100 * 1024);
    let mut sent = Vec::new();
    for i in 0..5 {
        let req = SendMessageRequest::to_agent(agent("reader"), json!({"i": i, "blob": big}));
        sent.push(app.client.send_message(&req).await.unwrap().seq);
    }
    let mut read = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = app
            .client
            .inbox(&agent("reader"), after, None, Some(1000))
            .await
            .unwrap();
        if page.messages.is_empty() {
            break;
        }
        sizes.push(page.messages.len());
        read.extend(page.messages.iter().map(|m| m.seq));
        assert_eq!(
            Some(page.cursor),
            read.last().copied(),
            "the cursor is the last message given"
        );
        after = Some(page.cursor);
    }
    assert_eq!(sizes, [2, 2, 1], "reads of about 100 KB messages under 256 KiB");
    assert_eq!(read, sent, "every message once, in order");
    app.stop().await;
}

backend_tests!(
    an_inbox_read_of_big_messages_stops_at_the_answer_budget,
    direct_topic_and_broadcast_share_one_inbox_order,
    a_long_poll_is_woken_by_a_send,
    the_stream_delivers_in_order_and_resumes_after_the_last_event_id,
    a_stream_sends_keep_alive_comments,
    an_expired_message_is_never_delivered,
    the_same_idempotency_key_delivers_once,
    a_broadcast_to_a_thousand_agents_is_one_stored_message,
    bad_sends_name_the_field,
);
