//! End-to-end suite: oxisd next to a real Synapse (1.163), on loopback only.
//!
//! Not part of `cargo test`: run it with `tests/e2e/run.sh` (installs Synapse, then runs
//! `cargo test --test e2e`). It starts the SMTP sink and the Twilio stand-in from
//! `tests/support`, oxisd with SMTP, Twilio, terms and its TLS listener (Synapse always calls an
//! identity server as `https://<id_server>`), then Synapse through `tests/e2e/synapse.sh`, and
//! plays what users do in their clients. One line per scenario (`PASS n name` or
//! `FAIL n name: reason`), then a summary; the exit status is non-zero on any failure. Synapse
//! and oxisd are stopped whatever happens (drop guards; each scenario runs under
//! `catch_unwind`, so one failure does not stop the others).

#![allow(dead_code)]
// Test code: a failed unwrap or expect is a failed check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use support::smtp::{ReceivedMail, SmtpSink};
use support::twilio::TwilioStandIn;
use support::{Resp, TempDir, TestServer};

const V1: &str = "/_matrix/identity/api/v1";
const V2: &str = "/_matrix/identity/v2";
const CLIENT: &str = "/_matrix/client/v3";
const TWILIO_SID: &str = "ACe2e0123";
const TWILIO_TOKEN: &str = "e2e-twilio-token";
const TERMS_URL: &str = "https://oxisd.test/terms-1.0-en.html";
/// How long a mail, an SMS or a lookup change may take to show.
const WAIT: Duration = Duration::from_secs(15);
/// How long the invitee may wait for the room invite after the bind.
const INVITE_WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Harness: processes and their guards
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("tests/e2e/synapse.sh")
}

/// The Synapse started by `synapse.sh start`; stopped (`synapse.sh stop`) when dropped. Created
/// before `start` runs, so a start that fails halfway is cleaned up too.
struct Synapse {
    client: Option<SocketAddr>,
    fed_port: u16,
    server_name: String,
}

impl Synapse {
    /// `synapse.sh start` with `env` (OXISD_URL, OXISD_AUTH_URL, SYNAPSE_FED_PORT, ...).
    fn start(env: &[(&str, &str)]) -> Synapse {
        let mut s = Synapse {
            client: None,
            fed_port: 0,
            server_name: String::new(),
        };
        let out = Command::new(script())
            .arg("start")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/e2e/synapse.sh start");
        assert!(
            out.status.success(),
            "synapse.sh start failed ({}); run `tests/e2e/synapse.sh install` first if Synapse is not installed",
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("synapse.sh start printed no {name}: {stdout}"))
                .trim()
                .to_string()
        };
        let url = var("SYNAPSE_CLIENT_URL");
        s.client = Some(
            url.strip_prefix("http://")
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("SYNAPSE_CLIENT_URL: {url}")),
        );
        s.fed_port = var("SYNAPSE_FED_PORT").parse().expect("SYNAPSE_FED_PORT");
        s.server_name = var("SYNAPSE_SERVER_NAME");
        s
    }

    fn client(&self) -> SocketAddr {
        self.client.expect("Synapse is running")
    }

    /// `synapse.sh register USER PASS`.
    fn register(&self, user: &str, password: &str) {
        let out = Command::new(script())
            .args(["register", user, password])
            .stdin(Stdio::null())
            .output()
            .expect("run synapse.sh register");
        assert!(
            out.status.success(),
            "synapse.sh register {user}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let status = Command::new(script())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("e2e: synapse.sh stop failed: {status:?}");
        }
    }
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// oxisd: SMTP through the sink, SMS through the Twilio stand-in, one policy to accept, loopback
/// homeservers with self-signed certificates allowed (test only), and TLS on `tls_port` with
/// `server.name` = `127.0.0.1:<tls_port>`, the `id_server` clients give Synapse; `extra` is
/// merged into that config.
fn start_oxisd(
    sink: &SmtpSink,
    twilio: &TwilioStandIn,
    tls_port: u16,
    extra: &Value,
) -> TestServer {
    let dir = Arc::new(TempDir::new("e2e"));
    // The fixed test certificate of tests/support/tls.rs: SAN IP:127.0.0.1, so the suite's
    // own HTTPS client verifies it (Synapse accepts any certificate in this setup).
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, support::tls::CERT_PEM).unwrap();
    std::fs::write(&key, support::tls::KEY_PEM).unwrap();
    let mut config = json!({
        "server": {
            "name": format!("127.0.0.1:{tls_port}"),
            "tls": {"enabled": true, "hostname": "127.0.0.1", "port": tls_port,
                    "certificate": cert, "privateKey": key},
        },
        "threepid": {"medium": {
            "email": {
                "identity": {"from": "id@oxisd.test", "name": "oxisd e2e"},
                "connector": "smtp",
                "connectors": {"smtp": {"host": "127.0.0.1", "port": sink.port(), "tls": 0, "timeout": 5}},
            },
            "msisdn": {
                "connector": "twilio",
                "connectors": {"twilio": {"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN,
                    "number": "+15005550006", "base_url": twilio.base_url(), "timeout": 5}},
            },
        }},
        "policy": {"policies": {"terms_of_service": {"version": "1.0",
            "terms": {"en": {"name": "Terms of Service", "url": TERMS_URL}}}}},
        "outbound": {"allowedRanges": ["127.0.0.1/32"], "insecureSkipTlsVerify": true, "timeout": 10},
        "invite": {"delivery": {"initialBackoff": 1, "maxBackoff": 2}},
    });
    support::merge(&mut config, extra);
    let s = TestServer::start_in(dir, config);
    let line = format!("TLS listening on https://127.0.0.1:{tls_port}");
    if s.wait_for_log(&line, Duration::from_secs(20)).is_none() {
        panic!("oxisd never logged `{line}`; log:\n{}", s.logs().join("\n"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); over TLS when `tls`,
/// verifying the server's certificate against the fixed test certificate. Panics name the
/// request.
fn request(
    tls: bool,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let scheme = if tls { "https" } else { "http" };
    let what = format!("{method} {scheme}://{addr}{path}");
    let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let raw = if tls {
        let name = rustls::pki_types::ServerName::from(addr.ip());
        let conn = rustls::ClientConnection::new(support::tls::client_config(), name).unwrap();
        exchange(rustls::StreamOwned::new(conn, tcp), &head, body, &what)
    } else {
        exchange(tcp, &head, body, &what)
    };
    if raw.is_empty() {
        panic!("{what}: the server closed the connection without an answer");
    }
    support::parse_response(&raw)
}

fn exchange(mut stream: impl Read + Write, head: &str, body: &[u8], what: &str) -> Vec<u8> {
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .and_then(|_| stream.flush())
        .unwrap_or_else(|e| panic!("{what}: sending: {e}"));
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify: the answer is complete anyway.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("{what}: no answer within 30 s")
        }
        Err(e) => panic!("{what}: reading the answer: {e}"),
    }
    raw
}

