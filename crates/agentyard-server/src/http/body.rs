//! The request body's time budget: the whole body must arrive within the body timeout of the
//! request reaching the router. tower-http's `RequestBodyTimeoutLayer` restarts its clock at
//! every frame, so a client sending one byte every few seconds would hold its connection (and a
//! slot under the connection cap) for as long as it likes; this is a deadline for the body as a
//! whole. A handler reading past it gets an error (the JSON extractor answers 400) and hyper
//! closes the connection, whose body was not read to its end.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes};
use axum::http::Request;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Gives every request body a deadline (see the module's doc).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineLayer {
    timeout: Duration,
}

impl BodyDeadlineLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyDeadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service of [`BodyDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<Request<Body>> for BodyDeadline<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if http_body::Body::is_end_stream(req.body()) {
            // Nothing to wait for (most GETs): no clock, no second box.
            return self.inner.call(req);
        }
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        self.inner.call(req.map(|body| {
            Body::new(Timed {
                body,
                deadline,
                timeout,
                sleep: None,
            })
        }))
    }
}

/// The error a body read past its deadline gives.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .timeout.as_millis())]
pub struct BodyTimedOut {
    pub timeout: Duration,
}

pin_project! {
    struct Timed {
        #[pin]
        body: Body,
        deadline: Instant,
        timeout: Duration,
        // Armed only when the body makes the reader wait: a body that came with the headers
        // never touches the timer wheel.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(BodyTimedOut { timeout: *this.timeout }.into()))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
