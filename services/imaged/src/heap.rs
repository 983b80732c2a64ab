//! Giving freed heap back to the system after the daemon's big one-off allocations.
//!
//! Opening a store decodes every record (about 100 MB of transient buffers at 100k images)
//! and the first listing builds derived indexes; glibc's malloc keeps the freed pages of
//! its arenas resident. `malloc_trim(0)` returns every whole free page of every arena
//! (`madvise(MADV_DONTNEED)`), so the daemon's RSS is what it holds, not what it once held.

/// Returns the free pages of the allocator's arenas to the system (glibc only; a no-op
/// elsewhere).
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: `malloc_trim` takes no pointers and is thread-safe (it locks each arena);
        // it only releases memory the allocator owns and no live allocation uses.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
