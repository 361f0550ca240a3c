//! `agentyard token …`: API tokens, made, listed and revoked through a server (with an admin
//! token) or straight in its store (`--store`, how the first admin token is made).

use std::sync::Arc;

use agentyard_client::Client;
use agentyard_core::auth::{IssuedToken, Namespaces, NewToken, Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Clock, Namespace, SystemClock};
use agentyard_server::auth::issue::issue;
use agentyard_store::Yard;
use agentyard_store_sqlite::Durability;
use anyhow::{Context, bail};

use crate::cli::{TokenCommand, TokenTarget};
use crate::commands::{print_json, table};
use crate::settings::StoreUrl;
use crate::store::open_store;

/// Where the command works.
enum Target {
    Server(Client),
    Store(Arc<dyn Yard>),
}

async fn target(t: &TokenTarget) -> anyhow::Result<Target> {
    let Some(url) = &t.store else {
        let client = Client::new(&t.url);
        return Ok(Target::Server(match &t.token {
            Some(token) => client.with_token(token)?,
            None => client,
        }));
    };
    let url = StoreUrl::parse(url)?;
    if matches!(url, StoreUrl::Memory) {
        bail!("a memory:// store lives only inside its server: make the token through the server (leave out --store)");
    }
    let store = open_store(&url, Durability::Normal, false)
        .await
        .context("cannot work in the store directly; while a server runs on it, make tokens through the server with an admin token (leave out --store)")?;
    Ok(Target::Store(store))
}

fn new_token(role: &str, namespaces: Vec<String>, agent: Option<String>, name: String) -> anyhow::Result<NewToken> {
    let Some(role) = Role::parse(role) else {
        bail!("--role {role:?}: use admin, operator, agent or reader");
    };
    let namespaces = if namespaces.is_empty() {
        None
    } else if namespaces.iter().any(|n| n == "*") {
        if namespaces.len() > 1 {
            bail!("--namespace *: it already means every namespace, so give it alone");
        }
        Some(Namespaces::All)
    } else {
        let list = namespaces
            .iter()
            .map(|n| Namespace::parse(n.as_str()).with_context(|| format!("--namespace {n:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Namespaces::only(list)
    };
    let agent = agent
        .map(|a| AgentName::parse(a.as_str()).with_context(|| format!("--agent {a:?}")))
        .transpose()?;
    Ok(NewToken {
        role,
        namespaces,
        agent,
        name,
    })
}

pub async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            role,
            namespaces,
            agent,
            name,
            target: t,
        } => {
            let new = new_token(&role, namespaces, agent, name)?;
            let issued = match target(&t).await? {
                Target::Server(client) => client.create_token(&new).await?,
                Target::Store(store) => issue(&*store, new, SystemClock.now()).await?,
            };
            show_issued(&issued, t.json)
        }
        TokenCommand::List { target: t } => {
            let tokens = match target(&t).await? {
                Target::Server(client) => client.tokens().await?,
                Target::Store(store) => store.list_tokens().await?.into_iter().map(|t| t.info).collect(),
            };
            if t.json {
                return print_json(&tokens);
            }
            if tokens.is_empty() {
                println!("no tokens yet: make the first with `agentyard token create --role admin --store URL`");
                return Ok(());
            }
            let mut tbl = table(&["ID", "ROLE", "NAMESPACES", "AGENT", "NAME", "CREATED", "REVOKED"]);
            for info in &tokens {
                tbl.add_row(row(info));
            }
            println!("{tbl}");
            Ok(())
        }
        TokenCommand::Revoke { id, target: t } => {
            let id = TokenId::parse(id.as_str()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let revoked = match target(&t).await? {
                Target::Server(client) => client.revoke_token(&id).await?,
                Target::Store(store) => match store.revoke_token(&id, SystemClock.now()).await? {
                    Some(token) => token.info,
                    None => bail!("no token {id}"),
                },
            };
            if t.json {
                return print_json(&revoked);
            }
            let at = revoked.revoked_at.map(|at| at.to_string()).unwrap_or_default();
            println!(
                "revoked token {id} ({} {}) at {at}",
                revoked.role,
                revoked.namespaces.describe()
            );
            Ok(())
        }
    }
}

fn row(info: &TokenInfo) -> Vec<String> {
    vec![
        info.id.to_string(),
        info.role.to_string(),
        info.namespaces.describe(),
        info.agent.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
        if info.name.is_empty() {
            "-".to_owned()
        } else {
            info.name.clone()
        },
        info.created_at.to_string(),
        info.revoked_at.map_or_else(|| "-".to_owned(), |at| at.to_string()),
    ]
}

/// The token alone on stdout (so `TOKEN=$(agentyard token create …)` works), what it allows on
/// stderr.
fn show_issued(issued: &IssuedToken, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(issued);
    }
    println!("{}", issued.token);
    let info = &issued.info;
    let agent = info
        .agent
        .as_ref()
        .map(|a| format!(" as agent {a}"))
        .unwrap_or_default();
    eprintln!(
        "made token {} ({} in {}{agent}): keep it now, it is not stored and cannot be shown again",
        info.id,
        info.role,
        info.namespaces.describe()
    );
    Ok(())
}
