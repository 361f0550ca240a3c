//! Request metrics: a counter and a duration histogram per method, route template and status
//! code, fed by the request layer ([`crate::http`]). Labels stay bounded: the route is axum's
//! matched template (`/v1/tasks/{id}`, never the raw path, `unmatched` when no route matched) and
//! an unusual method is counted as `OTHER`.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds of the duration buckets, in seconds: from a cached read (under a millisecond)
/// to a long poll that waited its full minute.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0,
];

/// The route label of a request no route matched (404s, probes of random paths).
pub const UNMATCHED: &str = "unmatched";

/// The labels of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

impl RequestLabels {
    pub fn new(method: &Method, route: Option<&str>, status: StatusCode) -> Self {
        Self {
            method: method_label(method),
            route: route.unwrap_or(UNMATCHED).to_owned(),
            status: status.as_u16(),
        }
    }
}

/// The method as a label: one of the standard ones, or `OTHER`, so that a client inventing
/// methods cannot grow the label set.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// See the module docs. Cheap to clone: the families are shared.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(new_histogram),
        }
    }
}

impl RequestMetrics {
    /// Counts one answered request.
    pub fn record(&self, labels: &RequestLabels, took: Duration) {
        self.requests.get_or_create(labels).inc();
        self.durations.get_or_create(labels).observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        let check = |m: &str, expected: &str| {
            let method = Method::from_bytes(m.as_bytes()).expect("a method");
            assert_eq!(method_label(&method), expected, "{m}");
        };
        check("GET", "GET");
        check("DELETE", "DELETE");
        check("PROPFIND", "OTHER");
        check("BREW", "OTHER");
    }
}
