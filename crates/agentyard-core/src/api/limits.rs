//! Wire shapes of `/v1/limits…`: the keyed dispatch limits.

use super::*;

/// `PUT /v1/limits/{key}`: the limits of one key (a task's `rate_limit_key` or
/// `concurrency_key`). Leaving a field out removes that limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// Tasks with this `rate_limit_key` handed out per minute, fleet-wide (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64))]
    pub rate_per_minute: Option<u32>,
    /// How many may go at once after a quiet spell (at least 1, default 1); needs `rate_per_minute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64))]
    pub burst: Option<u32>,
    /// Tasks with this `concurrency_key` running at once (1 to 1000000; without it: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub max_concurrent: Option<u64>,
}

impl LimitRequest {
    /// Checks it and builds the limit of `key`.
    pub fn into_limit(self, key: String) -> Result<Limit, FieldError> {
        if key.is_empty() || key.len() > MAX_TEXT_LEN {
            return Err(FieldError::new("key", format!("must be 1 to {MAX_TEXT_LEN} bytes")));
        }
        check_key("key", &Some(key.clone()))?;
        if self.rate_per_minute.is_none() && self.burst.is_none() && self.max_concurrent.is_none() {
            return Err(FieldError::new(
                "body",
                "set rate_per_minute (with an optional burst), max_concurrent, or both",
            ));
        }
        let rate = match (self.rate_per_minute, self.burst) {
            (None, Some(_)) => return Err(FieldError::new("rate_per_minute", "a burst needs a rate")),
            (None, None) => None,
            (Some(rate_per_minute), burst) => {
                let limit = RateLimit {
                    rate_per_minute,
                    burst: burst.unwrap_or(1),
                };
                limit.check().map_err(|(f, m)| FieldError::new(f, m))?;
                Some(limit)
            }
        };
        if self
            .max_concurrent
            .is_some_and(|m| !(1..=MAX_CONCURRENT_LIMIT).contains(&m))
        {
            return Err(FieldError::new(
                "max_concurrent",
                format!("must be between 1 and {MAX_CONCURRENT_LIMIT}"),
            ));
        }
        Ok(Limit {
            key,
            rate_per_minute: rate.map(|r| r.rate_per_minute),
            burst: rate.map(|r| r.burst),
            max_concurrent: self.max_concurrent,
        })
    }
}

/// The limits of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limit {
    pub key: String,
    pub rate_per_minute: Option<u32>,
    pub burst: Option<u32>,
    /// `null`: one at a time (for a `concurrency_key`).
    pub max_concurrent: Option<u64>,
}

impl Limit {
    pub fn rate(&self) -> Option<RateLimit> {
        Some(RateLimit {
            rate_per_minute: self.rate_per_minute?,
            burst: self.burst.unwrap_or(1),
        })
    }
}

/// `GET /v1/limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitList {
    /// By key.
    pub limits: Vec<Limit>,
}
