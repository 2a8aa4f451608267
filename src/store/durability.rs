//! Group commit: many threads that each need their writes on disk before they answer share
//! one `fdatasync`.
//!
//! A writer takes a ticket after its write reached the journal, then waits until a sync that
//! started after its ticket has finished. One waiter runs the sync for everybody whose ticket
//! it covers; the others sleep on a condition variable. Under load, concurrent requests are
//! acknowledged after a single disk flush instead of one each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// Tracks written and synced tickets.
#[derive(Default)]
pub struct GroupSync {
    written: AtomicU64,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    syncing: bool,
    failed: Option<String>,
}

impl GroupSync {
    /// Waits until everything written before this call is durable; `sync` performs the flush.
    /// The error of a failed flush is returned to every waiter it covered.
    pub fn wait_durable<E: std::fmt::Display>(
        &self,
        sync: impl Fn() -> Result<(), E>,
    ) -> Result<(), String> {
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.synced >= ticket {
                return match &state.failed {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                };
            }
            if !state.syncing {
                state.syncing = true;
                // Every ticket handed out so far belongs to a write that already reached the
                // journal, so this flush covers all of them.
                let target = self.written.load(Ordering::SeqCst);
                drop(state);
                let result = sync().map_err(|e| e.to_string());
                state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                state.syncing = false;
                state.synced = state.synced.max(target);
                state.failed = result.err();
                self.done.notify_all();
                continue;
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn concurrent_waiters_share_flushes() {
        let group = Arc::new(GroupSync::default());
        let flushes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (group, flushes) = (group.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        group
                            .wait_durable(|| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(2));
                                Ok::<(), String>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!(
            (1..320).contains(&n),
            "expected fewer flushes than waits, got {n}"
        );
    }

    #[test]
    fn a_failed_flush_is_reported_to_its_waiter() {
        let group = GroupSync::default();
        let r = group.wait_durable(|| Err::<(), _>("disk full"));
        assert_eq!(r.unwrap_err(), "disk full");
        assert!(group.wait_durable(|| Ok::<(), String>(())).is_ok());
    }
}