fn https(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    request(true, addr, method, path, headers, body)
}

fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    request(false, addr, method, path, headers, body)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn show(r: &Resp) -> String {
    format!("HTTP {} {}", r.status, r.text())
}

/// Asserts 200 and returns the JSON body.
fn ok(r: Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", show(&r));
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", show(&r)))
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The world the scenarios share
// ---------------------------------------------------------------------------------------------

struct User {
    localpart: &'static str,
    password: String,
    mxid: String,
    /// Synapse access token.
    hs_token: String,
    /// oxisd access token, once registered there.
    is_token: RefCell<Option<String>>,
}

struct World {
    oxisd: TestServer,
    /// oxisd's TLS listener, where clients and Synapse reach it.
    tls: SocketAddr,
    /// `127.0.0.1:<tls port>`: oxisd's server.name and the id_server clients pass to Synapse.
    id_server: String,
    synapse: Synapse,
    sink: SmtpSink,
    twilio: TwilioStandIn,
    users: Vec<User>,
}

impl World {
    fn user(&self, localpart: &str) -> &User {
        self.users
            .iter()
            .find(|u| u.localpart == localpart)
            .unwrap_or_else(|| panic!("no user {localpart}"))
    }

    // ---- oxisd over TLS ----

    fn is_get(&self, path: &str, token: Option<&str>) -> Resp {
        let auth = token.map(bearer);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        https(self.tls, "GET", path, &headers, b"")
    }

    fn is_post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let auth = token.map(bearer);
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        https(
            self.tls,
            "POST",
            path,
            &headers,
            body.to_string().as_bytes(),
        )
    }

    // ---- Synapse's client API (plain http) ----

    fn hs_get(&self, user: &User, path: &str) -> Resp {
        let auth = bearer(&user.hs_token);
        http(
            self.synapse.client(),
            "GET",
            path,
            &[("Authorization", &auth)],
            b"",
        )
    }

    fn hs_put(&self, user: &User, path: &str, body: &Value) -> Resp {
        let auth = bearer(&user.hs_token);
        http(
            self.synapse.client(),
            "PUT",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// A private room of `owner`'s; its id.
    fn create_room(&self, owner: &User, name: &str) -> String {
        let room = ok(
            self.hs_post(
                Some(owner),
                &format!("{CLIENT}/createRoom"),
                &json!({"name": name, "preset": "private_chat"}),
            ),
            "createRoom",
        );
        room["room_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no room_id: {room}"))
            .to_string()
    }

    /// `inviter` invites `address` to `room_id` through Synapse (a 3PID invite at oxisd);
    /// returns the invite mail.
    fn invite_by_email(&self, inviter: &User, room_id: &str, address: &str) -> ReceivedMail {
        let token = self.is_token(inviter);
        let before = self.sink.mails().len();
        ok(
            self.hs_post(
                Some(inviter),
                &format!("{CLIENT}/rooms/{}/invite", enc(room_id)),
                &json!({"id_server": self.id_server, "id_access_token": token, "medium": "email", "address": address}),
            ),
            "3PID invite on Synapse",
        );
        self.wait_mail(before, &format!("invite mail to {address}"), |m| {
            m.to.iter().any(|t| t == address) && subject(&m.data).contains("invited you")
        })
    }

    /// `user`'s membership in `room_id`, as `asker` sees it (`None`: no member event).
    fn membership(&self, asker: &User, room_id: &str, user: &User) -> Option<String> {
        let r = self.hs_get(
            asker,
            &format!(
                "{CLIENT}/rooms/{}/state/m.room.member/{}",
                enc(room_id),
                enc(&user.mxid)
            ),
        );
        (r.status == 200).then(|| r.json()["membership"].as_str().unwrap_or("").to_string())
    }

    /// Waits until `user`'s /sync shows an invite to `room_id`.
    fn wait_invite(&self, user: &User, room_id: &str) {
        // As a client does: an initial sync, then incremental ones (Synapse answers a repeated
        // initial sync from its cache for a while).
        let deadline = Instant::now() + INVITE_WAIT;
        let mut since: Option<String> = None;
        loop {
            let path = match &since {
                None => format!("{CLIENT}/sync?timeout=0"),
                Some(s) => format!("{CLIENT}/sync?timeout=1000&since={}", enc(s)),
            };
            let sync = ok(self.hs_get(user, &path), "sync");
            if sync["rooms"]["invite"].get(room_id).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} sees no invite to {room_id} after {INVITE_WAIT:?}; oxisd log lines about the invite: {:#?}",
                user.mxid,
                self.oxisd
                    .logs()
                    .into_iter()
                    .filter(|l| l.contains("invite") || l.contains("onbind"))
                    .collect::<Vec<_>>()
            );
            since = sync["next_batch"].as_str().map(str::to_string);
            if since.is_none() {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// Waits until `user` is invited to `room_id` (through an onbind).
    fn wait_membership(&self, asker: &User, room_id: &str, user: &User, want: &str) {
        let deadline = Instant::now() + INVITE_WAIT;
        loop {
            if self.membership(asker, room_id, user).as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} is not '{want}' in {room_id} after {INVITE_WAIT:?} (is {:?}); oxisd log lines: {:#?}",
                user.mxid,
                self.membership(asker, room_id, user),
                self.oxisd
                    .logs()
                    .into_iter()
                    .filter(|l| l.contains("invite") || l.contains("onbind"))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn hs_post(&self, user: Option<&User>, path: &str, body: &Value) -> Resp {
        let auth = user.map(|u| bearer(&u.hs_token));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        http(
            self.synapse.client(),
            "POST",
            path,
            &headers,
            body.to_string().as_bytes(),
        )
    }

    /// A user-interactive-auth request: the first call must answer 401 with a session, the
    /// second carries the password.
    fn hs_post_uia(&self, user: &User, path: &str, body: &Value) -> Resp {
        let first = self.hs_post(Some(user), path, body);
        assert_eq!(first.status, 401, "{path} without auth: {}", show(&first));
        let session = first.json()["session"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no UIA session in {}", show(&first)))
            .to_string();
        let mut body = body.clone();
        body["auth"] = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.localpart},
            "password": user.password,
            "session": session,
        });
        self.hs_post(Some(user), path, &body)
    }

    // ---- steps users take ----

    /// An OpenID token from Synapse, exchanged at oxisd's /account/register for an access token.
    fn register_at_oxisd(&self, user: &User) -> String {
        let openid = ok(
            self.hs_post(
                Some(user),
                &format!("{CLIENT}/user/{}/openid/request_token", enc(&user.mxid)),
                &json!({}),
            ),
            "OpenID token from Synapse",
        );
        assert_eq!(
            openid["matrix_server_name"],
            self.synapse.server_name.as_str(),
            "{openid}"
        );
        let reg = ok(
            self.is_post(&format!("{V2}/account/register"), None, &openid),
            "oxisd /v2/account/register",
        );
        reg["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {reg}"))
            .to_string()
    }

    /// The user's oxisd token: OpenID token from Synapse, /account/register, terms accepted.
    fn is_token(&self, user: &User) -> String {
        if let Some(t) = user.is_token.borrow().as_ref() {
            return t.clone();
        }
        let token = self.register_at_oxisd(user);
        self.accept_terms(&token);
        *user.is_token.borrow_mut() = Some(token.clone());
        token
    }

    fn accept_terms(&self, token: &str) {
        let terms = ok(self.is_get(&format!("{V2}/terms"), None), "GET /v2/terms");
        let urls: Vec<String> = terms["policies"]
            .as_object()
            .unwrap_or_else(|| panic!("no policies in {terms}"))
            .values()
            .filter_map(|p| p["en"]["url"].as_str().map(str::to_string))
            .collect();
        if urls.is_empty() {
            return;
        }
        ok(
            self.is_post(
                &format!("{V2}/terms"),
                Some(token),
                &json!({"user_accepts": urls}),
            ),
            "POST /v2/terms",
        );
    }

    /// Validates `address` at oxisd (v2, the user's token), following the link in the mail.
    /// Returns (sid, client_secret).
    fn validate_email(&self, user: &User, address: &str) -> (String, String) {
        let token = self.is_token(user);
        let secret = format!("secret{}", random_suffix());
        let before = self.sink.mails().len();
        let r = ok(
            self.is_post(
                &format!("{V2}/validate/email/requestToken"),
                Some(&token),
                &json!({"client_secret": secret, "email": address, "send_attempt": 1}),
            ),
            &format!("requestToken for {address}"),
        );
        let sid = r["sid"]
            .as_str()
            .unwrap_or_else(|| panic!("no sid: {r}"))
            .to_string();
        let mail = self.wait_mail(before, &format!("validation mail to {address}"), |m| {
            m.to.iter().any(|t| t == address) && m.data.contains(&format!("sid={sid}"))
        });
        let link = support::sessions::link_in(&mail);
        let page = self.open_link(&link);
        assert_eq!(page.status, 200, "validation link {link}: {}", show(&page));
        (sid, secret)
    }

    /// GET a link from a mail: over TLS when it is oxisd's https URL, else plain.
    fn open_link(&self, link: &str) -> Resp {
        let (scheme, rest) = link
            .split_once("://")
            .unwrap_or_else(|| panic!("not a URL: {link}"));
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = host
            .parse()
            .unwrap_or_else(|_| panic!("link host {host} is not ip:port: {link}"));
        match scheme {
            "https" => https(addr, "GET", path, &[], b""),
            _ => http(addr, "GET", path, &[], b""),
        }
    }

    /// `POST /account/3pid/bind` on Synapse, which binds at oxisd over TLS.
    fn bind_via_synapse(&self, user: &User, sid: &str, secret: &str) {
        let token = self.is_token(user);
        let r = self.hs_post(
            Some(user),
            &format!("{CLIENT}/account/3pid/bind"),
            &json!({"sid": sid, "client_secret": secret, "id_server": self.id_server, "id_access_token": token}),
        );
        ok(r, "Synapse /account/3pid/bind");
    }

    fn validate_and_bind(&self, user: &User, address: &str) {
        let (sid, secret) = self.validate_email(user, address);
        self.bind_via_synapse(user, &sid, &secret);
    }

    /// What `asker` finds for `address` by hashed lookup (hash_details, then sha256 lookup).
    fn lookup(&self, asker: &User, medium: &str, address: &str) -> Option<String> {
        let token = self.is_token(asker);
        let details = ok(
            self.is_get(&format!("{V2}/hash_details"), Some(&token)),
            "hash_details",
        );
        let algorithms = details["algorithms"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            algorithms.contains(&json!("sha256")),
            "sha256 not offered: {details}"
        );
        let pepper = details["lookup_pepper"]
            .as_str()
            .unwrap_or_else(|| panic!("no lookup_pepper: {details}"))
            .to_string();
        let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{address} {medium} {pepper}")));
        let found = ok(
            self.is_post(
                &format!("{V2}/lookup"),
                Some(&token),
                &json!({"algorithm": "sha256", "pepper": pepper, "addresses": [hash]}),
            ),
            "lookup",
        );
        found["mappings"][&hash].as_str().map(str::to_string)
    }

    /// Waits until the lookup of `address` gives `want`.
    fn wait_lookup(&self, asker: &User, address: &str, want: Option<&str>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.lookup(asker, "email", address);
            if got.as_deref() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lookup of {address} by {}: got {got:?}, want {want:?}",
                asker.mxid
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The first mail after the first `skip` ones that `pred` accepts.
    fn wait_mail(
        &self,
        skip: usize,
        what: &str,
        pred: impl Fn(&ReceivedMail) -> bool,
    ) -> ReceivedMail {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(m) = self.sink.mails().into_iter().skip(skip).find(|m| pred(m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}; mails since: {:#?}",
                self.sink
                    .mails()
                    .into_iter()
                    .skip(skip)
                    .map(|m| (m.to, subject(&m.data)))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The Subject header, unfolded (long subjects are folded over several lines).
fn subject(data: &str) -> String {
    let head = data.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .to_string()
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("{:016x}", RandomState::new().hash_one(Instant::now()))
}

/// The 6-digit code in an SMS body.
fn code_in(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .rfind(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {body:?}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

const ALICE_EMAIL: &str = "alice@e2e.test";
const INVITED_EMAIL: &str = "carol.invited@e2e.test";
const PHONE_COUNTRY: &str = "GB";
const PHONE_LOCAL: &str = "07911 123456";
const PHONE_MSISDN: &str = "447911123456";

/// 1. Alice registers at oxisd with an OpenID token from Synapse and accepts the terms.
fn s1_register(w: &World) {
    let alice = w.user("alice");
    let token = w.register_at_oxisd(alice);
    // Terms not yet accepted: the v2 API says so.
    let before = w.is_get(&format!("{V2}/account"), Some(&token));
    assert_eq!(
        before.status,
        403,
        "whoami before accepting the terms: {}",
        show(&before)
    );
    assert_eq!(
        before.json()["errcode"],
        "M_TERMS_NOT_SIGNED",
        "{}",
        show(&before)
    );
    let terms = ok(w.is_get(&format!("{V2}/terms"), None), "GET /v2/terms");
    assert_eq!(
        terms["policies"]["terms_of_service"]["en"]["url"], TERMS_URL,
        "{terms}"
    );
    ok(
        w.is_post(
            &format!("{V2}/terms"),
            Some(&token),
            &json!({"user_accepts": [TERMS_URL]}),
        ),
        "POST /v2/terms",
    );
    let me = ok(w.is_get(&format!("{V2}/account"), Some(&token)), "whoami");
    assert_eq!(me["user_id"], alice.mxid.as_str(), "{me}");
    *alice.is_token.borrow_mut() = Some(token);
}

/// 2. Alice validates her email at oxisd, binds it through Synapse; Bob finds her by hashed
///    lookup.
fn s2_bind_and_lookup(w: &World) {
    let (alice, bob) = (w.user("alice"), w.user("bob"));
    assert_eq!(
        w.lookup(bob, "email", ALICE_EMAIL),
        None,
        "found before the bind"
    );
    w.validate_and_bind(alice, ALICE_EMAIL);
    assert_eq!(
        w.lookup(bob, "email", ALICE_EMAIL).as_deref(),
        Some(alice.mxid.as_str())
    );
}

/// 3. Alice adds a phone number on Synapse, which delegates the validation to oxisd (v1).
fn s3_msisdn_delegation(w: &World) {
    let alice = w.user("alice");
    let secret = format!("phone{}", random_suffix());
    let before = w.twilio.messages().len();
    let r = ok(
        w.hs_post(
            Some(alice),
            &format!("{CLIENT}/account/3pid/msisdn/requestToken"),
            &json!({"client_secret": secret, "country": PHONE_COUNTRY, "phone_number": PHONE_LOCAL, "send_attempt": 1}),
        ),
        "Synapse msisdn requestToken",
    );
    let sid = r["sid"]
        .as_str()
        .unwrap_or_else(|| panic!("no sid: {r}"))
        .to_string();
    assert_eq!(r["msisdn"], PHONE_MSISDN, "{r}");
    let submit_url = r["submit_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no submit_url: {r}"))
        .to_string();
    let messages = w.twilio.wait_for_messages(before + 1, WAIT);
    let sms = messages
        .get(before)
        .unwrap_or_else(|| panic!("no SMS at the Twilio stand-in"));
    assert_eq!(sms.to, format!("+{PHONE_MSISDN}"));
    let code = code_in(&sms.body);
    // The client submits the code where Synapse said (Synapse passes it on to oxisd).
    let path = &submit_url[submit_url
        .find("/_matrix")
        .unwrap_or_else(|| panic!("submit_url {submit_url}"))..];
    let r = ok(
        w.hs_post(
            None,
            path,
            &json!({"sid": sid, "client_secret": secret, "token": code}),
        ),
        "submit the SMS code",
    );
    assert_eq!(r["success"], true, "{r}");
    ok(
        w.hs_post_uia(
            alice,
            &format!("{CLIENT}/account/3pid/add"),
            &json!({"client_secret": secret, "sid": sid}),
        ),
        "Synapse /account/3pid/add",
    );
    let list = ok(
        w.hs_get(alice, &format!("{CLIENT}/account/3pid")),
        "GET /account/3pid",
    );
    let listed = list["threepids"].as_array().is_some_and(|t| {
        t.iter()
            .any(|p| p["medium"] == "msisdn" && p["address"] == PHONE_MSISDN)
    });
    assert!(listed, "the number is not on the account: {list}");
}

/// 4. Alice invites an unbound email to a room; Carol validates and binds that address; oxisd
///    delivers the invite to Synapse (onbind) and Carol sees it.
fn s4_room_invite(w: &World) {
    let (alice, carol) = (w.user("alice"), w.user("carol"));
    let alice_token = w.is_token(alice);
    let room = ok(
        w.hs_post(
            Some(alice),
            &format!("{CLIENT}/createRoom"),
            &json!({"name": "e2e room", "preset": "private_chat"}),
        ),
        "createRoom",
    );
    let room_id = room["room_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no room_id: {room}"))
        .to_string();
    let before = w.sink.mails().len();
    ok(
        w.hs_post(
            Some(alice),
            &format!("{CLIENT}/rooms/{}/invite", enc(&room_id)),
            &json!({"id_server": w.id_server, "id_access_token": alice_token, "medium": "email", "address": INVITED_EMAIL}),
        ),
        "3PID invite on Synapse",
    );
    let invite_mail = w.wait_mail(before, &format!("invite mail to {INVITED_EMAIL}"), |m| {
        m.to.iter().any(|t| t == INVITED_EMAIL) && subject(&m.data).contains("invited you")
    });
    assert!(
        invite_mail.data.contains(&room_id) || invite_mail.data.contains("e2e room"),
        "the invite mail names neither the room id nor its name:\n{}",
        invite_mail.data
    );
    w.validate_and_bind(carol, INVITED_EMAIL);
    w.wait_invite(carol, &room_id);
}

/// 5. Alice unbinds her email through Synapse (a request Synapse signs); the lookup forgets it.
fn s5_unbind(w: &World) {
    let (alice, bob) = (w.user("alice"), w.user("bob"));
    if w.lookup(bob, "email", ALICE_EMAIL).as_deref() != Some(alice.mxid.as_str()) {
        // Scenario 2 failed: bind it here so the unbind has something to do.
        w.validate_and_bind(alice, ALICE_EMAIL);
    }
    let r = ok(
        w.hs_post(
            Some(alice),
            &format!("{CLIENT}/account/3pid/unbind"),
            &json!({"medium": "email", "address": ALICE_EMAIL, "id_server": w.id_server}),
        ),
        "Synapse /account/3pid/unbind",
    );
    assert_eq!(r["id_server_unbind_result"], "success", "{r}");
    assert_eq!(
        w.lookup(bob, "email", ALICE_EMAIL),
        None,
        "still found after the unbind"
    );
}

/// 6. Someone posts an unbind for Alice's (bound) email straight to oxisd, with neither a
///    homeserver signature nor a validation session: refused, and Alice gets a warning mail.
fn s6_forged_unbind(w: &World) {
    let (alice, bob) = (w.user("alice"), w.user("bob"));
    if w.lookup(bob, "email", ALICE_EMAIL).as_deref() != Some(alice.mxid.as_str()) {
        w.validate_and_bind(alice, ALICE_EMAIL);
    }
    let before = w.sink.mails().len();
    let r = w.is_post(
        &format!("{V2}/3pid/unbind"),
        None,
        &json!({"mxid": alice.mxid, "threepid": {"medium": "email", "address": ALICE_EMAIL}}),
    );
    assert_eq!(r.status, 403, "forged unbind: {}", show(&r));
    assert_eq!(
        r.json()["errcode"],
        "M_FORBIDDEN",
        "forged unbind: {}",
        show(&r)
    );
    let warning = w.wait_mail(before, &format!("warning mail to {ALICE_EMAIL}"), |m| {
        m.to.iter().any(|t| t == ALICE_EMAIL) && subject(&m.data).contains("tried to unlink")
    });
    assert!(!warning.data.contains("submitToken"), "{}", warning.data);
    assert_eq!(
        w.lookup(bob, "email", ALICE_EMAIL).as_deref(),
        Some(alice.mxid.as_str()),
        "the forged unbind changed the binding"
    );
}

/// 7. Dave binds two emails, then deactivates his account on Synapse, which unbinds them.
fn s7_deactivate(w: &World) {
    let (dave, bob) = (w.user("dave"), w.user("bob"));
    let addresses = ["dave@e2e.test", "dave.work@e2e.test"];
    for a in addresses {
        w.validate_and_bind(dave, a);
        assert_eq!(
            w.lookup(bob, "email", a).as_deref(),
            Some(dave.mxid.as_str()),
            "{a} after the bind"
        );
    }
    let r = ok(
        w.hs_post_uia(
            dave,
            &format!("{CLIENT}/account/deactivate"),
            &json!({"id_server": w.id_server, "erase": false}),
        ),
        "Synapse /account/deactivate",
    );
    assert_eq!(r["id_server_unbind_result"], "success", "{r}");
    for a in addresses {
        w.wait_lookup(bob, a, None);
    }
}

/// 8. Two invites to henry's address, one revoked; henry binds it: the homeserver takes the
///    other and refuses the revoked one. henry joins; the refusal is final, so no retry of the
///    batch takes him back from "join" to "invite" (Synapse lets a 3PID invite replace a join).
fn s8_revoked_invite_does_not_undo_a_join(w: &World) {
    let (alice, henry) = (w.user("alice"), w.user("henry"));
    let address = format!("henry.{}@e2e.test", random_suffix());
    let kept = w.create_room(alice, "e2e kept");
    let revoked = w.create_room(alice, "e2e revoked");
    w.invite_by_email(alice, &kept, &address);
    w.invite_by_email(alice, &revoked, &address);
    // Revoking a 3PID invite: the inviter empties its m.room.third_party_invite state event.
    let state = ok(
        w.hs_get(alice, &format!("{CLIENT}/rooms/{}/state", enc(&revoked))),
        "room state",
    );
    let invite_token = state
        .as_array()
        .and_then(|events| {
            events
                .iter()
                .find(|e| e["type"] == "m.room.third_party_invite")
        })
        .and_then(|e| e["state_key"].as_str())
        .unwrap_or_else(|| panic!("no third-party invite in {state}"))
        .to_string();
    ok(
        w.hs_put(
            alice,
            &format!(
                "{CLIENT}/rooms/{}/state/m.room.third_party_invite/{}",
                enc(&revoked),
                enc(&invite_token)
            ),
            &json!({}),
        ),
        "revoke the 3PID invite",
    );
    w.validate_and_bind(henry, &address);
    w.wait_membership(alice, &kept, henry, "invite");
    ok(
        w.hs_post(
            Some(henry),
            &format!("{CLIENT}/join/{}", enc(&kept)),
            &json!({}),
        ),
        "henry joins",
    );
    assert_eq!(w.membership(alice, &kept, henry).as_deref(), Some("join"));
    // Past the courier's retry window (initialBackoff 1 s, maxBackoff 2 s).
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        w.membership(alice, &kept, henry).as_deref(),
        Some("join"),
        "henry's join was undone; oxisd log: {:#?}",
        w.oxisd
            .logs()
            .into_iter()
            .filter(|l| l.contains("onbind"))
            .collect::<Vec<_>>()
    );
    assert_ne!(
        w.membership(alice, &revoked, henry).as_deref(),
        Some("join")
    );
}

/// 9. grace opens the room link of her invite mail as Element does: the link is the web
///    client's room link whose `signurl`, POSTed with her user id, signs the invite; she joins with
///    `third_party_signed`. When she binds her address later, the invite is not delivered again,
///    so her join stands.
fn s9_join_through_the_mail_link(w: &World) {
    let (alice, grace) = (w.user("alice"), w.user("grace"));
    let address = format!("grace.{}@e2e.test", random_suffix());
    let room = w.create_room(alice, "e2e link room");
    let mail = w.invite_by_email(alice, &room, &address);
    let link = mail
        .data
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/#/room/"))
        .unwrap_or_else(|| panic!("no room link in the mail:\n{}", mail.data))
        .to_string();
    let (page, query) = link.split_once('?').unwrap();
    assert!(
        page.ends_with(&format!("/#/room/{}", enc(&room))),
        "the link opens another room: {link}"
    );
    let param = |name: &str| {
        oxisd::http::parse_query(query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {link}"))
    };
    assert_eq!(param("email"), address);
    let sign_url = param("signurl");
    let path = sign_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| panic!("not a URL: {sign_url}"));
    let signed = ok(
        w.is_post(&path, None, &json!({"mxid": grace.mxid})),
        "sign-ed25519 through the mail's signurl",
    );
    let third_party_signed = json!({
        "sender": signed["sender"],
        "mxid": signed["mxid"],
        "token": signed["token"],
        "signatures": signed["signatures"],
    });
    ok(
        w.hs_post(
            Some(grace),
            &format!("{CLIENT}/rooms/{}/join", enc(&room)),
            &json!({"third_party_signed": third_party_signed}),
        ),
        "grace joins with third_party_signed",
    );
    assert_eq!(w.membership(alice, &room, grace).as_deref(), Some("join"));
    w.validate_and_bind(grace, &address);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        w.membership(alice, &room, grace).as_deref(),
        Some("join"),
        "grace's join was undone by a later onbind"
    );
}

type Scenario = (&'static str, fn(&World));

const SCENARIOS: [Scenario; 9] = [
    (
        "register with an OpenID token and accept the terms",
        s1_register,
    ),
    (
        "email validated at oxisd, bound through Synapse, found by hashed lookup",
        s2_bind_and_lookup,
    ),
    (
        "phone validated through Synapse's msisdn delegation",
        s3_msisdn_delegation,
    ),
    ("3PID room invite delivered on bind", s4_room_invite),
    ("unbind through Synapse", s5_unbind),
    ("forged unbind refused, the owner warned", s6_forged_unbind),
    (
        "deactivation on Synapse unbinds the account's 3PIDs",
        s7_deactivate,
    ),
    (
        "a revoked 3PID invite does not undo a join",
        s8_revoked_invite_does_not_undo_a_join,
    ),
    (
        "the invite mail's room link signs and joins; a later bind does not undo it",
        s9_join_through_the_mail_link,
    ),
];

// ---------------------------------------------------------------------------------------------
// Phase 2, "directory": Synapse logins checked by oxisd against an LDAP directory (issue 20)
// ---------------------------------------------------------------------------------------------

/// The directory phase's oxisd auth listener secret (oxisd's auth.sharedSecret, the module's
/// shared_secret).
const AUTH_SECRET: &str = "e2e-auth-shared-secret-0123456789";
/// In the directory of tests/support/slapd.rs.
const DIR_ALICE_EMAIL: &str = "alice@example.org";
const DIR_ALICE_MSISDN: &str = "447700900123";

impl World {
    /// `POST /login` on Synapse with a password (the module asks oxisd).
    fn hs_login(&self, user: &str, password: &str) -> Resp {
        self.hs_post(
            None,
            &format!("{CLIENT}/login"),
            &json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}),
        )
    }

    /// A directory user logged in to Synapse; asserts the mxid is `@<localpart>:<server>`.
    fn directory_login(&self, localpart: &'static str, password: &str) -> User {
        let login = ok(
            self.hs_login(localpart, password),
            &format!("login {localpart}"),
        );
        let mxid = format!("@{localpart}:{}", self.synapse.server_name);
        assert_eq!(login["user_id"], mxid.as_str(), "{login}");
        User {
            localpart,
            password: password.to_string(),
            mxid,
            hs_token: login["access_token"].as_str().unwrap().to_string(),
            is_token: RefCell::new(None),
        }
    }
}

/// d1. Alice logs in to Synapse with her directory password: the account is created with the
/// directory's display name, email and phone number.
fn d1_first_login(w: &World) {
    let alice = w.directory_login("alice", "alice-password");
    let name = ok(
        w.hs_get(
            &alice,
            &format!("{CLIENT}/profile/{}/displayname", enc(&alice.mxid)),
        ),
        "GET displayname",
    );
    assert_eq!(name["displayname"], "Alice Liddell", "{name}");
    let list = ok(
        w.hs_get(&alice, &format!("{CLIENT}/account/3pid")),
        "GET /account/3pid",
    );
    let threepids = list["threepids"].as_array().cloned().unwrap_or_default();
    for (medium, address) in [("email", DIR_ALICE_EMAIL), ("msisdn", DIR_ALICE_MSISDN)] {
        let n = threepids
            .iter()
            .filter(|p| p["medium"] == medium && p["address"] == address)
            .count();
        assert_eq!(n, 1, "{medium} {address} on the account: {list}");
    }
    // A second login, with the full user id: nothing is added twice.
    ok(
        w.hs_login(&alice.mxid, "alice-password"),
        "second login with the user id",
    );
    let again = ok(
        w.hs_get(&alice, &format!("{CLIENT}/account/3pid")),
        "GET /account/3pid",
    );
    assert_eq!(
        again["threepids"], list["threepids"],
        "after a second login"
    );
}

/// d2. A wrong password, and a user the directory disables: refused.
fn d2_refused(w: &World) {
    for (user, password) in [("alice", "not-alice-password"), ("dave", "dave-password")] {
        let r = w.hs_login(user, password);
        assert_eq!(r.status, 403, "login {user}: {}", show(&r));
        assert_eq!(
            r.json()["errcode"],
            "M_FORBIDDEN",
            "login {user}: {}",
            show(&r)
        );
    }
}

/// d3. Bob (directory login) registers at oxisd, finds Alice by her directory email with a
/// hashed lookup, and invites that email to a room: Synapse looks it up at oxisd and invites
/// Alice directly, so she sees the invite in /sync.
fn d3_lookup_and_invite(w: &World) {
    let bob = w.directory_login("bob", "bob-password");
    let alice = w.directory_login("alice", "alice-password");
    // The directory is read on oxisd's sync interval (5 s).
    w.wait_lookup(&bob, DIR_ALICE_EMAIL, Some(&alice.mxid));
    let room = w.create_room(&bob, "e2e directory room");
    let token = w.is_token(&bob);
    ok(
        w.hs_post(
            Some(&bob),
            &format!("{CLIENT}/rooms/{}/invite", enc(&room)),
            &json!({"id_server": w.id_server, "id_access_token": token, "medium": "email", "address": DIR_ALICE_EMAIL}),
        ),
        "invite by email on Synapse",
    );
    w.wait_invite(&alice, &room);
}

/// d4. Validation sessions are disabled: requestToken is refused.
fn d4_sessions_disabled(w: &World) {
    let bob = w.directory_login("bob", "bob-password");
    let token = w.is_token(&bob);
    for (path, body) in [
        (
            format!("{V2}/validate/email/requestToken"),
            json!({"client_secret": "e2eSecret1", "email": "bob@example.org", "send_attempt": 1}),
        ),
        (
            format!("{V2}/validate/msisdn/requestToken"),
            json!({"client_secret": "e2eSecret2", "country": "GB", "phone_number": "07700 900789", "send_attempt": 1}),
        ),
    ] {
        let r = w.is_post(&path, Some(&token), &body);
        assert_eq!(r.status, 403, "{path}: {}", show(&r));
        assert_eq!(r.json()["errcode"], "M_FORBIDDEN", "{path}: {}", show(&r));
    }
}

const DIRECTORY_SCENARIOS: [Scenario; 4] = [
    (
        "directory login creates the account with name, email and phone",
        d1_first_login,
    ),
    ("wrong password and disabled user refused", d2_refused),
    (
        "directory email found by hashed lookup, invite delivered to its owner",
        d3_lookup_and_invite,
    ),
    (
        "requestToken refused when sessions are disabled",
        d4_sessions_disabled,
    ),
];

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

/// oxisd's process id and data directory once it runs, for the signal handler.
static OXISD: Mutex<Option<(u32, PathBuf)>> = Mutex::new(None);

/// On SIGINT, SIGTERM or SIGHUP: stop Synapse (it runs in its own session, so a Ctrl-C does not
/// reach it) and oxisd, then exit.
// unsafe: kill(2) through libc on the oxisd child from a signal-handling thread.
#[allow(unsafe_code)]
fn stop_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).expect("signal handler");
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("e2e: signal {signal}: stopping Synapse and oxisd");
            let _ = Command::new(script())
                .arg("stop")
                .stdin(Stdio::null())
                .status();
            if let Some((pid, dir)) = OXISD.lock().unwrap().take() {
                // SAFETY: kill(2) on the pid of the oxisd child this process started.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(128 + signal);
        }
    });
}

