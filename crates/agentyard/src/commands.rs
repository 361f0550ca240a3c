//! `agentyard task …` and `agentyard queue …`: talk to a running server through the client and
//! print readable tables (or JSON with `--json`).

use agentyard_client::Client;
use agentyard_core::api::{
    ClaimRequest, CompleteRequest, CreateTaskRequest, FailRequest, FailureReport, QueueStats, TaskPage,
};
use agentyard_core::{AgentName, Capability, LeaseToken, Namespace, QueueName, Task, TaskId, TaskStatus, Timestamp};
use anyhow::Context;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{ClientArgs, QueueCommand, TaskCommand};

pub(crate) fn client(args: &ClientArgs) -> anyhow::Result<Client> {
    let ns = Namespace::parse(args.namespace.clone()).with_context(|| format!("--namespace {:?}", args.namespace))?;
    let client = Client::new(&args.url).with_namespace(ns);
    match &args.token {
        Some(token) => Ok(client.with_token(token)?),
        None => Ok(client),
    }
}

pub(crate) fn json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{flag} is not valid JSON: {text}"))
}

pub(crate) fn task_id(s: &str) -> anyhow::Result<TaskId> {
    TaskId::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().copied());
    t
}

pub(crate) fn ago(t: Timestamp) -> String {
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    let ms = now.millis_since(t);
    if t > now {
        let ahead = t.millis_since(now);
        return format!("in {}", human_ms(ahead));
    }
    format!("{} ago", human_ms(ms))
}

pub(crate) fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}s", ms / 1_000),
        60_000..3_600_000 => format!("{}m", ms / 60_000),
        3_600_000..86_400_000 => format!("{}h", ms / 3_600_000),
        _ => format!("{}d", ms / 86_400_000),
    }
}

