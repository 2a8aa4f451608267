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
//! `import`; the table is then not written). `memory`: peak RSS during an 8-client requestToken load and RSS
//! 15, 30 and 60 s after it. `startup`: start-up to the first answer after a flood of
//! `OXISD_BENCH_FLOOD` (default 50000) requestTokens, stopped with SIGTERM and with SIGKILL.
//! `sweep`: the data directory's size before a flood of sessions, after it, and after they
//! expired and were swept. `import`: `oxisd admin import` of a sydent database
//! (`OXISD_BENCH_IMPORT_ROWS`, default 1000000, made by `benches/make_sydent_db.py` with
//! python3) into a running server: wall time, peak RSS of the command and of the server, the
//! store on disk at its peak and at the end.

// Benchmark code: a failed unwrap or expect ends the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "report/import.rs"]
mod import;
#[path = "../tests/support/smtp.rs"]
mod smtp;
#[path = "../tests/support/tls.rs"]
mod tls;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oxisd::crypto::lookup_hash::sha256_lookup_hash;
use oxisd::service::pepper::Peppers;
use oxisd::store::Store;
use oxisd::store::accounts::AccountRecord;
use oxisd::store::bindings::BindingRecord;

use common::{Make, Server, connect, cpu_seconds, env_num, request, rss_mib};

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

/// Whether `OXISD_BENCH_ONLY` (unset: everything) asks for `part`.
fn wanted(part: &str) -> bool {
    std::env::var("OXISD_BENCH_ONLY")
        .map(|only| only.split(',').any(|p| p.trim() == part))
        .unwrap_or(true)
}

/// Batch sizes of the per-address CPU figures.
const BATCHES: [u64; 4] = [500, 1_000, 5_000, 10_000];

/// Microseconds of server CPU per address, one keep-alive client sending `bodies` (each of
/// `batch` addresses) in turn for `seconds`.
fn cpu_per_address(
    server: &Server,
    seconds: u64,
    path: &'static str,
    token: Option<&'static str>,
    batch: u64,
    bodies: Vec<String>,
) -> f64 {
    let bodies = Arc::new(bodies);
    let before = cpu_seconds(server.child.id());
    let load = common::load(
        server.addr,
        1,
        seconds,
        token,
        Arc::new(move |_, n| {
            let body = bodies[n as usize % bodies.len()].clone();
            ("POST", path.to_string(), body)
        }),
    );
    let cpu = cpu_seconds(server.child.id()) - before;
    cpu * 1e6 / (load.done * batch) as f64
}

