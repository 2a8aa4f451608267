//! Keeps the resident memory of a long-running server small on glibc, whose allocator gives
//! every thread its own arena and keeps freed memory around. With a pool of worker threads that
//! turns a short burst of requests into tens of MiB that never go back to the system.
//! Elsewhere (musl, the static ARM builds) these are no-ops.

/// Limits the allocator to two arenas; called once at start, before threads are spawned.
// unsafe: glibc's mallopt has no safe wrapper.
#[allow(unsafe_code)]
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed heap memory to the system; called now and then from a background thread.
// unsafe: glibc's malloc_trim has no safe wrapper.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases unused memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
