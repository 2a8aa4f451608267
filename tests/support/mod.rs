//! Test support: a real oxisd process on 127.0.0.1 port 0 with a temporary data directory, and a
//! raw HTTP/1.1 client that can send anything (oversized bodies, bad JSON, odd methods).

#![allow(dead_code)]

pub mod accounts;
pub mod attack;
pub mod dns;
pub mod homeserver;
pub mod remote_is;
pub mod rest_backend;
pub mod sessions;
pub mod slapd;
pub mod smtp;
pub mod stand_in;
pub mod synapse_admin;
pub mod tls;
pub mod twilio;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("oxisd-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Merges `patch` into `base` (objects recursively, everything else replaced).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// The oxisd binary under test: the one cargo built, or `$OXISD_TEST_BINARY` (to run the
/// tests against another build, e.g. to see a new test fail on the code before a fix).
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("OXISD_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxisd").to_string())
    })
}

/// A running oxisd.
pub struct TestServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub dir: Arc<TempDir>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// The base config every test server gets: loopback, port 0, data in the temp dir.
    pub fn base_config(dir: &Path) -> Value {
        json!({
            "server": {"hostname": "127.0.0.1", "port": 0, "name": "id.test", "workers": 4},
            "storage": {"path": dir.join("data")},
            "logging": {"level": "debug"},
        })
    }

    /// Starts a server on the base config.
    pub fn start() -> TestServer {
        Self::start_with(json!({}))
    }

    /// Starts a server on the base config with `patch` merged in.
    pub fn start_with(patch: Value) -> TestServer {
        let dir = Arc::new(TempDir::new("srv"));
        Self::start_in(dir, patch)
    }

    /// Starts a server whose data lives in `dir` (to restart on the same data).
    pub fn start_in(dir: Arc<TempDir>, patch: Value) -> TestServer {
        Self::start_in_with(dir, patch, |_| {})
    }

    /// Like [`TestServer::start_in`], with `configure` applied to the command before it is
    /// spawned (resource limits, environment).
    pub fn start_in_with(
        dir: Arc<TempDir>,
        patch: Value,
        configure: impl FnOnce(&mut Command),
    ) -> TestServer {
        Self::spawn(dir, patch, configure, false)
    }

    /// Starts a server on the base config with `patch` merged in, as systemd starts a
    /// service: its standard error is a stream whose device and inode `JOURNAL_STREAM` names.
    pub fn start_under_journald(patch: Value) -> TestServer {
        Self::spawn(Arc::new(TempDir::new("srv")), patch, |_| {}, true)
    }

    fn spawn(
        dir: Arc<TempDir>,
        patch: Value,
        configure: impl FnOnce(&mut Command),
        journal: bool,
    ) -> TestServer {
        let mut config = Self::base_config(dir.path());
        merge(&mut config, &patch);
        let config_path = dir.path().join("config.yaml");
        // JSON is YAML, so the config can be written as JSON.
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let mut command = Command::new(binary());
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env_remove("OXISD_CONFIG")
            .env_remove("OXISD_LOG")
            .env_remove("OXISD_TEST_PANIC_TASK")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut journal_reader = None;
        if journal {
            use std::os::unix::fs::MetadataExt;
            let (reader, writer) = std::io::pipe().unwrap();
            let fd = std::os::fd::OwnedFd::from(writer.try_clone().unwrap());
            let meta = std::fs::File::from(fd).metadata().unwrap();
            command
                .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
                .stderr(writer);
            journal_reader = Some(reader);
        }
        configure(&mut command);
        let mut child = command.spawn().expect("start oxisd");
        // The command holds the pipe's writing end: dropped, the reader sees the end of the
        // stream when the server exits.
        drop(command);
        let stderr: Box<dyn Read + Send> = match journal_reader {
            Some(reader) => Box::new(reader),
            None => Box::new(child.stderr.take().unwrap()),
        };
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let reader = {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                    }
                    logs.lock().unwrap().push(line);
                }
            })
        };
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "oxisd did not start; log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        TestServer {
            child: Some(child),
            addr,
            config_path,
            logs,
            dir,
            reader: Some(reader),
        }
    }

    /// All log lines so far.
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    // unsafe: kill(2) through libc, to send SIGTERM (std only has SIGKILL).
    #[allow(unsafe_code)]
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Every line the process wrote is in `logs` once its stderr is drained.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("oxisd did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        http(self.addr, method, path, headers, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a Matrix error with this status and errcode, and that `error` is present.
    pub fn assert_error(&self, status: u16, errcode: &str) -> Value {
        let body = self.json();
        assert_eq!(
            (self.status, body["errcode"].as_str()),
            (status, Some(errcode)),
            "body: {body}"
        );
        assert!(body["error"].is_string(), "error message missing: {body}");
        body
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut stream)
}

/// Reads one response (until the server closes the connection).
pub fn read_response(stream: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end in response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// Runs the binary with `args` and returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .env_remove("OXISD_CONFIG")
        .output()
        .expect("run oxisd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `f(0)` .. `f(n - 1)` on `n` threads released at the same moment (a barrier), and
/// returns their results in order: for tests of what holds under concurrent requests.
pub fn at_once<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (f, barrier) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}
