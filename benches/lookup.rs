//! Lookup benchmark: a store with N bindings (1 000 000 by default, and 100 000 to compare),
//! then v2 lookups of 1 000 sha256 hashes per request, v1 bulk lookups of 1 000 addresses,
//! binds, start-up time, store size and server RSS, against the real binary on loopback.
//! Prints figures; asserts nothing.
//!
//! `cargo bench --bench lookup`. Environment: `OXISD_BENCH_BINDINGS` (comma-separated sizes,
//! default "100000,1000000"), `OXISD_BENCH_SECONDS` (per measurement, default 10),
//! `OXISD_BENCH_CLIENTS` (default 4), `OXISD_BENCH_CACHE_MIB` (`storage.cacheSize`, default 4),
//! `OXISD_BENCH_KEEP` (keep the stores and their config for inspection).

// Benchmark code: a failed unwrap or expect ends the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oxisd::crypto::lookup_hash::sha256_lookup_hash;
use oxisd::ids::{ClientSecret, SessionId};
use oxisd::service::pepper::Peppers;
use oxisd::store::Store;
use oxisd::store::accounts::AccountRecord;
use oxisd::store::bindings::BindingRecord;
use oxisd::store::sessions::SessionRecord;
use oxisd::threepid::Medium;

use common::{Server, cpu_seconds, env_num, rss_mib};

const TOKEN: &str = "benchmark-access-token-0123456789abcdef";

fn address(n: u64) -> String {
    format!("user{n}@bench.example.org")
}

