//! `agentyard serve`: opens the store named by the settings and runs the server until a signal.

use std::sync::Arc;
use std::time::Duration;

use agentyard_core::SystemClock;
use agentyard_server::config::Tls;
use agentyard_server::{AppState, ServerConfig};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::settings::{LogFormat, Settings};
use crate::store::open_store;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    init_logging(settings.log_format);
    let tls = match &settings.tls {
        Some(files) => Some(
            Tls::from_pem_files(&files.cert, &files.key)
                .with_context(|| format!("cannot serve HTTPS with --tls-cert {}", files.cert.display()))?,
        ),
        None => None,
    };
    // Connections are descriptors: let the cap (--max-connections) have what the system allows.
    match agentyard_server::http::connections::raise_descriptor_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(before, after, "raised the descriptor limit to the hard limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let store = open_store(&settings.store, settings.durability, settings.repair).await?;
    let config = ServerConfig {
        listen: settings.listen,
        default_lease_ms: settings.lease_ms,
        max_queue_depth: Some(settings.max_queue_depth),
        body_limit_bytes: settings.body_limit,
        answer_budget_bytes: settings.answer_budget,
        max_inbox_depth: Some(settings.max_inbox_depth),
        agent_timeout_ms: settings.agent_timeout_ms,
        forget_gone_agents_after_ms: settings.forget_gone_agents_after_ms,
        max_agents_per_namespace: Some(settings.max_agents_per_namespace),
        agent_rate: settings.agent_rate,
        limits: settings.limits.clone(),
        namespaces: settings.namespaces.clone(),
        header_timeout: Duration::from_millis(settings.header_timeout_ms),
        body_timeout: Duration::from_millis(settings.body_timeout_ms),
        idle_timeout: Duration::from_millis(settings.idle_timeout_ms),
        max_connections: settings.max_connections,
        tls,
        auth: settings.auth,
        retention: settings.retention.clone(),
        ..ServerConfig::default()
    };
    if settings.insecure_no_auth {
        tracing::warn!(listen = %settings.listen, "authentication is off (--insecure-no-auth): anyone who reaches this address can do anything");
    } else if settings.auth {
        tracing::info!("authentication is on: every request but /health/live and /health/ready needs a token");
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, %scheme, store = %settings.store, durability = settings.durability.as_str(), "agentyard is listening");
    // Scripts and tests read this line to learn the address (useful with port 0).
    println!("listening on {scheme}://{addr}");
    let state = AppState::new(store, Arc::new(SystemClock), config);
    agentyard_server::startup::run(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("AGENTYARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
