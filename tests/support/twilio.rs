//! A Twilio stand-in for tests: an HTTP server on 127.0.0.1 port 0 that speaks just enough of
//! the Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`) and records every message
//! it accepts.
//!
//! It checks what Twilio checks and answers like Twilio: HTTP Basic authentication with the
//! account SID and auth token (401, code 20003), a form body with `To` as `+` and digits (400,
//! code 21211), `Body` (21602) and one of `From` or `MessagingServiceSid` (21603). Accepted
//! messages get 201 and a JSON message resource with a fresh `SM...` SID. A test can make the
//! next request fail with any status and Twilio error code ([`TwilioStandIn::fail_next_with`]).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::stand_in::StandIn;

/// The most of a request body the stand-in reads.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Sms {
    /// The account SID from the request path.
    pub account: String,
    /// The HTTP Basic credentials (user, password), when given and decodable.
    pub auth: Option<(String, String)>,
    /// `To`, as sent (`+` and digits).
    pub to: String,
    /// `From`, when sent.
    pub from: Option<String>,
    /// `MessagingServiceSid`, when sent.
    pub messaging_service_sid: Option<String>,
    /// `Body`, decoded.
    pub body: String,
}

#[derive(Default)]
struct State {
    messages: Vec<Sms>,
    requests: usize,
    /// Errors to answer the next requests with: (status, code, message).
    fail_next: VecDeque<(u16, u32, String)>,
    /// How long each request takes before it is answered (requests are handled one by one).
    delay: Duration,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    account_sid: String,
    auth_token: String,
}

/// A running stand-in. Stops when dropped.
pub struct TwilioStandIn {
    shared: Arc<Shared>,
    stand_in: StandIn,
}

impl TwilioStandIn {
    /// Starts a stand-in that accepts messages for `account_sid` authenticated with
    /// `auth_token`.
    pub fn start(account_sid: &str, auth_token: &str) -> TwilioStandIn {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
        });
        let stand_in = {
            let shared = shared.clone();
            StandIn::spawn(move |request| handle(&shared, request))
        };
        TwilioStandIn { shared, stand_in }
    }

    /// The base URL to configure (`http://127.0.0.1:PORT`, no trailing slash).
    pub fn base_url(&self) -> String {
        self.stand_in.base_url()
    }

    /// The port the stand-in listens on.
    pub fn port(&self) -> u16 {
        self.stand_in.port()
    }

    /// Every accepted message so far, in order.
    pub fn messages(&self) -> Vec<Sms> {
        self.shared.state.lock().unwrap().messages.clone()
    }

    /// Waits up to `timeout` for at least `n` accepted messages; returns all accepted messages
    /// (fewer than `n` when the time ran out).
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Sms> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().unwrap();
        while state.messages.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
        state.messages.clone()
    }

    /// Makes the next request (whatever it is) get `status` and a Twilio error JSON with `code`
    /// and `message`; that request is not recorded as a message. Calls queue up: each one
    /// applies to one request, in order.
    pub fn fail_next_with(&self, status: u16, code: u32, message: &str) {
        self.shared
            .state
            .lock()
            .unwrap()
            .fail_next
            .push_back((status, code, message.to_string()));
    }

    /// Makes every request from now on take `delay` before it is answered, like a slow
    /// provider; requests are handled one at a time.
    pub fn respond_after(&self, delay: Duration) {
        self.shared.state.lock().unwrap().delay = delay;
    }

    /// How many requests arrived, failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.state.lock().unwrap().requests
    }
}

