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
        (name = "tokens", description = "API tokens (admin tokens only): make, list and revoke them"),
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

/// A problem answer, as every operation that can be refused lists it.
fn problem_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            crate::api::error::PROBLEM_JSON,
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build(),
        )
        .into()
}

/// Routes that answer without a token when authentication is on.
pub const OPEN_PATHS: &[&str] = &["/health/live", "/health/ready"];

/// Adds what operations share to the document generated from the handlers: the namespace header
/// (on namespaced `/v1` routes) with the 422 an invalid one gets, the refusals of a JSON body
/// (400, 413, 415, 422: the `JsonBody` extractor's), and with authentication, the bearer scheme
/// with its 401 and 403.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("ayt_…")
                .description(Some(
                    "An API token (`agentyard token create`). Needed when the server runs with --auth.",
                ))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let namespaced = path.starts_with("/v1/") && !path.starts_with("/v1/tokens");
        let secured = !OPEN_PATHS.contains(&path.as_str());
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            if namespaced {
                op.parameters.get_or_insert_with(Vec::new).insert(0, namespace_header());
                add_response(op, "422", "Invalid parameter (e.g. the namespace header)");
            }
            if op.request_body.is_some() {
                add_response(op, "400", "Malformed JSON");
                add_response(op, "413", "Body too large");
                add_response(op, "415", "Not JSON");
                add_response(op, "422", "Invalid field");
            }
            if secured {
                // Optional: a server without --auth takes requests without a token.
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                ]);
                add_response(op, "401", "No valid token (with --auth)");
                add_response(op, "403", "The token's role or namespaces do not allow it");
            }
        }
    }
}

/// Lists a problem answer under `status`, unless the handler's annotation already describes it.
fn add_response(op: &mut utoipa::openapi::path::Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| problem_response(description));
}
