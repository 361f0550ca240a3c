//! `agentyard agent …` and `agentyard limit …`: the fleet and its keyed dispatch limits, as
//! tables (or JSON with `--json`).

use agentyard_core::agent::{Agent, AgentStatus};
use agentyard_core::api::{LimitRequest, RegisterAgentRequest};
use agentyard_core::{AgentName, Capability};
use anyhow::Context;

use crate::cli::{AgentCommand, LimitCommand};
use crate::commands::{ago, client, json_arg, print_json, table};

pub(crate) fn agent_name(flag: &str, s: &str) -> anyhow::Result<AgentName> {
    AgentName::parse(s).with_context(|| format!("{flag} {s:?}"))
}

fn print_agents(agents: &[Agent]) {
    let mut t = table(&["NAME", "STATUS", "CAPABILITIES", "RUNNING", "SLOTS", "LAST HEARTBEAT"]);
    for a in agents {
        let caps: Vec<&str> = a.capabilities.iter().map(Capability::as_str).collect();
        t.add_row(vec![
            a.name.to_string(),
            a.status.to_string(),
            if caps.is_empty() {
                "-".to_owned()
            } else {
                caps.join(",")
            },
            a.running.to_string(),
            a.slots.to_string(),
            ago(a.last_heartbeat),
        ]);
    }
    println!("{t}");
}

fn print_agent(a: &Agent) {
    print_agents(std::slice::from_ref(a));
    if !a.metadata.is_null() {
        println!("metadata: {}", a.metadata);
    }
}

pub async fn agent(cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::List { client: c, status } => {
            let status = match status {
                Some(s) => Some(
                    AgentStatus::parse(&s).with_context(|| format!("--status {s:?}: use active, draining or gone"))?,
                ),
                None => None,
            };
            let agents = client(&c)?.agents(status).await?;
            if c.json {
                return print_json(&agents);
            }
            if agents.is_empty() {
                println!("no agents");
            } else {
                print_agents(&agents);
            }
        }
        AgentCommand::Get { client: c, name } => {
            let a = client(&c)?.agent(&agent_name("name", &name)?).await?;
            if c.json {
                return print_json(&a);
            }
            print_agent(&a);
        }
        AgentCommand::Register {
            client: c,
            name,
            capabilities,
            slots,
            metadata,
        } => {
            let caps: Result<Vec<_>, _> = capabilities.iter().map(|c| Capability::parse(c.clone())).collect();
            let req = RegisterAgentRequest {
                capabilities: Some(caps.context("--capability")?),
                slots,
                metadata: metadata.map(|m| json_arg("--metadata", &m)).transpose()?,
            };
            let a = client(&c)?.register_agent(&agent_name("name", &name)?, &req).await?;
            if c.json {
                return print_json(&a);
            }
            println!("registered {} ({}, {} slots)", a.name, a.status, a.slots);
        }
        AgentCommand::Heartbeat { client: c, name } => {
            let a = client(&c)?.heartbeat_agent(&agent_name("name", &name)?).await?;
            if c.json {
                return print_json(&a);
            }
            println!("{} {}", a.name, a.status);
        }
        AgentCommand::Drain { client: c, name } => {
            let a = client(&c)?.drain_agent(&agent_name("name", &name)?).await?;
            if c.json {
                return print_json(&a);
            }
            println!(
                "{} is draining: it gets no new tasks ({} still running)",
                a.name, a.running
            );
        }
        AgentCommand::Remove { client: c, name } => {
            let removed = client(&c)?.delete_agent(&agent_name("name", &name)?).await?;
            if c.json {
                return print_json(&removed);
            }
            println!(
                "removed {}; {} task(s) went back to their queues",
                removed.agent,
                removed.released.len()
            );
            for id in &removed.released {
                println!("  {id}");
            }
        }
    }
    Ok(())
}

pub async fn limit(cmd: LimitCommand) -> anyhow::Result<()> {
    match cmd {
        LimitCommand::List { client: c } => {
            let limits = client(&c)?.limits().await?;
            if c.json {
                return print_json(&limits);
            }
            if limits.is_empty() {
                println!("no limits: every concurrency key runs one task at a time, no key is rate limited");
                return Ok(());
            }
            let mut t = table(&["KEY", "RATE/MIN", "BURST", "MAX CONCURRENT"]);
            let show = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            for l in &limits {
                t.add_row(vec![
                    l.key.clone(),
                    show(l.rate_per_minute.map(|r| r.to_string())),
                    show(l.burst.map(|b| b.to_string())),
                    show(l.max_concurrent.map(|m| m.to_string())),
                ]);
            }
            println!("{t}");
        }
        LimitCommand::Set {
            client: c,
            key,
            rate_per_minute,
            burst,
            max_concurrent,
        } => {
            let req = LimitRequest {
                rate_per_minute,
                burst,
                max_concurrent,
            };
            let l = client(&c)?.set_limit(&key, &req).await?;
            if c.json {
                return print_json(&l);
            }
            let mut said = Vec::new();
            if let Some(r) = l.rate_per_minute {
                let burst = l.burst.map(|b| format!(" (bursts of {b})")).unwrap_or_default();
                said.push(format!(
                    "tasks with rate_limit_key {:?} start at most {r} a minute{burst}",
                    l.key
                ));
            }
            if let Some(m) = l.max_concurrent {
                said.push(format!(
                    "tasks with concurrency_key {:?} run at most {m} at once",
                    l.key
                ));
            }
            if said.is_empty() {
                println!("{:?}: no limits set (a concurrency key runs one task at a time)", l.key);
            } else {
                println!("{}", said.join("; "));
            }
        }
        LimitCommand::Delete { client: c, key } => {
            client(&c)?.delete_limit(&key).await?;
            if c.json {
                return print_json(&serde_json::json!({"key": key, "deleted": true}));
            }
            println!("{key:?}: limits removed; the configuration file's or the defaults apply");
        }
    }
    Ok(())
}
