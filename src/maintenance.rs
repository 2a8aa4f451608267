//! Background upkeep on one thread: removing expired sessions and invites, rotating the lookup
//! pepper on its interval, syncing the Synapse identity store, checking pending invites against
//! the identity stores, writing memtables out while idle, and handing freed memory back. A
//! second thread, the courier, delivers claimed invites (`onbind`) through a few worker
//! threads, one per destination. A third, the remote courier, forwards the binds and unbinds
//! queued for upstream identity servers that could not be made at once (remote sessions).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::service::invites::outbox;

/// Starts the maintenance thread; it stops when `stop` becomes true (unpark it to wake it).
pub fn spawn(app: Arc<App>, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    let rotate_every = app.config.lookup.pepper.rotate_every;
    // Half the session lifetime, between 1 s and 10 s, and often enough for the pepper.
    let mut tick_ms = (app.config.session.ttl * 500).clamp(1000, 10_000);
    if rotate_every > 0 {
        tick_ms = tick_ms.min((rotate_every * 500).max(500));
    }
    let sync_every = Duration::from_secs(app.config.stores.synapse.interval.max(1));
    if app.synapse_sync.is_some() {
        tick_ms = tick_ms.min(sync_every.as_millis() as u64);
    }
    let tick = Duration::from_millis(tick_ms);
    let spawned = std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || {
            let mut last_rotation = Instant::now();
            let mut last_sync: Option<Instant> = None;
            let mut last_resolution = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                match app.sessions.sweep(&app.store, app.now_ms()) {
                    Ok(0) => {}
                    Ok(n) => log::debug!("removed {n} expired sessions"),
                    Err(e) => log::error!("removing expired sessions failed: {e}"),
                }
                if rotate_every > 0 && last_rotation.elapsed() >= Duration::from_secs(rotate_every)
                {
                    if let Err(e) = app.peppers.rotate(&app.store) {
                        log::error!(
                            "rotating the lookup pepper failed (lookups keep the current one): {e}"
                        );
                    }
                    last_rotation = Instant::now();
                }
                if let Some(syncer) = &app.synapse_sync
                    && last_sync.is_none_or(|t| t.elapsed() >= sync_every)
                {
                    // Held during the sync, so a pepper rotation cannot miss what it writes.
                    let peppers = app.peppers.for_writes();
                    match syncer.sync_once(&app.store, &peppers.all(), app.now_ms()) {
                        Ok(report) => log::info!("synapse store synced: {report:?}"),
                        Err(e) => log::warn!(
                            "syncing the synapse store failed (lookups keep the last copy): {e}"
                        ),
                    }
                    last_sync = Some(Instant::now());
                }
                match app.store.sweep_invites(app.now_ms()) {
                    Ok(0) => {}
                    Ok(n) => log::info!("removed {n} expired invites nobody claimed"),
                    Err(e) => log::error!("removing expired invites failed: {e}"),
                }
                if let Some(every) = app.invites.resolve_every
                    && last_resolution.elapsed() >= every
                {
                    match app.invites.resolve_pending(
                        &app.store,
                        &app.keys,
                        &app.lookups,
                        app.now_ms(),
                    ) {
                        Ok(0) => {}
                        Ok(n) => log::info!("{n} pending invites found their user"),
                        Err(e) => log::warn!("checking pending invites failed: {e}"),
                    }
                    last_resolution = Instant::now();
                }
                match app.store.flush_when_idle(app.now_ms(), 10_000) {
                    Ok(true) => log::debug!("idle: wrote memtables out to tables"),
                    Ok(false) => {}
                    Err(e) => log::warn!("writing memtables out failed: {e}"),
                }
                crate::memory::release_free_memory();
                std::thread::park_timeout(tick);
            }
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            log::warn!("cannot start the maintenance thread, expired sessions stay on disk: {e}");
            None
        }
    }
}

/// Starts the courier: it delivers queued `onbind` calls when they are due, woken early when a
/// bind queues a new one, until `stop` becomes true (call `app.invites.wake()` to wake it).
/// It hands each destination with due calls to a worker thread of its own
/// ([`outbox::Courier`]), so one slow homeserver delays only its own invites: half of
/// `outbound.maxConcurrent` workers (the rest is left to request handlers), at least 2 and at
/// most [`outbox::MAX_WORKERS`]. It ends when its workers have.
pub fn spawn_courier(app: Arc<App>, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
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
                    let wait = match courier.dispatch(scope, now) {
                        Ok(Some(next)) => Duration::from_millis(next.saturating_sub(now)),
                        Ok(None) => Duration::from_secs(60),
                        Err(e) => {
                            log::error!("delivering invites failed: {e}");
                            Duration::from_secs(10)
                        }
                    };
                    app.invites.wait_for_work(
                        wait.clamp(Duration::from_millis(50), Duration::from_secs(60)),
                    );
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
    let spawned = std::thread::Builder::new()
        .name("remote-courier".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let now = app.now_ms();
                let wait = match app
                    .remote
                    .deliver_due(&app.store, &app.homeserver, &stop, now)
                {
                    Ok(Some(next)) => Duration::from_millis(next.saturating_sub(now)),
                    Ok(None) => Duration::from_secs(60),
                    Err(e) => {
                        log::error!("forwarding binds and unbinds upstream failed: {e}");
                        Duration::from_secs(10)
                    }
                };
                app.remote
                    .wait_for_work(wait.clamp(Duration::from_millis(50), Duration::from_secs(60)));
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
