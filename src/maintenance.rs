//! Background upkeep, on a few threads so that a slow job never holds up another:
//!
//! - `maintenance`: removing expired sessions (task `sweeper`) and expired invites
//!   (`invite-expiry`), writing memtables out while idle and handing freed memory back
//!   (`memory`), every tick (half the session lifetime, between 1 s and 10 s);
//! - `pepper-rotation`: rotating the lookup pepper every `lookup.pepper.rotateEvery` (when set);
//! - `invite-resolution`: checking pending invites against the identity stores every
//!   `invite.resolution.timer` (when set);
//! - `store-sync`: syncing the Synapse identity store every `stores.synapse.interval` (when
//!   enabled);
//! - `directory-sync`: syncing the directory (`stores.ldap`) every `stores.ldap.sync.interval`
//!   (when enabled; the first sync at start);
//! - `courier`: delivering claimed invites (`onbind`) through a few worker threads, one per
//!   destination;
//! - `remote-courier`: forwarding the binds and unbinds queued for upstream identity servers
//!   that could not be made at once (remote sessions).
//!
//! Every iteration of every task runs under the panic boundary of [`crate::tasks`], which also
//! records when it last completed one, for `/health`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::App;
use crate::service::invites::outbox;

/// The maintenance tick for a session lifetime of `ttl` seconds: half of it, between 1 s and
/// 10 s.
pub fn tick(ttl: u64) -> Duration {
    Duration::from_millis(ttl.saturating_mul(500).clamp(1000, 10_000))
}

/// Removed sessions after which the sweeper compacts the session tables.
pub const COMPACT_AFTER_REMOVED: usize = 1000;

/// When the sweeper gives the disk space of removed sessions back (see
/// [`crate::store::Store::compact_sessions`]). A removal leaves a tombstone, and the record and
/// its tombstone keep their space until a compaction meets them; the engine's own compactions
/// do that late on a store that stopped growing, so after a flood of sessions expired the
/// store would stay at its flood size. The sweeper compacts after every
/// [`COMPACT_AFTER_REMOVED`] removals, and once more when such a wave is over (a sweep finds
/// nothing), for its tail. A trickle of expiries never compacts more often than once per
/// [`COMPACT_AFTER_REMOVED`] removals.
#[derive(Debug, Default)]
pub struct SessionCompaction {
    /// Removals since the last compaction.
    pending: usize,
    /// Whether a compaction ran since a sweep last found nothing.
    in_wave: bool,
}

impl SessionCompaction {
    /// Records a sweep that removed `removed` sessions; true when the tables should be
    /// compacted now.
    pub fn after_sweep(&mut self, removed: usize) -> bool {
        self.pending = self.pending.saturating_add(removed);
        let compact = if self.pending >= COMPACT_AFTER_REMOVED {
            self.in_wave = true;
            true
        } else if removed == 0 {
            std::mem::take(&mut self.in_wave) && self.pending > 0
        } else {
            false
        };
        if compact {
            self.pending = 0;
        }
        compact
    }
}

