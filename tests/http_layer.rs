use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{TestServer, read_response};
use serde_json::json;

#[test]
fn unknown_path_is_404_unrecognized_json() {
    let s = TestServer::start();
    for path in [
        "/_matrix/identity/v2/nope",
        "/_matrix/identity/v3",
        "/",
        "/_matrix/identity/api/v1/lookup/extra",
    ] {
        let r = s.get(path);
        r.assert_error(404, "M_UNRECOGNIZED");
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{path}");
    }
}

#[test]
fn known_path_with_wrong_method_is_405_unrecognized() {
    let s = TestServer::start();
    s.request("POST", "/_matrix/identity/v2", &[], b"{}")
        .assert_error(405, "M_UNRECOGNIZED");
    s.request("DELETE", "/_matrix/identity/v2/pubkey/ed25519:0", &[], b"")
        .assert_error(405, "M_UNRECOGNIZED");
}

#[test]
fn cors_preflight_is_answered_on_every_route() {
    let s = TestServer::start();
    for path in [
        "/_matrix/identity/v2",
        "/_matrix/identity/v2/account/register",
        "/anything",
    ] {
        let r = s.request(
            "OPTIONS",
            path,
            &[
                ("Origin", "https://app.example"),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        );
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert!(
            r.header("Access-Control-Allow-Methods")
                .unwrap()
                .contains("POST")
        );
        assert!(
            r.header("Access-Control-Allow-Headers")
                .unwrap()
                .contains("Authorization")
        );
    }
}

#[test]
fn cors_headers_are_on_errors_too() {
    let s = TestServer::start();
    let r = s.get("/_matrix/identity/v2/nope");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
}

#[test]
fn oversized_body_is_413_too_large() {
    let s = TestServer::start_with(json!({"server": {"maxBodySize": 2048}}));
    let body = vec![b'a'; 4096];
    s.request(
        "POST",
        "/_matrix/identity/v2/validate/email/requestToken",
        &[],
        &body,
    )
    .assert_error(413, "M_TOO_LARGE");
    // A chunked body has no Content-Length; it is cut while reading.
    let r = chunked_post(&s, "/_matrix/identity/v2", &body);
    assert!(r.status == 413 || r.status == 405, "got {}", r.status);
}

fn chunked_post(s: &TestServer, path: &str, body: &[u8]) -> crate::support::Resp {
    let mut stream = TcpStream::connect(s.addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(1000) {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        stream.write_all(chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    read_response(&mut stream)
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let s = TestServer::start();
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let r = crate::support::parse_response(&raw);
    assert_eq!((r.status, &r.json()["status"]), (200, &json!("ok")));
}

#[test]
fn oversized_headers_are_431() {
    let s = TestServer::start();
    let big = "x".repeat(20 * 1024);
    // The transport refuses the head while reading it, before there is a request to answer
    // with a Matrix error: the status alone says it.
    let r = s.request("GET", "/_matrix/identity/v2", &[("X-Big", &big)], b"");
    assert_eq!(r.status, 431);
    // A head just under the limit is served.
    let fits = "x".repeat(15 * 1024);
    let r = s.request("GET", "/_matrix/identity/v2", &[("X-Big", &fits)], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn a_client_that_stops_sending_its_body_does_not_hold_a_worker() {
    let s = TestServer::start_with(json!({"server": {"workers": 1, "readTimeout": 1}}));
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.write_all(
        b"GET /_matrix/identity/v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{\"client",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The only worker is stuck on the slow body; it must be freed by the read timeout.
    let started = Instant::now();
    let r = s.get("/_matrix/identity/v2");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let s = TestServer::start_with(json!({"server": {"idleTimeout": 1}}));
    let mut idle = TcpStream::connect(s.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // A client dripping nothing at all: the server hangs up.
    let n = idle.read_to_end(&mut buf);
    assert!(
        n.is_ok(),
        "expected the server to close the connection, got {n:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn forwarded_for_is_used_only_from_a_trusted_proxy() {
    let trusted = TestServer::start_with(json!({"server": {"trustedProxies": ["127.0.0.1/32"]}}));
    trusted.request(
        "GET",
        "/_matrix/identity/v2?trusted=1",
        &[("X-Forwarded-For", "203.0.113.7")],
        b"",
    );
    let line = trusted
        .wait_for_log("path=/_matrix/identity/v2 ", Duration::from_secs(5))
        .unwrap();
    assert!(line.contains("ip=203.0.113.7"), "{line}");

    let untrusted = TestServer::start();
    untrusted.request(
        "GET",
        "/_matrix/identity/v2",
        &[("X-Forwarded-For", "203.0.113.7")],
        b"",
    );
    let line = untrusted
        .wait_for_log("path=/_matrix/identity/v2 ", Duration::from_secs(5))
        .unwrap();
    assert!(line.contains("ip=127.0.0.1"), "{line}");
}

#[test]
fn request_log_has_no_query_string() {
    let s = TestServer::start();
    s.get("/_matrix/identity/v2/pubkey/isvalid?public_key=SECRETVALUE");
    let line = s
        .wait_for_log(
            "path=/_matrix/identity/v2/pubkey/isvalid",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(
        line.contains("method=GET") && line.contains("status=200") && line.contains("ms="),
        "{line}"
    );
    assert!(s.logs().iter().all(|l| !l.contains("SECRETVALUE")));
}

#[test]
fn request_log_names_the_errcode_and_at_debug_the_error() {
    // The test servers log at debug: the errcode and the error text.
    let s = TestServer::start();
    s.get("/_matrix/identity/v2/nope")
        .assert_error(404, "M_UNRECOGNIZED");
    let line = s
        .wait_for_log("path=/_matrix/identity/v2/nope", Duration::from_secs(5))
        .unwrap();
    assert!(
        line.contains(" status=404 ") && line.contains(" errcode=M_UNRECOGNIZED"),
        "{line}"
    );
    assert!(line.contains(" error=\""), "{line}");
    // At info: the errcode, not the error text.
    let s = TestServer::start_with(json!({"logging": {"level": "info"}}));
    s.request(
        "POST",
        "/_matrix/identity/api/v1/3pid/bind",
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .assert_error(400, "M_NOT_JSON");
    let line = s
        .wait_for_log(
            "path=/_matrix/identity/api/v1/3pid/bind",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(
        line.contains(" status=400 ") && line.contains(" errcode=M_NOT_JSON"),
        "{line}"
    );
    assert!(!line.contains("error="), "{line}");
    // A success has no errcode.
    s.get("/_matrix/identity/v2");
    let line = s
        .wait_for_log("path=/_matrix/identity/v2 ", Duration::from_secs(5))
        .unwrap();
    assert!(!line.contains("errcode="), "{line}");
}

#[test]
fn under_journald_lines_carry_the_syslog_priority_and_no_timestamp() {
    let s = TestServer::start_under_journald(json!({}));
    s.get("/_matrix/identity/v2/nope")
        .assert_error(404, "M_UNRECOGNIZED");
    s.wait_for_log("errcode=M_UNRECOGNIZED", Duration::from_secs(5))
        .unwrap();
    let logs = s.logs();
    let listening = logs
        .iter()
        .find(|l| l.contains("listening on http://"))
        .unwrap();
    assert!(listening.starts_with("<6>INFO "), "{listening}");
    let request = logs
        .iter()
        .find(|l| l.contains("path=/_matrix/identity/v2/nope"))
        .unwrap();
    assert!(request.starts_with("<6>INFO "), "{request}");
    for line in &logs {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "a line without a priority: {line}"
        );
        // No timestamp of ours: journald adds its own.
        assert!(!line[3..].starts_with("20"), "{line}");
    }
    assert!(
        logs.iter().any(|l| l.starts_with("<7>DEBUG ")),
        "debug lines are <7>"
    );
}

#[test]
fn journal_stream_of_another_stream_keeps_the_timestamps() {
    // JOURNAL_STREAM inherited from a service by a process whose stderr goes elsewhere.
    let s = TestServer::start_in_with(
        std::sync::Arc::new(crate::support::TempDir::new("srv")),
        json!({}),
        |c| {
            c.env("JOURNAL_STREAM", "1:2");
        },
    );
    let line = s
        .wait_for_log("listening on http://", Duration::from_secs(5))
        .unwrap();
    assert!(line.starts_with("20") && line.contains(" INFO "), "{line}");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let s = TestServer::start_with(json!({"logging": {"format": "json"}}));
    s.get("/_matrix/identity/v2/nope")
        .assert_error(404, "M_UNRECOGNIZED");
    s.wait_for_log("\"errcode\":\"M_UNRECOGNIZED\"", Duration::from_secs(5))
        .unwrap();
    let objects: Vec<serde_json::Value> = s
        .logs()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for o in &objects {
        for key in ["ts", "level", "target", "message"] {
            assert!(o[key].is_string(), "{key} missing: {o}");
        }
    }
    let request = objects
        .iter()
        .find(|o| o["path"] == "/_matrix/identity/v2/nope")
        .unwrap();
    assert_eq!(request["message"], "request");
    assert_eq!(request["level"], "info");
    assert_eq!(request["method"], "GET");
    assert_eq!(request["status"], 404);
    assert_eq!(request["errcode"], "M_UNRECOGNIZED");
    assert_eq!(request["ip"], "127.0.0.1");
    assert!(
        request["ms"].is_number() && request["id"].is_u64(),
        "{request}"
    );
    assert!(request["error"].is_string(), "{request}");
}

#[test]
fn an_unknown_log_format_is_refused() {
    let dir = crate::support::TempDir::new("fmt");
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "logging:\n  format: xml\n").unwrap();
    let (code, _, err) = crate::support::run_cli(
        &["check-config", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("logging.format") && err.contains("text, json"),
        "{err}"
    );
}

#[test]
fn keep_alive_connections_serve_several_requests() {
    let s = TestServer::start();
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /_matrix/identity/v2 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("{}"),
            "{text}"
        );
    }
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let s = TestServer::start();
    // A request whose body is still arriving when the signal comes in.
    // (Bodies above 1 KiB are read by the worker, so the request is in a worker's hands.)
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream.write_all(b"GET /_matrix/identity/v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n").unwrap();
    stream.write_all(&[b' '; 1000]).unwrap();
    assert!(
        s.wait_for_log("request id=", Duration::from_millis(300))
            .is_none()
    );
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        stream.write_all(&[b' '; 1000]).unwrap();
        read_response(&mut stream)
    });
    std::thread::sleep(Duration::from_millis(100));
    let status = s.stop();
    assert!(status.success(), "exit status {status:?}");
    let r = reader.join().unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn stop_flushes_the_store_and_logs_it() {
    let s = TestServer::start();
    let logs = s.logs.clone();
    assert!(s.stop().success());
    let logs = logs.lock().unwrap();
    assert!(
        logs.iter().any(|l| l.contains("store flushed and closed")),
        "{logs:?}"
    );
}
