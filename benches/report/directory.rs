//! The directory part of the benchmark page: a real OpenLDAP slapd seeded with
//! `OXISD_BENCH_DIRECTORY_USERS` users (default 10 000; each with an email and a phone number),
//! synced by oxisd's `stores.ldap`: the first (full) sync, an incremental sync with nothing
//! changed, one after 100 changes, the server's RSS after them, and password checks
//! (`check_credentials`, one client) per second. Skipped, with a note, when slapd is not
//! installed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::common::{self, cpu_seconds, rss_mib};
use super::slapd::{PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd};
use super::{part_dir, write_config_with};

/// A running oxisd whose log lines arrive on a channel; SIGTERM when dropped.
struct Logged {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Logged {
    // unsafe: kill(2) through libc, to send SIGTERM (std only has SIGKILL).
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Logged {
    /// The next log line containing `needle`, within `within`.
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no '{needle}' in the log within {within:?}"),
            }
        }
    }
}

/// The value of `field: <number>` in a logged `SyncReport { .. }`.
fn field(line: &str, name: &str) -> u64 {
    line.split(&format!("{name}: "))
        .nth(1)
        .and_then(|r| r.split([',', ' ', '}']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// `users` entries for the seed, numbered from 0.
fn users_ldif(users: u64) -> String {
    let mut out = String::new();
    for k in 0..users {
        out.push_str(&format!(
            "dn: uid=user{k},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: user{k}\ncn: User {k}\nsn: {k}\n\
             displayName: User {k}\nmail: user{k}@example.org\ntelephoneNumber: +44 7911 1{:05}\n\
             userPassword: password-{k}\n\n",
            k % 100_000
        ));
    }
    out
}

/// Runs the part, adding its figures to `notes`.
pub fn run(notes: &mut Vec<String>) {
    let users = common::env_num("OXISD_BENCH_DIRECTORY_USERS", 10_000);
    eprintln!("directory: slapd with {users} users, synced by stores.ldap");
    let Some(slapd) = Slapd::start_with(&users_ldif(users)) else {
        notes.push("directory: not measured (slapd is not installed)".into());
        return;
    };
    let dir = part_dir("directory");
    let config = write_config_with(
        &dir,
        serde_json::json!({
            "logging": {"level": "info"},
            "matrix": {"domain": "example.org"},
            "session": {"policy": {"validation": {"enabled": false}}},
            "stores": {"ldap": {
                "enabled": true,
                "connection": {"urls": [slapd.url], "bindDn": SERVICE_DN,
                               "bindPassword": SERVICE_PASSWORD, "baseDNs": [PEOPLE]},
                "filter": "(objectClass=inetOrgPerson)",
                "defaultRegion": "GB",
                "sync": {"interval": 3},
            }},
            "auth": {"enabled": true, "port": 0,
                     "rateLimit": {"perClient": {"burst": 1_000_000, "refill": 1}}},
        }),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxisd"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("OXISD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let server = Logged { child, lines: rx };
    let pid = server.child.id();
    let auth_line = server.wait_for(
        "password checks (auth.*) at http://",
        Duration::from_secs(10),
    );
    let auth: SocketAddr = auth_line
        .split("at http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap();
    let full = server.wait_for("directory synced", Duration::from_secs(300));
    let rss_full = rss_mib(pid);
    let quiet = server.wait_for("full: false", Duration::from_secs(60));
    // 100 changed entries: a new mail each.
    let mut changes = String::new();
    for k in (0..users).step_by((users / 100).max(1) as usize).take(100) {
        changes.push_str(&format!(
            "dn: uid=user{k},{PEOPLE}\nchangetype: modify\nadd: mail\nmail: user{k}.new@example.org\n\n"
        ));
    }
    slapd.modify(&changes);
    let changed = loop {
        let line = server.wait_for("full: false", Duration::from_secs(60));
        if field(&line, "added") > 0 {
            break line;
        }
    };
    // The next one reads from the changes' second on: the incremental sync of a quiet
    // directory after changes.
    let settled = server.wait_for("full: false", Duration::from_secs(60));
    let rss_after = rss_mib(pid);
    // Password checks, one client, right passwords.
    let checks = 200;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    for i in 0..checks {
        let k = (i * 37) % users;
        let body =
            format!(r#"{{"user":{{"id":"@user{k}:example.org","password":"password-{k}"}}}}"#);
        let r = common::request(
            &mut common::connect(auth),
            "POST",
            "/_matrix-internal/identity/v1/check_credentials",
            None,
            &body,
        );
        assert!(r.contains("\"success\":true"), "{r}");
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    notes.push(format!(
        "directory ({users} users in slapd, one email and one phone number each): first sync \
         (full) {} ms for {} entries and {} bindings written; incremental sync with nothing \
         changed {} ms ({} entries read again: slapadd gave the whole seed one modifyTimestamp \
         second, and an incremental sync reads from its high-water second on); after 100 changes \
         {} ms ({} entries read, {} bindings added), the one after {} ms ({} entries read); server \
         RSS {rss_full:.1} MiB after the full sync, {rss_after:.1} MiB after the incremental ones; \
         check_credentials (right \
         passwords, one client, a new connection to slapd each) {:.0} per second, {:.2} ms of \
         server CPU each",
        field(&full, "ms"),
        field(&full, "read"),
        field(&full, "added"),
        field(&quiet, "ms"),
        field(&quiet, "read"),
        field(&changed, "ms"),
        field(&changed, "read"),
        field(&changed, "added"),
        field(&settled, "ms"),
        field(&settled, "read"),
        checks as f64 / took,
        cpu * 1000.0 / checks as f64,
    ));
    drop(server);
    drop(slapd);
}
