//! Dispatch limits on PostgreSQL: `LimitStore` (the limits set through the API, which every node
//! reads), and the token buckets of rate-limit keys that claims on every node draw from.

use agentyard_core::event::limit_changed;
use agentyard_core::flow::{KeyLimit, RateLimit, TokenBucket};
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::{LimitStore, StoreError, StoredLimit};
use async_trait::async_trait;

use crate::error::{corrupt, pg_error};
use crate::notify::Notice;
use crate::store::{PgStore, write_tx};
use crate::work::{TxResult, Work};

fn opt_u32(v: Option<i32>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

#[async_trait]
impl LimitStore for PgStore {
    async fn list_limits(&self) -> Result<Vec<StoredLimit>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT namespace, key, rate_per_minute, burst, max_concurrent FROM limits ORDER BY namespace COLLATE \"C\", key COLLATE \"C\"",
            )
            .await
            .map_err(pg_error)?;
        let rows = client.query(&stmt, &[]).await.map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                let ns: &str = r.get(0);
                let key: String = r.get(1);
                let rate = match (opt_u32(r.get(2)), opt_u32(r.get(3))) {
                    (Some(rate_per_minute), Some(burst)) => Some(RateLimit { rate_per_minute, burst }),
                    _ => None,
                };
                let max_concurrent: Option<i64> = r.get(4);
                Ok(StoredLimit {
                    namespace: Namespace::parse(ns).map_err(|e| corrupt(format!("limit {key:?}"), e))?,
                    key,
                    limit: KeyLimit {
                        rate,
                        max_concurrent: max_concurrent.map(|n| u64::try_from(n).unwrap_or(0)),
                    },
                })
            })
            .collect()
    }

    async fn put_limit(
        &self,
        ns: &Namespace,
        key: &str,
        limit: KeyLimit,
        now: agentyard_core::Timestamp,
    ) -> Result<(), StoreError> {
        write_tx!(self, |w| {
            let stmt =
                w.tx.prepare_cached(
                    "INSERT INTO limits (namespace, key, rate_per_minute, burst, max_concurrent) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, key) DO UPDATE SET \
                     rate_per_minute = excluded.rate_per_minute, burst = excluded.burst, \
                     max_concurrent = excluded.max_concurrent",
                )
                .await?;
            let per_minute = limit.rate.map(|r| i32::try_from(r.rate_per_minute).unwrap_or(i32::MAX));
            let burst = limit.rate.map(|r| i32::try_from(r.burst).unwrap_or(i32::MAX));
            let max = limit.max_concurrent.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
            w.tx.execute(&stmt, &[&ns.as_str(), &key, &per_minute, &burst, &max])
                .await?;
            w.notify(Notice::LimitsChanged);
            w.log(limit_changed(ns, key, Some(&limit), now));
            TxResult::Ok(())
        })
    }

    async fn delete_limit(
        &self,
        ns: &Namespace,
        key: &str,
        now: agentyard_core::Timestamp,
    ) -> Result<bool, StoreError> {
        write_tx!(self, |w| {
            let stmt =
                w.tx.prepare_cached("DELETE FROM limits WHERE namespace = $1 AND key = $2")
                    .await?;
            let deleted = w.tx.execute(&stmt, &[&ns.as_str(), &key]).await? == 1;
            if deleted {
                w.notify(Notice::LimitsChanged);
                w.log(limit_changed(ns, key, None, now));
            }
            TxResult::Ok(deleted)
        })
    }
}

/// Takes a token of the namespace's `key` bucket at `now`, or says when the next one comes. The
/// bucket's row stays locked until the claim commits, so claimers of one key on every node take
/// turns and the rate holds for the whole fleet.
pub(crate) async fn take_token(
    w: &mut Work<'_>,
    ns: &Namespace,
    key: &str,
    rate: RateLimit,
    now: Timestamp,
) -> TxResult<Result<(), Timestamp>> {
    let create =
        w.tx.prepare_cached(
            "INSERT INTO rate_buckets (namespace, key, tat_us) VALUES ($1, $2, -9223372036854775808) \
             ON CONFLICT (namespace, key) DO NOTHING",
        )
        .await?;
    w.tx.execute(&create, &[&ns.as_str(), &key]).await?;
    let lock =
        w.tx.prepare_cached("SELECT tat_us FROM rate_buckets WHERE namespace = $1 AND key = $2 FOR UPDATE")
            .await?;
    let tat: i64 = w.tx.query_one(&lock, &[&ns.as_str(), &key]).await?.get(0);
    let mut bucket = TokenBucket::from_state(rate, tat);
    match bucket.try_acquire(now) {
        Ok(()) => {
            let save =
                w.tx.prepare_cached("UPDATE rate_buckets SET tat_us = $3 WHERE namespace = $1 AND key = $2")
                    .await?;
            w.tx.execute(&save, &[&ns.as_str(), &key, &bucket.state()]).await?;
            Ok(Ok(()))
        }
        Err(wait_ms) => Ok(Err(now.add_millis(wait_ms))),
    }
}
