//! Server benchmarks: start-up time, idle memory, and requestToken throughput with concurrent
//! clients, against the real binary on loopback. Prints figures; asserts nothing.
//!
//! Run with `cargo bench --bench server` (builds the release profile). Options through the
//! environment: `OXISD_BENCH_SECONDS` (default 10) for the throughput run,
//! `OXISD_BENCH_CLIENTS` (default 8).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server {
    child: Child,
    addr: SocketAddr,
    started_in: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

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

/// Starts the server; the start-up time runs from spawning to the first answered request.
fn start(config: &Path) -> Server {
    let begin = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxisd"))
        .args(["serve", "--config"])
        .arg(config)
        .env("OXISD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let r = request(
        &mut TcpStream::connect(addr).unwrap(),
        "GET",
        "/_matrix/identity/v2",
        "",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    Server {
        child,
        addr,
        started_in: begin.elapsed(),
    }
}

fn request(stream: &mut TcpStream, method: &str, path: &str, body: &str) -> String {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    read_one(stream)
}

/// Reads one response with a Content-Length body from a keep-alive connection.
fn read_one(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn request_tokens(server: &Server, clients: u64, seconds: u64) -> (u64, Vec<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, done, addr) = (stop.clone(), done.clone(), server.addr);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(r#"{{"client_secret":"bench{c}","email":"user{c}x{n}@bench.test","send_attempt":1}}"#);
                    let t = Instant::now();
                    let r = request(&mut stream, "POST", "/_matrix/identity/v2/validate/email/requestToken", &body);
                    latencies.push(t.elapsed());
                    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    (done.load(Ordering::Relaxed), all)
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
    println!(
        "idle RSS after start: {:.1} MiB",
        rss_kib(first.child.id()) as f64 / 1024.0
    );

    let (n, lat) = request_tokens(&first, clients, seconds);
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "requestToken, {clients} concurrent clients, every answer durable: {:.0} requests/s ({n} in {seconds} s); latency p50 {:.2} ms, p99 {:.2} ms",
        n as f64 / seconds as f64,
        pct(0.50),
        pct(0.99)
    );
    std::thread::sleep(Duration::from_secs(12));
    println!(
        "RSS 12 s after the load: {:.1} MiB",
        rss_kib(first.child.id()) as f64 / 1024.0
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
        rss_kib(second.child.id()) as f64 / 1024.0
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
