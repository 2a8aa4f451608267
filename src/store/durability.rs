//! Group commit: many threads that each need their writes on disk before they answer share
//! one `fdatasync`.
//!
//! A writer takes a ticket after its write reached the journal, then waits until a sync that
//! started after its ticket has finished. One waiter runs the sync for everybody whose ticket
//! it covers; the others sleep on a condition variable. Under load, concurrent requests are
//! acknowledged after a single disk flush instead of one each.
//!
//! Each group commit also leaves a high-water mark of acknowledged writes in two places (see
//! [`AckMark`]): a record in the store, written in the journal after the writes it covers,
//! and a small file next to the journal, written and synced once the flush succeeded, by a
//! writer thread of its own, so that an acknowledgement waits for one disk flush, not two. The
//! file may lag the store by the writer's flush (it is never ahead of it, so a crash never
//! raises a false alarm); what a damaged journal loses before that is detected. fjall
//! cannot tell that it lost data: when it meets a damaged entry while replaying its journal, it
//! truncates the journal there and opens without an error (only its debug log says so), and
//! its recovery mode is not configurable. A damaged journal therefore shows as a store record
//! older than the file: the writes acknowledged in between are lost.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// One group commit's mark: its number (counting from the store's creation), when it was
/// made, and the store's next sequence number then (every write batch below it is covered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// Group commits are numbered 1, 2, ...
    pub n: u64,
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// fjall's next sequence number when the mark was made.
    pub seqno: u64,
}

const MAGIC: &[u8; 8] = b"OXACK001";
const MARK_BYTES: usize = 32;

impl Mark {
    /// The bytes of the store record and of the file.
    pub fn encode(&self) -> [u8; MARK_BYTES] {
        let mut out = [0u8; MARK_BYTES];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.n.to_be_bytes());
        out[16..24].copy_from_slice(&self.ms.to_be_bytes());
        out[24..32].copy_from_slice(&self.seqno.to_be_bytes());
        out
    }

    /// `None` for anything [`Mark::encode`] did not write.
    pub fn decode(bytes: &[u8]) -> Option<Mark> {
        if bytes.len() != MARK_BYTES || &bytes[..8] != MAGIC {
            return None;
        }
        let u = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        Some(Mark {
            n: u(8),
            ms: u(16),
            seqno: u(24),
        })
    }
}

/// The file that holds the mark of the last acknowledged group commit.
pub struct AckMark {
    file: Arc<Mutex<File>>,
    path: PathBuf,
    next: AtomicU64,
    /// The newest mark not yet in the file, for the writer thread.
    pending: Arc<(Mutex<Option<Mark>>, Condvar)>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Writes `mark` at the start of `file` and syncs it.
fn write_mark(file: &Mutex<File>, mark: &Mark) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(&mark.encode())?;
    file.sync_data()
}

/// The name of the mark file in the database directory (fjall ignores files it does not know).
pub const ACK_FILE: &str = "oxisd-acknowledged";

impl AckMark {
    /// Opens (or creates) the mark file in `dir`; returns it and the mark it holds (`None` when
    /// the file is new or unreadable).
    pub fn open(dir: &Path) -> std::io::Result<(AckMark, Option<Mark>)> {
        let path = dir.join(ACK_FILE);
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(&path)?;
        let bytes = std::fs::read(&path)?;
        let mark = Mark::decode(&bytes);
        if mark.is_none() && !bytes.is_empty() {
            log::warn!(
                "{} is not a mark of acknowledged writes; writing it anew",
                path.display()
            );
        }
        Ok((
            AckMark {
                file: Arc::new(Mutex::new(file)),
                path,
                next: AtomicU64::new(mark.map_or(0, |m| m.n)),
                pending: Arc::default(),
                writer: Mutex::new(None),
            },
            mark,
        ))
    }

    /// Group commits continue after `n`.
    pub fn continue_after(&self, n: u64) {
        self.next.fetch_max(n, Ordering::SeqCst);
    }

    /// The next group commit's mark, made now.
    pub fn next_mark(&self, seqno: u64) -> Mark {
        Mark {
            n: self.next.fetch_add(1, Ordering::SeqCst) + 1,
            ms: crate::util::time::now_ms(),
            seqno,
        }
    }

    /// Writes `mark` to the file and syncs it, now (at open and close).
    pub fn record(&self, mark: &Mark) -> std::io::Result<()> {
        self.flush_pending();
        write_mark(&self.file, mark)
    }

    /// Hands `mark` to the writer thread, which writes the newest mark it has and syncs it.
    pub fn record_soon(&self, mark: Mark) {
        let (slot, wake) = &*self.pending;
        {
            let mut pending = slot.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_none_or(|p| p.n < mark.n) {
                *pending = Some(mark);
            }
        }
        wake.notify_one();
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.is_none() {
            let (file, pending) = (Arc::downgrade(&self.file), Arc::downgrade(&self.pending));
            let path = self.path.clone();
            *writer = std::thread::Builder::new()
                .name("ack-mark".into())
                .spawn(move || mark_writer(file, pending, path))
                .map_err(|e| {
                    log::error!("cannot start the writer of {}: {e}", "oxisd-acknowledged")
                })
                .ok();
        }
    }

    /// Writes the mark still waiting for the writer thread, if any.
    pub fn flush_pending(&self) {
        let taken = self
            .pending
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mark) = taken
            && let Err(e) = write_mark(&self.file, &mark)
        {
            log::error!("cannot write {}: {e}", self.path.display());
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The writer thread of [`AckMark::record_soon`]: writes the newest pending mark, until the
/// mark's owner is gone.
fn mark_writer(
    file: std::sync::Weak<Mutex<File>>,
    pending: std::sync::Weak<(Mutex<Option<Mark>>, Condvar)>,
    path: PathBuf,
) {
    loop {
        let Some(shared) = pending.upgrade() else {
            return;
        };
        let (slot, wake) = &*shared;
        let mark = {
            let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
            let (mut guard, _) = wake
                .wait_timeout_while(guard, std::time::Duration::from_secs(1), |p| p.is_none())
                .unwrap_or_else(|p| p.into_inner());
            guard.take()
        };
        drop(shared);
        let (Some(mark), Some(file)) = (mark, file.upgrade()) else {
            continue;
        };
        if let Err(e) = write_mark(&file, &mark) {
            log::error!("cannot write {}: {e}", path.display());
        }
    }
}

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
    fn marks_survive_a_reopen_and_count_on() {
        let dir = std::env::temp_dir().join(format!("oxisd-ackmark-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ack, found) = AckMark::open(&dir).unwrap();
        assert_eq!(found, None);
        let first = ack.next_mark(10);
        let second = ack.next_mark(12);
        assert_eq!((first.n, second.n), (1, 2));
        ack.record(&second).unwrap();
        drop(ack);
        let (ack, found) = AckMark::open(&dir).unwrap();
        assert_eq!(found, Some(second));
        assert_eq!(ack.next_mark(13).n, 3);
        ack.continue_after(9);
        assert_eq!(ack.next_mark(13).n, 10);
        assert_eq!(Mark::decode(b"short"), None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_failed_flush_is_reported_to_its_waiter() {
        let group = GroupSync::default();
        let r = group.wait_durable(|| Err::<(), _>("disk full"));
        assert_eq!(r.unwrap_err(), "disk full");
        assert!(group.wait_durable(|| Ok::<(), String>(())).is_ok());
    }
}
