//! The store's exclusive hold on its database: one open store per SQLite file, in this process or
//! any other.
//!
//! Two stores on one file would each keep their own view of it in memory (the per-queue counts,
//! the writer's running tasks) and be wrong about the other's writes. SQLite's own exclusive mode
//! does not fit: `locking_mode=EXCLUSIVE` on a WAL database does without the shared-memory index,
//! so no other connection could open the file, and this store's readers and checkpoint thread are
//! other connections. So the store holds an exclusive advisory lock (`flock`) on a file beside the
//! database, `PATH.lock`, from before it opens the database until it has closed it; a second open
//! fails at once, naming the file and the process that holds it.
//!
//! Beside the database, not on it: SQLite locks the database file with POSIX record locks, and a
//! process loses all of those on a file when it closes any descriptor of that file, so a lock
//! descriptor of our own there (or a refused second open's) would drop the first store's SQLite
//! locks as it closed. The database's path is resolved first (symbolic links followed, as SQLite
//! does for its `-wal` and `-shm` files), so two names of one database meet at one lock file. The
//! lock file is left behind at close: removing it could race with a store taking it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use agentyard_store::StoreError;

/// Held for as long as the store is open; dropping it lets the lock go.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock of the database at `db`, or says who holds it.
    pub(crate) fn take(db: &Path) -> Result<Self, StoreError> {
        let unavailable = |lock: &Path, e: io::Error| {
            StoreError::Unavailable(format!(
                "cannot open {}, the lock file of the SQLite store {}: {e}",
                lock.display(),
                db.display()
            ))
        };
        let lock = lock_path(db).map_err(|e| unavailable(&beside(db), e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|e| unavailable(&lock, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .map_or_else(String::new, |pid| format!(" (process {pid})"));
                return Err(StoreError::Other(format!(
                    "the SQLite store {} is in use: another agentyard{holder} holds its lock file {}; stop it, or \
                     give this one another file",
                    db.display(),
                    lock.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(unavailable(&lock, e)),
        }
        // Who holds it, for the error a second open shows. Only a help: the lock is what counts.
        let noted = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        if let Err(e) = noted {
            tracing::debug!(lock = %lock.display(), error = %e, "cannot note this process in the lock file");
        }
        Ok(Self { _file: file })
    }
}

/// `PATH.lock` beside the file `db` resolves to (or, before it exists, beside it in its
/// directory's real path).
fn lock_path(db: &Path) -> io::Result<PathBuf> {
    let resolved = match std::fs::canonicalize(db) {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = match db.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let name = db
                .file_name()
                .ok_or_else(|| io::Error::other("the path names no file"))?;
            std::fs::canonicalize(dir)?.join(name)
        }
        Err(e) => return Err(e),
    };
    Ok(beside(&resolved))
}

fn beside(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    db.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn one_lock_per_database_whatever_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("yard.db");
        let first = StoreLock::take(&db).expect("the first takes it");
        let lock = dir.path().join("yard.db.lock");
        assert_eq!(
            std::fs::read_to_string(&lock).expect("lock file"),
            format!("{}\n", std::process::id())
        );
        let err = StoreLock::take(&db).expect_err("a second is refused").to_string();
        assert!(
            err.contains("yard.db is in use") && err.contains("yard.db.lock"),
            "{err}"
        );
        assert!(err.contains(&format!("process {}", std::process::id())), "{err}");
        // Another name of the same file.
        std::fs::write(&db, b"").expect("create");
        let link = dir.path().join("other-name.db");
        std::os::unix::fs::symlink(&db, &link).expect("symlink");
        assert!(StoreLock::take(&link).is_err(), "a link to it is the same database");
        drop(first);
        let again = StoreLock::take(&link).expect("free again once the first let go");
        drop(again);
        assert!(lock.exists(), "the lock file stays");
    }
}
