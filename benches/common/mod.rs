//! What the benchmarks share: starting the real binary, a keep-alive HTTP client, and reading
//! a process's memory and CPU time. Included by each bench with `#[path]`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running oxisd, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// From spawning to the first answered request.
    pub started_in: Duration,
}

impl Drop for Server {
    // unsafe: kill(2) through libc, to send SIGTERM (std only has SIGKILL).
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Starts the release binary on `config` and waits for its first answer.
pub fn start(config: &Path) -> Server {
    let begin = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxisd"))
        .args(["serve", "--config"])
        .arg(config)
        .env("OXISD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let r = request(&mut connect(addr), "GET", "/_matrix/identity/v2", None, "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    Server {
        child,
        addr,
        started_in: begin.elapsed(),
    }
}

/// A keep-alive connection without Nagle, read through a large buffer.
pub fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    BufReader::with_capacity(256 * 1024, stream)
}

/// One request on a keep-alive connection; the answer's head and body as text.
pub fn request(
    stream: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.get_mut().write_all(req.as_bytes()).unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
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

/// Resident memory of a process, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:").map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The `p` quantile of sorted latencies, in ms.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))].as_secs_f64()
        * 1000.0
}

/// Makes request `n` of client `c`: (method, path, body).
pub type Make = Arc<dyn Fn(u64, u64) -> (&'static str, String, String) + Send + Sync>;

/// What a load run measured.
pub struct Load {
    /// Requests answered.
    pub done: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
}

/// Runs `make` from `clients` keep-alive connections to `addr` for `seconds`; every answer
/// must be 200.
pub fn load(
    addr: SocketAddr,
    clients: u64,
    seconds: u64,
    token: Option<&'static str>,
    make: Make,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, done, make) = (stop.clone(), done.clone(), make.clone());
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut latencies = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (method, path, body) = make(c, n);
                    let t = Instant::now();
                    let r = request(&mut stream, method, &path, token, &body);
                    latencies.push(t.elapsed());
                    assert!(
                        r.starts_with("HTTP/1.1 200"),
                        "{path}: {}",
                        &r[..r.len().min(300)]
                    );
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
    let done = done.load(Ordering::Relaxed);
    Load {
        done,
        rps: done as f64 / seconds as f64,
        p50: percentile_ms(&all, 0.5),
        p99: percentile_ms(&all, 0.99),
    }
}

/// Bytes allocated on disk below `dir` (as `du` counts them): all files, and fjall's journal
/// files (`*.jnl`, sparse: created at 64 MiB, allocated as written) among them.
pub fn disk_use(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut all, mut journal) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                all += meta.blocks() * 512;
                if entry.path().extension().is_some_and(|x| x == "jnl") {
                    journal += meta.blocks() * 512;
                }
            }
        }
    }
    (all, journal)
}

/// Peak resident memory (VmHWM) of a process, MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Sends `total` requests made by `make`, from `clients` keep-alive connections; every answer
/// must be 200. Returns how long it took.
pub fn flood(addr: SocketAddr, clients: u64, total: u64, make: Make) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let make = make.clone();
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                for n in 0..total / clients {
                    let (method, path, body) = make(c, n);
                    let r = request(&mut stream, method, &path, None, &body);
                    assert!(
                        r.starts_with("HTTP/1.1 200"),
                        "{path}: {}",
                        &r[..r.len().min(300)]
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    started.elapsed()
}
