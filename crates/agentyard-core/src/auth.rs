//! Who may do what: API token ids, roles and the grant a token carries. The secret, its format and
//! its hash live with the server; this is the part the store keeps and the API shows.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{AgentName, Namespace};

/// Length of a token id: 12 characters of lowercase base32hex (60 bits).
pub const TOKEN_ID_LEN: usize = 12;

/// The public part of an API token: shown by `token list`, used to revoke it, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-v]{12}$"))]
pub struct TokenId(String);

/// Why a string is not a token id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token id is {TOKEN_ID_LEN} characters of 0-9 and a-v, not {0:?}")]
pub struct TokenIdError(String);

impl TokenId {
    pub fn parse(s: impl Into<String>) -> Result<Self, TokenIdError> {
        let s = s.into();
        let valid = s.len() == TOKEN_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'v'));
        if valid { Ok(Self(s)) } else { Err(TokenIdError(s)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for TokenId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TokenId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(s).map_err(serde::de::Error::custom)
    }
}

/// What a token's holder may do (see `docs/design/auth.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, in every namespace, tokens included.
    Admin,
    /// Everything in its namespaces except tokens.
    Operator,
    /// Acts as one agent name only: claims, completes, heartbeats, reads its inbox, sends from itself.
    Agent,
    /// Reads only; lease tokens are blanked in every answer.
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Agent => "agent",
            Role::Reader => "reader",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "agent" => Some(Role::Agent),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The namespaces a token may act in: every one (`["*"]` on the wire) or the ones listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespaces {
    All,
    /// Sorted, without repeats, never empty.
    Only(Vec<Namespace>),
}

impl Namespaces {
    /// The listed namespaces, sorted and without repeats; `None` for an empty list.
    pub fn only(mut list: Vec<Namespace>) -> Option<Self> {
        list.sort();
        list.dedup();
        if list.is_empty() {
            None
        } else {
            Some(Namespaces::Only(list))
        }
    }

    pub fn contains(&self, ns: &Namespace) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(list) => list.binary_search(ns).is_ok(),
        }
    }

    /// `*`, or the names joined by commas.
    pub fn describe(&self) -> String {
        match self {
            Namespaces::All => "*".to_owned(),
            Namespaces::Only(list) => list.iter().map(Namespace::as_str).collect::<Vec<_>>().join(","),
        }
    }
}

impl Serialize for Namespaces {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Namespaces::All => ["*"].serialize(s),
            Namespaces::Only(list) => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Namespaces {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        if raw.iter().any(|s| s == "*") {
            if raw.len() > 1 {
                return Err(serde::de::Error::custom(
                    "\"*\" stands alone: it already means every namespace",
                ));
            }
            return Ok(Namespaces::All);
        }
        let mut list = Vec::with_capacity(raw.len());
        for s in raw {
            list.push(
                Namespace::parse(s.clone())
                    .map_err(|e| serde::de::Error::custom(format!("invalid name {s:?}: {e}")))?,
            );
        }
        Namespaces::only(list).ok_or_else(|| serde::de::Error::custom("name at least one namespace, or \"*\""))
    }
}

/// What a token allows: a role, where, and (for the agent role) as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    pub role: Role,
    pub namespaces: Namespaces,
    /// The agent name an `agent` token acts as; `None` for every other role.
    pub agent: Option<AgentName>,
}

/// Why a role, namespaces and agent do not make a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("an admin token covers every namespace: leave out the namespaces (or give \"*\")")]
    AdminNamespaces,
    #[error("an agent token acts as one agent: give its agent name")]
    AgentWithoutName,
    #[error("only an agent token has an agent name; a {0} token has none")]
    NameWithoutAgent(Role),
    #[error("an agent token must name its namespaces; \"*\" is for admin, operator and reader tokens")]
    AgentEverywhere,
}

