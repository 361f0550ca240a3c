//! The request body's time budget: the whole body must arrive within the body timeout of its
//! request's headers. tower-http's `RequestBodyTimeoutLayer` restarts its clock at every frame,
//! so a client sending one byte every few seconds would hold its connection (and a slot under
//! the connection cap) for as long as it likes; this is a deadline for the body as a whole. A
//! handler reading past it gets an error (the JSON extractor answers 408) and hyper closes the
//! connection, whose body was not read to its end.
//!
//! It is put around the body where hyper hands it over (`connections`), not as a tower layer:
//! the router boxes the body there once anyway, where a layer would box it a second time (an
//! allocation and an indirection per request, a few percent of a request's CPU in `bench drain`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// Gives request bodies a deadline (see the module's doc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyDeadline {
    timeout: Duration,
}

impl BodyDeadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// `body` as the router takes it, with the deadline from now.
    pub(crate) fn apply<B>(self, body: B) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            // Nothing to wait for (most GETs): no clock.
            return Body::new(body);
        }
        Body::new(Timed {
            body,
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
            sleep: None,
        })
    }
}

/// The error a body read past its deadline gives.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .timeout.as_millis())]
pub struct BodyTimedOut {
    pub timeout: Duration,
}

pin_project! {
    struct Timed<B> {
        #[pin]
        body: B,
        deadline: Instant,
        timeout: Duration,
        // Armed only when the body makes the reader wait: a body that came with the headers
        // never touches the timer wheel.
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<B> http_body::Body for Timed<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
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
