//! The fleet's `scout` in Rust: the same worker as `examples/python/worker.py`'s, on the Rust
//! `Worker`. It takes `pages` tasks (they require `web`), "downloads" the page, queues its text
//! as a `summarize` task for the Python `writer` and `polyglot`, and tells the `fetched` topic.
//!
//!     cargo run -p agentyard-client --example worker        # Ctrl-C stops it gracefully
//!
//! It talks to `$AGENTYARD_URL` (default `http://127.0.0.1:7070`) in `$AGENTYARD_NAMESPACE`
//! (default `default`), with `$AGENTYARD_TOKEN` when the server runs with `--auth`.

use std::time::Duration;

use agentyard_client::worker::{JobError, Worker};
use agentyard_client::{Client, ClientError};
use agentyard_core::api::{CreateTaskRequest, SendMessageRequest};
use agentyard_core::message::{Recipient, TopicName};
use agentyard_core::{AgentName, Capability, Namespace, QueueName};
use serde_json::json;

const NAME: &str = "rust-scout";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let url = std::env::var("AGENTYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".to_owned());
    let namespace = std::env::var("AGENTYARD_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    let mut client = Client::new(url).with_namespace(Namespace::parse(namespace)?);
    if let Ok(token) = std::env::var("AGENTYARD_TOKEN") {
        client = client.with_token(&token)?;
    }
    let handler_client = client.clone();
    let report = Worker::new(client, AgentName::parse(NAME)?)
        .capabilities(vec![Capability::parse("web")?])
        .concurrency(2)
        .shutdown_grace(Duration::from_secs(10))
        .handle(QueueName::parse("pages")?, move |job| {
            let client = handler_client.clone();
            async move {
                let Some(url) = job.task.input["url"].as_str().map(str::to_owned) else {
                    return Err(JobError::fatal("the task has no url").kind("bad_input"));
                };
                tokio::time::sleep(Duration::from_millis(200)).await; // the network
                let text = format!("{url} explains how agents share work. It has many more sentences. The end.");
                let mut summarize = CreateTaskRequest::new(
                    QueueName::parse("texts").expect("valid"),
                    json!({"url": url, "text": text}),
                );
                summarize.kind = Some("summarize".to_owned());
                summarize.required_capabilities = Some(vec![Capability::parse("llm").expect("valid")]);
                summarize.correlation_id = job.task.correlation_id.clone();
                // A retried fetch does not queue the summary twice.
                summarize.idempotency_key = Some(format!("summarize:{}", job.task.id));
                client.create_task(&summarize).await.map_err(retry)?;
                let mut news = SendMessageRequest::new(
                    Recipient::Topic {
                        topic: TopicName::parse("fetched").expect("valid"),
                    },
                    json!({"url": url, "chars": text.len()}),
                );
                news.from = Some(AgentName::parse(NAME).expect("valid"));
                client.send_message(&news).await.map_err(retry)?;
                Ok(json!({"chars": text.len(), "by": NAME}))
            }
        })
        .run()
        .await?;
    println!(
        "worker {NAME} stopped: {} completed, {} failed, {} given back",
        report.completed, report.failed, report.released
    );
    Ok(())
}

/// A call to the server that failed: worth another attempt.
fn retry(e: ClientError) -> JobError {
    JobError::retry(e.to_string()).kind("agentyard")
}