/// Where the last panic happened and what it said (the hook prints nothing).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn take_panic(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".to_string());
    match LAST_PANIC.lock().unwrap().take() {
        Some(location) => format!("{msg} (at {location})"),
        None => msg,
    }
}

fn setup() -> World {
    let sink = SmtpSink::start();
    let twilio = TwilioStandIn::start(TWILIO_SID, TWILIO_TOKEN);
    let tls_port = free_port();
    let oxisd = start_oxisd(&sink, &twilio, tls_port, &json!({}));
    *OXISD.lock().unwrap() = Some((oxisd.pid(), oxisd.dir.path().to_path_buf()));
    let tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    println!(
        "e2e: oxisd http://{} and https://{tls} (server.name {tls})",
        oxisd.addr
    );
    let synapse = Synapse::start(&[("OXISD_URL", &format!("http://{}", oxisd.addr))]);
    println!(
        "e2e: Synapse client http://{}, federation https://{}",
        synapse.client(),
        synapse.server_name
    );
    let mut users = Vec::new();
    for localpart in ["alice", "bob", "carol", "dave", "henry", "grace"] {
        let password = format!("{localpart}-pass-e2e");
        synapse.register(localpart, &password);
        let login = http(
            synapse.client(),
            "POST",
            &format!("{CLIENT}/login"),
            &[("Content-Type", "application/json")],
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password})
                .to_string()
                .as_bytes(),
        );
        let login = ok(login, &format!("login {localpart}"));
        users.push(User {
            localpart,
            password,
            mxid: login["user_id"].as_str().unwrap().to_string(),
            hs_token: login["access_token"].as_str().unwrap().to_string(),
            is_token: RefCell::new(None),
        });
    }
    World {
        id_server: tls.to_string(),
        oxisd,
        tls,
        synapse,
        sink,
        twilio,
        users,
    }
}

