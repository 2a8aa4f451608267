//! The logger: one line per event on standard error, in one of three styles.
//!
//! - Text (the default): `<UTC time> <LEVEL> <module>: <message>`.
//! - Journald: when standard error is the journal (systemd sets `JOURNAL_STREAM` to the
//!   device and inode of that stream), the journal adds its own timestamp, so the line is
//!   `<N><LEVEL> <module>: <message>`, where `<N>` is the syslog priority (`<3>` error, `<4>`
//!   warn, `<6>` info, `<7>` debug and trace) that journald reads: `journalctl -p err` works.
//! - JSON (`logging.format: json`, for log shippers): one object per line with `ts`, `level`,
//!   `target`, `message`, and the event's fields (a request's `id`, `method`, `path`, `status`,
//!   `ms`, `ip`, `errcode`, ...) where it has any.
//!
//! Messages carry `key=value` pairs where they describe a request, so the text lines can be
//! grepped and parsed; events logged through [`log_fields`] carry them as structured fields,
//! which the text styles append as ` key=value` and the JSON style writes as members. The
//! level comes from `logging.level`, or from `OXISD_LOG` when set. Libraries below us (the
//! store engine) only log warnings and errors unless the level is `trace`.

use std::io::Write;
use std::time::SystemTime;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::util::time::utc_timestamp;

/// `logging.format`: how lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (with the journald variant under systemd).
    Text,
    /// One JSON object per line.
    Json,
}

/// The style the logger writes in, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Text,
    Journald,
    Json,
}

struct Logger {
    level: LevelFilter,
    style: Style,
}

/// Installs the logger. `OXISD_LOG` (a level name) overrides `level`. With [`Format::Text`],
/// a standard error that is the journal gets the journald style. Calling it twice keeps the
/// first logger.
pub fn init(level: LevelFilter, format: Format) {
    let level = std::env::var("OXISD_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(level);
    let style = match format {
        Format::Json => Style::Json,
        Format::Text if stderr_is_journal() => Style::Journald,
        Format::Text => Style::Text,
    };
    if log::set_boxed_logger(Box::new(Logger { level, style })).is_ok() {
        log::set_max_level(level);
    }
}

/// Whether standard error is the stream systemd connected to the journal: `JOURNAL_STREAM`
/// is `<device>:<inode>` of that stream, and it is inherited by children whose standard
/// error goes elsewhere (a shell started from a systemd service), so both must match.
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    stderr_identity() == Some((dev, ino))
}

/// The device and inode of standard error.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Logs `message` at `level` with structured `fields` (a request's `key=value` pairs) for
/// `target` (the caller's `module_path!()`).
pub fn log_fields(level: Level, target: &str, message: &str, fields: &[(&str, Value<'_>)]) {
    if level > log::max_level() {
        return;
    }
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{message}"))
            .key_values(&fields)
            .build(),
    );
}

/// The syslog priority journald reads from a line's `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The fields as ` key=value` text; values with spaces, quotes or `=` are quoted.
struct TextFields(String);

impl<'kvs> VisitSource<'kvs> for TextFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let text = value.to_string();
        let plain = !text.is_empty()
            && !text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
        if plain {
            self.0.push_str(&format!(" {key}={text}"));
        } else {
            self.0.push_str(&format!(" {key}={text:?}"));
        }
        Ok(())
    }
}

/// The fields as `,"key":value` JSON members: numbers and booleans stay typed.
struct JsonFields(String);

impl<'kvs> VisitSource<'kvs> for JsonFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.to_string()
        } else if let Some(n) = value.to_i64() {
            n.to_string()
        } else if let Some(b) = value.to_bool() {
            b.to_string()
        } else if let Some(f) = value.to_f64().filter(|f| f.is_finite()) {
            serde_json::Value::from(f).to_string()
        } else {
            json_string(&value.to_string())
        };
        self.0
            .push_str(&format!(",{}:{json}", json_string(key.as_str())));
        Ok(())
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl Logger {
    /// The line for `record`, with its newline.
    fn format(&self, record: &Record<'_>) -> String {
        let message = record.args().to_string();
        match self.style {
            Style::Text | Style::Journald => {
                let mut fields = TextFields(String::new());
                let _ = record.key_values().visit(&mut fields);
                let body = format!(
                    "{:<5} {}: {message}{}",
                    record.level(),
                    record.target(),
                    fields.0
                );
                if self.style == Style::Text {
                    format!("{} {body}\n", utc_timestamp(SystemTime::now()))
                } else {
                    // Every line of a multi-line message gets the priority: journald reads
                    // each line as an entry of its own.
                    let prefix = format!("<{}>", priority(record.level()));
                    body.lines()
                        .map(|l| format!("{prefix}{l}\n"))
                        .collect::<String>()
                }
            }
            Style::Json => {
                let mut fields = JsonFields(String::new());
                let _ = record.key_values().visit(&mut fields);
                format!(
                    "{{\"ts\":{},\"level\":{},\"target\":{},\"message\":{}{}}}\n",
                    json_string(&utc_timestamp(SystemTime::now())),
                    json_string(&record.level().as_str().to_ascii_lowercase()),
                    json_string(record.target()),
                    json_string(&message),
                    fields.0
                )
            }
        }
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
        let line = self.format(record);
        // One write per line so that lines from different threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(style: Style, level: Level, message: &str, fields: &[(&str, Value<'_>)]) -> String {
        let logger = Logger {
            level: LevelFilter::Trace,
            style,
        };
        logger.format(
            &Record::builder()
                .level(level)
                .target("oxisd::test")
                .args(format_args!("{message}"))
                .key_values(&fields)
                .build(),
        )
    }

    #[test]
    fn text_fields_are_appended_and_quoted_when_needed() {
        let l = line(
            Style::Text,
            Level::Info,
            "request",
            &[
                ("status", Value::from(400u16)),
                ("errcode", Value::from("M_BAD_JSON")),
                ("error", Value::from("Bad \"json\"")),
            ],
        );
        assert!(
            l.ends_with(
                " INFO  oxisd::test: request status=400 errcode=M_BAD_JSON error=\"Bad \\\"json\\\"\"\n"
            ),
            "{l}"
        );
    }

    #[test]
    fn journald_lines_carry_the_priority_and_no_timestamp() {
        assert_eq!(
            line(Style::Journald, Level::Error, "a\nb", &[]),
            "<3>ERROR oxisd::test: a\n<3>b\n"
        );
        assert!(line(Style::Journald, Level::Warn, "x", &[]).starts_with("<4>WARN "));
        assert!(line(Style::Journald, Level::Info, "x", &[]).starts_with("<6>INFO "));
        assert!(line(Style::Journald, Level::Debug, "x", &[]).starts_with("<7>DEBUG "));
        assert!(line(Style::Journald, Level::Trace, "x", &[]).starts_with("<7>TRACE "));
    }

    #[test]
    fn json_lines_are_objects_with_typed_fields() {
        let l = line(
            Style::Json,
            Level::Warn,
            "say \"hi\"\n",
            &[
                ("status", Value::from(404u16)),
                ("ms", Value::from(1.25f64)),
                ("path", Value::from("/a b")),
            ],
        );
        assert!(
            l.ends_with('\n') && l.trim_end().lines().count() == 1,
            "{l}"
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "oxisd::test");
        assert_eq!(v["message"], "say \"hi\"\n");
        assert_eq!(v["status"], 404);
        assert_eq!(v["ms"], 1.25);
        assert_eq!(v["path"], "/a b");
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
}
