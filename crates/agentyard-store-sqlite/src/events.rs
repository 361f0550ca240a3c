//! The events table, and `EventStore` on SQLite: every change appends its event through the
//! writer, in the transaction (and the savepoint, for the commands that have one) of the change
//! itself, so a change rolled back takes its event with it; reads go to the reader pool.
//!
//! A row holds the fields of an event as columns (the type by its API name, frozen with
//! `agentyard_store::record::EventRecordV1`; the data as JSON text). `seq` is the rowid; an append
//! takes the next seq after the newest row and after the highest seq ever deleted (kept in
//! `events_floor` by a trigger, see `migrations.rs`), so a seq is never given twice, also once old
//! events are deleted, and [`last_seq`] reads it the same way.

use agentyard_core::event::{Event, EventType, NewEvent};
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::{EVENT_SCAN_WINDOW, EventFilter, EventPage, EventStore, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use crate::error::{corrupt_record, sql_error};
use crate::store::SqliteStore;

/// The highest seq given: that of the newest row, or the highest ever deleted if higher (the
/// newest rows deleted too). Both are single lookups: the last entry of the primary key, the one
/// row of `events_floor`.
const LAST_SEQ: &str = "SELECT max(coalesce((SELECT max(seq) FROM events), 0), \
     coalesce((SELECT last FROM events_floor), 0))";

const APPEND: &str = "INSERT INTO events (seq, ts, namespace, type, subject, actor, correlation_id, data) \
     VALUES (max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT last FROM events_floor), 0)) + 1, \
     ?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// A namespace's events after a seq up to another, through the primary key (`+namespace` keeps
/// the planner off `events_by_subject`, which would read the namespace's whole history and sort
/// it).
const WINDOW: &str = "SELECT seq, ts, namespace, type, subject, actor, correlation_id, data FROM events \
     WHERE seq > ?2 AND seq <= ?3 AND +namespace = ?1 ORDER BY seq";

/// A subject's events after a seq, through `events_by_subject`.
const BY_SUBJECT: &str = "SELECT seq, ts, namespace, type, subject, actor, correlation_id, data FROM events \
     WHERE namespace = ?1 AND subject = ?2 AND seq > ?3 ORDER BY seq";

/// A correlation id's events after a seq, through `events_by_correlation`.
const BY_CORRELATION: &str = "SELECT seq, ts, namespace, type, subject, actor, correlation_id, data FROM events \
     WHERE namespace = ?1 AND correlation_id = ?2 AND seq > ?3 ORDER BY seq";

/// Appends an event at the next seq. Only the writer calls it, inside the transaction of the
/// change the event records.
pub(crate) fn append(conn: &Connection, event: &NewEvent) -> Result<(), StoreError> {
    let data = serde_json::to_string(&event.data)
        .map_err(|e| corrupt_record(format!("event {} of {}", event.kind, event.subject), e))?;
    let mut stmt = conn.prepare_cached(APPEND).map_err(sql_error)?;
    stmt.execute(params![
        event.ts.as_millis(),
        event.namespace.as_str(),
        event.kind.as_str(),
        event.subject,
        event.actor,
        event.correlation_id,
        data,
    ])
    .map_err(sql_error)?;
    Ok(())
}

/// The highest seq given so far; 0 when none was.
fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(LAST_SEQ).map_err(sql_error)?;
    let seq: i64 = stmt.query_row([], |row| row.get(0)).map_err(sql_error)?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The type of a row (its fourth column), read before the rest so rows of other types are
/// skipped without decoding their data.
fn kind(row: &Row<'_>, seq: i64) -> Result<EventType, StoreError> {
    let name: String = row.get(3).map_err(sql_error)?;
    EventType::parse(&name).ok_or_else(|| corrupt_record(format!("event {seq}"), format!("unknown type `{name}`")))
}

/// Decodes a row of the reads below (`seq, ts, namespace, type, subject, actor, correlation_id, data`) whose type was read already.
fn decode(row: &Row<'_>, seq: i64, kind: EventType) -> Result<Event, StoreError> {
    let record = || format!("event {seq}");
    let ts: i64 = row.get(1).map_err(sql_error)?;
    let namespace: String = row.get(2).map_err(sql_error)?;
    let data: String = row.get(7).map_err(sql_error)?;
    Ok(Event {
        seq: u64::try_from(seq).map_err(|e| corrupt_record(record(), e))?,
        ts: Timestamp::from_millis(ts),
        namespace: Namespace::parse(&namespace).map_err(|e| corrupt_record(record(), e))?,
        kind,
        subject: row.get(4).map_err(sql_error)?,
        actor: row.get(5).map_err(sql_error)?,
        correlation_id: row.get(6).map_err(sql_error)?,
        data: serde_json::from_str(&data).map_err(|e| corrupt_record(record(), e))?,
    })
}

/// The page `EventStore::read_events` answers, read in one read transaction so the last seq and
/// the rows agree.
fn read(
    conn: &Connection,
    ns: &Namespace,
    filter: &EventFilter,
    after: u64,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let last = last_seq(conn)?;
    let end = if filter.is_indexed() {
        last
    } else {
        last.min(after.saturating_add(EVENT_SCAN_WINDOW))
    };
    let mut events = Vec::new();
    if end <= after {
        return Ok(EventPage { events, next: after });
    }
    let mut stmt;
    let mut rows = if let Some(subject) = &filter.subject {
        stmt = conn.prepare_cached(BY_SUBJECT).map_err(sql_error)?;
        stmt.query(params![ns.as_str(), subject, seq_param(after)])
    } else if let Some(correlation_id) = &filter.correlation_id {
        stmt = conn.prepare_cached(BY_CORRELATION).map_err(sql_error)?;
        stmt.query(params![ns.as_str(), correlation_id, seq_param(after)])
    } else {
        stmt = conn.prepare_cached(WINDOW).map_err(sql_error)?;
        stmt.query(params![ns.as_str(), seq_param(after), seq_param(end)])
    }
    .map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let seq: i64 = row.get(0).map_err(sql_error)?;
        let kind = kind(row, seq)?;
        if !filter.types.is_empty() && !filter.types.contains(&kind) {
            continue;
        }
        let event = decode(row, seq, kind)?;
        // The index answered one of subject and correlation id; the other is checked here.
        if !filter.matches(&event) {
            continue;
        }
        events.push(event);
        if events.len() == limit {
            let next = events.last().map_or(end, |e| e.seq);
            return Ok(EventPage { events, next });
        }
    }
    Ok(EventPage { events, next: end })
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn read_events(
        &self,
        ns: &Namespace,
        filter: &EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let (ns, filter) = (ns.clone(), filter.clone());
        self.readers
            .snapshot(move |conn| read(conn, &ns, &filter, after, limit))
            .await
    }

    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.readers.run(last_seq).await
    }
}

#[cfg(test)]
mod tests {
    use super::{BY_CORRELATION, BY_SUBJECT, WINDOW};
    use crate::migrations::plans::assert_uses;

    /// A subject's or a correlation id's history is an index range in seq order, whatever the
    /// log's size; a window is a range of the primary key.
    #[test]
    fn event_reads_use_their_index() {
        assert_uses(BY_SUBJECT, "events_by_subject");
        assert_uses(BY_CORRELATION, "events_by_correlation");
        assert_uses(WINDOW, "INTEGER PRIMARY KEY");
    }
}
