//! The import part of the benchmark page: `oxisd admin import sydent` of a database of `rows`
//! rows (written by `benches/make_sydent_db.py`) into a running server, with the admin listener
//! on. Measured: wall time of the command, peak RSS (`VmHWM`) of the command and of the
//! server, the store directory on disk (sampled every 100 ms, journal included) at its peak, at
//! the end and after the server stopped; then v2 lookups of 1 000 hashes (half of them
//! imported) against the imported store, as it is when the command returns.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oxisd::service::pepper::Peppers;
use oxisd::store::Store;
use oxisd::store::accounts::AccountRecord;

use super::{PeakSampler, Row, TOKEN, common, measure, part_dir, v2_lookup_bodies, v2_lookups};
use common::peak_rss_mib;

const MIB: f64 = 1024.0 * 1024.0;

/// Bytes of the files below `dir` (files that vanish while it counts are skipped).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path) -> PathBuf {
    let config = serde_json::json!({
        "server": {"hostname": "127.0.0.1", "port": 0, "name": "bench.test"},
        "storage": {"path": dir.join("data")},
        "logging": {"level": "warn", "requests": false},
        // The figures are of the lookups, not of the per-client budget.
        "lookup": {"rateLimit": {"perClient": {"addressesPerSecond": 0}}},
        "admin": {"enabled": true, "port": free_port(), "token": "bench-admin-token-0123456789"},
    });
    let path = dir.join("config.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// The 3PID of key `k` in `benches/make_sydent_db.py`: (medium, address).
fn threepid(k: u64) -> (&'static str, String) {
    if k.is_multiple_of(5) {
        ("msisdn", format!("44{}", 7_700_000_000 + k))
    } else {
        ("email", format!("user{k}@bench{}.example.org", k % 97))
    }
}

/// Runs the import, adds its figures to `notes` and the lookups after it to `table`.
pub fn run(table: &mut Vec<Row>, notes: &mut Vec<String>, seconds: u64, rows: u64) {
    eprintln!("import of a sydent database of {rows} rows");
    let dir = part_dir("import");
    let db = dir.join("sydent.db");
    let made = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/make_sydent_db.py"
        ))
        .arg(rows.to_string())
        .arg(&db)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        notes.push("import: not measured (benches/make_sydent_db.py needs python3)".into());
        return;
    }
    let config = write_config(&dir);
    // The first start makes the store and the key, as on a box about to migrate.
    drop(common::start(&config));
    let server = common::start(&config);
    let data = dir.join("data");
    let sampler = {
        let data = data.clone();
        PeakSampler::start(move || dir_bytes(&data))
    };
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxisd"))
        .args(["admin", "--config"])
        .arg(&config)
        .args(["import", "sydent"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The command's VmHWM, read until it exits (not wait4's ru_maxrss, which counts the
    // memory of this process that spawned it).
    let mut cli_peak: f64 = 0.0;
    let status = loop {
        cli_peak = cli_peak.max(peak_rss_mib(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed().as_secs_f64();
    let mut summary = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(status.success(), "the import failed:\n{summary}");
    let peak = sampler.stop().max(dir_bytes(&data));
    let server_peak = peak_rss_mib(server.child.id());
    let at_end = dir_bytes(&data);
    drop(server);
    let stopped = dir_bytes(&data);
    lookups(table, &config, &data, seconds, rows);
    let imported = summary
        .lines()
        .find_map(|l| l.strip_prefix("imported:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    eprint!("{summary}");
    notes.push(format!(
        "import of {rows} sydent rows ({imported} bindings) with `oxisd admin import` into a running server: {wall:.1} s"
    ));
    notes.push(format!(
        "peak RSS during that import: the command {cli_peak:.1} MiB, the server {server_peak:.1} MiB"
    ));
    notes.push(format!(
        "store on disk during that import: {:.0} MiB at the peak, {:.0} MiB at the end, {:.0} MiB once the server stopped",
        peak as f64 / MIB,
        at_end as f64 / MIB,
        stopped as f64 / MIB
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// v2 lookups against the imported store: the server restarted with an access token added.
fn lookups(table: &mut Vec<Row>, config: &Path, data: &Path, seconds: u64, rows: u64) {
    let pepper = {
        let store = Store::open(data).unwrap();
        let pepper = Peppers::load_or_create(&store).unwrap().current().pepper;
        let record = AccountRecord {
            user_id: "@bench:bench.test".into(),
            created_ms: 1_795_000_000_000,
        };
        store.put_token(TOKEN, &record).unwrap();
        store.durable().unwrap();
        store.close().unwrap();
        pepper
    };
    // As make_sydent_db.py numbers them: about 0.9 * rows keys are bound; half of the hashes
    // asked for are among them.
    let bodies = v2_lookup_bodies(&pepper, rows * 9 / 10, threepid);
    let server = common::start(config);
    measure(
        table,
        &server,
        &format!("v2 lookup, 1 000 hashes, after importing {rows} sydent rows"),
        seconds,
        Some(TOKEN),
        v2_lookups(bodies),
    );
}
