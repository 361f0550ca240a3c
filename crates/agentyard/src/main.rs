//! The `agentyard` binary: the server and a command-line client for it.

mod admin_commands;
mod agent_commands;
mod bench;
mod cli;
mod commands;
mod event_commands;
mod msg_commands;
mod retention_settings;
mod serve;
mod settings;
mod store;
mod token_commands;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Task(cmd) => commands::task(cmd).await,
        Command::Queue(cmd) => commands::queue(cmd).await,
        Command::Agent(cmd) => agent_commands::agent(cmd).await,
        Command::Msg(cmd) => msg_commands::msg(cmd).await,
        Command::Limit(cmd) => agent_commands::limit(cmd).await,
        Command::Token(cmd) => token_commands::token(cmd).await,
        Command::Events(cmd) => event_commands::events(cmd).await,
        Command::Admin(cmd) => admin_commands::admin(cmd).await,
        Command::Bench(args) => bench::bench(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(agentyard_client::ClientError::Transport(_)) = e.downcast_ref() {
                eprintln!(
                    "hint: is `agentyard serve` running there? Point to another server with --url or AGENTYARD_URL"
                );
            }
            std::process::ExitCode::FAILURE
        }
    }
}
