//! Latency samples and the percentiles the reports show.

use std::time::Duration;

/// Latencies of one kind of operation, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentiles; `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        if self.0.is_empty() {
            return None;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let at = |p: f64| {
            // Nearest rank: the smallest sample with at least p of all samples at or below it.
            let rank = (p * sorted.len() as f64).ceil() as usize;
            ms(sorted[rank.clamp(1, sorted.len()) - 1])
        };
        Some(Summary {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: ms(sorted[sorted.len() - 1]),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(millis: &[u64], expected: Option<(f64, f64, f64, f64)>) {
        let mut s = Samples::default();
        for m in millis {
            s.push(Duration::from_millis(*m));
        }
        let got = s.summary().map(|s| (s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms));
        assert_eq!(got, expected, "{millis:?}");
    }

    #[test]
    fn nearest_rank_percentiles() {
        check(&[], None);
        check(&[7], Some((7.0, 7.0, 7.0, 7.0)));
        check(&[4, 1, 3, 2], Some((2.0, 4.0, 4.0, 4.0)));
        let hundred: Vec<u64> = (1..=100).rev().collect();
        check(&hundred, Some((50.0, 95.0, 99.0, 100.0)));
    }
}
