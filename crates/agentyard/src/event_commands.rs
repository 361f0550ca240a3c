//! `agentyard events …` (list, tail, trace) and `agentyard task history`: the event log of a
//! running server.

use std::time::Duration;

use agentyard_client::EventQuery;
use agentyard_core::event::Event;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::cli::ClientArgs;
use crate::commands::{ago, client, print_json, table, task_id};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// One page of the event log, oldest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Events after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Most events to show (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Follow the event log as it happens (reconnects, resuming where it stopped).
    Tail {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Start after this seq instead of with what happens from now on.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Everything that happened under one correlation id, in order.
    Trace {
        #[command(flatten)]
        client: ClientArgs,
        correlation_id: String,
    },
}

/// Which events: every flag given must match.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Types, comma-separated: exact (task.completed) or a kind (task.*, agent.*, message.*, limit.*).
    #[arg(long = "type")]
    pub types: Option<String>,
    /// Subject: task:ID, agent:NAME, message:SEQ or limit:KEY.
    #[arg(long)]
    pub subject: Option<String>,
    #[arg(long)]
    pub correlation_id: Option<String>,
}

impl FilterArgs {
    fn query(self) -> EventQuery {
        EventQuery {
            types: self.types,
            subject: self.subject,
            correlation_id: self.correlation_id,
        }
    }
}

pub async fn events(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List {
            client: c,
            filter,
            after,
            limit,
        } => {
            let page = client(&c)?.events(&filter.query(), after, Some(limit)).await?;
            if c.json {
                return print_json(&page);
            }
            print_events(&page.events);
            if page.next_after != after {
                println!("more: --after {}", page.next_after);
            }
        }
        EventsCommand::Tail {
            client: c,
            filter,
            after,
        } => {
            let api = client(&c)?;
            let query = filter.query();
            // Only what happens from now on, unless told where to start; then every reconnect
            // resumes after the last event shown, with no gap.
            let mut last = match after {
                Some(after) => after,
                None => api.events(&query, 0, Some(1)).await?.last_seq,
            };
            loop {
                let mut stream = api.event_stream(&query, Some(last)).await?;
                while let Some(e) = stream.next().await? {
                    print_line(&e, c.json)?;
                    last = e.seq;
                }
                // The server ended the stream (a restart): resume after the last event shown.
                eprintln!("stream ended; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        EventsCommand::Trace {
            client: c,
            correlation_id,
        } => {
            let trace = client(&c)?.trace(&correlation_id).await?;
            if c.json {
                return print_json(&trace);
            }
            if trace.events.is_empty() {
                println!("nothing happened under correlation id {correlation_id:?} (or its events were pruned)");
                return Ok(());
            }
            print_events(&trace.events);
            if trace.truncated {
                println!(
                    "more: agentyard events list --correlation-id {correlation_id} --after {}",
                    trace.events.last().map_or(0, |e| e.seq)
                );
            }
        }
    }
    Ok(())
}

/// `agentyard task history ID`.
pub async fn task_history(c: ClientArgs, id: String) -> anyhow::Result<()> {
    let id = task_id(&id)?;
    let events = client(&c)?.all_events(&EventQuery::task(id)).await?;
    if c.json {
        return print_json(&events);
    }
    if events.is_empty() {
        println!("no events for task {id} (its history may have been pruned)");
        return Ok(());
    }
    print_events(&events);
    Ok(())
}

fn print_events(events: &[Event]) {
    let mut t = table(&["SEQ", "WHEN", "TYPE", "SUBJECT", "ACTOR", "CORRELATION", "DETAILS"]);
    for e in events {
        t.add_row(vec![
            e.seq.to_string(),
            ago(e.ts),
            e.kind.to_string(),
            e.subject.clone(),
            e.actor.clone().unwrap_or_else(|| "-".to_owned()),
            e.correlation_id.clone().unwrap_or_else(|| "-".to_owned()),
            details(&e.data),
        ]);
    }
    println!("{t}");
}

/// One line per event, for following.
fn print_line(e: &Event, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(e)?);
    } else {
        let actor = e.actor.as_ref().map(|a| format!(" by {a}")).unwrap_or_default();
        let corr = e.correlation_id.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default();
        println!(
            "{} {} {} {}{actor}{corr} {}",
            e.seq,
            e.ts,
            e.kind,
            e.subject,
            details(&e.data)
        );
    }
    Ok(())
}

/// The data as `key=value` pairs, the queue first; nested values as compact JSON.
fn details(data: &Value) -> String {
    let Value::Object(map) = data else {
        return data.to_string();
    };
    let mut pairs: Vec<String> = Vec::with_capacity(map.len());
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if k == "queue" {
            pairs.insert(0, format!("{k}={text}"));
        } else {
            pairs.push(format!("{k}={text}"));
        }
    }
    pairs.join(" ")
}
