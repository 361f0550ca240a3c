//! The messages suite: direct and broadcast send/receive rates. It needs the messaging API
//! (`POST /v1/messages`, `GET /v1/agents/{name}/inbox`); against a server without it, the suite
//! says so and measures nothing.

use crate::bench::{Bench, Outcome};

/// The routes the suite drives, as the OpenAPI document names them.
const ROUTES: [&str; 2] = ["/v1/messages", "/v1/agents/{name}/inbox"];

pub async fn run(bench: &Bench) -> anyhow::Result<Outcome> {
    let target = bench.target().await?;
    let doc = target.client.openapi().await?;
    let missing: Vec<&str> = ROUTES
        .iter()
        .copied()
        .filter(|r| doc["paths"].get(*r).is_none())
        .collect();
    if !missing.is_empty() {
        println!(
            "\nmessages: skipped: the suite needs the messaging API, and this server lacks {}",
            missing.join(" and ")
        );
        return Ok(Outcome::default());
    }
    println!("\nmessages: skipped: the server has the messaging API but this build's bench does not drive it yet");
    Ok(Outcome::default())
}
