//! The logger: one line per event on standard error, `<UTC time> <LEVEL> <module>: <message>`.
//!
//! Messages carry `key=value` pairs where they describe a request, so the lines can be grepped
//! and parsed. The level comes from `logging.level`, or from `OXISD_LOG` when set. Libraries
//! below us (the store engine) only log warnings and errors unless the level is `trace`.

use std::io::Write;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::util::time::utc_timestamp;

struct Logger {
    level: LevelFilter,
}

/// Installs the logger. `OXISD_LOG` (a level name) overrides `level`. Calling it twice keeps the
/// first logger.
pub fn init(level: LevelFilter) {
    let level = std::env::var("OXISD_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(level);
    if log::set_boxed_logger(Box::new(Logger { level })).is_ok() {
        log::set_max_level(level);
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("oxisd");
        if ours {
            metadata.level() <= self.level
        } else {
            metadata.level() <= Level::Warn || self.level >= LevelFilter::Trace
        }
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}: {}\n",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.target(),
            record.args()
        );
        // One write per line so that lines from different threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}
