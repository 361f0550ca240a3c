//! Request extractors that turn every malformed input into an [`ApiError`] naming what is wrong:
//! JSON bodies (with the path of a bad field), the namespace header, path parameters, `If-Match`.

use agentyard_core::{AgentName, Namespace, QueueName, TaskId};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

/// The header naming the namespace of a request.
pub const NAMESPACE_HEADER: &str = "agentyard-namespace";

/// A JSON request body. Unlike axum's `Json`, its rejections are problem bodies: 415 for a wrong
/// content type, 413 over the body limit, 400 for broken JSON and 422 with the path of the field
/// for JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Serialize> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "the body must be JSON: send Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.config.body_limit_bytes,
                }
            } else if let Some(late) = timed_out(&r) {
                ApiError::RequestTimeout {
                    timeout_ms: u64::try_from(late.timeout.as_millis()).unwrap_or(u64::MAX),
                }
            } else {
                ApiError::MalformedBody(format!("cannot read the body: {}", r.body_text()))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body deadline's error, if that is why the body could not be read.
fn timed_out<'a>(rejection: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::http::BodyTimedOut> {
    let mut cause = Some(rejection);
    while let Some(e) = cause {
        if let Some(late) = e.downcast_ref::<crate::http::BodyTimedOut>() {
            return Some(late);
        }
        cause = e.source();
    }
    None
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.split_once('/').is_some_and(|(t, sub)| {
            t.eq_ignore_ascii_case("application") && sub.to_ascii_lowercase().ends_with("+json")
        })
}

/// Parses a JSON body, reporting where a value of the wrong shape is (`tasks[3].queue`).
pub fn parse_json<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every request body is an object; serde would also take a struct from an array of its
    // fields in order (`["q"]` for `{"queue": "q"}`).
    if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace())
        && *first == b'['
    {
        return Err(ApiError::invalid("body", "must be a JSON object, not an array"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => {
                let message = strip_position(&inner.to_string());
                ApiError::InvalidField {
                    field: field_path(&path, &message),
                    detail: message,
                }
            }
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedBody(format!("the body is not valid JSON: {inner}"))
            }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    if bytes.contains(&b'[') {
        objects_not_arrays(bytes, &value)?;
    }
    Ok(value)
}

/// serde takes a struct from an array of its fields in order, also inside a body
/// (`"progress": [50, "half"]`): the parsed value is written back and compared with what was
/// sent, and an array where the value has an object is refused, naming the field.
fn objects_not_arrays<T: Serialize>(bytes: &[u8], value: &T) -> Result<(), ApiError> {
    use serde_json::Value;
    fn walk(sent: &Value, parsed: &Value, path: &mut String) -> Result<(), ApiError> {
        match (sent, parsed) {
            (Value::Array(_), Value::Object(_)) => Err(ApiError::invalid(
                if path.is_empty() { "body" } else { path.as_str() },
                "must be a JSON object, not an array",
            )),
            (Value::Object(sent), Value::Object(parsed)) => {
                for (key, sent) in sent {
                    if let Some(parsed) = parsed.get(key) {
                        let len = path.len();
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(key);
                        walk(sent, parsed, path)?;
                        path.truncate(len);
                    }
                }
                Ok(())
            }
            (Value::Array(sent), Value::Array(parsed)) => {
                for (i, (sent, parsed)) in sent.iter().zip(parsed).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(sent, parsed, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    let (Ok(sent), Ok(parsed)) = (serde_json::from_slice::<Value>(bytes), serde_json::to_value(value)) else {
        return Ok(());
    };
    walk(&sent, &parsed, &mut String::new())
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

/// The path of the offending field. Errors about a missing or unknown field are raised at its
/// parent, so the field's own name (from the message) is appended.
fn field_path(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (named, parent) {
        (Some(name), "") => name.to_owned(),
        (Some(name), parent) if !parent.ends_with(name) => format!("{parent}.{name}"),
        (_, "") => "body".to_owned(),
        (_, parent) => parent.to_owned(),
    }
}

/// The namespace from the `Agentyard-Namespace` header; `default` without one.
pub struct Ns(pub Namespace);

impl<S: Send + Sync> FromRequestParts<S> for Ns {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(NAMESPACE_HEADER) else {
            let ns = Namespace::default();
            if let Some(caller) = parts.extensions.get::<Caller>() {
                caller.may_act_in(&ns)?;
            }
            return Ok(Ns(ns));
        };
        let field = "Agentyard-Namespace";
        let text = value
            .to_str()
            .map_err(|_| ApiError::invalid(field, "is not visible ASCII"))?;
        let ns =
            Namespace::parse(text).map_err(|e| ApiError::invalid(field, format!("invalid namespace {text:?}: {e}")))?;
        if let Some(caller) = parts.extensions.get::<Caller>() {
            caller.may_act_in(&ns)?;
        }
        Ok(Ns(ns))
    }
}

async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(v)| v)
        .map_err(|e| ApiError::invalid(name, e.body_text()))
}

/// The `{id}` path parameter: 422 when it is not a task id.
pub struct TaskIdParam(pub TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "id").await?;
        TaskId::parse(&raw)
            .map(TaskIdParam)
            .map_err(|e| ApiError::invalid("id", e.to_string()))
    }
}

/// The `{queue}` path parameter: 422 when it is not a valid queue name.
pub struct QueueParam(pub QueueName);

impl<S: Send + Sync> FromRequestParts<S> for QueueParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "queue").await?;
        QueueName::parse(raw.as_str())
            .map(QueueParam)
            .map_err(|e| ApiError::invalid("queue", format!("invalid queue name {raw:?}: {e}")))
    }
}

