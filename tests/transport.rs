//! The HTTP transport under hostile traffic, on the plain, HTTPS and admin listeners: request
//! heads announcing absurd bodies (`Content-Length` up to 2^64-1), request lines and header
//! blocks that never end, floods of idle and slowloris connections, running out of file
//! descriptors, slow homeservers behind OpenID registrations, TLS connections that never
//! handshake, and bodies dripped after a 413.
//!
//! Each attack comes from loopback, is bounded in count and time, and stops by itself. What is
//! checked is what a client sees: the status of the answer (or that the server closed the
//! connection), that a ping (`GET /_matrix/identity/v2`, 200 `{}`) on a new connection still
//! answers, and quickly, and that the process survives with its memory in bounds.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::accounts::{start_with_homeserver, user_on};
use crate::support::attack::{
    OTHER_LOOPBACK, PING, admin_addr, assert_pings_within, assert_serving, closed_by_peer, connect,
    connect_from, exchange, flood, raise_fd_limit, start_with_fd_limit, start_with_tls, tls_client,
    vm_rss_kib, wait_until_closed,
};
use crate::support::homeserver::{FakeHomeserver, USERINFO_PATH};
use crate::support::{TestServer, http};

const REGISTER: &str = "/_matrix/identity/v2/account/register";
const ADMIN_IMPORT: &str = "/_oxisd/admin/v1/import/bindings";
const ADMIN_TOKEN: &str = "admin-token-for-the-transport-tests";
/// Bodies no server can hold: about 93 GiB, and 2^64-1 (which overflows a `usize` plus one).
const HUGE_LENGTHS: [&str; 2] = ["99999999999", "18446744073709551615"];
/// How fast a ping must answer while an attack is on.
const QUICK: Duration = Duration::from_millis(100);

/// A request head announcing a body of `length` bytes, none of which follows.
fn head_with_length(method: &str, path: &str, length: &str, extra: &[(&str, &str)]) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head + "\r\n"
}

/// hyper refuses a `Content-Length` that HTTP/1.1 framing cannot carry (above 2^64-3) while
/// parsing the head, before there is a request to route: 431 and close, whatever the route.
fn or_refused_head(length: &str, status: u16) -> u16 {
    if length == "18446744073709551615" {
        431
    } else {
        status
    }
}

/// The requests of the public API that can be answered without their body, and their status:
/// a body over the route's limit, an unknown path, a CORS preflight.
fn early_answered(length: &str) -> Vec<(String, u16)> {
    let preflight = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "POST"),
    ];
    vec![
        (head_with_length("POST", REGISTER, length, &[]), 413),
        (
            head_with_length("POST", "/_matrix/identity/v2/nope", length, &[]),
            404,
        ),
        (
            head_with_length("OPTIONS", REGISTER, length, &preflight),
            200,
        ),
    ]
    .into_iter()
    .map(|(head, status)| (head, or_refused_head(length, status)))
    .collect()
}

/// `POST /path HTTP/1.1 with Content-Length N`, for messages.
fn describe(head: &str) -> String {
    let line = head.lines().next().unwrap_or("");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap_or("none");
    format!("{line} with Content-Length {length}")
}

