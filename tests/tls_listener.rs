//! oxisd's own HTTPS listener (`server.tls`): requests over TLS next to the plain listener,
//! certificate reload on SIGHUP, and slow clients that cannot hold the listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::support::{Resp, TempDir, TestServer, parse_response, run_cli, tls};

/// A second self-signed certificate (CN second.test, SAN localhost and 127.0.0.1), to reload.
const SECOND_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUKgAwIBAgIUVJeH1uApcs8cAjnLB4GNrATSQbQwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLc2Vjb25kLnRlc3QwIBcNMjYxMTI3MTIxOTAwWhgPMjEyNjEx
MDMxMjE5MDBaMBYxFDASBgNVBAMMC3NlY29uZC50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEZfzGSKRvERi2ysFWUtegypVO2/DkLLg+uxCyDhQyC+G4KrOy
RTANB9oxZ39ORb+l/avga6OiB3q+xXR/Jsydm6NsMGowHQYDVR0OBBYEFOPHFEsU
A7m2uN+N68cMcyAB0RUhMB8GA1UdIwQYMBaAFOPHFEsUA7m2uN+N68cMcyAB0RUh
MBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAMBgNVHRMBAf8EAjAAMAoGCCqG
SM49BAMCA0cAMEQCIEG4YHRkCReLoJEA/FB7bKbKHndsHYp7wtpN26HQ5HDmAiA4
rJeGy1js8T+v0xrNujNFhrQ/WrkX1EUhV/++cQwMTg==
-----END CERTIFICATE-----
";
const SECOND_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/cYZvIZNNi/UnVXl
FylyPmBNb6s1nGljjwkReVUMV2qhRANCAARl/MZIpG8RGLbKwVZS16DKlU7b8OQs
uD67ELIOFDIL4bgqs7JFMA0H2jFnf05Fv6X9q+Bro6IHer7FdH8mzJ2b
-----END PRIVATE KEY-----
";

/// Starts oxisd with the test certificate on an HTTPS listener; returns it and the HTTPS address.
fn start_tls() -> (TestServer, SocketAddr) {
    let dir = Arc::new(TempDir::new("tls"));
    std::fs::write(dir.path().join("cert.pem"), tls::CERT_PEM).unwrap();
    std::fs::write(dir.path().join("key.pem"), tls::KEY_PEM).unwrap();
    let server = TestServer::start_in(
        dir.clone(),
        json!({"server": {"tls": {
            "enabled": true,
            "port": 0,
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
        }}}),
    );
    let line = server
        .wait_for_log("TLS listening on https://", Duration::from_secs(5))
        .expect("no HTTPS listener in the log");
    let addr = line
        .split("https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("HTTPS address");
    (server, addr)
}

/// A client trusting only `cert_pem`.
fn client_trusting(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One request over TLS with `config`; `Err` when the handshake fails.
fn https(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Resp, std::io::Error> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server may close without close_notify after the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(parse_response(&raw))
}

#[test]
fn https_and_plain_listeners_serve_the_same_api() {
    let (server, addr) = start_tls();
    let r = https(
        addr,
        tls::client_config(),
        "GET",
        "/_matrix/identity/versions",
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.json()["versions"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    // A POST with a body, and an error answer, both through the relay.
    let body = br#"{"threepids": [["email", "nobody@example.org"]]}"#;
    let r = https(
        addr,
        tls::client_config(),
        "POST",
        "/_matrix/identity/api/v1/bulk_lookup",
        body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"threepids": []}));
    let r = https(
        addr,
        tls::client_config(),
        "POST",
        "/_matrix/identity/api/v1/bulk_lookup",
        b"{",
    )
    .unwrap();
    r.assert_error(400, "M_NOT_JSON");
    // The plain listener still answers.
    assert_eq!(server.get("/_matrix/identity/versions").status, 200);
}

#[test]
// unsafe: kill(2) through libc, to send SIGHUP.
#[allow(unsafe_code)]
fn sighup_loads_a_new_certificate_and_keeps_the_old_one_on_errors() {
    let (server, addr) = start_tls();
    let dir = server.dir.path().to_path_buf();
    let pid = server.pid();
    assert!(https(addr, client_trusting(SECOND_CERT), "GET", "/health", b"").is_err());

    std::fs::write(dir.join("cert.pem"), SECOND_CERT).unwrap();
    std::fs::write(dir.join("key.pem"), SECOND_KEY).unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    server
        .wait_for_log(
            "TLS certificate and key loaded again",
            Duration::from_secs(5),
        )
        .expect("no reload");
    let r = https(addr, client_trusting(SECOND_CERT), "GET", "/health", b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(https(addr, tls::client_config(), "GET", "/health", b"").is_err());

    // A broken file: the certificate in use stays, and the server keeps running.
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    server
        .wait_for_log("keeping the old TLS certificate", Duration::from_secs(5))
        .expect("no error logged");
    let r = https(addr, client_trusting(SECOND_CERT), "GET", "/health", b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(server.get("/health").status, 200);
}

#[test]
// unsafe: kill(2) through libc, to send SIGHUP.
#[allow(unsafe_code)]
fn sighup_without_tls_does_not_stop_the_server() {
    // `systemctl reload oxisd` (a certbot deploy hook) on a server behind a proxy.
    let server = TestServer::start();
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    server
        .wait_for_log("SIGHUP: nothing to reload", Duration::from_secs(5))
        .expect("SIGHUP not handled");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn silent_tls_clients_do_not_hold_up_others() {
    let (_server, addr) = start_tls();
    // Connections that never start a handshake.
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let started = Instant::now();
    for _ in 0..3 {
        let r = https(addr, tls::client_config(), "GET", "/health", b"").unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answers took {:?} with silent clients connected",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn a_tls_listener_without_its_files_is_a_config_error() {
    let dir = TempDir::new("tls-config");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "server:\n  tls:\n    enabled: true\n").unwrap();
    let (code, _out, err) = run_cli(&["check-config", "-c", path.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("server.tls"), "{err}");

    std::fs::write(
        &path,
        "server:\n  tls:\n    enabled: true\n    certificate: missing.pem\n    privateKey: missing.pem\n",
    )
    .unwrap();
    let (code, _out, err) = run_cli(&["serve", "-c", path.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(
        err.contains("server.tls.certificate") && err.contains("missing.pem"),
        "{err}"
    );
}

#[test]
fn an_endless_request_head_over_tls_is_cut_off() {
    let (server, addr) = start_tls();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls::client_config(), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // A header line that never ends: 8 MiB, far beyond any request head.
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: ")
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < 8 * 1024 * 1024 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "sent {sent} bytes, got: {}",
        &text[..text.len().min(200)]
    );
    // The server goes on serving.
    let r = https(addr, tls::client_config(), "GET", "/health", b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(server.get("/health").status, 200);
}
