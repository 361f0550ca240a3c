//! PostgreSQL errors as backend-neutral `StoreError`s.

use agentyard_store::StoreError;
use tokio_postgres::error::SqlState;

/// A driver error as a store error: `Unavailable` when the database cannot be reached or is
/// shutting down (the API answers 503 and clients retry), `Other` for everything else.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if unreachable(&e) {
        return StoreError::Unavailable(format!("PostgreSQL is unreachable: {}", describe(&e)));
    }
    StoreError::Other(format!("PostgreSQL: {}", describe(&e)))
}

/// The error's own text and, for a database error, its detail.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            let mut out = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                out.push_str(": ");
                out.push_str(&s.to_string());
                source = s.source();
            }
            out
        }
    }
}

fn unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Connection exceptions, an operator or a shutdown ending the session, too many clients.
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
        // No answer from the server at all: an I/O error, a refused connection, a timeout.
        None => true,
    }
}

/// A transaction the database rolled back to break a deadlock or a serialization conflict:
/// running it again is safe and usually succeeds.
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// A pooled connection could not be had.
pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::Unavailable(format!("no PostgreSQL connection: {other}")),
    }
}

/// A stored value that does not decode: the row was damaged or written by something else.
pub(crate) fn corrupt(record: impl std::fmt::Display, why: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {record} cannot be read: {why}"))
}
