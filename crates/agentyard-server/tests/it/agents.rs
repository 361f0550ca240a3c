//! Agents: registration, implicit registration by claims, draining, removal, and an agent that
//! stops heartbeating becoming `gone` with its leased task handed to another agent.

use std::sync::Arc;
use std::time::Duration;

use agentyard_core::agent::AgentStatus;
use agentyard_core::api::{ClaimRequest, RegisterAgentRequest};
use agentyard_core::{Capability, ManualClock, TaskStatus, Timestamp};
use agentyard_server::ServerConfig;
use agentyard_server::dispatch::AgentExpiry;
use serde_json::json;

use crate::{Backend, TestApp, agent, problem, q, register};

fn cap(s: &str) -> Capability {
    Capability::parse(s).unwrap()
}

async fn register_list_drain_and_remove(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let req = RegisterAgentRequest {
        capabilities: Some(vec![cap("rust"), cap("gpu")]),
        slots: Some(4),
        metadata: Some(json!({"host": "box-1"})),
    };
    let a = app.client.register_agent(&agent("alpha"), &req).await.unwrap();
    assert_eq!(a.status, AgentStatus::Active);
    assert_eq!(a.slots, 4);
    assert_eq!(a.capabilities, vec![cap("gpu"), cap("rust")]);
    assert_eq!(a.metadata["host"], "box-1");

    // A claim in an unknown agent's name registers it, with the claim's capabilities.
    let mut claim = ClaimRequest::new(agent("beta"));
    claim.capabilities = Some(vec![cap("python")]);
    assert!(app.client.claim(&q("work"), &claim).await.unwrap().tasks.is_empty());
    let b = app.client.agent(&agent("beta")).await.unwrap();
    assert_eq!(
        (b.status, b.capabilities.clone()),
        (AgentStatus::Active, vec![cap("python")])
    );

    let names: Vec<String> = app
        .client
        .agents(None)
        .await
        .unwrap()
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    // A draining agent's claims get nothing, even with work waiting; others get it.
    let drained = app.client.drain_agent(&agent("alpha")).await.unwrap();
    assert_eq!(drained.status, AgentStatus::Draining);
    let task = app.create("work", json!(1)).await;
    assert!(app.claim_one("work", "alpha").await.is_none());
    let held = app.claim_one("work", "beta").await.expect("beta gets the task");
    assert_eq!(held.id, task.id);
    let draining = app.client.agents(Some(AgentStatus::Draining)).await.unwrap();
    assert_eq!(draining.len(), 1);
    assert_eq!(app.client.agent(&agent("beta")).await.unwrap().running, 1);

    // Removing beta hands its task to a claimer already waiting for one.
    let client = app.client.clone();
    let waiting = tokio::spawn(async move {
        let mut req = ClaimRequest::new(agent("gamma"));
        req.wait_ms = Some(30_000);
        client.claim(&q("work"), &req).await
    });
    crate::eventually(10, "gamma parks", || async { app.state.dispatch.waiters.parked() >= 1 }).await;
    let removed = app.client.delete_agent(&agent("beta")).await.unwrap();
    assert_eq!(removed.released, vec![task.id]);
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("gamma was woken")
        .unwrap()
        .unwrap();
    assert_eq!(got.tasks[0].id, task.id);
    assert_eq!(got.tasks[0].lease.as_ref().unwrap().agent, agent("gamma"));
    assert!(app.client.agent(&agent("beta")).await.unwrap_err().is_not_found());

    // Registering again makes a drained agent active.
    let again = register(&app, "alpha").await;
    assert_eq!(again.status, AgentStatus::Active);
    app.stop().await;
}

async fn unknown_agents_and_bad_names_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let e = app.client.heartbeat_agent(&agent("nobody")).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        app.client
            .drain_agent(&agent("nobody"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let (status, body) = app.send_raw(reqwest::Method::PUT, "/v1/agents/Bad%20Name", "{}").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("name")));
    let (status, body) = app
        .send_raw(reqwest::Method::PUT, "/v1/agents/ok", r#"{"slots": 0}"#)
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("slots")));
    let e = app
        .client
        .register_agent(
            &agent("ok"),
            &RegisterAgentRequest {
                slots: Some(100_000),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(problem(&e).field.as_deref(), Some("slots"));
    app.stop().await;
}

fn manual() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_800_000_000_000))
}