/// A Twilio error answer.
fn error(status: u16, code: u32, message: &str) -> (u16, Value) {
    (
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

fn handle(shared: &Shared, mut request: tiny_http::Request) {
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_REQUEST_BYTES)
        .read_to_end(&mut body);
    let delay = shared.state.lock().unwrap().delay;
    std::thread::sleep(delay);
    let (status, answer) = {
        let mut state = shared.state.lock().unwrap();
        state.requests += 1;
        if let Some((status, code, message)) = state.fail_next.pop_front() {
            error(status, code, &message)
        } else if read.is_err() {
            error(400, 20001, "The request body could not be read")
        } else {
            match accept(shared, &request, &body) {
                Ok(sms) => {
                    let answer = json!({
                        "sid": message_sid(),
                        "account_sid": sms.account,
                        "status": "queued",
                        "direction": "outbound-api",
                        "to": sms.to,
                        "from": sms.from,
                        "messaging_service_sid": sms.messaging_service_sid,
                        "body": sms.body,
                        "num_segments": "1",
                        "error_code": null,
                        "error_message": null,
                    });
                    state.messages.push(sms);
                    (201, answer)
                }
                Err(e) => e,
            }
        }
    };
    shared.changed.notify_all();
    let mut response = tiny_http::Response::from_string(answer.to_string())
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        );
    if status == 401 {
        response.add_header(
            tiny_http::Header::from_bytes(
                &b"WWW-Authenticate"[..],
                &b"Basic realm=\"Twilio API\""[..],
            )
            .unwrap(),
        );
    }
    let _ = request.respond(response);
}

/// Checks a request like Twilio would; the message to record, or the error answer.
fn accept(shared: &Shared, request: &tiny_http::Request, body: &[u8]) -> Result<Sms, (u16, Value)> {
    let path = request.url().split('?').next().unwrap_or("");
    let account = path
        .strip_prefix("/2010-04-01/Accounts/")
        .and_then(|rest| rest.strip_suffix("/Messages.json"))
        .filter(|sid| !sid.is_empty() && !sid.contains('/'))
        .ok_or_else(|| {
            error(
                404,
                20404,
                &format!("The requested resource {path} was not found"),
            )
        })?
        .to_string();
    let auth = basic_auth(request);
    let authenticated = auth.as_ref().is_some_and(|(user, password)| {
        *user == shared.account_sid && *password == shared.auth_token
    });
    if !authenticated || account != shared.account_sid {
        return Err(error(401, 20003, "Authenticate"));
    }
    if *request.method() != tiny_http::Method::Post {
        return Err(error(
            405,
            20004,
            &format!("Method {} not allowed", request.method()),
        ));
    }
    let content_type = header(request, "Content-Type").unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(error(
            400,
            20001,
            &format!(
                "Content-Type must be application/x-www-form-urlencoded, not '{content_type}'"
            ),
        ));
    }
    let form =
        decode_form(body).map_err(|e| error(400, 20001, &format!("Invalid form body: {e}")))?;
    let mut fields: Vec<(&str, Option<String>)> = vec![
        ("To", None),
        ("From", None),
        ("MessagingServiceSid", None),
        ("Body", None),
    ];
    for (key, value) in form {
        if let Some((name, slot)) = fields.iter_mut().find(|(name, _)| *name == key) {
            if slot.is_some() {
                return Err(error(
                    400,
                    20001,
                    &format!("Parameter '{name}' given twice"),
                ));
            }
            *slot = Some(value);
        }
    }
    let mut take = |name: &str| {
        fields
            .iter_mut()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.take())
    };
    let to = take("To").unwrap_or_default();
    let from = take("From");
    let messaging_service_sid = take("MessagingServiceSid");
    let text = take("Body");
    let valid_to = to
        .strip_prefix('+')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if !valid_to {
        return Err(error(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    if from.is_none() && messaging_service_sid.is_none() {
        return Err(error(
            400,
            21603,
            "A 'From' or a 'MessagingServiceSid' parameter is required to send a message",
        ));
    }
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Err(error(400, 21602, "Message body is required."));
    };
    Ok(Sms {
        account,
        auth,
        to,
        from,
        messaging_service_sid,
        body: text,
    })
}

fn header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// The HTTP Basic credentials of a request, when present and well-formed.
fn basic_auth(request: &tiny_http::Request) -> Option<(String, String)> {
    let value = header(request, "Authorization")?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `application/x-www-form-urlencoded` pairs: `+` is a space, `%XX` a byte, UTF-8 required.
fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in '{text}'"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("'{text}' is not UTF-8 once decoded"))
}

/// A fresh message SID: `SM` and 32 hex digits.
fn message_sid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hasher = RandomState::new();
    format!("SM{:016x}{:016x}", hasher.hash_one(n), hasher.hash_one(!n))
}
