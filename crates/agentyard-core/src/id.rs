//! Identifiers: task ids (ULIDs, sortable by creation time) and lease tokens.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize};

/// A task id: a ULID, so ids sort by creation time (the list cursor relies on it). Ids made by
/// one process only ever grow, also within one millisecond: claims take tasks of the same
/// priority and time oldest first by id, so that is the order they were created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        value_type = String,
        example = "01JDQ7Y3S3M2W0XK8V1N6T4B5C",
        pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"
    )
)]
pub struct TaskId(ulid::Ulid);

impl TaskId {
    pub fn generate() -> Self {
        static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
        let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
        // Overflow needs 2^80 ids in one millisecond.
        Self(ids.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    /// Builds an id at a given time (tests and the memory backend's ordering checks).
    pub fn from_parts(ms: u64, random: u128) -> Self {
        Self(ulid::Ulid::from_parts(ms, random))
    }

    /// The id as a 128-bit number; numbers sort as the ids do (a store may keep ids this way).
    pub fn to_u128(self) -> u128 {
        self.0.0
    }

    /// The id of a number made by [`TaskId::to_u128`].
    pub fn from_u128(n: u128) -> Self {
        Self(ulid::Ulid(n))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        ulid::Ulid::from_str(s)
            .map(Self)
            .map_err(|_| IdError(s.chars().take(64).collect()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a task id (expected a 26-character ULID)")]
pub struct IdError(String);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The fencing token of one lease. Whoever presents it may heartbeat, complete or fail the
/// leased task; once the lease moved on, the old token changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct LeaseToken(String);

impl LeaseToken {
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string().to_ascii_lowercase())
    }

    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_only_grow_within_a_millisecond_too() {
        let ids: Vec<TaskId> = (0..10_000).map(|_| TaskId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of creation order");
    }
}
