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
                       (application/problem+json) with a stable `type`. Integer fields take JSON integers written \
                       without a fraction or an exponent (`2`, not `2.0`); text bounds count bytes of UTF-8."
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
        (name = "events", description = "The event log: every change of a task, agent, message or limit, read \
                                        by offset, followed by Server-Sent Events, or by correlation id (traces)"),
        (name = "webhooks", description = "Events POSTed to your endpoints: signed, in order, at least once, \
                                          retried with backoff, paused by a circuit breaker"),
        (name = "admin", description = "Maintenance across namespaces (admin tokens only)"),
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
    for (name, keywords) in cross_field_rules() {
        add_keywords(components, name, keywords);
    }
    broadcast_is_true(components);
    components.schemas.insert("InboxEvent".to_owned(), inbox_event().into());
    components.schemas.insert("LogEvent".to_owned(), log_event().into());
    for (path, item) in doc.paths.paths.iter_mut() {
        let sse = match path.as_str() {
            "/v1/agents/{name}/inbox/stream" => Some("InboxEvent"),
            "/v1/events/stream" => Some("LogEvent"),
            _ => None,
        };
        if let Some(sse) = sse
            && let Some(utoipa::openapi::RefOr::T(ok)) =
                item.get.as_mut().and_then(|op| op.responses.responses.get_mut("200"))
            && let Some(stream) = ok.content.get_mut("text/event-stream")
        {
            stream.schema = Some(utoipa::openapi::Ref::from_schema_name(sse).into());
        }
        let namespaced = path.starts_with("/v1/") && !path.starts_with("/v1/tokens") && !path.starts_with("/v1/admin/");
        let secured = !OPEN_PATHS.contains(&path.as_str());
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.parameters.iter_mut().flatten().for_each(never_null);
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

/// Pattern of a name (namespace, queue, agent, topic, capability).
const NAME: &str = "^[a-z0-9][a-z0-9._-]{0,127}$";

/// Rules of a request body across its fields, which the derived schemas cannot state: JSON Schema
/// keywords (`anyOf`, `oneOf`, `if`/`then`) added to the component schemas by name. Each mirrors
/// a check of the server's; the check stays the authority, this only tells clients about it.
fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let non_null = |field: &str, schema: serde_json::Value| json!({"required": [field], "properties": {field: schema}});
    vec![
        // UpdateTaskRequest::into_patch: an update changes something (422 otherwise).
        (
            "UpdateTaskRequest",
            json!({"anyOf": [
                non_null("title", json!({"type": "string"})),
                non_null("priority", json!({"type": "integer"})),
                non_null("input", json!({"not": {"type": "null"}})),
                non_null("context", json!({"type": "object"})),
                non_null("artifacts", json!({"type": "array", "minItems": 1})),
                non_null("progress", json!({"type": "object"})),
                non_null("status", json!({"type": "string"})),
            ]}),
        ),
        // check_artifacts: an artifact has a uri or a content.
        (
            "NewArtifact",
            json!({"anyOf": [
                non_null("uri", json!({"type": "string"})),
                non_null("content", json!({"not": {"type": "null"}})),
            ]}),
        ),
        // LimitRequest::into_limit: a rate or a concurrency cap, and a burst only with a rate.
        (
            "LimitRequest",
            json!({
                "anyOf": [
                    non_null("rate_per_minute", json!({"type": "integer"})),
                    non_null("max_concurrent", json!({"type": "integer"})),
                ],
                "if": non_null("burst", json!({"type": "integer"})),
                "then": non_null("rate_per_minute", json!({"type": "integer"})),
            }),
        ),
        // completions(): each task at most once (the same item twice is that task twice).
        (
            "CompleteManyRequest",
            json!({"properties": {"items": {"uniqueItems": true}}}),
        ),
        (
            "ClaimRequest",
            json!({"properties": {"complete": {"uniqueItems": true}}}),
        ),
        // CreateTaskRequest::into_new_task: run_at or delay_ms, not both.
        (
            "CreateTaskRequest",
            json!({"not": {
                "required": ["run_at", "delay_ms"],
                "properties": {"run_at": {"type": "string"}, "delay_ms": {"type": "integer"}},
            }}),
        ),
        // Namespaces' deserializer and auth::issue::grant_of: `["*"]` or a list of names; admin
        // tokens cover every namespace (leave them out), the others name theirs; an agent token
        // names its agent and not `*`, no other role has an agent.
        (
            "NewToken",
            json!({
                "properties": {"namespaces": {"anyOf": [
                    {"type": "null"},
                    {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": format!("^\\*$|{NAME}")}},
                ]}},
                "anyOf": [
                    {"properties": {
                        "role": {"enum": ["admin"]},
                        "namespaces": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 1, "items": {"enum": ["*"]}}]},
                        "agent": {"type": "null"},
                    }},
                    {"required": ["namespaces"], "properties": {
                        "role": {"enum": ["operator", "reader"]},
                        "namespaces": {"anyOf": [
                            {"type": "array", "maxItems": 1, "items": {"enum": ["*"]}},
                            {"type": "array", "items": {"pattern": NAME}},
                        ]},
                        "agent": {"type": "null"},
                    }},
                    {"required": ["namespaces", "agent"], "properties": {
                        "role": {"enum": ["agent"]},
                        "namespaces": {"type": "array", "items": {"pattern": NAME}},
                        "agent": {"type": "string"},
                    }},
                ],
            }),
        ),
    ]
}

