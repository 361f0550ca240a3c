//! The limits table, and `LimitStore` on SQLite: setting and removing a key's limits are writer
//! commands, the listing goes to the reader pool.

use agentyard_core::event::limit_changed;
use agentyard_core::flow::{KeyLimit, RateLimit};
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::{LimitStore, StoreError, StoredLimit};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use crate::error::{corrupt_record, sql_error};
use crate::store::SqliteStore;

const LIST: &str = "SELECT namespace, key, rate_per_minute, burst, max_concurrent FROM limits \
     ORDER BY namespace, key";

const PUT: &str = "INSERT INTO limits (namespace, key, rate_per_minute, burst, max_concurrent) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (namespace, key) DO UPDATE SET \
     rate_per_minute = excluded.rate_per_minute, burst = excluded.burst, \
     max_concurrent = excluded.max_concurrent";

const DELETE: &str = "DELETE FROM limits WHERE namespace = ?1 AND key = ?2";

fn decode(row: &Row<'_>) -> Result<StoredLimit, StoreError> {
    let ns: String = row.get(0).map_err(sql_error)?;
    let key: String = row.get(1).map_err(sql_error)?;
    let per_minute: Option<i64> = row.get(2).map_err(sql_error)?;
    let burst: Option<i64> = row.get(3).map_err(sql_error)?;
    let max_concurrent: Option<i64> = row.get(4).map_err(sql_error)?;
    let record = || format!("limit {ns}/{key}");
    let bad = |what: &str, value: i64| corrupt_record(record(), format!("{what} is {value}"));
    let namespace = Namespace::parse(ns.as_str()).map_err(|e| corrupt_record(record(), e))?;
    let rate = match (per_minute, burst) {
        (Some(per_minute), Some(burst)) => Some(RateLimit {
            rate_per_minute: u32::try_from(per_minute).map_err(|_| bad("rate_per_minute", per_minute))?,
            burst: u32::try_from(burst).map_err(|_| bad("burst", burst))?,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt_record(
                record(),
                "it has a rate without a burst or a burst without a rate",
            ));
        }
    };
    let max_concurrent = match max_concurrent {
        Some(n) => Some(u64::try_from(n).map_err(|_| bad("max_concurrent", n))?),
        None => None,
    };
    Ok(StoredLimit {
        namespace,
        key,
        limit: KeyLimit { rate, max_concurrent },
    })
}

/// Every stored limit, by namespace then key (bytewise, as `MemoryStore` orders them).
fn list(conn: &Connection) -> Result<Vec<StoredLimit>, StoreError> {
    let mut stmt = conn.prepare_cached(LIST).map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn put(conn: &Connection, ns: &Namespace, key: &str, limit: KeyLimit) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(PUT).map_err(sql_error)?;
    // INTEGER is an i64: a concurrency past its range is stored as its largest value, which no
    // fleet reaches (the PostgreSQL store does the same).
    let max_concurrent = limit.max_concurrent.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    stmt.execute(params![
        ns.as_str(),
        key,
        limit.rate.map(|r| r.rate_per_minute),
        limit.rate.map(|r| r.burst),
        max_concurrent,
    ])
    .map_err(sql_error)?;
    Ok(())
}

/// Removes the key's limits. Returns false if it had none.
fn delete(conn: &Connection, ns: &Namespace, key: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(DELETE).map_err(sql_error)?;
    let deleted = stmt.execute(params![ns.as_str(), key]).map_err(sql_error)?;
    Ok(deleted > 0)
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn list_limits(&self) -> Result<Vec<StoredLimit>, StoreError> {
        self.readers.run(list).await
    }

    async fn put_limit(&self, ns: &Namespace, key: &str, limit: KeyLimit, now: Timestamp) -> Result<(), StoreError> {
        let (ns, key) = (ns.clone(), key.to_owned());
        self.writer
            .run(move |ctx| {
                put(ctx.conn(), &ns, &key, limit)?;
                ctx.log(&limit_changed(&ns, &key, Some(&limit), now))
            })
            .await
    }

    async fn delete_limit(&self, ns: &Namespace, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (ns, key) = (ns.clone(), key.to_owned());
        self.writer
            .run(move |ctx| {
                let removed = delete(ctx.conn(), &ns, &key)?;
                if removed {
                    ctx.log(&limit_changed(&ns, &key, None, now))?;
                }
                Ok(removed)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::migrate;
    use crate::migrations::plans::plan_of;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        conn
    }

    /// Removing a key goes straight to its row; the listing reads the table in key order, with
    /// no sort.
    #[test]
    fn limit_queries_use_the_primary_key() {
        assert!(plan_of(DELETE).contains("PRIMARY KEY"), "{}", plan_of(DELETE));
        assert!(!plan_of(LIST).contains("TEMP B-TREE"), "{}", plan_of(LIST));
    }

    #[test]
    fn a_limit_reads_back_as_it_was_put() {
        let conn = db();
        let ns = Namespace::parse("tenant-a").expect("valid");
        let both = KeyLimit {
            rate: Some(RateLimit {
                rate_per_minute: u32::MAX,
                burst: 7,
            }),
            max_concurrent: Some(3),
        };
        put(&conn, &ns, "both", both).expect("put");
        put(&conn, &ns, "none", KeyLimit::default()).expect("put");
        let listed = list(&conn).expect("list");
        let limits: Vec<(&str, KeyLimit)> = listed.iter().map(|l| (l.key.as_str(), l.limit)).collect();
        assert_eq!(limits, vec![("both", both), ("none", KeyLimit::default())]);
        assert!(delete(&conn, &ns, "none").expect("delete"));
        assert!(!delete(&conn, &ns, "none").expect("delete again"));
    }

    /// A row that does not make a limit is an error naming it, never a limit made up.
    #[test]
    fn a_damaged_row_is_an_error_naming_the_limit() {
        let conn = db();
        conn.execute(
            "INSERT INTO limits (namespace, key, max_concurrent) VALUES ('default', 'openai', -1)",
            [],
        )
        .expect("insert");
        let err = list(&conn).expect_err("refused");
        assert_eq!(err.kind(), "other");
        assert!(err.to_string().contains("limit default/openai"), "{err}");
        let half = conn.execute(
            "INSERT INTO limits (namespace, key, rate_per_minute) VALUES ('default', 'half', 60)",
            [],
        );
        assert!(half.is_err(), "a rate needs its burst");
    }
}