/// Fills a store with `n` bindings; returns the pepper.
fn prepare_bindings(dir: &Path, n: u64) -> String {
    // A server's first start makes the store and its signing key (a used store without its
    // key refuses to start), as on a real box before an import.
    drop(start(dir));
    let store = Store::open(&dir.join("data")).unwrap();
    let peppers = Peppers::load_or_create(&store).unwrap();
    let now = 1_795_000_000_000u64;
    let records = (0..n).map(|i| BindingRecord {
        medium: "email".into(),
        address: address(i),
        mxid: format!("@user{i}:bench.example.org"),
        ts: now,
        not_before: now,
        not_after: now + 100 * 365 * 24 * 3600 * 1000,
    });
    let started = Instant::now();
    store
        .put_bindings("builtin", records, &peppers.for_writes().all())
        .unwrap();
    println!(
        "  loaded {n} bindings in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    store.compact_bindings().unwrap();
    println!("  compacted in {:.1} s", started.elapsed().as_secs_f64());
    let pepper = peppers.current().pepper;
    store.close().unwrap();
    pepper
}

/// Adds an access token and `binds` validated sessions (ordinary, journaled writes).
fn prepare_sessions(dir: &Path, binds: u64) {
    let store = Store::open(&dir.join("data")).unwrap();
    let now = 1_795_000_000_000u64;
    store
        .put_token(
            TOKEN,
            &AccountRecord {
                user_id: "@bench:bench.example.org".into(),
                created_ms: now,
            },
        )
        .unwrap();
    let wall = oxisd::util::time::now_ms();
    for i in 0..binds {
        let record = SessionRecord {
            sid: SessionId::try_from(format!("benchsid{i}")).unwrap(),
            medium: Medium::Email,
            address: format!("new{i}@bench.example.org"),
            client_secret: ClientSecret::parse("secret").unwrap(),
            token: "t".into(),
            send_attempt: Some(1),
            next_link: None,
            created_ms: wall,
            mtime_ms: wall,
            validated_ms: Some(wall),
            failed_attempts: 0,
            purge_at_ms: wall + 48 * 3600 * 1000,
            remote: None,
        };
        store.put_session(&record, None).unwrap();
    }
    store.durable().unwrap();
    store.close().unwrap();
}

fn start(dir: &Path) -> Server {
    let config = serde_json::json!({
        "server": {"hostname": "127.0.0.1", "port": 0, "name": "bench.test", "workers": 16},
        "storage": {"path": dir.join("data"), "cacheSize": env_num("OXISD_BENCH_CACHE_MIB", 4)},
        "logging": {"level": "warn", "requests": false},
        "lookup": {"rateLimit": {"perClient": {"addressesPerSecond": 0}}},
    });
    let path = dir.join("config.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    common::start(&path)
}

/// Runs bodies from `make(client, n)` against `path` from `clients` connections for
/// `seconds`. Each client prepares 32 bodies before the clock starts and cycles through them,
/// so the figures measure the server, not the load generator.
fn load(
    server: &Server,
    clients: u64,
    seconds: u64,
    path: &'static str,
    make: Arc<dyn Fn(u64, u64) -> String + Send + Sync>,
) -> (f64, f64, f64) {
    let bodies: Arc<Vec<Vec<String>>> = Arc::new(
        (0..clients)
            .map(|c| (0..32).map(|i| make(c, i)).collect())
            .collect(),
    );
    let measured = common::load(
        server.addr,
        clients,
        seconds,
        Some(TOKEN),
        Arc::new(move |c, n| {
            let mine = &bodies[c as usize];
            (
                "POST",
                path.to_string(),
                mine[n as usize % mine.len()].clone(),
            )
        }),
    );
    (measured.rps, measured.p50, measured.p99)
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn bench(n: u64, seconds: u64, clients: u64) {
    println!("== {n} bindings");
    let dir = std::env::temp_dir().join(format!("oxisd-bench-lookup-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let binds = 20_000;
    let pepper = Arc::new(prepare_bindings(&dir, n));
    println!(
        "  store on disk: {:.1} MiB",
        dir_size(&dir.join("data")) as f64 / 1024.0 / 1024.0
    );
    let server = start(&dir);
    println!(
        "  start-up to first answer: {:.1} ms",
        server.started_in.as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_secs(1));
    println!("  idle RSS: {:.1} MiB", rss_mib(server.child.id()));
    drop(server);
    prepare_sessions(&dir, binds);
    let server = start(&dir);
    println!(
        "  start-up after {binds} more session writes (journal replay): {:.1} ms",
        server.started_in.as_secs_f64() * 1000.0
    );

    let p = pepper.clone();
    let v2 = Arc::new(move |c: u64, i: u64| {
        // Half of the hashes are bound, half are not.
        let hashes: Vec<String> = (0..1000u64)
            .map(|k| {
                let x = (c * 7919 + i * 1000 + k).wrapping_mul(2_654_435_761) % (2 * n);
                sha256_lookup_hash(&address(x), "email", &p)
            })
            .collect();
        serde_json::json!({"algorithm": "sha256", "pepper": *p, "addresses": hashes}).to_string()
    });
    let cpu_before = cpu_seconds(server.child.id());
    let (rps, p50, p99) = load(&server, clients, seconds, "/_matrix/identity/v2/lookup", v2);
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
    println!(
        "  server CPU per v2 lookup request: {:.1} ms (the load generator shares the 2 cores)",
        cpu * 1000.0 / (rps * seconds as f64)
    );
    println!(
        "  v2 lookup, 1000 sha256 hashes per request, {clients} clients: {rps:.0} requests/s, p50 {p50:.1} ms, p99 {p99:.1} ms"
    );

    let v1 = Arc::new(move |c: u64, i: u64| {
        let pairs: Vec<serde_json::Value> = (0..1000u64)
            .map(|k| {
                serde_json::json!([
                    "email",
                    address((c * 7919 + i * 1000 + k).wrapping_mul(2_654_435_761) % (2 * n))
                ])
            })
            .collect();
        serde_json::json!({"threepids": pairs}).to_string()
    });
    let (rps, p50, p99) = load(
        &server,
        clients,
        seconds,
        "/_matrix/identity/api/v1/bulk_lookup",
        v1,
    );
    println!(
        "  v1 bulk_lookup, 1000 addresses per request, {clients} clients: {rps:.0} requests/s, p50 {p50:.1} ms, p99 {p99:.1} ms"
    );

    let next = Arc::new(AtomicU64::new(0));
    let bind = Arc::new(move |_c: u64, _i: u64| {
        let k = next.fetch_add(1, Ordering::Relaxed) % binds;
        serde_json::json!({"sid": format!("benchsid{k}"), "client_secret": "secret", "mxid": format!("@new{k}:bench.example.org")}).to_string()
    });
    let (rps, p50, p99) = load(
        &server,
        8,
        seconds.min(5),
        "/_matrix/identity/api/v1/3pid/bind",
        bind,
    );
    println!(
        "  bind (signed, stored, durable), 8 clients: {rps:.0} requests/s, p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "  RSS after the load: {:.1} MiB",
        rss_mib(server.child.id())
    );
    drop(server);
    let again = start(&dir);
    println!(
        "  restart to first answer: {:.1} ms",
        again.started_in.as_secs_f64() * 1000.0
    );
    drop(again);
    if std::env::var_os("OXISD_BENCH_KEEP").is_some() {
        println!("  kept the store in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn main() {
    let seconds = env_num("OXISD_BENCH_SECONDS", 10);
    let clients = env_num("OXISD_BENCH_CLIENTS", 4);
    let sizes = std::env::var("OXISD_BENCH_BINDINGS").unwrap_or_else(|_| "100000,1000000".into());
    for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        bench(n, seconds, clients);
    }
}