/// The `token=` of the link in a mail.
fn token_in(mail: &smtp::ReceivedMail) -> (String, String) {
    let link = mail
        .data
        .lines()
        .find(|l| l.starts_with("http") && l.contains("/submitToken?"))
        .expect("a link in the mail");
    let param = |name: &str| {
        link.split(['?', '&'])
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    (param("sid"), param("token"))
}

/// Sessions, with mail really sent over SMTP.
fn sessions(rows: &mut Vec<Row>, notes: &mut Vec<String>, seconds: u64) {
    let sink = smtp::SmtpSink::start();
    let dir = std::env::temp_dir().join(format!("oxisd-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir, Some(sink.port()));
    let first = common::start(&config);
    notes.push(format!(
        "first start (creates the store and the signing key, with fsyncs): {:.1} ms",
        first.started_in.as_secs_f64() * 1000.0
    ));
    drop(first);
    let server = common::start(&config);
    notes.push(format!(
        "start-up to the first answer, empty store: {:.1} ms",
        server.started_in.as_secs_f64() * 1000.0
    ));
    std::thread::sleep(Duration::from_secs(2));
    notes.push(format!(
        "idle RSS after start: {:.1} MiB",
        rss_mib(server.child.id())
    ));
    eprintln!("ping ({seconds} s per measurement)");
    measure(
        rows,
        &server,
        "ping (GET /_matrix/identity/v2)",
        seconds,
        None,
        Arc::new(|_, _| ("GET", "/_matrix/identity/v2".to_string(), String::new())),
    );
    eprintln!("sessions ({seconds} s per measurement)");
    let run = Arc::new(AtomicU64::new(0));
    let r = run.clone();
    measure(
        rows,
        &server,
        "requestToken (email sent over SMTP)",
        seconds,
        None,
        Arc::new(move |c, n| {
            let k = r.fetch_add(1, Ordering::Relaxed);
            (
                "POST",
                format!("{V1}/validate/email/requestToken"),
                format!(
                    r#"{{"client_secret":"bench{c}x{k}","email":"user{c}x{n}x{k}@bench.test","send_attempt":1}}"#
                ),
            )
        }),
    );
    // Sessions to submit tokens for and to bind: 1 000 fresh ones.
    let before = sink.mails().len();
    let mut conn = connect(server.addr);
    for i in 0..1000 {
        let body = format!(
            r#"{{"client_secret":"submit{i}","email":"submit{i}@bench.test","send_attempt":1}}"#
        );
        let r = request(
            &mut conn,
            "POST",
            &format!("{V1}/validate/email/requestToken"),
            None,
            &body,
        );
        assert!(r.starts_with("HTTP/1.1 200"));
    }
    let mails = sink.wait_for_mails(before + 1000, Duration::from_secs(30));
    let sessions: Arc<Vec<(String, String, String)>> = Arc::new(
        mails[before..]
            .iter()
            .map(|m| {
                let (sid, token) = token_in(m);
                let i: String = m.to[0]
                    .trim_start_matches("submit")
                    .split('@')
                    .next()
                    .unwrap()
                    .to_string();
                (sid, format!("submit{i}"), token)
            })
            .collect(),
    );
    let s = sessions.clone();
    measure(
        rows,
        &server,
        "submitToken",
        seconds,
        None,
        Arc::new(move |c, n| {
            let (sid, secret, token) = &s[((c * 131 + n) % s.len() as u64) as usize];
            (
                "POST",
                format!("{V1}/validate/email/submitToken"),
                format!(r#"{{"sid":"{sid}","client_secret":"{secret}","token":"{token}"}}"#),
            )
        }),
    );
    let s = sessions.clone();
    measure(
        rows,
        &server,
        "bind (signed, stored, durable)",
        seconds,
        None,
        Arc::new(move |c, n| {
            let k = ((c * 131 + n) % s.len() as u64) as usize;
            let (sid, secret, _) = &s[k];
            (
                "POST",
                format!("{V1}/3pid/bind"),
                format!(
                    r#"{{"sid":"{sid}","client_secret":"{secret}","mxid":"@user{k}:bench.test"}}"#
                ),
            )
        }),
    );
    std::thread::sleep(Duration::from_secs(2));
    notes.push(format!(
        "RSS 2 s after the session load: {:.1} MiB",
        rss_mib(server.child.id())
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lookups against a store of `bindings` bindings: the v2 load (`lookup`), the CPU per address
/// of bulk and v2 lookups (`bulk`).
fn lookups(rows: &mut Vec<Row>, notes: &mut Vec<String>, seconds: u64, bindings: u64) {
    eprintln!("lookups against {bindings} bindings");
    let dir = std::env::temp_dir().join(format!("oxisd-report-lookup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir, None);
    // A server's first start makes the store and its signing key (a used store without its
    // key refuses to start), as on a real box before an import.
    drop(common::start(&config));
    let pepper = {
        let store = Store::open(&dir.join("data")).unwrap();
        let peppers = Peppers::load_or_create(&store).unwrap();
        let now = 1_795_000_000_000u64;
        let started = Instant::now();
        store
            .put_bindings(
                "builtin",
                (0..bindings).map(|i| BindingRecord {
                    medium: "email".into(),
                    address: format!("user{i}@bench.example.org"),
                    mxid: format!("@user{i}:bench.example.org"),
                    ts: now,
                    not_before: now,
                    not_after: now + 100 * 365 * 24 * 3600 * 1000,
                }),
                &peppers.for_writes().all(),
            )
            .unwrap();
        store.compact_bindings().unwrap();
        notes.push(format!(
            "import of {bindings} bindings (ingestion, then compaction): {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        store
            .put_token(
                TOKEN,
                &AccountRecord {
                    user_id: "@bench:bench.test".into(),
                    created_ms: now,
                },
            )
            .unwrap();
        store.durable().unwrap();
        let pepper = peppers.current().pepper;
        store.close().unwrap();
        Arc::new(pepper)
    };
    let server = common::start(&config);
    notes.push(format!(
        "start-up to the first answer with {bindings} bindings: {:.1} ms",
        server.started_in.as_secs_f64() * 1000.0
    ));
    std::thread::sleep(Duration::from_secs(2));
    notes.push(format!(
        "idle RSS with {bindings} bindings: {:.1} MiB",
        rss_mib(server.child.id())
    ));
    if wanted("lookup") {
        v2_load(rows, notes, &server, seconds, bindings, &pepper);
    }
    if wanted("bulk") {
        per_address(notes, &server, seconds, bindings, &pepper);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Server CPU per address of v1 bulk lookups and v2 sha256 lookups at each size of
/// [`BATCHES`], one client; half of the addresses are bound.
fn per_address(
    notes: &mut Vec<String>,
    server: &Server,
    seconds: u64,
    bindings: u64,
    pepper: &Arc<String>,
) {
    let address = |batch: u64, i: u64, k: u64| {
        let x = (i * batch + k).wrapping_mul(2_654_435_761) % (2 * bindings);
        format!("user{x}@bench.example.org")
    };
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for batch in BATCHES {
        eprintln!("  server CPU per address, {batch} addresses per request");
        let bodies = (0..8)
            .map(|i| {
                let pairs: Vec<[String; 2]> = (0..batch)
                    .map(|k| ["email".to_string(), address(batch, i, k)])
                    .collect();
                serde_json::json!({ "threepids": pairs }).to_string()
            })
            .collect();
        v1.push(cpu_per_address(
            server,
            seconds,
            "/_matrix/identity/api/v1/bulk_lookup",
            None,
            batch,
            bodies,
        ));
        let bodies = (0..8)
            .map(|i| {
                let hashes: Vec<String> = (0..batch)
                    .map(|k| sha256_lookup_hash(&address(batch, i, k), "email", pepper))
                    .collect();
                serde_json::json!({"algorithm": "sha256", "pepper": **pepper, "addresses": hashes})
                    .to_string()
            })
            .collect();
        v2.push(cpu_per_address(
            server,
            seconds,
            "/_matrix/identity/v2/lookup",
            Some(TOKEN),
            batch,
            bodies,
        ));
    }
    let figures = |f: &[f64]| {
        f.iter()
            .map(|us| format!("{us:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let sizes = BATCHES.map(|b| b.to_string()).join(" / ");
    notes.push(format!(
        "server CPU per address, 1 client, {bindings} bindings, at {sizes} addresses per request: v1 bulk_lookup {} µs, v2 lookup (sha256) {} µs",
        figures(&v1),
        figures(&v2)
    ));
}

/// v2 lookups of 1 000 hashes at 1 and 8 clients, and the peak RSS meanwhile.
fn v2_load(
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    server: &Server,
    seconds: u64,
    bindings: u64,
    pepper: &Arc<String>,
) {
    let p = pepper.clone();
    let n_bindings = bindings;
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..64u64)
            .map(|i| {
                // Half of the hashes are bound, half are not.
                let hashes: Vec<String> = (0..1000u64)
                    .map(|k| {
                        let x = (i * 1000 + k).wrapping_mul(2_654_435_761) % (2 * n_bindings);
                        sha256_lookup_hash(&format!("user{x}@bench.example.org"), "email", &p)
                    })
                    .collect();
                serde_json::json!({"algorithm": "sha256", "pepper": *p, "addresses": hashes})
                    .to_string()
            })
            .collect(),
    );
    let peak = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (peak, watching, pid) = (peak.clone(), watching.clone(), server.child.id());
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                peak.fetch_max((rss_mib(pid) * 10.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let b = bodies.clone();
    measure(
        rows,
        server,
        &format!("v2 lookup, 1 000 hashes, {bindings} bindings"),
        seconds,
        Some(TOKEN),
        Arc::new(move |c, n| {
            (
                "POST",
                "/_matrix/identity/v2/lookup".to_string(),
                b[((c * 7 + n) % b.len() as u64) as usize].clone(),
            )
        }),
    );
    watching.store(false, Ordering::Relaxed);
    watcher.join().unwrap();
    notes.push(format!(
        "peak RSS under the lookup load: {:.1} MiB",
        peak.load(Ordering::Relaxed) as f64 / 10.0
    ));
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

/// Peak RSS during 8 clients of requestToken (log-only notifier) for `seconds`, sampled every
/// 100 ms and as VmHWM; then RSS 15, 30 and 60 s after the load stopped (the maintenance task
/// writes idle memtables out and hands freed memory back on its ~10 s tick).
fn memory_after_load(notes: &mut Vec<String>, seconds: u64) {
    eprintln!("memory: RSS during and after an 8-client requestToken load");
    let dir = part_dir("memory");
    let config = write_config_with(&dir, serde_json::json!({}));
    let server = common::start(&config);
    let pid = server.child.id();
    let idle = rss_mib(pid);
    let peak = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (peak, watching) = (peak.clone(), watching.clone());
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                peak.fetch_max((rss_mib(pid) * 10.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let load = common::load(server.addr, 8, seconds * 2, None, request_tokens("mem"));
    watching.store(false, Ordering::Relaxed);
    watcher.join().unwrap();
    let stopped = Instant::now();
    let mut after = Vec::new();
    for at in [15, 30, 60] {
        std::thread::sleep(Duration::from_secs(at).saturating_sub(stopped.elapsed()));
        after.push(format!("{:.1} MiB at {at} s", rss_mib(pid)));
    }
    notes.push(format!(
        "RSS with 8 clients of requestToken ({} sessions in {} s): {idle:.1} MiB idle before, peak {:.1} MiB sampled ({:.1} MiB VmHWM); after the load: {}",
        load.done,
        seconds * 2,
        peak.load(Ordering::Relaxed) as f64 / 10.0,
        common::peak_rss_mib(pid),
        after.join(", ")
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start-up to the first answer after a flood of requestTokens (8 clients, log-only notifier):
/// stopped with SIGTERM (memtables written out at shutdown), then after a second flood killed
/// with SIGKILL. fjall replays its whole active journal at every open and only rotates it past
/// 64 MB, so both include that replay.
fn startup_after_flood(notes: &mut Vec<String>) {
    let total = env_num("OXISD_BENCH_FLOOD", 50_000);
    eprintln!("startup: after floods of {total} requestTokens");
    let dir = part_dir("startup");
    let config = write_config_with(&dir, serde_json::json!({}));
    let data = dir.join("data");
    let server = common::start(&config);
    let took = common::flood(server.addr, 8, total, request_tokens("sigterm"));
    let flooded = common::disk_use(&data);
    drop(server);
    let server = common::start(&config);
    let after_term = server.started_in;
    let took_again = common::flood(server.addr, 8, total, request_tokens("sigkill"));
    let flooded_again = common::disk_use(&data);
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // Reaped already: no SIGTERM to a pid that may be reused.
    std::mem::forget(server);
    let server = common::start(&config);
    let after_kill = server.started_in;
    notes.push(format!(
        "start-up to the first answer after {total} requestTokens (8 clients, {:.1} s; journal {:.1} MiB of {:.1} MiB on disk) and SIGTERM: {:.0} ms; after {total} more ({:.1} s; journal {:.1} MiB of {:.1} MiB) and SIGKILL: {:.0} ms",
        took.as_secs_f64(),
        mib(flooded.1),
        mib(flooded.0),
        after_term.as_secs_f64() * 1000.0,
        took_again.as_secs_f64(),
        mib(flooded_again.1),
        mib(flooded_again.0),
        after_kill.as_secs_f64() * 1000.0
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The data directory's size before a flood of 5 000 sessions, after it, and once they
/// expired (`session.ttl: 2`, removed two lifetimes after creation) and the sweeper removed
/// them and compacted the session tables.
fn size_after_sweep(notes: &mut Vec<String>) {
    const FLOOD: u64 = 5_000;
    eprintln!("sweep: store size around a flood of {FLOOD} sessions");
    let dir = part_dir("sweep");
    let config = write_config_with(
        &dir,
        serde_json::json!({"session": {"ttl": 2}, "logging": {"level": "info"}}),
    );
    let data = dir.join("data");
    let server = common::start(&config);
    let show = |(all, journal): (u64, u64)| {
        format!(
            "{:.2} MiB ({:.2} MiB without the journal)",
            mib(all),
            mib(all - journal)
        )
    };
    let before = common::disk_use(&data);
    // A long next_link makes each record about 1.5 kB, so the flood outgrows a memtable.
    let took = common::flood(
        server.addr,
        8,
        FLOOD,
        Arc::new(|c, n| {
            (
                "POST",
                format!("{V1}/validate/email/requestToken"),
                format!(
                    r#"{{"client_secret":"sweep{c}x{n}","email":"sweep{c}x{n}@bench.test","send_attempt":1,"next_link":"https://app.bench.test/done?{}"}}"#,
                    "x".repeat(1200)
                ),
            )
        }),
    );
    let flooded = common::disk_use(&data);
    // Expired 4 s after creation, swept on the next 1 s tick, then compacted: wait until the
    // size without the journal stops falling (at most 30 s).
    let started = Instant::now();
    let mut last = flooded;
    let mut steady = 0;
    while started.elapsed() < Duration::from_secs(30) && steady < 8 {
        std::thread::sleep(Duration::from_millis(500));
        let now = common::disk_use(&data);
        if now.0 - now.1 < last.0 - last.1 || started.elapsed() < Duration::from_secs(6) {
            steady = 0;
        } else {
            steady += 1;
        }
        last = now;
    }
    notes.push(format!(
        "data directory around a flood of {FLOOD} sessions of 1.5 kB ({:.1} s, session.ttl 2 s): {} before, {} after the flood, {} once they expired and were swept ({:.0} s later)",
        took.as_secs_f64(),
        show(before),
        show(flooded),
        show(last),
        started.elapsed().as_secs_f64()
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let seconds = env_num("OXISD_BENCH_SECONDS", 5);
    let bindings = env_num("OXISD_BENCH_BINDINGS", 1_000_000);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if wanted("sessions") {
        sessions(&mut rows, &mut notes, seconds);
    }
    if wanted("lookup") || wanted("bulk") {
        lookups(&mut rows, &mut notes, seconds, bindings);
    }
    if wanted("memory") {
        memory_after_load(&mut notes, seconds);
    }
    if wanted("startup") {
        startup_after_flood(&mut notes);
    }
    if wanted("sweep") {
        size_after_sweep(&mut notes);
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
