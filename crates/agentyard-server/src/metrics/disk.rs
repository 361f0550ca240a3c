//! Free space on the file system holding the store's files (`statvfs`), for `/metrics` and
//! `/health/detailed`. Unix only; elsewhere, or for a store without files, there is no reading.

use std::path::Path;

/// What one reading of a file system found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Free for an unprivileged user (what the server can still write).
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// Reads the file system holding `dir`; `None` when it cannot be read.
pub fn read(dir: &Path) -> Option<DiskSpace> {
    #[cfg(unix)]
    {
        let st = rustix::fs::statvfs(dir).ok()?;
        Some(DiskSpace {
            free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn reads_the_temp_dir() {
        let d = super::read(&std::env::temp_dir()).expect("a reading");
        assert!(d.total_bytes > 0 && d.free_bytes <= d.total_bytes, "{d:?}");
        assert_eq!(super::read(std::path::Path::new("/no/such/dir/at/all")), None);
    }
}