async fn an_agent_that_stops_heartbeating_is_gone_and_its_task_goes_to_another(backend: Backend) {
    let clock = manual();
    let config = ServerConfig {
        agent_timeout_ms: 30_000,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with_clock(backend, config, Arc::new(clock.clone())).await;
    let task = app.create("jobs", json!({"n": 1})).await;
    // A lease far longer than the agent timeout: only the agent's silence can free the task.
    let mut claim = ClaimRequest::new(agent("silent"));
    claim.lease_ms = Some(3_600_000);
    let held = app.client.claim(&q("jobs"), &claim).await.unwrap().tasks;
    assert_eq!(held[0].id, task.id);
    register(&app, "helper").await;

    clock.advance(20_000);
    app.client.heartbeat_agent(&agent("helper")).await.unwrap();
    let tick = AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    assert!(tick.gone.is_empty(), "20 s of silence is within the timeout");
    assert!(
        app.claim_one("jobs", "helper").await.is_none(),
        "the task is still silent's"
    );

    clock.advance(10_001);
    app.client.heartbeat_agent(&agent("helper")).await.unwrap();
    // The server's own loop may get there first; either way the outcome is the same.
    AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    let silent = app.client.agent(&agent("silent")).await.unwrap();
    assert_eq!((silent.status, silent.running), (AgentStatus::Gone, 0));
    assert_eq!(
        app.client.agent(&agent("helper")).await.unwrap().status,
        AgentStatus::Active
    );
    let retaken = app.claim_one("jobs", "helper").await.expect("the task was released");
    assert_eq!(retaken.id, task.id);
    assert_eq!(retaken.status, TaskStatus::Running);
    assert_eq!(retaken.attempt, 2, "the lost attempt counts");

    // A claim in the gone agent's name brings it back.
    assert!(app.claim_one("jobs", "silent").await.is_none());
    assert_eq!(
        app.client.agent(&agent("silent")).await.unwrap().status,
        AgentStatus::Active
    );
    assert!(
        app.state
            .counters
            .get(agentyard_server::metrics::AGENTS_EXPIRED_TOTAL)
            .unwrap()
            >= 1
    );
    app.stop().await;
}

async fn an_agent_waiting_in_a_long_poll_is_alive(backend: Backend) {
    let clock = manual();
    let app = TestApp::spawn_with_clock(backend, ServerConfig::default(), Arc::new(clock.clone())).await;
    let client = app.client.clone();
    let waiting = tokio::spawn(async move {
        let mut req = ClaimRequest::new(agent("patient"));
        req.wait_ms = Some(60_000);
        client.claim(&q("quiet"), &req).await
    });
    crate::eventually(10, "the claimer parks", || async {
        app.state.dispatch.waiters.parked() >= 1
    })
    .await;
    clock.advance(45_000);
    let tick = AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    assert!(tick.gone.is_empty(), "{tick:?}");
    assert_eq!(
        app.client.agent(&agent("patient")).await.unwrap().status,
        AgentStatus::Active
    );
    let task = app.create("quiet", json!(1)).await;
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.tasks[0].id, task.id);
    app.stop().await;
}

async fn an_agent_drained_while_it_waits_gets_nothing_and_another_gets_the_task(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long_poll = |name: &'static str| {
        let client = app.client.clone();
        tokio::spawn(async move {
            let mut req = ClaimRequest::new(agent(name));
            req.wait_ms = Some(30_000);
            client.claim(&q("drain-race"), &req).await
        })
    };
    let leaving = long_poll("leaving");
    crate::eventually(10, "leaving parks", || async {
        app.state.dispatch.waiters.parked() >= 1
    })
    .await;
    let staying = long_poll("staying");
    crate::eventually(10, "staying parks", || async {
        app.state.dispatch.waiters.parked() >= 2
    })
    .await;
    app.client.drain_agent(&agent("leaving")).await.unwrap();
    let task = app.create("drain-race", json!(1)).await;
    let got = tokio::time::timeout(Duration::from_secs(10), staying)
        .await
        .expect("staying got the task in time")
        .unwrap()
        .unwrap();
    assert_eq!(got.tasks[0].id, task.id);
    // `leaving` ends its wait empty-handed at the latest when a wake-up or re-check comes.
    app.create("drain-race", json!(2)).await;
    let left = tokio::time::timeout(Duration::from_secs(10), leaving)
        .await
        .expect("leaving's wait ended")
        .unwrap()
        .unwrap();
    assert!(left.tasks.is_empty());
    app.stop().await;
}

