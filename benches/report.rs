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
//! machine's cores. Then `oxisd admin import` of a sydent database into a running server: wall
//! time, peak RSS of the command and of the server, the store on disk at its peak and at the end.
//! Environment: `OXISD_BENCH_SECONDS` (per measurement, default 5), `OXISD_BENCH_BINDINGS`
//! (default 1000000), `OXISD_BENCH_IMPORT_ROWS` (rows of the sydent database, default 1000000;
//! made by `benches/make_sydent_db.py`, which needs python3), `OXISD_BENCH_ONLY` (a
//! comma-separated subset of `sessions`, `lookup`, `import`; the table is then not written).

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

use common::{Make, Server, connect, env_num, request, rss_mib};

const TOKEN: &str = "benchmark-access-token-0123456789abcdef";
const V1: &str = "/_matrix/identity/api/v1";

/// One measured row.
struct Row {
    what: String,
    clients: u64,
    rps: f64,
    p50: f64,
    p99: f64,
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
        let common::Load { rps, p50, p99, .. } =
            common::load(server.addr, clients, seconds, token, make.clone());
        eprintln!(
            "  {what}, {clients} client(s): {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms"
        );
        rows.push(Row {
            what: what.to_string(),
            clients,
            rps,
            p50,
            p99,
        });
    }
}

/// Whether `OXISD_BENCH_ONLY` (unset: everything) asks for `part`.
fn wanted(part: &str) -> bool {
    std::env::var("OXISD_BENCH_ONLY")
        .map(|only| only.split(',').any(|p| p.trim() == part))
        .unwrap_or(true)
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

/// Lookups against a store of `bindings` bindings.
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
        &server,
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
    if wanted("lookup") {
        lookups(&mut rows, &mut notes, seconds, bindings);
    }
    if wanted("import") {
        let import_rows = env_num("OXISD_BENCH_IMPORT_ROWS", 1_000_000);
        import::run(&mut rows, &mut notes, seconds, import_rows);
    }

    let mut table =
        String::from("| what | clients | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|\n");
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {:.0} | {:.2} | {:.2} |",
            r.what, r.clients, r.rps, r.p50, r.p99
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