impl Grant {
    /// Checks the combination: admins cover every namespace; an agent token names its agent and
    /// its namespaces; no other role has an agent name.
    pub fn new(role: Role, namespaces: Namespaces, agent: Option<AgentName>) -> Result<Self, GrantError> {
        match (role, &namespaces, &agent) {
            (Role::Admin, Namespaces::Only(_), _) => return Err(GrantError::AdminNamespaces),
            (Role::Agent, _, None) => return Err(GrantError::AgentWithoutName),
            (Role::Agent, Namespaces::All, _) => return Err(GrantError::AgentEverywhere),
            (Role::Admin | Role::Operator | Role::Reader, _, Some(_)) => {
                return Err(GrantError::NameWithoutAgent(role));
            }
            _ => {}
        }
        Ok(Self {
            role,
            namespaces,
            agent,
        })
    }
}

/// A token as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: TokenId,
    pub role: Role,
    /// `["*"]` for every namespace.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub namespaces: Namespaces,
    /// The agent name of an `agent` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
    /// What it is for, as given when it was made.
    pub name: String,
    pub created_at: crate::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<crate::Timestamp>,
}

impl TokenInfo {
    pub fn grant(&self) -> Grant {
        Grant {
            role: self.role,
            namespaces: self.namespaces.clone(),
            agent: self.agent.clone(),
        }
    }
}

/// Longest description of a token, in bytes.
pub const MAX_TOKEN_NAME_LEN: usize = 200;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub role: Role,
    /// The namespaces it may act in, or `["*"]` for every one; admin tokens always cover every
    /// namespace, so leave it out for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub namespaces: Option<Namespaces>,
    /// The agent name an `agent` token acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentName>,
    /// What it is for (at most 200 bytes, no control characters).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")
    )]
    pub name: String,
}

/// Answer of `POST /v1/tokens`: the token itself, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    /// `ayt_…`: send it as `Authorization: Bearer <token>`. It is not stored and cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Answer of `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Namespace {
        Namespace::parse(s).expect("valid")
    }

    #[test]
    fn token_ids_are_twelve_base32hex_characters() {
        assert!(TokenId::parse("0123456789av").is_ok());
        for bad in [
            "",
            "0123456789a",
            "0123456789avx",
            "0123456789aw",
            "0123456789AV",
            "0123456789a_",
        ] {
            assert!(TokenId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn namespaces_read_star_or_a_list() {
        let all: Namespaces = serde_json::from_str(r#"["*"]"#).expect("star");
        assert_eq!(all, Namespaces::All);
        let some: Namespaces = serde_json::from_str(r#"["b","a","b"]"#).expect("list");
        assert_eq!(some, Namespaces::Only(vec![ns("a"), ns("b")]));
        assert_eq!(serde_json::to_string(&some).expect("json"), r#"["a","b"]"#);
        assert!(some.contains(&ns("b")) && !some.contains(&ns("c")));
        for bad in [r#"[]"#, r#"["*","a"]"#, r#"["A"]"#] {
            assert!(serde_json::from_str::<Namespaces>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_grant_checks_its_role_against_namespaces_and_agent() {
        let only = || Namespaces::Only(vec![ns("a")]);
        let bot = || Some(AgentName::parse("bot").expect("valid"));
        assert!(Grant::new(Role::Admin, Namespaces::All, None).is_ok());
        assert_eq!(Grant::new(Role::Admin, only(), None), Err(GrantError::AdminNamespaces));
        assert!(Grant::new(Role::Agent, only(), bot()).is_ok());
        assert_eq!(Grant::new(Role::Agent, only(), None), Err(GrantError::AgentWithoutName));
        assert_eq!(
            Grant::new(Role::Agent, Namespaces::All, bot()),
            Err(GrantError::AgentEverywhere)
        );
        assert_eq!(
            Grant::new(Role::Reader, only(), bot()),
            Err(GrantError::NameWithoutAgent(Role::Reader))
        );
        assert!(Grant::new(Role::Operator, Namespaces::All, None).is_ok());
    }
}
