//! Background upkeep on one thread: removing expired sessions, rotating the lookup pepper on
//! its interval, syncing the Synapse identity store, writing memtables out while idle, and
//! handing freed memory back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::app::App;

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
