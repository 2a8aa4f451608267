//! The benchmark page: every figure of `docs/PERFORMANCE.md`'s measured table, from one command
//! anyone can rerun:
//!
//! ```sh
//! cargo bench --bench report                       # prints the table (Markdown)
//! OXISD_BENCH_WRITE=1 cargo bench --bench report   # also rewrites the table in docs/PERFORMANCE.md
//! ```
//!
//! Against the real release binary on loopback: start-up to the first answer, idle RSS and RSS
//! under load; the status ping; requestToken with mail really sent to a local SMTP sink; submitToken; bind;
//! v2 lookups of 1 000 hashes against 1 000 000 bindings; each at 1 and 8 concurrent clients,
//! with p50 and p99. Every acknowledged write is durable. The load generator shares the
//! machine's cores. Then the server CPU per address of v1 bulk lookups and v2 lookups at 500 to
//! 10 000 addresses per request (one client). Environment: `OXISD_BENCH_SECONDS` (per
//! measurement, default 5), `OXISD_BENCH_BINDINGS` (default 1000000), `OXISD_BENCH_ONLY` (a
//! comma-separated subset of `sessions`, `lookup`, `bulk`, `memory`, `startup`, `sweep`,
//! `import`, `directory`; the table is then not written). `memory`: peak RSS during an 8-client requestToken load and RSS
//! 15, 30 and 60 s after it. `startup`: start-up to the first answer after a flood of
//! `OXISD_BENCH_FLOOD` (default 50000) requestTokens, stopped with SIGTERM and with SIGKILL.
//! `sweep`: the data directory's size before a flood of sessions, after it, and after they
//! expired and were swept. `import`: `oxisd admin import` of a sydent database
//! (`OXISD_BENCH_IMPORT_ROWS`, default 1000000, made by `benches/make_sydent_db.py` with
//! python3) into a running server: wall time, peak RSS of the command and of the server, the
//! store on disk at its peak and at the end. `directory`: a real slapd seeded with
//! `OXISD_BENCH_DIRECTORY_USERS` (default 10000) users synced by `stores.ldap` (full and
//! incremental syncs) and password checks per second (skipped without slapd).
//!
//! `report/` has one file per part; this file has what the parts share, and the table.

// Benchmark code: a failed unwrap or expect ends the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "report/bulk.rs"]
mod bulk;
#[path = "common/mod.rs"]
mod common;
#[path = "report/directory.rs"]
mod directory;
#[path = "report/import.rs"]
mod import;
#[path = "report/lookup.rs"]
mod lookup;
#[path = "report/memory.rs"]
mod memory;
#[path = "report/sessions.rs"]
mod sessions;
#[path = "../tests/support/slapd.rs"]
#[allow(dead_code)]
mod slapd;
#[path = "../tests/support/smtp.rs"]
mod smtp;
#[path = "report/startup.rs"]
mod startup;
#[path = "report/sweep.rs"]
mod sweep;
#[path = "../tests/support/tls.rs"]
mod tls;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use oxisd::crypto::lookup_hash::sha256_lookup_hash;

use common::{Make, Server, cpu_seconds, env_num, rss_mib};

const TOKEN: &str = "benchmark-access-token-0123456789abcdef";
const V1: &str = "/_matrix/identity/api/v1";

/// One measured row.
struct Row {
    what: String,
    clients: u64,
    rps: f64,
    p50: f64,
    p99: f64,
    /// Server CPU (user + system) per answered request, µs.
    cpu_us: f64,
}

