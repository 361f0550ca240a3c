//! The `agentyard` binary: the server and a command-line client for it.

mod bench;
mod cli;
mod commands;
mod serve;
mod settings;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Task(cmd) => commands::task(cmd).await,
        Command::Queue(cmd) => commands::queue(cmd).await,
        Command::Bench(args) => bench::bench(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
