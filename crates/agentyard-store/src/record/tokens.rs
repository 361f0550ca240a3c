//! The stored form of an API token (`TokenRecordV1`): its public facts and the SHA-256 of its
//! secret, in names of the store's own, whatever the API's `TokenInfo` JSON becomes.
//!
//! The hash is 64 lowercase hex digits; the role its lowercase name; the namespaces a list of
//! names, or `["*"]` for every one. The same list is what the SQL stores keep (`*` alone, or the
//! names), read back through [`namespaces_from_names`].

use std::borrow::Cow;

use agentyard_core::auth::{Namespaces, Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Namespace, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::tokens::StoredToken;

/// What stands for every namespace in a stored list.
pub const ALL_NAMESPACES: &str = "*";

/// One token, revoked or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecordV1<'a> {
    pub id: Cow<'a, TokenId>,
    pub role: RoleRecordV1,
    #[serde(with = "namespaces_v1")]
    pub namespaces: Cow<'a, Namespaces>,
    pub agent: Option<Cow<'a, AgentName>>,
    pub name: Cow<'a, str>,
    #[serde(with = "super::time_v1")]
    pub created_at: Timestamp,
    #[serde(default, with = "super::opt_time_v1")]
    pub revoked_at: Option<Timestamp>,
    #[serde(with = "hash_v1")]
    pub secret_hash: [u8; 32],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleRecordV1 {
    Admin,
    Operator,
    Agent,
    Reader,
}

/// The names a stored list holds: `["*"]`, or the namespaces in order.
pub fn namespaces_to_names(namespaces: &Namespaces) -> Vec<&str> {
    match namespaces {
        Namespaces::All => vec![ALL_NAMESPACES],
        Namespaces::Only(list) => list.iter().map(Namespace::as_str).collect(),
    }
}

/// Reads a stored list back: `*` alone, or at least one valid namespace name. The error says
/// what is wrong with it, for the store to name the token it belongs to.
pub fn namespaces_from_names<'s>(names: impl IntoIterator<Item = &'s str>) -> Result<Namespaces, String> {
    let names: Vec<&str> = names.into_iter().collect();
    if names.contains(&ALL_NAMESPACES) {
        return match names.len() {
            1 => Ok(Namespaces::All),
            _ => Err(format!("\"*\" is listed with other namespaces: {names:?}")),
        };
    }
    let mut list = Vec::with_capacity(names.len());
    for name in &names {
        list.push(Namespace::parse(*name).map_err(|e| format!("namespace {name:?} {e}"))?);
    }
    Namespaces::only(list).ok_or_else(|| "the list of namespaces is empty".to_owned())
}

impl From<Role> for RoleRecordV1 {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => Self::Admin,
            Role::Operator => Self::Operator,
            Role::Agent => Self::Agent,
            Role::Reader => Self::Reader,
        }
    }
}

impl From<RoleRecordV1> for Role {
    fn from(r: RoleRecordV1) -> Self {
        match r {
            RoleRecordV1::Admin => Self::Admin,
            RoleRecordV1::Operator => Self::Operator,
            RoleRecordV1::Agent => Self::Agent,
            RoleRecordV1::Reader => Self::Reader,
        }
    }
}

impl<'a> From<&'a StoredToken> for TokenRecordV1<'a> {
    fn from(t: &'a StoredToken) -> Self {
        let info = &t.info;
        Self {
            id: Cow::Borrowed(&info.id),
            role: info.role.into(),
            namespaces: Cow::Borrowed(&info.namespaces),
            agent: info.agent.as_ref().map(Cow::Borrowed),
            name: Cow::Borrowed(&info.name),
            created_at: info.created_at,
            revoked_at: info.revoked_at,
            secret_hash: t.secret_hash,
        }
    }
}

impl From<TokenRecordV1<'_>> for StoredToken {
    fn from(r: TokenRecordV1<'_>) -> Self {
        Self {
            info: TokenInfo {
                id: r.id.into_owned(),
                role: r.role.into(),
                namespaces: r.namespaces.into_owned(),
                agent: r.agent.map(Cow::into_owned),
                name: r.name.into_owned(),
                created_at: r.created_at,
                revoked_at: r.revoked_at,
            },
            secret_hash: r.secret_hash,
        }
    }
}

/// Writes a token as its record: how `Change::Token` serializes.
pub(crate) fn write_token<T: std::borrow::Borrow<StoredToken>, S: Serializer>(t: &T, s: S) -> Result<S::Ok, S::Error> {
    TokenRecordV1::from(t.borrow()).serialize(s)
}

/// Reads a token from its record: how `OwnedChange::Token` deserializes.
pub(crate) fn read_token<'de, D: Deserializer<'de>>(d: D) -> Result<StoredToken, D::Error> {
    TokenRecordV1::deserialize(d).map(StoredToken::from)
}

mod namespaces_v1 {
    use std::borrow::Cow;

    use agentyard_core::auth::Namespaces;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[allow(clippy::ptr_arg, reason = "serde hands `with` the field itself, a `&Cow`")]
    pub fn serialize<S: Serializer>(n: &Cow<'_, Namespaces>, s: S) -> Result<S::Ok, S::Error> {
        super::namespaces_to_names(n).serialize(s)
    }

    pub fn deserialize<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, Namespaces>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        super::namespaces_from_names(names.iter().map(String::as_str))
            .map(Cow::Owned)
            .map_err(serde::de::Error::custom)
    }
}