/// Keeps oxisd's log for a look after the run.
fn save_log(oxisd: &TestServer) -> PathBuf {
    save_log_as(oxisd, "oxisd.log")
}

fn save_log_as(oxisd: &TestServer, name: &str) -> PathBuf {
    let dir = std::env::var_os("E2E_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/e2e"))
        .join("run");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let _ = std::fs::write(&path, oxisd.logs().join("\n") + "\n");
    path
}

/// Runs `scenarios` on `world`, one `PASS <prefix>n name` / `FAIL <prefix>n name: reason` line
/// each (with oxisd's warnings and 4xx/5xx of a failed one); (passed, failed).
fn run_scenarios(world: &World, prefix: &str, scenarios: &[Scenario]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for (i, (name, scenario)) in scenarios.iter().enumerate() {
        let t = Instant::now();
        let log_start = world.oxisd.logs().len();
        match panic::catch_unwind(AssertUnwindSafe(|| scenario(world))) {
            Ok(()) => {
                passed += 1;
                println!(
                    "PASS {prefix}{} {name} ({:.1} s)",
                    i + 1,
                    t.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {prefix}{} {name}: {}", i + 1, take_panic(e));
                // What oxisd refused or complained about meanwhile.
                for line in world.oxisd.logs().iter().skip(log_start).filter(|l| {
                    [" WARN ", " ERROR ", "status=4", "status=5"]
                        .iter()
                        .any(|m| l.contains(m))
                }) {
                    println!("    oxisd: {line}");
                }
            }
        }
    }
    (passed, failed)
}

/// Phase 2: a real OpenLDAP, oxisd reading it (stores.ldap) with sessions disabled and its auth
/// listener on, Synapse with contrib/synapse/oxisd_auth_provider.py asking that listener.
fn setup_directory(slapd: &support::slapd::Slapd) -> World {
    let sink = SmtpSink::start();
    let twilio = TwilioStandIn::start(TWILIO_SID, TWILIO_TOKEN);
    let tls_port = free_port();
    // Synapse's federation port is fixed first: oxisd's matrix.domain is its server name.
    let fed_port = free_port();
    let auth_port = free_port();
    let server_name = format!("127.0.0.1:{fed_port}");
    let extra = json!({
        "matrix": {"domain": server_name},
        "session": {"policy": {"validation": {"enabled": false}}},
        "stores": {"ldap": {
            "enabled": true,
            "connection": {
                "urls": [slapd.url],
                "startTls": true,
                "caFile": slapd.ca_file,
                "bindDn": support::slapd::SERVICE_DN,
                "bindPassword": support::slapd::SERVICE_PASSWORD,
                "baseDNs": [support::slapd::PEOPLE, support::slapd::CONTRACTORS],
            },
            "filter": support::slapd::USER_FILTER,
            "attribute": {
                "uid": {"type": "uid", "value": "uid"},
                "name": "displayName",
                "threepid": {"email": ["mail"], "msisdn": ["telephoneNumber", "mobile"]},
            },
            "defaultRegion": "GB",
            "sync": {"interval": 5},
        }},
        "auth": {"enabled": true, "hostname": "127.0.0.1", "port": auth_port, "sharedSecret": AUTH_SECRET},
    });
    let oxisd = start_oxisd(&sink, &twilio, tls_port, &extra);
    *OXISD.lock().unwrap() = Some((oxisd.pid(), oxisd.dir.path().to_path_buf()));
    let auth: SocketAddr = format!("127.0.0.1:{auth_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(auth).is_err() {
        assert!(
            Instant::now() < deadline,
            "oxisd's auth listener {auth} does not answer; log:\n{}",
            oxisd.logs().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    println!(
        "e2e directory: oxisd https://{tls}, auth listener http://{auth}, LDAP {}",
        slapd.url
    );
    let auth_url = format!("http://{auth}");
    let fed_port = fed_port.to_string();
    let synapse = Synapse::start(&[
        ("OXISD_AUTH_URL", &auth_url),
        ("OXISD_AUTH_SECRET", AUTH_SECRET),
        ("SYNAPSE_FED_PORT", &fed_port),
    ]);
    assert_eq!(synapse.server_name, server_name);
    println!(
        "e2e directory: Synapse client http://{}, federation https://{}",
        synapse.client(),
        synapse.server_name
    );
    World {
        id_server: tls.to_string(),
        oxisd,
        tls,
        synapse,
        sink,
        twilio,
        users: Vec::new(),
    }
}

/// The "directory" phase (issue 20); (passed, failed). Run after the first phase's Synapse and
/// oxisd are stopped.
fn run_directory_phase() -> (usize, usize) {
    let Some(slapd) = support::slapd::Slapd::start() else {
        println!("FAIL directory: slapd is not installed");
        return (0, 1);
    };
    let world = match panic::catch_unwind(AssertUnwindSafe(|| setup_directory(&slapd))) {
        Ok(w) => w,
        Err(e) => {
            println!("FAIL directory setup: {}", take_panic(e));
            return (0, 1);
        }
    };
    let result = run_scenarios(&world, "d", &DIRECTORY_SCENARIOS);
    let log = save_log_as(&world.oxisd, "oxisd-directory.log");
    println!("e2e directory: oxisd log {}", log.display());
    let World { oxisd, synapse, .. } = world;
    drop(synapse);
    let _ = panic::catch_unwind(AssertUnwindSafe(|| oxisd.stop()));
    drop(slapd);
    result
}

fn run() -> i32 {
    panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap() = info.location().map(|l| l.to_string());
    }));
    stop_on_signals();
    let started = Instant::now();
    let world = match panic::catch_unwind(setup) {
        Ok(w) => w,
        Err(e) => {
            println!("FAIL setup: {}", take_panic(e));
            return 1;
        }
    };
    let (mut passed, mut failed) = run_scenarios(&world, "", &SCENARIOS);
    let log = save_log(&world.oxisd);
    let World { oxisd, synapse, .. } = world;
    drop(synapse);
    let _ = panic::catch_unwind(AssertUnwindSafe(|| oxisd.stop()));
    let (p, f) = run_directory_phase();
    passed += p;
    failed += f;
    println!(
        "{passed} passed, {failed} failed ({:.0} s; oxisd log: {}, Synapse log: {})",
        started.elapsed().as_secs_f64(),
        log.display(),
        log.with_file_name("synapse/homeserver.log").display()
    );
    i32::from(failed > 0)
}

fn main() {
    std::process::exit(run());
}
