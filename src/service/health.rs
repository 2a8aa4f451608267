//! The health of the running server, for monitors (`/health`): the store answers, and every
//! background task ([`crate::tasks`]) completed an iteration within its expected interval.

use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::tasks::Tasks;

/// A healthy server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy {
    /// Seconds since the start.
    pub uptime_seconds: u64,
    /// The names of the background tasks watched.
    pub tasks: Vec<&'static str>,
}

/// The health check.
pub struct Health {
    store: Arc<Store>,
    tasks: Arc<Tasks>,
    started: Instant,
}

impl Health {
    /// The check of `store` and `tasks`, for a server that started at `started`.
    pub fn new(store: Arc<Store>, tasks: Arc<Tasks>, started: Instant) -> Health {
        Health {
            store,
            tasks,
            started,
        }
    }

    /// The server's health: 500 `M_UNKNOWN` when the store does not answer; 503 `M_UNKNOWN`
    /// with `late_tasks` (the names of the late tasks) when a background task is late: it
    /// panics in every iteration, or hangs.
    pub fn check(&self) -> Result<Healthy> {
        self.store.schema_version()?;
        let late = self.tasks.late();
        if !late.is_empty() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "Background tasks have not completed their work in time: {}",
                    late.join(", ")
                ),
            )
            .with_extra("late_tasks", late));
        }
        Ok(Healthy {
            uptime_seconds: self.started.elapsed().as_secs(),
            tasks: self.tasks.names(),
        })
    }
}
