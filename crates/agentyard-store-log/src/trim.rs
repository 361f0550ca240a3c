//! Giving freed memory back to the system. The log store holds the whole yard in memory; when
//! retention deletes history, its maps free their nodes, but glibc's allocator keeps freed pages
//! for later instead of returning them, so the process would stay as large as it ever was.
//! `malloc_trim(0)` returns every whole free page of every arena (glibc 2.8 and later).

/// Returns free heap pages to the system (glibc on Linux; elsewhere nothing to do).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free_memory() {
    // The workspace denies unsafe code; this is its one exception, audited here.
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes a byte count and touches only the allocator's own free lists,
    // under the allocator's locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() {}