/// Starts the maintenance threads that are needed; they stop when `stop` becomes true (unpark
/// them to wake them).
pub fn spawn(app: Arc<App>, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    let tick = tick(app.config.session.ttl);
    let sweeper = app.tasks.register("sweeper", tick);
    let invite_expiry = app.tasks.register("invite-expiry", tick);
    let memory = app.tasks.register("memory", tick);
    threads.extend(crate::tasks::spawn_periodic(
        "maintenance",
        tick,
        true,
        stop.clone(),
        "expired sessions and invites stay on disk",
        {
            let app = app.clone();
            let mut compaction = SessionCompaction::default();
            move || {
                sweeper.run(|| {
                    let removed = match app.sessions.sweep(app.now_ms()) {
                        Ok(0) => 0,
                        Ok(n) => {
                            log::debug!("removed {n} expired sessions");
                            n
                        }
                        Err(e) => {
                            log::error!("removing expired sessions failed: {e}");
                            return;
                        }
                    };
                    if compaction.after_sweep(removed) {
                        let started = std::time::Instant::now();
                        match app.store.compact_sessions(app.now_ms(), Duration::from_secs(5)) {
                            Ok(()) => log::info!(
                                "compacted the session tables after removing expired sessions ({} ms)",
                                started.elapsed().as_millis()
                            ),
                            Err(e) => log::warn!(
                                "compacting the session tables failed (removed sessions keep their disk space for now): {e}"
                            ),
                        }
                    }
                });
                invite_expiry.run(|| match app.store.sweep_invites(app.now_ms()) {
                    Ok(0) => {}
                    Ok(n) => log::info!("removed {n} expired invites nobody claimed"),
                    Err(e) => log::error!("removing expired invites failed: {e}"),
                });
                memory.run(|| {
                    match app.store.flush_when_idle(app.now_ms(), 10_000) {
                        Ok(true) => log::debug!("idle: wrote memtables out to tables"),
                        Ok(false) => {}
                        Err(e) => log::warn!("writing memtables out failed: {e}"),
                    }
                    crate::memory::release_free_memory();
                });
            }
        },
    ));
    let rotate_every = app.config.lookup.pepper.rotate_every;
    if rotate_every > 0 {
        let every = Duration::from_secs(rotate_every);
        let task = app.tasks.register("pepper-rotation", every);
        let app = app.clone();
        // Not at start: the first rotation is one period after it.
        threads.extend(crate::tasks::spawn_periodic(
            "pepper-rotation",
            every,
            false,
            stop.clone(),
            "the lookup pepper is not rotated",
            move || {
                task.run(|| {
                    if let Err(e) = app.peppers.rotate(&app.store) {
                        log::error!(
                            "rotating the lookup pepper failed (lookups keep the current one): {e}"
                        );
                    }
                });
            },
        ));
    }
    if let Some(every) = app.invites.resolve_every {
        let task = app.tasks.register("invite-resolution", every);
        let app = app.clone();
        threads.extend(crate::tasks::spawn_periodic(
            "invite-resolution",
            every,
            false,
            stop.clone(),
            "pending invites are claimed only by binds here",
            move || {
                task.run(|| match app.invites.resolve_pending(app.now_ms()) {
                    Ok(0) => {}
                    Ok(n) => log::info!("{n} pending invites found their user"),
                    Err(e) => log::warn!("checking pending invites failed: {e}"),
                });
            },
        ));
    }
    if app.directory.is_some() {
        let every = Duration::from_secs(app.config.stores.ldap.sync.interval.max(1));
        let task = app.tasks.register("directory-sync", every);
        let app = app.clone();
        threads.extend(crate::tasks::spawn_periodic(
            "directory-sync",
            every,
            true,
            stop.clone(),
            "the directory (stores.ldap) is not synced",
            move || {
                let Some(directory) = &app.directory else {
                    return;
                };
                task.run(|| {
                    // Held during the sync, so a pepper rotation cannot miss what it writes.
                    let peppers = app.peppers.for_writes();
                    let synced = directory
                        .sync
                        .sync_once(&app.store, &peppers.all(), app.now_ms());
                    drop(peppers);
                    match synced {
                        Ok(report) => {
                            log::info!("directory synced: {report:?}");
                            // New 3PIDs may be invited already: deliver those invites now
                            // rather than at the next invite.resolution.timer.
                            if report.added > 0 {
                                match app.invites.resolve_pending(app.now_ms()) {
                                    Ok(0) => {}
                                    Ok(n) => log::info!("{n} pending invites found their user in the directory"),
                                    Err(e) => log::warn!("checking pending invites failed: {e}"),
                                }
                            }
                        }
                        Err(e) => log::error!(
                            "syncing the directory (stores.ldap) failed (lookups keep the last copy): {e}"
                        ),
                    }
                });
            },
        ));
    }
    if app.synapse_sync.is_some() {
        let every = Duration::from_secs(app.config.stores.synapse.interval.max(1));
        let task = app.tasks.register("store-sync", every);
        let app = app.clone();
        threads.extend(crate::tasks::spawn_periodic(
            "store-sync",
            every,
            true,
            stop,
            "the synapse store is not synced",
            move || {
                let Some(syncer) = &app.synapse_sync else {
                    return;
                };
                task.run(|| {
                    // Held during the sync, so a pepper rotation cannot miss what it writes.
                    let peppers = app.peppers.for_writes();
                    match syncer.sync_once(&app.store, &peppers.all(), app.now_ms()) {
                        Ok(report) => log::info!("synapse store synced: {report:?}"),
                        Err(e) => log::warn!(
                            "syncing the synapse store failed (lookups keep the last copy): {e}"
                        ),
                    }
                });
            },
        ));
    }
    threads
}