/// An agent made by a claim is removed once gone for `forget_gone_agents_after_ms` (its task
/// went back to the queue when it went gone); registered agents stay, however long gone.
async fn implicit_agents_gone_too_long_are_removed_and_registered_ones_kept(backend: Backend) {
    let clock = manual();
    let config = ServerConfig {
        agent_timeout_ms: 30_000,
        forget_gone_agents_after_ms: 60_000,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with_clock(backend, config, Arc::new(clock.clone())).await;
    let task = app.create("jobs", json!({"n": 1})).await;
    let mut claim = ClaimRequest::new(agent("drifter"));
    claim.lease_ms = Some(3_600_000);
    let held = app.client.claim(&q("jobs"), &claim).await.unwrap().tasks;
    assert_eq!(held[0].id, task.id);
    assert!(app.client.agent(&agent("drifter")).await.unwrap().implicit);
    assert!(!register(&app, "keeper").await.implicit);
    assert!(app.claim_one("jobs", "converted").await.is_none());
    assert!(app.client.agent(&agent("converted")).await.unwrap().implicit);
    assert!(
        !register(&app, "converted").await.implicit,
        "registering makes it explicit"
    );

    clock.advance(30_001);
    AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    assert_eq!(
        app.client.agent(&agent("drifter")).await.unwrap().status,
        AgentStatus::Gone
    );
    clock.advance(59_000);
    let tick = AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    assert!(tick.forgotten.is_empty(), "gone for 59 s of the 60: {tick:?}");
    assert!(app.client.agent(&agent("drifter")).await.is_ok());

    clock.advance(1_000);
    // The server's own loop may get there first; either way the outcome is the same.
    AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    let e = app.client.agent(&agent("drifter")).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    for kept in ["keeper", "converted"] {
        let a = app.client.agent(&agent(kept)).await.unwrap();
        assert_eq!((a.status, a.implicit), (AgentStatus::Gone, false), "{kept}");
    }
    let names: Vec<String> = app
        .client
        .agents(None)
        .await
        .unwrap()
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(names, ["converted", "keeper"]);
    assert!(
        app.state
            .counters
            .get(agentyard_server::metrics::AGENTS_FORGOTTEN_TOTAL)
            .unwrap()
            >= 1
    );
    let retaken = app
        .claim_one("jobs", "keeper")
        .await
        .expect("the task went back to the queue");
    assert_eq!((retaken.id, retaken.attempt), (task.id, 2));
    // A new claim in the forgotten name registers it anew.
    assert!(app.claim_one("jobs", "drifter").await.is_none());
    assert!(app.client.agent(&agent("drifter")).await.unwrap().implicit);
    app.stop().await;
}

/// 0 keeps gone implicit agents for good.
async fn implicit_agents_are_kept_when_removal_is_off(backend: Backend) {
    let clock = manual();
    let config = ServerConfig {
        agent_timeout_ms: 30_000,
        forget_gone_agents_after_ms: 0,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with_clock(backend, config, Arc::new(clock.clone())).await;
    assert!(app.claim_one("jobs", "drifter").await.is_none());
    clock.advance(30_001);
    AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    clock.advance(365 * 86_400_000);
    let tick = AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    assert!(tick.forgotten.is_empty());
    assert_eq!(
        app.client.agent(&agent("drifter")).await.unwrap().status,
        AgentStatus::Gone
    );
    app.stop().await;
}

/// At the cap, a claim or registration that would create an agent gets 429
/// `/problems/too-many-agents`; the agents already there go on claiming.
async fn the_agent_cap_refuses_new_agents_and_serves_known_ones(backend: Backend) {
    let mut config = ServerConfig {
        max_agents_per_namespace: Some(2),
        ..ServerConfig::default()
    };
    let wide = agentyard_core::Namespace::parse("wide").unwrap();
    config.namespaces.insert(
        wide.clone(),
        agentyard_server::config::NamespaceConfig {
            max_agents: Some(3),
            ..Default::default()
        },
    );
    let app = TestApp::spawn_with(backend, config).await;
    assert!(app.claim_one("jobs", "a").await.is_none());
    register(&app, "b").await;

    let e = app
        .client
        .claim(&q("jobs"), &ClaimRequest::new(agent("c")))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429), "{e}");
    assert_eq!(e.kind(), Some(agentyard_client::kinds::TOO_MANY_AGENTS));
    assert_eq!(problem(&e).extra["limit"], 2);
    assert_eq!(problem(&e).extra["agent"], "c");
    let e = app
        .client
        .register_agent(&agent("c"), &RegisterAgentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Some(agentyard_client::kinds::TOO_MANY_AGENTS), "{e}");
    assert!(app.client.agent(&agent("c")).await.unwrap_err().is_not_found());

    let task = app.create("jobs", json!(1)).await;
    assert_eq!(
        app.claim_one("jobs", "a").await.expect("a known agent claims").id,
        task.id
    );
    register(&app, "b").await;
    assert_eq!(app.client.agents(None).await.unwrap().len(), 2);

    // A namespace with a cap of its own.
    let team = app.client.clone().with_namespace(wide);
    for name in ["a", "b", "c"] {
        team.register_agent(&agent(name), &RegisterAgentRequest::default())
            .await
            .unwrap();
    }
    let e = team
        .register_agent(&agent("d"), &RegisterAgentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(problem(&e).extra["limit"], 3, "{e}");

    // Removing an agent makes room.
    app.client.delete_agent(&agent("b")).await.unwrap();
    assert!(app.claim_one("jobs", "c").await.is_none());
    app.stop().await;
}

async fn an_agent_that_heartbeats_its_task_stays_alive(backend: Backend) {
    let clock = manual();
    let config = ServerConfig {
        agent_timeout_ms: 30_000,
        ..ServerConfig::default()
    };
    let app = TestApp::spawn_with_clock(backend, config, Arc::new(clock.clone())).await;
    app.create("jobs", json!({"n": 1})).await;
    let mut claim = ClaimRequest::new(agent("busy"));
    claim.lease_ms = Some(3_600_000);
    let held = app.client.claim(&q("jobs"), &claim).await.unwrap().tasks;
    let token = held[0].lease.clone().expect("leased").token;
    // Two minutes of work, heartbeating the task only, every 20 s.
    for _ in 0..6 {
        clock.advance(20_000);
        let beat = agentyard_core::api::HeartbeatRequest {
            lease_token: token.clone(),
            lease_ms: None,
            progress: None,
        };
        app.client.heartbeat(held[0].id, &beat).await.expect("the lease holds");
        AgentExpiry::new(app.state.clone()).tick().await.unwrap();
    }
    let busy = app.client.agent(&agent("busy")).await.unwrap();
    assert_eq!((busy.status, busy.running), (AgentStatus::Active, 1), "{busy:?}");
}

backend_tests!(
    an_agent_that_heartbeats_its_task_stays_alive,
    implicit_agents_gone_too_long_are_removed_and_registered_ones_kept,
    implicit_agents_are_kept_when_removal_is_off,
    the_agent_cap_refuses_new_agents_and_serves_known_ones,
    register_list_drain_and_remove,
    unknown_agents_and_bad_names_are_refused,
    an_agent_that_stops_heartbeating_is_gone_and_its_task_goes_to_another,
    an_agent_waiting_in_a_long_poll_is_alive,
    an_agent_drained_while_it_waits_gets_nothing_and_another_gets_the_task,
);