/// Adds JSON Schema keywords to the component schema `name` (an object schema).
fn add_keywords(components: &mut utoipa::openapi::Components, name: &str, keywords: serde_json::Value) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) else {
        debug_assert!(false, "no object schema {name} to add rules to");
        return;
    };
    let extensions = object.extensions.get_or_insert_with(Default::default);
    if let serde_json::Value::Object(keywords) = keywords {
        for (keyword, value) in keywords {
            // A `properties` keyword narrows properties the derived schema has: merge them in
            // through `allOf` rather than replace the derived ones.
            if keyword == "properties" {
                extensions.insert("allOf".to_owned(), serde_json::json!([{"properties": value}]));
            } else {
                extensions.insert(keyword, value);
            }
        }
    }
}

/// `{"broadcast": true}`: the only broadcast recipient the server takes (`false` is a 422).
fn broadcast_is_true(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut("Recipient") else {
        debug_assert!(false, "Recipient is not a oneOf");
        return;
    };
    for item in one_of.items.iter_mut() {
        if let RefOr::T(Schema::Object(object)) = item
            && let Some(RefOr::T(Schema::Object(flag))) = object.properties.get_mut("broadcast")
        {
            flag.enum_values = Some(vec![serde_json::json!(true)]);
        }
    }
}

/// One event of the inbox stream: `id` is the message's `seq`, `event` is `message`, `data` is
/// the message as JSON (OpenAPI 3.1: the media type's schema describes each event).
fn inbox_event() -> utoipa::openapi::schema::Object {
    sse_event(
        "One Server-Sent Event: `id` is the message's `seq` (send it back as `Last-Event-ID` to \
         resume), `event` is `message`, `data` is the message as JSON. Idle streams get comment lines.",
        &["message"],
        "Message",
    )
}

/// One event of `GET /v1/events/stream`.
fn log_event() -> utoipa::openapi::schema::Object {
    let names: Vec<&str> = agentyard_core::event::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    sse_event(
        "One Server-Sent Event: `id` is the event's `seq` (send it back as `Last-Event-ID` to \
         resume), `event` is its type, `data` is the event as JSON. Idle streams get comment lines.",
        &names,
        "Event",
    )
}

/// A Server-Sent Event whose `event` is one of `names` and whose data is the JSON of `schema`.
fn sse_event(description: &str, names: &[&str], schema: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::extensions::Extensions;
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property(
            "id",
            ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]+$")),
        )
        .required("id")
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names.iter().copied())),
        )
        .required("event")
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .extensions(Some(Extensions::from_iter([(
                    "contentSchema",
                    serde_json::json!({ "$ref": format!("#/components/schemas/{schema}") }),
                )]))),
        )
        .required("data")
        .build()
}

/// A parameter left out is absent, never `null`: utoipa types an optional one as `[T, "null"]`,
/// which a client (or a test tool) would send as the text `null`.
fn never_null(parameter: &mut Parameter) {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::{RefOr, Schema};
    if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
        && let SchemaType::Array(types) = &object.schema_type
    {
        let types: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
        if let [only] = types.as_slice() {
            object.schema_type = SchemaType::Type(only.clone());
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
