//! `agentyard msg …`: sending, receiving (one long poll), following (Server-Sent Events or a
//! long-poll loop) and answering messages, and topic subscriptions.

use std::time::Duration;

use agentyard_client::Client;
use agentyard_core::api::SendMessageRequest;
use agentyard_core::message::{Message, Recipient, TopicName};
use anyhow::{Context, bail};
use serde_json::Value;

use crate::agent_commands::agent_name;
use crate::cli::{self, MsgCommand};
use crate::commands::{ago, client, print_json, table};

/// Longest body shown in a table cell.
const BODY_WIDTH: usize = 80;
/// Long poll of `tail --poll`.
const POLL_WAIT_MS: u64 = 30_000;

/// A body from the command line: JSON when it parses, a string otherwise.
fn body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn recipient(r: &cli::Recipient) -> anyhow::Result<Recipient> {
    Ok(match (&r.to, &r.topic) {
        (Some(a), _) => Recipient::Agent {
            agent: agent_name("--to", a)?,
        },
        (None, Some(t)) => Recipient::Topic {
            topic: TopicName::parse(t.as_str()).with_context(|| format!("--topic {t:?}"))?,
        },
        (None, None) => Recipient::Broadcast { broadcast: true },
    })
}

fn to_text(to: &Recipient) -> String {
    match to {
        Recipient::Agent { agent } => agent.to_string(),
        Recipient::Topic { topic } => format!("#{topic}"),
        Recipient::Broadcast { .. } => "*".to_owned(),
    }
}

fn short(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(BODY_WIDTH) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn print_messages(messages: &[Message]) {
    let mut t = table(&["SEQ", "FROM", "TO", "SENT", "CORRELATION", "BODY"]);
    for m in messages {
        t.add_row(vec![
            m.seq.to_string(),
            m.from.as_ref().map_or("-".to_owned(), ToString::to_string),
            to_text(&m.to),
            ago(m.created_at),
            m.correlation_id.clone().unwrap_or_else(|| "-".to_owned()),
            short(&m.body),
        ]);
    }
    println!("{t}");
}

/// One line per message, for following.
fn print_line(m: &Message, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(m)?);
    } else {
        let from = m.from.as_ref().map_or("-".to_owned(), ToString::to_string);
        let corr = m.correlation_id.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default();
        println!("{} {from} → {}{corr}: {}", m.seq, to_text(&m.to), short(&m.body));
    }
    Ok(())
}

async fn send(c: &Client, req: &SendMessageRequest, json: bool) -> anyhow::Result<()> {
    let sent = c.send_message_outcome(req).await?;
    if json {
        return print_json(&sent.message);
    }
    let m = &sent.message;
    if sent.created {
        println!("sent {} (seq {}) to {}", m.id, m.seq, to_text(&m.to));
    } else {
        println!("already sent as {} (seq {}): nothing new was sent", m.id, m.seq);
    }
    Ok(())
}

pub async fn msg(cmd: MsgCommand) -> anyhow::Result<()> {
    match cmd {
        MsgCommand::Send {
            client: c,
            recipient: r,
            body: text,
            from,
            correlation_id,
            reply_to,
            ttl_ms,
            idempotency_key,
        } => {
            let mut req = SendMessageRequest::new(recipient(&r)?, body(&text));
            req.from = from.map(|f| agent_name("--from", &f)).transpose()?;
            req.correlation_id = correlation_id;
            req.reply_to = reply_to;
            req.ttl_ms = ttl_ms;
            req.idempotency_key = idempotency_key;
            send(&client(&c)?, &req, c.json).await?;
        }
        MsgCommand::Recv {
            client: c,
            agent,
            wait_ms,
            limit,
            after,
            ack,
        } => {
            let name = agent_name("--agent", &agent)?;
            let api = client(&c)?;
            let page = api.inbox(&name, after, Some(wait_ms), limit).await?;
            if ack && !page.messages.is_empty() {
                api.ack(&name, page.cursor).await?;
            }
            if c.json {
                return print_json(&page);
            }
            if page.messages.is_empty() {
                println!("no messages for {name}");
                return Ok(());
            }
            print_messages(&page.messages);
            if ack {
                println!("acknowledged up to {}", page.cursor);
            } else {
                println!("cursor {}: acknowledge with --ack, or they come again", page.cursor);
            }
        }
        MsgCommand::Tail {
            client: c,
            agent,
            after,
            ack,
            poll,
        } => {
            let name = agent_name("--agent", &agent)?;
            let api = client(&c)?;
            if poll {
                let mut cursor = after;
                loop {
                    let page = api.inbox(&name, cursor, Some(POLL_WAIT_MS), None).await?;
                    for m in &page.messages {
                        print_line(m, c.json)?;
                    }
                    if ack && !page.messages.is_empty() {
                        api.ack(&name, page.cursor).await?;
                    }
                    cursor = Some(page.cursor);
                }
            }
            let mut last = after;
            loop {
                let mut stream = api.inbox_stream(&name, last).await?;
                while let Some(m) = stream.next().await? {
                    print_line(&m, c.json)?;
                    if ack {
                        api.ack(&name, m.seq).await?;
                    }
                    last = Some(m.seq);
                }
                // The server ended the stream (a restart): resume where it stopped.
                eprintln!("stream ended; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        MsgCommand::Reply {
            client: c,
            agent,
            seq,
            body: text,
        } => {
            let name = agent_name("--agent", &agent)?;
            let api = client(&c)?;
            let page = api.inbox(&name, Some(seq.saturating_sub(1)), None, Some(1)).await?;
            let Some(original) = page.messages.into_iter().find(|m| m.seq == seq) else {
                bail!("{name}'s inbox has no message {seq} (expired, or not for {name})");
            };
            let Some(mut req) = SendMessageRequest::reply(&original, body(&text)) else {
                bail!("message {seq} names no sender to answer");
            };
            req.from = Some(name);
            send(&api, &req, c.json).await?;
        }
        MsgCommand::Subscribe {
            client: c,
            agent,
            topic,
        } => {
            let (name, topic) = (agent_name("--agent", &agent)?, topic_name(&topic)?);
            let subs = client(&c)?.subscribe(&name, &topic).await?;
            if c.json {
                return print_json(&subs);
            }
            print_topics(name.as_str(), &subs.topics);
        }
        MsgCommand::Unsubscribe {
            client: c,
            agent,
            topic,
        } => {
            let (name, topic) = (agent_name("--agent", &agent)?, topic_name(&topic)?);
            let subs = client(&c)?.unsubscribe(&name, &topic).await?;
            if c.json {
                return print_json(&subs);
            }
            print_topics(name.as_str(), &subs.topics);
        }
    }
    Ok(())
}

fn topic_name(t: &str) -> anyhow::Result<TopicName> {
    TopicName::parse(t).with_context(|| format!("topic {t:?}"))
}

fn print_topics(name: &str, topics: &[TopicName]) {
    if topics.is_empty() {
        println!("{name} subscribes to no topic");
    } else {
        let list: Vec<&str> = topics.iter().map(TopicName::as_str).collect();
        println!("{name} subscribes to {}", list.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_when_they_parse() {
        assert_eq!(body(r#"{"a": 1}"#), serde_json::json!({"a": 1}));
        assert_eq!(body("42"), serde_json::json!(42));
        assert_eq!(body("hello there"), serde_json::json!("hello there"));
    }

    #[test]
    fn long_bodies_are_cut() {
        let long = Value::String("x".repeat(200));
        assert_eq!(short(&long).chars().count(), BODY_WIDTH + 1);
    }
}