/// 32 bytes as 64 lowercase hex digits (any case is read).
mod hash_v1 {
    use std::fmt::Write;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut hex = String::with_capacity(64);
        for b in hash {
            write!(hex, "{b:02x}").expect("writing to a String");
        }
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let hex = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("a secret hash is 64 hex digits, not {hex:?}"));
        // Checked first: `from_str_radix` would take a sign, and slicing needs ASCII.
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Change, OwnedChange};
    use crate::record::ChangeRecordV1;

    /// A revoked agent token, as version 1 writes it.
    const TOKEN_CHANGE: &str = r#"{"Token":{"id":"0123456789av","role":"agent","namespaces":["team-a","team-b"],"agent":"worker-1","name":"CI \"deploy\" ✓","created_at":"2027-01-15T08:00:00.000Z","revoked_at":"2027-01-15T09:00:00.001Z","secret_hash":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}}"#;
    /// An admin token, never revoked.
    const ADMIN: &str = r#"{"id":"vvvvvvvvvvvv","role":"admin","namespaces":["*"],"agent":null,"name":"","created_at":"2027-01-15T08:00:00.000Z","revoked_at":null,"secret_hash":"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}"#;

    fn ns(s: &str) -> Namespace {
        Namespace::parse(s).expect("valid")
    }

    fn agent_token() -> StoredToken {
        StoredToken {
            info: TokenInfo {
                id: TokenId::parse("0123456789av").expect("valid"),
                role: Role::Agent,
                namespaces: Namespaces::Only(vec![ns("team-a"), ns("team-b")]),
                agent: Some(AgentName::parse("worker-1").expect("valid")),
                name: "CI \"deploy\" ✓".into(),
                created_at: Timestamp::parse_rfc3339("2027-01-15T08:00:00.000Z").expect("time"),
                revoked_at: Some(Timestamp::parse_rfc3339("2027-01-15T09:00:00.001Z").expect("time")),
            },
            secret_hash: std::array::from_fn(|i| i as u8),
        }
    }

    fn admin_token() -> StoredToken {
        StoredToken {
            info: TokenInfo {
                id: TokenId::parse("vvvvvvvvvvvv").expect("valid"),
                role: Role::Admin,
                namespaces: Namespaces::All,
                agent: None,
                name: String::new(),
                created_at: Timestamp::parse_rfc3339("2027-01-15T08:00:00.000Z").expect("time"),
                revoked_at: None,
            },
            secret_hash: [0xff; 32],
        }
    }

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("encodes")
    }

    /// The record's bytes are fixed here: written exactly so, and read back as the token.
    #[test]
    fn tokens_are_written_and_read_as_version_1() {
        let token = agent_token();
        let change = Change::Token(&token);
        assert_eq!(json(&ChangeRecordV1::from(&change)), TOKEN_CHANGE);
        assert_eq!(json(&change), TOKEN_CHANGE, "a change serializes as its record");
        let owned = OwnedChange::Token(token.clone());
        assert_eq!(json(&ChangeRecordV1::from(&owned)), TOKEN_CHANGE);
        let read: ChangeRecordV1<'_> = serde_json::from_str(TOKEN_CHANGE).expect("reads");
        assert_eq!(OwnedChange::from(read), owned);
        let read: OwnedChange = serde_json::from_str(TOKEN_CHANGE).expect("reads");
        assert_eq!(read, owned);

        let admin = admin_token();
        assert_eq!(json(&TokenRecordV1::from(&admin)), ADMIN);
        let read: TokenRecordV1<'_> = serde_json::from_str(ADMIN).expect("reads");
        assert_eq!(StoredToken::from(read), admin);
    }

    #[test]
    fn roles_keep_their_names() {
        for role in [Role::Admin, Role::Operator, Role::Agent, Role::Reader] {
            let record = RoleRecordV1::from(role);
            assert_eq!(json(&record), format!("\"{}\"", role.as_str()));
            assert_eq!(Role::from(record), role);
        }
    }

    /// A record that does not make a token is refused, never read as some other token.
    #[test]
    fn a_damaged_record_is_refused() {
        for (from, to) in [
            (r#""role":"admin""#, r#""role":"root""#),
            (r#""namespaces":["*"]"#, r#""namespaces":[]"#),
            (r#""namespaces":["*"]"#, r#""namespaces":["*","a"]"#),
            (r#""namespaces":["*"]"#, r#""namespaces":["Team"]"#),
            (r#""id":"vvvvvvvvvvvv""#, r#""id":"vvvvvvvvvvvw""#),
            (
                r#""ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff""#,
                r#""fff""#,
            ),
            (
                r#""ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff""#,
                r#""fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffg""#,
            ),
            (
                r#""ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff""#,
                r#""+fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff""#,
            ),
        ] {
            assert!(ADMIN.contains(from), "{from}");
            let damaged = ADMIN.replace(from, to);
            assert!(
                serde_json::from_str::<TokenRecordV1<'_>>(&damaged).is_err(),
                "{damaged}"
            );
        }
    }

    #[test]
    fn stored_lists_of_namespaces_read_back() {
        assert_eq!(namespaces_from_names(["*"]), Ok(Namespaces::All));
        assert_eq!(
            namespaces_from_names(["b", "a", "b"]),
            Ok(Namespaces::Only(vec![ns("a"), ns("b")]))
        );
        assert_eq!(namespaces_to_names(&Namespaces::All), ["*"]);
        assert_eq!(
            namespaces_to_names(&Namespaces::Only(vec![ns("a"), ns("b")])),
            ["a", "b"]
        );
        for bad in [&[][..], &["*", "a"], &["a", "Bad"], &[""]] {
            assert!(namespaces_from_names(bad.iter().copied()).is_err(), "{bad:?}");
        }
    }
}
