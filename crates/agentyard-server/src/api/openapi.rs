//! The OpenAPI document. Paths come from the handlers' `#[utoipa::path]` annotations through
//! utoipa-axum's `routes!`, so the router and the document are built from the same list; this
//! file adds what is common to every operation (the namespace header) and the top-level info.

use utoipa::OpenApi;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::api::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentyard",
        description = "The coordination yard for fleets of AI agents: tasks wait in queues, get claimed \
                       under leases, retried and finished; agents register, heartbeat and message each other. Errors are RFC 9457 problem documents \
                       (application/problem+json) with a stable `type`."
    ),
    components(schemas(Problem)),
    tags(
        (name = "tasks", description = "Creating, reading and changing tasks"),
        (name = "leases", description = "What agents do: claim, heartbeat, complete, fail"),
        (name = "queues", description = "Queue counts and bulk operations"),
        (name = "agents", description = "Registering agents, their liveness, draining and removing them"),
        (name = "messages", description = "Direct, topic and broadcast messages; inboxes read by long poll or \
                                          Server-Sent Events and acknowledged by cursor"),
        (name = "limits", description = "Keyed dispatch limits: rate_limit_key token buckets and \
                                        concurrency_key caps"),
        (name = "health", description = "Liveness, readiness and degradation"),
    )
)]
pub struct ApiDoc;

fn namespace_header() -> Parameter {
    ParameterBuilder::new()
        .name("Agentyard-Namespace")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some("The namespace (tenant) of the request; `default` when left out."))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-z0-9][a-z0-9._-]{0,127}$"))
                .default(Some(serde_json::json!("default"))),
        ))
        .build()
}

/// Adds what every `/v1` operation shares to the document generated from the handlers.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.parameters.get_or_insert_with(Vec::new).insert(0, namespace_header());
        }
    }
}