fn print_task(t: &Task) {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", t.id.to_string()),
        ("queue", t.queue.to_string()),
        ("status", t.status.to_string()),
        ("title", t.title.clone().unwrap_or_default()),
        ("priority", t.priority.to_string()),
        ("attempt", format!("{} of {}", t.attempt, t.max_attempts)),
        ("version", t.version.to_string()),
        ("run at", format!("{} ({})", t.run_at, ago(t.run_at))),
        ("created", format!("{} ({})", t.created_at, ago(t.created_at))),
        ("updated", format!("{} ({})", t.updated_at, ago(t.updated_at))),
    ];
    if let Some(l) = &t.lease {
        rows.push((
            "lease",
            format!("{} until {} ({})", l.agent, l.expires_at, ago(l.expires_at)),
        ));
        rows.push(("lease token", l.token.to_string()));
    }
    if let Some(k) = &t.idempotency_key {
        rows.push(("idempotency key", k.clone()));
    }
    rows.push(("input", t.input.to_string()));
    if !t.context.is_empty() {
        rows.push(("context", Value::Object(t.context.clone()).to_string()));
    }
    if let Some(p) = &t.progress {
        rows.push((
            "progress",
            format!(
                "{}% {}",
                p.percent.unwrap_or(0.0),
                p.message.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some(r) = &t.result {
        rows.push(("result", r.to_string()));
    }
    if let Some(e) = &t.error {
        rows.push((
            "error",
            format!("{}: {}{}", e.kind, e.message, if e.retryable { "" } else { " (final)" }),
        ));
    }
    for a in &t.artifacts {
        let what = a
            .uri
            .clone()
            .or_else(|| a.content.as_ref().map(Value::to_string))
            .unwrap_or_default();
        rows.push(("artifact", format!("{}: {what}", a.name)));
    }
    if let Some(f) = t.finished_at {
        rows.push(("finished", format!("{f} ({})", ago(f))));
    }
    let mut out = Table::new();
    out.load_preset(UTF8_BORDERS_ONLY);
    for (k, v) in rows {
        out.add_row(vec![k.to_owned(), v]);
    }
    println!("{out}");
}

fn print_tasks(tasks: &[Task]) {
    let mut t = table(&["ID", "QUEUE", "STATUS", "PRI", "ATTEMPT", "UPDATED", "TITLE"]);
    for task in tasks {
        t.add_row(vec![
            task.id.to_string(),
            task.queue.to_string(),
            task.status.to_string(),
            task.priority.to_string(),
            format!("{}/{}", task.attempt, task.max_attempts),
            ago(task.updated_at),
            task.title.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

pub async fn task(cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::Create {
            client: c,
            queue,
            input,
            title,
            kind,
            priority,
            delay_ms,
            max_attempts,
            idempotency_key,
            required_capabilities,
        } => {
            let queue = QueueName::parse(queue.clone()).with_context(|| format!("--queue {queue:?}"))?;
            let mut req = CreateTaskRequest::new(queue, json_arg("--input", &input)?);
            req.title = title;
            req.kind = kind;
            req.priority = priority;
            req.delay_ms = delay_ms;
            req.max_attempts = max_attempts;
            req.idempotency_key = idempotency_key;
            if !required_capabilities.is_empty() {
                let caps: Result<Vec<_>, _> = required_capabilities
                    .iter()
                    .map(|c| Capability::parse(c.clone()))
                    .collect();
                req.required_capabilities = Some(caps.context("--require")?);
            }
            let task = client(&c)?.create_task(&req).await?;
            if c.json {
                return print_json(&task);
            }
            println!("created {} on {} ({})", task.id, task.queue, task.status);
        }
        TaskCommand::History { client: c, id } => crate::event_commands::task_history(c, id).await?,
        TaskCommand::Get { client: c, id } => {
            let task = client(&c)?.get_task(task_id(&id)?).await?;
            if c.json {
                return print_json(&task);
            }
            print_task(&task);
        }
        TaskCommand::List {
            client: c,
            queue,
            status,
            limit,
            cursor,
        } => {
            let queue = queue.map(QueueName::parse).transpose().context("--queue")?;
            let status = match status {
                Some(s) => Some(TaskStatus::parse(&s).with_context(|| {
                    format!("--status {s:?}: use queued, scheduled, running, succeeded, failed or cancelled")
                })?),
                None => None,
            };
            let page: TaskPage = client(&c)?
                .list_tasks(queue.as_ref(), status, Some(limit), cursor.as_deref())
                .await?;
            if c.json {
                return print_json(&page);
            }
            if page.items.is_empty() {
                println!("no tasks");
            } else {
                print_tasks(&page.items);
            }
            if let Some(next) = page.next_cursor {
                println!("more: --cursor {next}");
            }
        }
        TaskCommand::Claim {
            client: c,
            queue,
            agent,
            max,
            wait_ms,
            lease_ms,
            capabilities,
        } => {
            let queue = QueueName::parse(queue.clone()).with_context(|| format!("--queue {queue:?}"))?;
            let agent = AgentName::parse(agent.clone()).with_context(|| format!("--agent {agent:?}"))?;
            let mut req = ClaimRequest::new(agent);
            req.max = Some(max);
            req.wait_ms = Some(wait_ms);
            req.lease_ms = lease_ms;
            if !capabilities.is_empty() {
                let caps: Result<Vec<_>, _> = capabilities.iter().map(|c| Capability::parse(c.clone())).collect();
                req.capabilities = Some(caps.context("--capability")?);
            }
            let tasks = client(&c)?.claim(&queue, &req).await?.tasks;
            if c.json {
                return print_json(&tasks);
            }
            if tasks.is_empty() {
                println!("nothing to claim on {queue}");
                return Ok(());
            }
            let mut t = table(&["ID", "ATTEMPT", "LEASE TOKEN", "EXPIRES", "TITLE"]);
            for task in &tasks {
                let lease = task.lease.as_ref();
                t.add_row(vec![
                    task.id.to_string(),
                    format!("{}/{}", task.attempt, task.max_attempts),
                    lease.map(|l| l.token.to_string()).unwrap_or_default(),
                    lease.map(|l| ago(l.expires_at)).unwrap_or_default(),
                    task.title.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
        }
        TaskCommand::Complete {
            client: c,
            id,
            lease_token,
            result,
        } => {
            let result = result.map(|r| json_arg("--result", &r)).transpose()?;
            let req = CompleteRequest {
                lease_token: LeaseToken::new(lease_token),
                result,
                artifacts: None,
            };
            let task = client(&c)?.complete(task_id(&id)?, &req).await?;
            if c.json {
                return print_json(&task);
            }
            println!("{} {}", task.id, task.status);
        }
        TaskCommand::Fail {
            client: c,
            id,
            lease_token,
            message,
            kind,
            no_retry,
        } => {
            let req = FailRequest {
                lease_token: LeaseToken::new(lease_token),
                error: FailureReport {
                    kind: Some(kind),
                    message,
                    retryable: Some(!no_retry),
                },
            };
            let task = client(&c)?.fail(task_id(&id)?, &req).await?;
            if c.json {
                return print_json(&task);
            }
            match task.status {
                TaskStatus::Scheduled => println!(
                    "{} will retry {} (attempt {} of {})",
                    task.id,
                    ago(task.run_at),
                    task.attempt,
                    task.max_attempts
                ),
                TaskStatus::Queued => println!("{} is queued for another attempt", task.id),
                s => println!(
                    "{} {s}: in the dead-letter view (agentyard task redrive {} to retry)",
                    task.id, task.id
                ),
            }
        }
        TaskCommand::Cancel { client: c, id } => {
            let task = client(&c)?.cancel(task_id(&id)?).await?;
            if c.json {
                return print_json(&task);
            }
            println!("{} {}", task.id, task.status);
        }
        TaskCommand::Redrive { client: c, id } => {
            let task = client(&c)?.redrive(task_id(&id)?).await?;
            if c.json {
                return print_json(&task);
            }
            println!("{} {}", task.id, task.status);
        }
    }
    Ok(())
}

pub async fn queue(cmd: QueueCommand) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::List { client: c } => {
            let queues: Vec<QueueStats> = client(&c)?.queues().await?.queues;
            if c.json {
                return print_json(&queues);
            }
            if queues.is_empty() {
                // An empty list is an answer, not a failure: scripts test the exit code.
                println!("no queues yet: create a task to make one");
                return Ok(());
            }
            let mut t = table(&[
                "QUEUE",
                "QUEUED",
                "SCHEDULED",
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
                "CANCELLED",
                "OLDEST READY",
            ]);
            for q in &queues {
                let c = q.counts;
                t.add_row(vec![
                    q.queue.to_string(),
                    c.queued.to_string(),
                    c.scheduled.to_string(),
                    c.running.to_string(),
                    c.succeeded.to_string(),
                    c.failed.to_string(),
                    c.cancelled.to_string(),
                    q.oldest_ready_age_ms.map(human_ms).unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}