/// The longest the courier waits between two dispatches when it is not woken.
pub const COURIER_PERIOD: Duration = Duration::from_secs(60);

/// How long a courier waits after a round that started at `now`: until the next call is due
/// (the round's `Some(ms)`), a whole [`COURIER_PERIOD`] when nothing is queued, 10 s after
/// an error (logged as `what` failing), 50 ms when the round did not run (its task paused
/// after a panic); always between 50 ms and the period.
fn courier_wait<E: std::fmt::Display>(
    round: Option<Result<Option<u64>, E>>,
    now: u64,
    what: &str,
) -> Duration {
    let wait = match round {
        Some(Ok(Some(next))) => Duration::from_millis(next.saturating_sub(now)),
        Some(Ok(None)) => COURIER_PERIOD,
        Some(Err(e)) => {
            log::error!("{what} failed: {e}");
            Duration::from_secs(10)
        }
        // Paused already; look again soon.
        None => Duration::from_millis(50),
    };
    wait.clamp(Duration::from_millis(50), COURIER_PERIOD)
}

/// Starts the courier: it delivers queued `onbind` calls when they are due, woken early when a
/// bind queues a new one, until `stop` becomes true (call `app.invites.wake()` to wake it).
/// It hands each destination with due calls to a worker thread of its own
/// ([`outbox::Courier`]), so one slow homeserver delays only its own invites: half of
/// `outbound.maxConcurrent` workers (the rest is left to request handlers), at least 2 and at
/// most [`outbox::MAX_WORKERS`]. It ends when its workers have.
///
/// Each dispatch is an iteration of the task `courier`, which is expected at least every
/// [`COURIER_PERIOD`]; a panic in a worker is caught and logged with the task's name too.
pub fn spawn_courier(app: Arc<App>, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    let task = app.tasks.register("courier", COURIER_PERIOD);
    let spawned = std::thread::Builder::new()
        .name("courier".into())
        .spawn(move || {
            let clock = || app.now_ms();
            let wake = || app.invites.wake();
            let workers = (app.config.outbound.max_concurrent / 2).clamp(2, outbox::MAX_WORKERS);
            let courier = outbox::Courier::new(
                &app.store,
                &app.homeserver,
                &app.invites.delivery,
                workers,
                &clock,
                &wake,
                &stop,
            );
            std::thread::scope(|scope| {
                while !stop.load(Ordering::SeqCst) {
                    let now = app.now_ms();
                    let round = task.run(|| courier.dispatch(scope, now));
                    app.invites
                        .wait_for_work(courier_wait(round, now, "delivering invites"));
                }
            });
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            log::error!("cannot start the courier thread, invites are not delivered: {e}");
            None
        }
    }
}

/// Starts the remote courier: it makes the queued binds and unbinds of upstream identity
/// servers (see [`crate::service::remote`]) when they are due, woken early when a request
/// leaves one queued, until `stop` becomes true (call `app.remote.wake()` to wake it).
pub fn spawn_remote_courier(app: Arc<App>, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    let task = app.tasks.register("remote-courier", COURIER_PERIOD);
    let spawned = std::thread::Builder::new()
        .name("remote-courier".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let now = app.now_ms();
                let delivered = task.run(|| app.remote.deliver_due(&stop, now));
                app.remote.wait_for_work(courier_wait(
                    delivered,
                    now,
                    "forwarding binds and unbinds upstream",
                ));
            }
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            log::error!(
                "cannot start the remote courier thread, failed upstream binds and unbinds are not retried: {e}"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_expiries_is_compacted_and_so_is_its_tail() {
        let mut c = SessionCompaction::default();
        assert!(!c.after_sweep(0), "nothing removed, nothing to do");
        assert!(c.after_sweep(1500), "a wave of 1 500 removals");
        assert!(!c.after_sweep(600), "600 more: below the threshold");
        assert!(
            c.after_sweep(0),
            "the wave is over: its tail of 600 is compacted"
        );
        assert!(!c.after_sweep(0), "and only once");
    }

    #[test]
    fn a_trickle_compacts_once_per_threshold() {
        let mut c = SessionCompaction::default();
        let mut compactions = 0;
        for _ in 0..50 {
            compactions += usize::from(c.after_sweep(100));
            compactions += usize::from(c.after_sweep(0));
        }
        assert_eq!(compactions, 5, "5 000 removals, 100 at a time");
    }
}
