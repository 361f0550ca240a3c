//! Maps rusqlite's errors to the backend-neutral `StoreError`.
//!
//! What the caller can do about it decides the variant: a busy, locked, full or failing disk
//! may pass (`Unavailable`, worth a retry); anything else is a bug or damage (`Other`).

use agentyard_core::TaskId;
use agentyard_store::StoreError;
use rusqlite::ErrorCode;

pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed,
        ) => StoreError::Unavailable(format!("SQLite: {e}")),
        _ => StoreError::Other(format!("SQLite: {e}")),
    }
}

/// A stored row that does not decode: damage or a bug, named so it can be found.
pub(crate) fn corrupt(id: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("task {id}: the stored {what} is unreadable: {e}"))
}

pub(crate) fn corrupt_id(id: TaskId, what: &str, e: impl std::fmt::Display) -> StoreError {
    corrupt(&id.to_string(), what, e)
}

/// A stored agent or message that does not decode. `record` names it, e.g. "agent ns/coder-1".
pub(crate) fn corrupt_record(record: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("{record}: the stored document is unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn transient_failures_are_unavailable_the_rest_other() {
        for (code, kind) in [
            (rusqlite::ffi::SQLITE_BUSY, "unavailable"),
            (rusqlite::ffi::SQLITE_LOCKED, "unavailable"),
            (rusqlite::ffi::SQLITE_IOERR, "unavailable"),
            (rusqlite::ffi::SQLITE_FULL, "unavailable"),
            (rusqlite::ffi::SQLITE_CONSTRAINT, "other"),
            (rusqlite::ffi::SQLITE_CORRUPT, "other"),
        ] {
            assert_eq!(sql_error(failure(code)).kind(), kind, "code {code}");
        }
        assert_eq!(sql_error(rusqlite::Error::QueryReturnedNoRows).kind(), "other");
    }
}
