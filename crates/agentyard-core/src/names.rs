//! Validated names: namespaces, queues, agents, capabilities. Parse, don't validate.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest name the yard accepts (the rule is `[a-z0-9][a-z0-9._-]{0,127}`).
pub const MAX_NAME_LEN: usize = 128;

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is {0} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    #[error("must start with a lowercase letter or a digit, not {0:?}")]
    BadStart(char),
    #[error("contains {0:?}; only lowercase letters, digits, '.', '_' and '-' are allowed")]
    BadChar(char),
}

fn check_name(s: &str) -> Result<(), NameError> {
    let mut chars = s.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(s.chars().count()));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(NameError::BadStart(first));
    }
    for c in chars {
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')) {
            return Err(NameError::BadChar(c));
        }
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[a-z0-9][a-z0-9._-]{0,127}$"))]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check_name(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s.clone()).map_err(|e| {
                    serde::de::Error::custom(format!("invalid name {s:?}: {e}"))
                })
            }
        }
    };
}

name_type!(
    /// A tenant or project; every entity lives in one. The default is `default`.
    Namespace
);
name_type!(
    /// A named queue of tasks inside a namespace.
    QueueName
);
name_type!(
    /// An agent (worker) name.
    AgentName
);
name_type!(
    /// A capability label an agent offers and a task may require.
    Capability
);

impl Namespace {
    pub fn default_namespace() -> Self {
        Self("default".to_owned())
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::default_namespace()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), NameError>) {
        assert_eq!(QueueName::parse(input).map(|_| ()), expected, "input {input:?}");
    }

    #[test]
    fn names_follow_the_rule() {
        check("emails", Ok(()));
        check("0", Ok(()));
        check("a.b_c-d9", Ok(()));
        check(&"a".repeat(128), Ok(()));
        check("", Err(NameError::Empty));
        check(&"a".repeat(129), Err(NameError::TooLong(129)));
        check("-a", Err(NameError::BadStart('-')));
        check("Emails", Err(NameError::BadStart('E')));
        check("a b", Err(NameError::BadChar(' ')));
        check("a/b", Err(NameError::BadChar('/')));
        check("aé", Err(NameError::BadChar('é')));
    }

    #[test]
    fn deserializing_rejects_bad_names() {
        let err = serde_json::from_str::<QueueName>("\"Bad Name\"").unwrap_err();
        assert!(err.to_string().contains("invalid name"), "{err}");
        let ok: QueueName = serde_json::from_str("\"good\"").unwrap();
        assert_eq!(ok.as_str(), "good");
    }
}
