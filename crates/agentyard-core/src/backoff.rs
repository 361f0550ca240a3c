//! Retry backoff: exponential with a cap and proportional jitter.

use serde::{Deserialize, Serialize};

/// How long a failed task waits before its next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delay before the second attempt.
    pub initial_ms: u64,
    /// Upper bound of any delay.
    pub max_ms: u64,
    /// Growth per attempt (>= 1).
    pub multiplier: f64,
    /// Fraction of the delay randomly taken off (0 = none, 1 = anywhere from 0 to the delay).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial_ms: 1_000,
            max_ms: 300_000,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// Longest backoff delay the yard accepts (7 days).
pub const MAX_BACKOFF_MS: u64 = 7 * 24 * 3_600_000;

impl Backoff {
    /// Checks the ranges; the error names the offending field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.initial_ms > MAX_BACKOFF_MS {
            return Err(("initial_ms", format!("must be at most {MAX_BACKOFF_MS} (7 days)")));
        }
        if self.max_ms > MAX_BACKOFF_MS {
            return Err(("max_ms", format!("must be at most {MAX_BACKOFF_MS} (7 days)")));
        }
        if self.max_ms < self.initial_ms {
            return Err(("max_ms", format!("must be at least initial_ms ({})", self.initial_ms)));
        }
        if !(1.0..=100.0).contains(&self.multiplier) {
            return Err(("multiplier", "must be between 1 and 100".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(("jitter", "must be between 0 and 1".into()));
        }
        Ok(())
    }

    /// The delay after failed attempt number `attempt` (1-based). `sample` in [0, 1) picks the
    /// jitter, so the function stays pure and testable.
    pub fn delay_ms(&self, attempt: u32, sample: f64) -> u64 {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let raw = self.initial_ms as f64 * self.multiplier.powi(exponent);
        let capped = raw.min(self.max_ms as f64);
        let jittered = capped * (1.0 - self.jitter * sample.clamp(0.0, 1.0));
        jittered.round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(b: Backoff, attempt: u32, sample: f64, expected: u64) {
        assert_eq!(
            b.delay_ms(attempt, sample),
            expected,
            "{b:?} attempt {attempt} sample {sample}"
        );
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let b = Backoff {
            initial_ms: 100,
            max_ms: 1_000,
            multiplier: 2.0,
            jitter: 0.0,
        };
        check(b, 1, 0.5, 100);
        check(b, 2, 0.5, 200);
        check(b, 3, 0.5, 400);
        check(b, 4, 0.5, 800);
        check(b, 5, 0.5, 1_000);
        check(b, 500, 0.5, 1_000);
    }

    #[test]
    fn jitter_takes_off_a_fraction() {
        let b = Backoff {
            initial_ms: 1_000,
            max_ms: 10_000,
            multiplier: 2.0,
            jitter: 0.5,
        };
        check(b, 1, 0.0, 1_000);
        check(b, 1, 0.5, 750);
        check(b, 1, 0.999_999, 500);
    }

    #[test]
    fn rejects_nonsense() {
        let ok = Backoff::default();
        assert!(ok.check().is_ok());
        assert_eq!(Backoff { multiplier: 0.5, ..ok }.check().unwrap_err().0, "multiplier");
        assert_eq!(Backoff { jitter: 2.0, ..ok }.check().unwrap_err().0, "jitter");
        assert_eq!(
            Backoff {
                initial_ms: 10,
                max_ms: 5,
                ..ok
            }
            .check()
            .unwrap_err()
            .0,
            "max_ms"
        );
    }
}