/// Sends `head` on `stream` and asserts the early answer: its status, the server still serving
/// afterwards, and for a 413 its Matrix error and `Connection: close`.
fn assert_answered_early(
    server: &TestServer,
    stream: &mut (impl Read + Write),
    head: &str,
    expected: u16,
) {
    let what = describe(head);
    let r = exchange(stream, head).unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    assert_eq!(r.status, expected, "{what}: {}", r.text());
    assert_serving(server, Duration::from_secs(3), &what);
    if expected == 413 {
        r.assert_error(413, "M_TOO_LARGE");
        assert!(
            r.header("Connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "{what}: a 413 must close the connection: {:?}",
            r.headers
        );
    }
}

#[test]
fn huge_content_lengths_are_answered_at_once_on_the_plain_listener() {
    let s = TestServer::start();
    for length in HUGE_LENGTHS {
        for (head, status) in early_answered(length) {
            assert_answered_early(&s, &mut connect(s.addr).unwrap(), &head, status);
        }
    }
}

#[test]
fn huge_content_lengths_are_answered_at_once_over_https() {
    let (s, https) = start_with_tls(json!({}));
    for length in HUGE_LENGTHS {
        for (head, status) in early_answered(length) {
            let mut c = tls_client(connect(https).unwrap());
            assert_answered_early(&s, &mut c, &head, status);
        }
    }
}

#[test]
fn huge_content_lengths_are_answered_at_once_on_the_admin_listener() {
    let s = TestServer::start_with(
        json!({"admin": {"enabled": true, "port": 0, "token": ADMIN_TOKEN}}),
    );
    let admin = admin_addr(&s);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for length in HUGE_LENGTHS {
        let requests = [
            (head_with_length("POST", ADMIN_IMPORT, length, &[]), 401),
            (
                head_with_length(
                    "POST",
                    ADMIN_IMPORT,
                    length,
                    &[("Authorization", bearer.as_str())],
                ),
                413,
            ),
        ];
        for (head, status) in requests {
            let status = or_refused_head(length, status);
            assert_answered_early(&s, &mut connect(admin).unwrap(), &head, status);
        }
    }
    // The admin listener itself still answers.
    let r = http(
        admin,
        "GET",
        "/_oxisd/admin/v1/stats",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn many_maximal_content_lengths_leave_every_worker_serving() {
    // Today's default on two cores; each such request used to take one worker down.
    let s = TestServer::start_with(json!({"server": {"workers": 8}}));
    let head = head_with_length("POST", REGISTER, "18446744073709551615", &[]);
    for n in 1..=10 {
        let r = exchange(&mut connect(s.addr).unwrap(), &head)
            .unwrap_or_else(|e| panic!("request {n}: no answer: {e}"));
        assert_eq!(
            r.status,
            or_refused_head("18446744073709551615", 413),
            "request {n}: {}",
            r.text()
        );
    }
    assert_serving(
        &s,
        Duration::from_secs(3),
        "10 requests with Content-Length 2^64-1",
    );
}

/// Floods a fresh connection with `prefix` then `filler` (up to 64 MiB) and asserts a 431
/// answer, memory in bounds, and a server still serving.
fn assert_endless_head_is_cut_off(prefix: &[u8], filler: &[u8], what: &str) {
    let s = TestServer::start();
    assert_serving(&s, Duration::from_secs(3), "the start");
    let before = vm_rss_kib(s.pid());
    let flooded = flood(
        connect(s.addr).unwrap(),
        prefix,
        filler,
        64 * 1024 * 1024,
        Duration::from_secs(10),
    );
    let after = vm_rss_kib(s.pid());
    assert_eq!(
        flooded.status_line().split_whitespace().nth(1),
        Some("431"),
        "{what}: sent {} bytes, got {:?} (VmRSS {before} -> {after} KiB)",
        flooded.sent,
        flooded.status_line()
    );
    assert!(
        after <= before + 8 * 1024,
        "{what}: VmRSS grew from {before} KiB to {after} KiB ({} bytes sent)",
        flooded.sent
    );
    assert_serving(&s, Duration::from_secs(3), what);
}

#[test]
fn an_endless_request_line_is_cut_off_with_431() {
    assert_endless_head_is_cut_off(b"GET /", &[b'a'; 64 * 1024], "an endless request line");
}

#[test]
fn an_endless_header_block_is_cut_off_with_431() {
    // 64 header lines of 1 KiB each per write.
    let line = format!("X-a: {}\r\n", "b".repeat(1024 - 7));
    assert_eq!(line.len(), 1024);
    assert_endless_head_is_cut_off(
        b"GET /_matrix/identity/v2 HTTP/1.1\r\nHost: x\r\n",
        line.repeat(64).as_bytes(),
        "an endless header block",
    );
}

#[test]
fn idle_and_slowloris_floods_neither_delay_a_ping_nor_stay_open() {
    assert!(
        raise_fd_limit() >= 2048,
        "1 300 connections need RLIMIT_NOFILE 2048 or more"
    );
    // The total cap is raised too, so that the ping's connection is not the one refused.
    let s = TestServer::start_with(json!({"server": {
        "maxConnections": 4000,
        "maxConnectionsPerAddress": 2000,
        "idleTimeout": 5,
        "readTimeout": 5,
    }}));
    const IDLE: usize = 1000;
    const SLOW: usize = 300;
    let opening = Instant::now();
    let mut attack: Vec<TcpStream> = (0..IDLE).map(|_| connect(s.addr).unwrap()).collect();
    for _ in 0..SLOW {
        let mut c = connect(s.addr).unwrap();
        // Half a head; one more byte of the header value comes every second.
        c.write_all(b"GET /_matrix/identity/v2 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        attack.push(c);
    }
    let opened = Instant::now();
    for c in &attack {
        c.set_nonblocking(true).unwrap();
    }
    let attack = Arc::new(attack);
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = {
        let (attack, stop) = (attack.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for mut c in &attack[IDLE..] {
                    // The server may have closed it: errors are expected.
                    let _ = c.write(b"a");
                }
                for _ in 0..10 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };

    assert_pings_within(s.addr, QUICK, "1 000 idle and 300 slowloris connections");
    // The pings did run while the attack was on.
    let open_during_pings = attack.iter().filter(|c| !closed_by_peer(c)).count();
    // On a loaded machine opening them all can take longer than the timeouts, so the first
    // ones may be gone already: at least the last 300 opened must still be there.
    assert!(
        open_during_pings >= SLOW,
        "only {open_during_pings} attack connections were still open during the pings ({:?} after opening them, which took {:?})",
        opened.elapsed(),
        opened - opening
    );
    let left = wait_until_closed(&attack, opened + Duration::from_secs(14));
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
    assert_eq!(
        left,
        0,
        "attack connections still open {:?} after opening (idleTimeout and readTimeout 5 s)",
        opened.elapsed()
    );
    assert_serving(&s, Duration::from_secs(3), "the idle and slowloris flood");
}

#[test]
fn running_out_of_file_descriptors_does_not_stop_the_server() {
    assert!(
        raise_fd_limit() >= 1024,
        "400 connections need RLIMIT_NOFILE 1024 or more"
    );
    let s = start_with_fd_limit(json!({"server": {"maxConnectionsPerAddress": 100000}}), 256);
    // More connections than the server has descriptors; the ones it cannot accept wait in the
    // listen queue until it is full, then connecting times out.
    let mut conns = Vec::new();
    let mut failures = 0;
    while conns.len() < 400 && failures < 3 {
        match TcpStream::connect_timeout(&s.addr, Duration::from_millis(500)) {
            Ok(c) => conns.push(c),
            Err(_) => failures += 1,
        }
    }
    let opened = conns.len();
    std::thread::sleep(Duration::from_secs(1));
    drop(conns);
    assert_serving(
        &s,
        Duration::from_secs(5),
        &format!("{opened} connections against RLIMIT_NOFILE 256"),
    );
    // More connections than the server could hold descriptors for: it did run out.
    assert!(opened > 256, "only {opened} connections opened");
}

#[test]
fn registrations_waiting_on_a_slow_homeserver_do_not_hold_up_a_ping() {
    let hs = FakeHomeserver::start();
    hs.set_delay(Duration::from_secs(5));
    // workers 0: the default pool, not the base test config's 4.
    let s = start_with_homeserver(json!({"server": {"workers": 0}}));
    let registrations: Vec<_> = (0..16)
        .map(|i| {
            let token = format!("slow-{i}");
            hs.add_openid_token(&token, &user_on(&hs, &format!("slow{i}")));
            let body = json!({
                "access_token": token,
                "token_type": "Bearer",
                "matrix_server_name": hs.server_name(),
                "expires_in": 3600,
            });
            let addr = s.addr;
            std::thread::spawn(move || {
                http(
                    addr,
                    "POST",
                    REGISTER,
                    &[("Content-Type", "application/json")],
                    body.to_string().as_bytes(),
                )
            })
        })
        .collect();
    assert!(
        !hs.wait_for_requests(USERINFO_PATH, 1, Duration::from_secs(5))
            .is_empty(),
        "no registration reached the homeserver"
    );
    // Let the other registrations arrive too.
    std::thread::sleep(Duration::from_millis(300));
    assert_pings_within(
        s.addr,
        QUICK,
        "16 registrations waiting on a homeserver answering after 5 s",
    );
    for r in registrations {
        // Some answer (from the slow homeserver, or an error), not a hang: `http` panics then.
        r.join().expect("a registration got no answer");
    }
}

#[test]
fn silent_tls_connections_from_one_address_leave_room_for_another() {
    assert!(
        raise_fd_limit() >= 1024,
        "512 connections need RLIMIT_NOFILE 1024 or more"
    );
    let (_s, https) = start_with_tls(json!({}));
    // tls.maxConnections (512) connections from 127.0.0.1 that never start a handshake.
    let silent: Vec<TcpStream> = (0..512).map(|_| connect(https).unwrap()).collect();
    // Let the server accept them all.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let tcp = connect_from(OTHER_LOOPBACK.into(), https, Duration::from_secs(2)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c = tls_client(tcp);
    let r = exchange(
        &mut c,
        &format!("GET {PING} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
    .unwrap_or_else(|e| panic!("HTTPS ping from 127.0.0.2 with 512 silent connections: {e}"));
    let took = started.elapsed();
    assert_eq!((r.status, r.json()), (200, json!({})), "{}", r.text());
    assert!(
        took < Duration::from_secs(2),
        "the HTTPS ping from 127.0.0.2 took {took:?}"
    );
    drop(silent);
}

/// Sends a head announcing `length` bytes of body, then one byte a second for `time` (until the
/// server closes); returns what the server sent.
fn drip_a_body(addr: SocketAddr, length: usize, time: Duration) -> Vec<u8> {
    let mut c = connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    c.write_all(head_with_length("POST", REGISTER, &length.to_string(), &[]).as_bytes())
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < time {
        // Waits up to a second for an answer: the pace of the drip.
        match c.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_secs(1)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if c.write_all(b"a").is_err() {
            break;
        }
    }
    got
}

#[test]
fn bodies_dripped_after_a_413_do_not_hold_up_a_ping() {
    let s = TestServer::start_with(json!({"server": {"workers": 0, "maxBodySize": 65536}}));
    let drippers: Vec<_> = (0..12)
        .map(|_| {
            let addr = s.addr;
            std::thread::spawn(move || drip_a_body(addr, 65537, Duration::from_secs(5)))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert_pings_within(
        s.addr,
        QUICK,
        "12 connections dripping a body over maxBodySize",
    );
    for d in drippers {
        let got = d.join().unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.split_whitespace().nth(1) == Some("413"),
            "the dripping client got: {}",
            &text[..text.len().min(200)]
        );
    }
    assert_serving(&s, Duration::from_secs(3), "the dripped bodies");
}
