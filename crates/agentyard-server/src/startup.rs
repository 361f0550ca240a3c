//! Start-up: the router with its layers, and `run`, which serves it (through
//! [`crate::http::connections`]) with the timer loop and the agent expiry loop beside it until the
//! shutdown future completes, then drains gracefully.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use agentyard_store::RemoteChange;

use crate::api::{self, ApiError};
use crate::dispatch::{AgentExpiry, Retention, Timers, WebhookLoop};
use crate::state::AppState;
use crate::{auth, http, metrics};

/// The whole HTTP API, ready to serve (or to call in tests without a socket).
pub fn router(state: AppState) -> Router {
    let (router, mut doc) = api::routes().split_for_parts();
    api::openapi::finish(&mut doc);
    // Rendered once: the document never changes while the process runs.
    let doc: Arc<[u8]> = match serde_json::to_vec(&doc) {
        Ok(bytes) => bytes.into(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the OpenAPI document");
            Arc::from(&b"{}"[..])
        }
    };
    let openapi = get(move || {
        let doc = doc.clone();
        async move {
            let mut response = axum::body::Body::from(axum::body::Bytes::copy_from_slice(&doc)).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
    });
    let router = router
        .route("/openapi.json", openapi)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::gate::authenticate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wake_event_followers,
        ))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            metrics::count_problems,
        ));
    let request_metrics = state.counters.http.clone();
    http::layers(router, &state.config, request_metrics).with_state(state)
}

/// A request that may have changed the yard (any but GET and HEAD) wakes the event log's
/// followers once it is answered: whatever it committed logged its events in the same commit.
async fn wake_event_followers(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        s.dispatch.events.poke();
    }
    response
}

async fn no_such_route(method: Method, uri: Uri) -> Response {
    ApiError::NoSuchRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
    .into_response()
}

/// Loads the stored limits, and with a store shared by several nodes, has it report their changes:
/// parked claimers and inbox readers wake for tasks and messages made through any node, the limit
/// cache follows theirs, and rate buckets live in the store.
async fn watch_other_nodes(state: &AppState) {
    let limits = state.fleet.limits.clone();
    if let Err(e) = limits.reload(&*state.store).await {
        tracing::error!(error = %e, "cannot load the stored dispatch limits; only the configured ones apply until they load");
    }
    let dispatch = state.dispatch.clone();
    let tokens = state.tokens.clone();
    // Weak: the store holds the listener that holds this, and must still drop at shutdown.
    let store = Arc::downgrade(&state.store);
    let reload = move || {
        let Some(store) = store.upgrade() else { return };
        let limits = limits.clone();
        tokio::spawn(async move {
            if let Err(e) = limits.reload(&*store).await {
                tracing::warn!(error = %e, "cannot reload the dispatch limits another node changed");
            }
        });
    };
    let shared = state.store.watch_remote(Arc::new(move |change: RemoteChange| {
        dispatch.remote_changed(&change);
        if matches!(change, RemoteChange::TokensChanged | RemoteChange::Resync) {
            tokens.forget_all();
        }
        if matches!(change, RemoteChange::LimitsChanged | RemoteChange::Resync) {
            reload();
        }
    }));
    state.fleet.limits.use_shared_buckets(shared);
}

/// Serves the API on `listener` (HTTPS when the config has TLS) and runs the timer loop until
/// `shutdown` completes; then stops accepting connections, releases parked long-poll claimers,
/// finishes requests in flight and stops the loop.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means stop.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    watch_other_nodes(&state).await;
    let timers = tokio::spawn(Timers::new(state.clone()).run(stopped(stop_rx.clone())));
    let agents = tokio::spawn(AgentExpiry::new(state.clone()).run(stopped(stop_rx.clone())));
    let retention = tokio::spawn(Retention::new(state.clone()).run(stopped(stop_rx.clone())));
    let webhooks = tokio::spawn(WebhookLoop::new(state.clone()).run(stop_rx));
    let dispatch = state.dispatch.clone();
    let config = state.config.clone();
    let app = router(state);
    let served = http::connections::serve(listener, app, &config, async move {
        shutdown.await;
        dispatch.shut_down();
    })
    .await;
    let _ = stop_tx.send(true);
    if let Err(e) = timers.await {
        tracing::error!(error = %e, "the timer loop panicked");
    }
    if let Err(e) = agents.await {
        tracing::error!(error = %e, "the agent expiry loop panicked");
    }
    if let Err(e) = retention.await {
        tracing::error!(error = %e, "the retention loop panicked");
    }
    if let Err(e) = webhooks.await {
        tracing::error!(error = %e, "the webhook loop panicked");
    }
    served
}
