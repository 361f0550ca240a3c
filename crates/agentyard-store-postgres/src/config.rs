//! The store URL: `postgres://user@host:5432/db?schema=NAME&pool_size=N&sslmode=disable`.
//!
//! `schema` and `pool_size` are ours and are taken out before the rest goes to the driver, which
//! understands the usual libpq options (`sslmode`, `connect_timeout`, `application_name`, …).

use std::str::FromStr;

/// Where the yard's tables live when the URL does not say.
pub const DEFAULT_SCHEMA: &str = "agentyard";

/// Connections each node keeps open at most (besides the one that listens for notifications).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A parsed PostgreSQL store URL.
#[derive(Clone)]
pub struct PgOptions {
    /// The driver's settings: host, user, database, options.
    pub(crate) config: tokio_postgres::Config,
    /// The schema holding the yard's tables; several yards can share one database.
    pub schema: String,
    pub pool_size: usize,
    /// The URL without its password, for logs and errors.
    shown: String,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.shown)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Two options are the same when their URLs are (settings compare them).
impl PartialEq for PgOptions {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.schema == other.schema && self.pool_size == other.pool_size
    }
}

impl Eq for PgOptions {}

/// Why a store URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PostgreSQL URL {url}: {reason}")]
pub struct PgUrlError {
    url: String,
    reason: String,
}

impl PgOptions {
    /// Parses `postgres://…` or `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, PgUrlError> {
        let shown = hide_password(url);
        let fail = |reason: String| PgUrlError {
            url: shown.clone(),
            reason,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(fail("it must start with postgres:// or postgresql://".into()));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut pool_size = DEFAULT_POOL_SIZE;
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "schema" => schema = parse_schema(value).map_err(fail)?,
                "pool_size" => {
                    pool_size = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1_000).contains(n))
                        .ok_or_else(|| fail(format!("pool_size must be a number from 1 to 1000, not {value:?}")))?;
                }
                "sslmode" if matches!(value, "require" | "verify-ca" | "verify-full") => {
                    return Err(fail(format!(
                        "sslmode={value} needs TLS to PostgreSQL, which this build does not include; \
                         use sslmode=disable or prefer on a trusted network, or a TLS proxy such as pgbouncer"
                    )));
                }
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| fail(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("agentyard");
        }
        // Every connection resolves the yard's tables in its schema; `pg_catalog` stays first.
        let options = match config.get_options() {
            Some(o) => format!("{o} -c search_path={schema}"),
            None => format!("-c search_path={schema}"),
        };
        config.options(&options);
        Ok(Self {
            config,
            schema,
            pool_size,
            shown,
        })
    }

    /// The URL as given, its password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// A schema name we create and quote nowhere: lower-case letters, digits and `_`.
fn parse_schema(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 56
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "schema must be 1 to 56 characters of a-z, 0-9 and _, starting with a letter or _, not {value:?}"
        ))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_our_options_taken_out() {
        let o = PgOptions::parse("postgres://u@127.0.0.1:5432/test?schema=yard_a&pool_size=4&sslmode=disable")
            .expect("valid");
        assert_eq!(o.schema, "yard_a");
        assert_eq!(o.pool_size, 4);
        assert_eq!(o.config.get_dbname(), Some("test"));
        assert_eq!(o.config.get_options(), Some("-c search_path=yard_a"));
        let o = PgOptions::parse("postgresql://u@h/db").expect("valid");
        assert_eq!((o.schema.as_str(), o.pool_size), (DEFAULT_SCHEMA, DEFAULT_POOL_SIZE));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("mysql://h/db", "postgres://"),
            ("postgres://h/db?schema=Bad-Name", "schema must be"),
            ("postgres://h/db?schema=", "schema must be"),
            ("postgres://h/db?pool_size=0", "pool_size"),
            ("postgres://h/db?sslmode=require", "TLS"),
            ("postgres://h/db?nonsense=1", "nonsense"),
        ] {
            let err = PgOptions::parse(url).expect_err(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn passwords_are_hidden() {
        let err = PgOptions::parse("postgres://u:hunter2@h/db?schema=X").expect_err("bad schema");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(hide_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            hide_password("postgres://u:p@h:1/db?x=1"),
            "postgres://u:***@h:1/db?x=1"
        );
    }
}
