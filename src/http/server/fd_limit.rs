//! The open-files limit. Every connection costs a file descriptor, and the store needs its
//! own; the soft limit is often 1 024 (systemd's default) while the hard one is much higher.
//! Like most servers we raise the soft limit to the hard one at start, and the caller keeps
//! the connection caps below what is left, so a flood meets our cap instead of `EMFILE`.
//! `setrlimit` is only called when the soft limit is below the hard one: the shipped systemd
//! unit sets both (`LimitNOFILE=`) and forbids the call through its system-call filter.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit then in force, or
/// `None` where it cannot be known.
// unsafe: getrlimit and setrlimit are called through libc; std has no wrapper.
#[allow(unsafe_code)]
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own and has no other effect.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the
            // hard one is always allowed.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        // rlim_t is 32 bits on some targets (32-bit glibc).
        #[allow(clippy::unnecessary_cast)]
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
