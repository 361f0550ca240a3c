//! JSON answers. Like axum's `Json`, but the body is written into a buffer sized for a task
//! (axum's starts at 128 bytes and grows by copying: three copies for a typical task), and a
//! value that cannot be encoded is a problem body like every other error.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::ApiError;

/// Room for one task with a small payload without growing.
const FIRST_CAPACITY: usize = 1024;

/// A JSON answer: `Json(value)`, or `(StatusCode, Json(value))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(FIRST_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => {
                let mut response = body.into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an answer as JSON");
                ApiError::Internal.into_response()
            }
        }
    }
}

/// Bytes of `value`'s JSON, counted as it is written, with nothing kept.
pub fn size_of<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        // The answer will fail to encode anyway, and say so.
        Err(_) => 0,
    }
}

/// The longest run of `items` from the start whose JSON fits in `budget` bytes (at least one
/// item, however big), and whether any were left out. Measured by writing each item, as the
/// answer will, into a counter.
pub fn within_budget<T: Serialize>(items: Vec<T>, budget: usize) -> (Vec<T>, bool) {
    let (kept, rest) = split_at_budget(items, budget);
    (kept, !rest.is_empty())
}

/// [`within_budget`], also giving back what was left out.
pub fn split_at_budget<T: Serialize>(items: Vec<T>, budget: usize) -> (Vec<T>, Vec<T>) {
    let mut used = 0usize;
    let mut kept = Vec::with_capacity(items.len());
    let mut items = items.into_iter();
    while let Some(item) = items.next() {
        let size = size_of(&item) + 1;
        if !kept.is_empty() && used + size > budget {
            let mut rest = vec![item];
            rest.extend(items);
            return (kept, rest);
        }
        used += size;
        kept.push(item);
    }
    (kept, Vec::new())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::to_bytes;
    use axum::http::StatusCode;

    use super::*;

    async fn answer(response: Response) -> (StatusCode, String, String) {
        let status = response.status();
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, kind, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn answers_json_with_its_status() {
        let big = "x".repeat(3 * FIRST_CAPACITY);
        let (status, kind, body) =
            answer((StatusCode::CREATED, Json(serde_json::json!({"a": big}))).into_response()).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(kind, "application/json");
        assert_eq!(
            body,
            format!(r#"{{"a":"{big}"}}"#),
            "a body past the first capacity is whole"
        );
    }

    #[tokio::test]
    async fn a_value_json_cannot_hold_is_a_problem() {
        // JSON object keys are strings: a map keyed by pairs cannot be encoded.
        let bad: BTreeMap<(u8, u8), u8> = BTreeMap::from([((1, 2), 3)]);
        let (status, kind, body) = answer(Json(bad).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(kind, "application/problem+json");
        assert!(body.contains("/problems/internal"), "{body}");
    }
}
