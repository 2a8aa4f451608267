//! Counters for Prometheus (`/metrics` on the admin listener): requests by endpoint and status,
//! request latency, sessions, notifications, rate-limit refusals, lookups, invites. Process-wide
//! and lock-free where it matters (a request adds to atomics; only the per-endpoint table takes
//! a short lock).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A named counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every metric of the process.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    notifications: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rate_limited: Mutex<BTreeMap<&'static str, u64>>,
    /// Validation sessions created.
    pub sessions_created: Counter,
    /// Sessions validated (right token).
    pub sessions_validated: Counter,
    /// Expired sessions removed.
    pub sessions_expired: Counter,
    /// 3PIDs looked up (v1, v2, bulk), one per address.
    pub lookups: Counter,
    /// Lookups that found a user.
    pub lookup_hits: Counter,
    /// Invites stored.
    pub invites_stored: Counter,
    /// onbind calls accepted by homeservers.
    pub onbind_delivered: Counter,
    /// onbind attempts that failed (retried later).
    pub onbind_failed: Counter,
    /// onbind calls refused for good (a 4xx answer, a destination the guard refuses): dropped.
    pub onbind_refused: Counter,
    /// Binds forwarded to an upstream identity server (taken there).
    pub remote_binds: Counter,
    /// Attempts to forward a bind that failed (retried, unless final).
    pub remote_bind_failures: Counter,
    /// Iterations of background tasks that panicked (caught; the task went on).
    pub task_panics: Counter,
    /// Unbinds forwarded to an upstream identity server (taken there).
    pub remote_unbinds: Counter,
    /// Attempts to forward an unbind that failed (retried, unless final).
    pub remote_unbind_failures: Counter,
    /// Forwarded binds and unbinds dropped: refused for good by the upstream, or given up.
    pub remote_dropped: Counter,
}

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All zero.
    pub const fn new() -> Metrics {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            latency: [const { AtomicU64::new(0) }; BUCKETS.len()],
            latency_count: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
            notifications: Mutex::new(BTreeMap::new()),
            rate_limited: Mutex::new(BTreeMap::new()),
            sessions_created: Counter::new(),
            sessions_validated: Counter::new(),
            sessions_expired: Counter::new(),
            lookups: Counter::new(),
            lookup_hits: Counter::new(),
            invites_stored: Counter::new(),
            onbind_delivered: Counter::new(),
            onbind_failed: Counter::new(),
            onbind_refused: Counter::new(),
            remote_binds: Counter::new(),
            remote_bind_failures: Counter::new(),
            task_panics: Counter::new(),
            remote_unbinds: Counter::new(),
            remote_unbind_failures: Counter::new(),
            remote_dropped: Counter::new(),
        }
    }

    /// Records one answered request.
    pub fn request(&self, endpoint: &str, status: u16, took: Duration) {
        bump(&self.requests, (endpoint.to_string(), status));
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records a notification by connector (`smtp`, `twilio`, `log`) and outcome.
    pub fn notification(&self, connector: &'static str, sent: bool) {
        let outcome = if sent { "sent" } else { "failed" };
        bump(&self.notifications, (connector, outcome));
    }

    /// Records a refusal by a rate limit.
    pub fn rate_limited(&self, limit: &'static str) {
        bump(&self.rate_limited, limit);
    }

    /// The Prometheus text exposition, with `gauges` (name, help, value) appended.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        self.render_notifications(&mut out);
        self.render_rate_limits(&mut out);
        for (name, help, counter) in self.counters() {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", counter.get());
        }
        for (name, help, value) in gauges {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }

    /// `oxisd_http_requests_total`, one line per endpoint and status.
    fn render_requests(&self, out: &mut String) {
        let name = "oxisd_http_requests_total";
        header(
            out,
            name,
            "Answered requests by endpoint and status.",
            "counter",
        );
        for ((endpoint, status), n) in locked(&self.requests).iter() {
            let _ = writeln!(
                out,
                "{name}{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                escape(endpoint)
            );
        }
    }

    /// The histogram `oxisd_http_request_duration_seconds`: its buckets, sum and count.
    fn render_latency(&self, out: &mut String) {
        let name = "oxisd_http_request_duration_seconds";
        header(out, name, "Time to answer a request.", "histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                self.latency[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }

    /// `oxisd_notifications_total`, one line per connector and outcome.
    fn render_notifications(&self, out: &mut String) {
        let name = "oxisd_notifications_total";
        header(
            out,
            name,
            "Notifications by connector and outcome.",
            "counter",
        );
        for ((connector, outcome), n) in locked(&self.notifications).iter() {
            let _ = writeln!(
                out,
                "{name}{{connector=\"{connector}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }

    /// `oxisd_rate_limited_total`, one line per limit.
    fn render_rate_limits(&self, out: &mut String) {
        let name = "oxisd_rate_limited_total";
        header(out, name, "Requests refused by a rate limit.", "counter");
        for (limit, n) in locked(&self.rate_limited).iter() {
            let _ = writeln!(out, "{name}{{limit=\"{}\"}} {n}", escape(limit));
        }
    }

    /// The plain counters: (name, help, counter), in the order they are shown.
    fn counters(&self) -> [(&'static str, &'static str, &Counter); 15] {
        [
            (
                "oxisd_sessions_created_total",
                "Validation sessions created.",
                &self.sessions_created,
            ),
            (
                "oxisd_sessions_validated_total",
                "Validation sessions validated.",
                &self.sessions_validated,
            ),
            (
                "oxisd_sessions_expired_total",
                "Expired sessions removed.",
                &self.sessions_expired,
            ),
            ("oxisd_lookups_total", "3PIDs looked up.", &self.lookups),
            (
                "oxisd_lookup_hits_total",
                "3PIDs looked up that were bound.",
                &self.lookup_hits,
            ),
            (
                "oxisd_invites_stored_total",
                "3PID invites stored.",
                &self.invites_stored,
            ),
            (
                "oxisd_onbind_delivered_total",
                "Invite deliveries accepted by homeservers.",
                &self.onbind_delivered,
            ),
            (
                "oxisd_onbind_failed_total",
                "Invite delivery attempts that failed (retried).",
                &self.onbind_failed,
            ),
            (
                "oxisd_onbind_refused_total",
                "Invite deliveries refused for good (4xx, refused destination), not retried.",
                &self.onbind_refused,
            ),
            (
                "oxisd_remote_binds_total",
                "Binds forwarded to an upstream identity server.",
                &self.remote_binds,
            ),
            (
                "oxisd_remote_bind_failures_total",
                "Attempts to forward a bind upstream that failed (retried unless refused for good).",
                &self.remote_bind_failures,
            ),
            (
                "oxisd_task_panics_total",
                "Iterations of background tasks that panicked (caught; the task went on).",
                &self.task_panics,
            ),
            (
                "oxisd_remote_unbinds_total",
                "Unbinds forwarded to an upstream identity server.",
                &self.remote_unbinds,
            ),
            (
                "oxisd_remote_unbind_failures_total",
                "Attempts to forward an unbind upstream that failed (retried unless refused for good).",
                &self.remote_unbind_failures,
            ),
            (
                "oxisd_remote_dropped_total",
                "Forwarded binds and unbinds refused for good by the upstream, or given up.",
                &self.remote_dropped,
            ),
        ]
    }
}

/// Adds one to `key`'s count in `map`.
fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    *locked(map).entry(key).or_insert(0) += 1;
}

/// The map, even when a thread panicked while holding it (counts stay usable).
fn locked<K>(map: &Mutex<BTreeMap<K, u64>>) -> std::sync::MutexGuard<'_, BTreeMap<K, u64>> {
    map.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `# HELP` and `# TYPE` lines of a metric.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and line feeds escaped, as the text format wants.
fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_counters_histogram_and_gauges() {
        let m = Metrics::new();
        m.request("V2 /lookup", 200, Duration::from_millis(3));
        m.request("V2 /lookup", 200, Duration::from_millis(30));
        m.notification("smtp", true);
        m.rate_limited("messages to this address");
        m.sessions_created.inc();
        let text = m.render(&[("oxisd_outbox_depth", "Queued onbind calls.", 2.0)]);
        for line in [
            "oxisd_http_requests_total{endpoint=\"V2 /lookup\",status=\"200\"} 2",
            "oxisd_http_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "oxisd_http_request_duration_seconds_bucket{le=\"0.05\"} 2",
            "oxisd_http_request_duration_seconds_count 2",
            "oxisd_notifications_total{connector=\"smtp\",outcome=\"sent\"} 1",
            "oxisd_rate_limited_total{limit=\"messages to this address\"} 1",
            "oxisd_sessions_created_total 1",
            "oxisd_outbox_depth 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
