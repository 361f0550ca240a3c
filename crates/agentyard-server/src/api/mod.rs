//! The HTTP API: handlers by resource, the error type, the extractors and the OpenAPI document.

pub mod admin;
pub mod agent_rate;
pub mod agents;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod json;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod queues;
pub mod release;
pub mod tasks;
pub mod tokens;
pub mod webhooks;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use error::{ApiError, Problem};

/// Every route with its OpenAPI description: the single list both the router and the document
/// are built from.
pub fn routes() -> OpenApiRouter<AppState> {
    let mut doc = openapi::ApiDoc::openapi();
    doc.tags.get_or_insert_with(Vec::new).push(
        utoipa::openapi::tag::TagBuilder::new()
            .name("metrics")
            .description(Some("Prometheus metrics"))
            .build(),
    );
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::detailed))
        .routes(routes!(metrics::metrics))
        .routes(routes!(tasks::create_task, tasks::list_tasks))
        .routes(routes!(tasks::create_tasks))
        .routes(routes!(tasks::get_task, tasks::update_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(tasks::redrive_task))
        .routes(routes!(tasks::heartbeat))
        .routes(routes!(tasks::complete))
        .routes(routes!(tasks::complete_many))
        .routes(routes!(tasks::fail))
        .routes(routes!(release::release_task))
        .routes(routes!(queues::list_queues))
        .routes(routes!(queues::queue_stats))
        .routes(routes!(queues::claim))
        .routes(routes!(queues::redrive_queue))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent, agents::register_agent, agents::remove_agent))
        .routes(routes!(agents::heartbeat_agent))
        .routes(routes!(agents::drain_agent))
        .routes(routes!(messages::send_message))
        .routes(routes!(messages::read_inbox))
        .routes(routes!(messages::ack_inbox))
        .routes(routes!(messages::stream_inbox))
        .routes(routes!(messages::subscribe, messages::unsubscribe))
        .routes(routes!(messages::list_subscriptions))
        .routes(routes!(limits::list_limits))
        .routes(routes!(limits::set_limit, limits::get_limit, limits::delete_limit))
        .routes(routes!(admin::prune))
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(events::get_trace))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::get_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    openapi::finish(&mut doc);
    doc
}