/// The `{name}` path parameter of agent routes: 422 when it is not a valid agent name.
pub struct AgentParam(pub AgentName);

impl<S: Send + Sync> FromRequestParts<S> for AgentParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = path_param(parts, state, "name").await?;
        parse_agent("name", raw).map(AgentParam)
    }
}

/// Parses an agent name from the path or the query, naming the parameter when it is invalid.
pub fn parse_agent(param: &str, raw: String) -> Result<AgentName, ApiError> {
    AgentName::parse(raw.as_str()).map_err(|e| ApiError::invalid(param, format!("invalid agent name {raw:?}: {e}")))
}

/// The correlation id the client gave with the request (`X-Correlation-Id`, or a `traceparent`'s
/// trace id), if any: tasks and messages the request makes carry it when their body names none.
/// An id the server made up for the request's log line is not carried.
pub struct GivenCorrelation(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for GivenCorrelation {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(GivenCorrelation(
            crate::http::correlation::CorrelationId::given(&parts.headers).map(|c| c.to_string()),
        ))
    }
}

/// The version named by `If-Match: "<version>"`, if the header is present.
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or("").trim();
        let tag = text.strip_prefix("W/").unwrap_or(text);
        let tag = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag);
        tag.parse::<u64>().map(|v| IfMatch(Some(v))).map_err(|_| {
            ApiError::invalid(
                "If-Match",
                format!("{text:?} is not a task version: send the ETag of the task, e.g. \"3\""),
            )
        })
    }
}

/// The `ETag` of a task version: `"<version>"`.
pub fn etag(version: u64) -> axum::http::HeaderValue {
    axum::http::HeaderValue::try_from(format!("\"{version}\"")).expect("digits in quotes are a valid header value")
}

#[cfg(test)]
mod tests {
    use agentyard_core::api::{BatchCreateRequest, CreateTaskRequest, UpdateTaskRequest};

    use super::*;

    fn check<T: DeserializeOwned + Serialize + std::fmt::Debug>(body: &str, expected: Result<(), (&str, &str)>) {
        let got = parse_json::<T>(body.as_bytes()).map(|_| ());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(ApiError::InvalidField { field, .. }), Err(("422", want))) => assert_eq!(field, want, "{body}"),
            (Err(ApiError::MalformedBody(_)), Err(("400", _))) => {}
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn bad_bodies_name_the_field() {
        // An object inside a body given as an array of its fields (serde would take it).
        check::<UpdateTaskRequest>(r#"{"progress":[null,null]}"#, Err(("422", "progress")));
        check::<UpdateTaskRequest>(r#"{"progress":{"percent":5},"input":[1,2]}"#, Ok(()));
        check::<BatchCreateRequest>(r#"{"tasks":[{"queue":"q"},["q"]]}"#, Err(("422", "tasks[1]")));
        check::<BatchCreateRequest>(
            r#"{"tasks":[{"queue":"q","backoff":[1,2,2.0,0.1]}]}"#,
            Err(("422", "tasks[0].backoff")),
        );
        check::<CreateTaskRequest>(r#"{"queue":"q"}"#, Ok(()));
        check::<CreateTaskRequest>(r#"{"queue":"Bad Name"}"#, Err(("422", "queue")));
        check::<CreateTaskRequest>(r#"{"queue":"q","priority":"high"}"#, Err(("422", "priority")));
        check::<CreateTaskRequest>(r#"{"queue":"q","delay_ms":-5}"#, Err(("422", "delay_ms")));
        check::<CreateTaskRequest>(r#"{"queue":"q","colour":1}"#, Err(("422", "colour")));
        check::<CreateTaskRequest>(r#"{"input":1}"#, Err(("422", "queue")));
        check::<CreateTaskRequest>(
            r#"{"queue":"q","backoff":{"initial_ms":"x"}}"#,
            Err(("422", "backoff.initial_ms")),
        );
        check::<CreateTaskRequest>(r#"[]"#, Err(("422", "body")));
        check::<CreateTaskRequest>(r#" ["q"]"#, Err(("422", "body")));
        check::<BatchCreateRequest>(
            r#"{"tasks":[{"queue":"a"},{"queue":"B"}]}"#,
            Err(("422", "tasks[1].queue")),
        );
        check::<BatchCreateRequest>(r#"{"tasks":[{"queue":"a"},{}]}"#, Err(("422", "tasks[1].queue")));
        check::<BatchCreateRequest>(r#"{"tasks":[{"queue":"a","x":1}]}"#, Err(("422", "tasks[0].x")));
        check::<CreateTaskRequest>(r#"{"queue":"q""#, Err(("400", "")));
        check::<CreateTaskRequest>(r#"{"queue":"q"} trailing"#, Err(("400", "")));
        check::<CreateTaskRequest>("", Err(("400", "")));
    }

    #[test]
    fn data_errors_lose_their_position() {
        assert_eq!(
            strip_position("invalid type: string \"x\", expected u32 at line 1 column 9"),
            "invalid type: string \"x\", expected u32"
        );
        assert_eq!(strip_position("no position"), "no position");
    }
}