/// The report's server config in `dir`: no rate limits in the way, mail over SMTP to
/// `smtp_port` when given (else the log-only notifier).
fn write_config(dir: &Path, smtp_port: Option<u16>) -> PathBuf {
    let mut config = serde_json::json!({
        "server": {"hostname": "127.0.0.1", "port": 0, "name": "bench.test", "workers": 16},
        "storage": {"path": dir.join("data")},
        "logging": {"level": "warn", "requests": false},
        "session": {"rateLimit": {
            "perClient": {"burst": 1_000_000_000u64, "refill": 1},
            "perRecipient": {"burst": 1_000_000_000u64, "refill": 1},
        }},
        // The figures are of the lookups, not of the per-client budget.
        "lookup": {"rateLimit": {"perClient": {"addressesPerSecond": 0}}},
    });
    if let Some(port) = smtp_port {
        config["threepid"] = serde_json::json!({"medium": {"email": {
            "identity": {"from": "bench@bench.test"},
            "connector": "smtp",
            "connectors": {"smtp": {"host": "127.0.0.1", "port": port, "tls": 0}},
        }}});
    }
    let path = dir.join("config.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// A row for `what` at 1 and at 8 clients, each loading `server` for `seconds`.
fn measure(
    rows: &mut Vec<Row>,
    server: &Server,
    what: &str,
    seconds: u64,
    token: Option<&'static str>,
    make: Make,
) {
    for clients in [1, 8] {
        let cpu_before = cpu_seconds(server.child.id());
        let common::Load {
            done,
            rps,
            p50,
            p99,
        } = common::load(server.addr, clients, seconds, token, make.clone());
        let cpu_us = (cpu_seconds(server.child.id()) - cpu_before) * 1e6 / done.max(1) as f64;
        eprintln!(
            "  {what}, {clients} client(s): {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, server CPU {cpu_us:.0} µs/req"
        );
        rows.push(Row {
            what: what.to_string(),
            clients,
            rps,
            p50,
            p99,
            cpu_us,
        });
    }
}

/// Notes the server's start-up to its first answer as `started`, then, 2 s later, its RSS as
/// `idle`.
fn note_start(notes: &mut Vec<String>, server: &Server, started: &str, idle: &str) {
    notes.push(format!(
        "{started}: {:.1} ms",
        server.started_in.as_secs_f64() * 1000.0
    ));
    std::thread::sleep(Duration::from_secs(2));
    notes.push(format!("{idle}: {:.1} MiB", rss_mib(server.child.id())));
}

/// Samples a value every 100 ms on a thread of its own and keeps the largest, until
/// [`PeakSampler::stop`].
struct PeakSampler {
    peak: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl PeakSampler {
    /// Starts sampling `read`.
    fn start(read: impl Fn() -> u64 + Send + 'static) -> PeakSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let (peak, running) = (peak.clone(), running.clone());
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    peak.fetch_max(read(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        PeakSampler {
            peak,
            running,
            thread,
        }
    }

    /// Stops sampling; the largest value read.
    fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// 64 bodies of v2 lookups of 1 000 hashes each under `pepper`: the hashes of `threepid(x)`
/// for keys `x` spread over `0..2 * bound`, so that half of them are bound when the keys below
/// `bound` are.
fn v2_lookup_bodies(
    pepper: &str,
    bound: u64,
    threepid: impl Fn(u64) -> (&'static str, String),
) -> Arc<Vec<String>> {
    Arc::new(
        (0..64u64)
            .map(|i| {
                let hashes: Vec<String> = (0..1000u64)
                    .map(|k| {
                        let x = (i * 1000 + k).wrapping_mul(2_654_435_761) % (2 * bound);
                        let (medium, address) = threepid(x);
                        sha256_lookup_hash(&address, medium, pepper)
                    })
                    .collect();
                serde_json::json!({"algorithm": "sha256", "pepper": pepper, "addresses": hashes})
                    .to_string()
            })
            .collect(),
    )
}

/// Requests that send `bodies` in turn to `POST /_matrix/identity/v2/lookup`.
fn v2_lookups(bodies: Arc<Vec<String>>) -> Make {
    Arc::new(move |c, n| {
        (
            "POST",
            "/_matrix/identity/v2/lookup".to_string(),
            bodies[((c * 7 + n) % bodies.len() as u64) as usize].clone(),
        )
    })
}

/// Whether `OXISD_BENCH_ONLY` (unset: everything) asks for `part`.
fn wanted(part: &str) -> bool {
    std::env::var("OXISD_BENCH_ONLY")
        .map(|only| only.split(',').any(|p| p.trim() == part))
        .unwrap_or(true)
}

/// A config on the log-only notifier (nothing is sent), with `patch` merged in (objects merge
/// key by key).
fn write_config_with(dir: &Path, patch: serde_json::Value) -> PathBuf {
    let path = write_config(dir, None);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p.clone(),
        }
    }
    merge(&mut config, &patch);
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// A fresh directory for one part of the report.
fn part_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxisd-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// requestTokens for fresh 3PIDs, `tag` keeping each flood's apart.
fn request_tokens(tag: &'static str) -> Make {
    Arc::new(move |c, n| {
        (
            "POST",
            format!("{V1}/validate/email/requestToken"),
            format!(
                r#"{{"client_secret":"{tag}{c}x{n}","email":"{tag}{c}x{n}@bench.test","send_attempt":1}}"#
            ),
        )
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let seconds = env_num("OXISD_BENCH_SECONDS", 5);
    let bindings = env_num("OXISD_BENCH_BINDINGS", 1_000_000);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if wanted("sessions") {
        sessions::sessions(&mut rows, &mut notes, seconds);
    }
    if wanted("lookup") || wanted("bulk") {
        lookup::lookups(&mut rows, &mut notes, seconds, bindings);
    }
    if wanted("memory") {
        memory::memory_after_load(&mut notes, seconds);
    }
    if wanted("startup") {
        startup::startup_after_flood(&mut notes);
    }
    if wanted("sweep") {
        sweep::size_after_sweep(&mut notes);
    }
    if wanted("directory") {
        directory::run(&mut notes);
    }
    if wanted("import") {
        let import_rows = env_num("OXISD_BENCH_IMPORT_ROWS", 1_000_000);
        import::run(&mut rows, &mut notes, seconds, import_rows);
    }

    let mut table = String::from(
        "| what | clients | requests/s | p50 ms | p99 ms | server CPU µs/req |\n|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
            r.what, r.clients, r.rps, r.p50, r.p99, r.cpu_us
        );
    }
    table.push('\n');
    for n in &notes {
        let _ = writeln!(table, "- {n}");
    }
    println!("{table}");
    if std::env::var_os("OXISD_BENCH_WRITE").is_some()
        && std::env::var_os("OXISD_BENCH_ONLY").is_some()
    {
        eprintln!("OXISD_BENCH_ONLY is set: the partial table is not written");
    } else if std::env::var_os("OXISD_BENCH_WRITE").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PERFORMANCE.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (start, end) = ("<!-- report:start -->\n", "<!-- report:end -->");
        let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
            panic!("docs/PERFORMANCE.md has no {start:?} ... {end:?} markers");
        };
        let updated = format!("{}{start}{table}{}", &doc[..a], &doc[b..]);
        std::fs::write(path, updated).unwrap();
        eprintln!("wrote the table into docs/PERFORMANCE.md");
    }
}
