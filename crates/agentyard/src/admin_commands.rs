//! `agentyard admin …`: maintenance of a running server (admin tokens).

use clap::Subcommand;

use crate::cli::ClientArgs;
use crate::commands::{client, print_json};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Delete history older than the server's retention ages now (finished tasks, events,
    /// acknowledged or expired messages, idempotency keys), as its retention loop does every
    /// minute.
    Prune {
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Prune { client: c } => {
            let pruned = client(&c)?.prune().await?;
            if c.json {
                return print_json(&pruned);
            }
            println!(
                "pruned {} finished tasks, {} events, {} messages and {} idempotency keys",
                pruned.tasks, pruned.events, pruned.messages, pruned.idempotency_keys
            );
        }
    }
    Ok(())
}
