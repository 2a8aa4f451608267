//! Server benchmarks: start-up time, idle memory, and requestToken throughput with concurrent
//! clients, against the real binary on loopback. Prints figures; asserts nothing.
//!
//! Run with `cargo bench --bench server` (builds the release profile). Options through the
//! environment: `OXISD_BENCH_SECONDS` (default 10) for the throughput run,
//! `OXISD_BENCH_CLIENTS` (default 8).

// Benchmark code: a failed unwrap or expect ends the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Server, env_num, rss_mib, start};

fn write_config(dir: &Path) -> PathBuf {
    let config = serde_json::json!({
        "server": {"hostname": "127.0.0.1", "port": 0, "name": "bench.test", "workers": 16},
        "storage": {"path": dir.join("data")},
        "logging": {"level": "warn", "requests": false},
        "session": {"rateLimit": {"perClient": {"burst": 1_000_000_000u64, "refill": 1}}},
    });
    let path = dir.join("config.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

fn request_tokens(server: &Server, clients: u64, seconds: u64) -> common::Load {
    common::load(
        server.addr,
        clients,
        seconds,
        None,
        Arc::new(|c, n| {
            (
                "POST",
                "/_matrix/identity/api/v1/validate/email/requestToken".to_string(),
                format!(
                    r#"{{"client_secret":"bench{c}","email":"user{c}x{n}@bench.test","send_attempt":1}}"#
                ),
            )
        }),
    )
}

fn main() {
    let seconds = env_num("OXISD_BENCH_SECONDS", 10);
    let clients = env_num("OXISD_BENCH_CLIENTS", 8);
    let dir = std::env::temp_dir().join(format!("oxisd-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir);

    let first = start(&config);
    println!(
        "start-up, empty store (first run, key generated): {:.1} ms",
        first.started_in.as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_secs(2));
    println!("idle RSS after start: {:.1} MiB", rss_mib(first.child.id()));

    let run = request_tokens(&first, clients, seconds);
    let n = run.done;
    println!(
        "requestToken, {clients} concurrent clients, every answer durable: {:.0} requests/s ({n} in {seconds} s); latency p50 {:.2} ms, p99 {:.2} ms",
        run.rps, run.p50, run.p99
    );
    std::thread::sleep(Duration::from_secs(12));
    println!(
        "RSS 12 s after the load: {:.1} MiB",
        rss_mib(first.child.id())
    );
    drop(first);

    let second = start(&config);
    println!(
        "start-up with {n} sessions in the store: {:.1} ms",
        second.started_in.as_secs_f64() * 1000.0
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "idle RSS after restart: {:.1} MiB",
        rss_mib(second.child.id())
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
