//! The request layer: gives every request its correlation id (see [`super::correlation`]),
//! counts it in the request metrics, and logs one INFO line when it ends (method, route
//! template, status, duration in ms, correlation id). A Server-Sent Events stream is logged
//! when its stream ends, not when its head is sent, so a stream makes one line however long it
//! runs; a long poll makes one when it answers.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::correlation::{CORRELATION_ID, CorrelationId};
use crate::metrics::requests::{RequestLabels, RequestMetrics, UNMATCHED};

/// The layer's function (`axum::middleware::from_fn_with_state`).
pub async fn observe(State(metrics): State<RequestMetrics>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = CorrelationId::of(req.headers());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    req.extensions_mut().insert(id.clone());
    let mut response = next.run(req).await;
    let status = response.status();
    let labels = RequestLabels::new(&method, route.as_ref().map(MatchedPath::as_str), status);
    metrics.record(&labels, started.elapsed());
    response
        .headers_mut()
        .insert(&CORRELATION_ID, id.header_value().clone());
    let line = RequestLine {
        method,
        route,
        status,
        id,
        started,
    };
    if is_event_stream(response.headers().get(header::CONTENT_TYPE)) {
        // Logged when the stream ends (or the client goes away and the body is dropped).
        response.map(|body| {
            Body::new(LoggedAtEnd {
                inner: body,
                line: Some(line),
            })
        })
    } else {
        line.log(started.elapsed());
        response
    }
}

fn is_event_stream(content_type: Option<&HeaderValue>) -> bool {
    content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

struct RequestLine {
    method: Method,
    route: Option<MatchedPath>,
    status: StatusCode,
    id: CorrelationId,
    started: Instant,
}

impl RequestLine {
    fn log(&self, took: Duration) {
        tracing::info!(
            method = %self.method,
            route = self.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
            status = self.status.as_u16(),
            duration_ms = took.as_secs_f64() * 1000.0,
            correlation_id = self.id.as_str(),
            "request",
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body that logs its request's line when it is dropped.
    struct LoggedAtEnd {
        #[pin]
        inner: Body,
        line: Option<RequestLine>,
    }

    impl PinnedDrop for LoggedAtEnd {
        fn drop(this: Pin<&mut Self>) {
            if let Some(line) = this.project().line.take() {
                line.log(line.started.elapsed());
            }
        }
    }
}

impl http_body::Body for LoggedAtEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
