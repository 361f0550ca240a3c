//! Correlation ids: what ties a request's log line (and, later, what it causes) to the caller's
//! own records. Taken from the `X-Correlation-Id` request header when it is sound (visible ASCII,
//! at most 128 bytes), else from the trace id of a W3C `traceparent`, else generated (a ULID);
//! returned in the response's `X-Correlation-Id`.

use std::fmt;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

pub static CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Longest correlation id taken from a client.
pub const MAX_LEN: usize = 128;

/// A request's correlation id; also put in the request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(HeaderValue);

impl CorrelationId {
    /// The request's id: its sound `X-Correlation-Id`, its `traceparent`'s trace id, or a new one.
    pub fn of(headers: &HeaderMap) -> Self {
        Self::given(headers).unwrap_or_else(Self::generate)
    }

    /// The id the client gave, if it gave a sound one: its `X-Correlation-Id`, else its
    /// `traceparent`'s trace id. What tasks and messages made by the request carry.
    pub fn given(headers: &HeaderMap) -> Option<Self> {
        headers
            .get(&CORRELATION_ID)
            .and_then(|v| Self::parse(v.as_bytes()))
            .or_else(|| headers.get(&TRACEPARENT).and_then(|v| trace_id(v.as_bytes())))
    }

    /// An id a client gave: 1 to 128 bytes of visible ASCII (`!` to `~`).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let sound = !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic());
        sound.then(|| HeaderValue::from_bytes(bytes).ok().map(Self)).flatten()
    }

    pub fn generate() -> Self {
        let id = ulid::Ulid::new().to_string();
        Self(HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown")))
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII gets in.
        self.0.to_str().unwrap_or("")
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The trace id of a `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), unless it is malformed or
/// all zeros (invalid by the W3C spec). Versions after 00 may append fields; the first four
/// are read the same way.
fn trace_id(value: &[u8]) -> Option<CorrelationId> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let sound = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && hex(flags, 2);
    sound.then(|| CorrelationId::parse(trace.as_bytes())).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(correlation: Option<&str>, traceparent: Option<&str>, expected: Option<&str>) {
        let mut headers = HeaderMap::new();
        if let Some(c) = correlation {
            headers.insert(
                &CORRELATION_ID,
                HeaderValue::from_bytes(c.as_bytes()).expect("a header"),
            );
        }
        if let Some(t) = traceparent {
            headers.insert(&TRACEPARENT, HeaderValue::from_str(t).expect("a header"));
        }
        let id = CorrelationId::of(&headers);
        match expected {
            Some(e) => assert_eq!(id.as_str(), e, "{correlation:?} {traceparent:?}"),
            // Generated: a ULID.
            None => assert!(
                ulid::Ulid::from_string(id.as_str()).is_ok(),
                "{id} for {correlation:?} {traceparent:?}"
            ),
        }
    }

    #[test]
    fn takes_a_sound_id_or_the_trace_id_or_makes_one() {
        const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        check(Some("req-42"), None, Some("req-42"));
        check(Some("req-42"), Some(TP), Some("req-42"));
        check(Some(&"x".repeat(128)), None, Some(&"x".repeat(128)));
        check(None, Some(TP), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        // Unsound ids fall through to the traceparent, then to a new id.
        check(
            Some(&"x".repeat(129)),
            Some(TP),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        );
        check(Some("has space"), None, None);
        check(Some("tab\there"), None, None);
        check(Some(""), None, None);
        check(None, None, None);
        check(
            None,
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None,
        );
        check(
            None,
            Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
        );
        check(
            None,
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            None,
        );
        check(None, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"), None);
        check(
            None,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
            None,
        );
        check(
            None,
            Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        );
    }
}
