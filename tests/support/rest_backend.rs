//! A stand-in for an mxisd REST backend: an HTTP server on 127.0.0.1 port 0 that answers
//! `POST /_mxisd/backend/api/v1/identity/single` and `.../bulk` from the 3PIDs a test adds,
//! and records every request.
//!
//! Emails match case-insensitively, like mxisd backends usually do. A test can make it answer
//! 500 ([`RestBackend::set_failing`]), answer a fixed raw body ([`RestBackend::set_raw_answer`])
//! or wait before answering ([`RestBackend::set_delay`]).

#![allow(dead_code)]

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::stand_in::StandIn;

/// The most of a request body the stand-in reads.
const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;
const SINGLE: &str = "/_mxisd/backend/api/v1/identity/single";
const BULK: &str = "/_mxisd/backend/api/v1/identity/bulk";

#[derive(Default)]
struct State {
    /// (medium, address, id type, id value).
    identities: Vec<(String, String, String, String)>,
    /// (path, JSON body; `Null` when the body was not JSON).
    requests: Vec<(String, Value)>,
    failing: bool,
    raw_answer: Option<(u16, String)>,
    delay: Duration,
}

/// A running stand-in. Stops when dropped.
pub struct RestBackend {
    state: Arc<Mutex<State>>,
    stand_in: StandIn,
}

impl RestBackend {
    /// Starts a stand-in that knows no 3PIDs.
    pub fn start() -> RestBackend {
        let state = Arc::new(Mutex::new(State::default()));
        let stand_in = {
            let state = state.clone();
            StandIn::spawn(move |request| handle(&state, request))
        };
        RestBackend { state, stand_in }
    }

    /// The base URL to configure (`http://127.0.0.1:PORT`, no trailing slash).
    pub fn base_url(&self) -> String {
        self.stand_in.base_url()
    }

    /// Makes (`medium`, `address`) known, answered with `{"type": id_type, "value": id_value}`.
    pub fn add(&self, medium: &str, address: &str, id_type: &str, id_value: &str) {
        self.state.lock().unwrap().identities.push((
            medium.into(),
            address.into(),
            id_type.into(),
            id_value.into(),
        ));
    }

    /// Every request so far, in order: (path, JSON body, `Null` when not JSON).
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// When true, every request gets 500 and an error JSON.
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// When set, every request gets this status and raw body instead of a real answer.
    pub fn set_raw_answer(&self, answer: Option<(u16, &str)>) {
        self.state.lock().unwrap().raw_answer = answer.map(|(s, b)| (s, b.to_string()));
    }

    /// Waits this long before answering each request.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }
}

/// The answer entry for one question, when the 3PID is known.
fn find(state: &State, question: &Value) -> Option<Value> {
    let medium = question["medium"].as_str()?;
    let address = question["address"].as_str()?;
    let (m, a, t, v) = state.identities.iter().find(|(m, a, _, _)| {
        m == medium
            && if medium == "email" {
                a.eq_ignore_ascii_case(address)
            } else {
                a == address
            }
    })?;
    Some(json!({ "medium": m, "address": a, "id": { "type": t, "value": v } }))
}

fn handle(state: &Mutex<State>, mut request: tiny_http::Request) {
    let mut body = Vec::new();
    let _ = request
        .as_reader()
        .take(MAX_REQUEST_BYTES)
        .read_to_end(&mut body);
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let json_body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (delay, status, answer) = {
        let mut state = state.lock().unwrap();
        state.requests.push((path.clone(), json_body.clone()));
        let (status, answer) = if let Some((status, raw)) = &state.raw_answer {
            (*status, raw.clone())
        } else if state.failing {
            (500, json!({ "error": "backend failure" }).to_string())
        } else if *request.method() != tiny_http::Method::Post {
            (405, json!({ "error": "POST only" }).to_string())
        } else if path == SINGLE {
            match find(&state, &json_body["lookup"]) {
                Some(entry) => (200, json!({ "lookup": entry }).to_string()),
                None => (200, "{}".to_string()),
            }
        } else if path == BULK {
            let found: Vec<Value> = json_body["lookup"]
                .as_array()
                .map(|qs| qs.iter().filter_map(|q| find(&state, q)).collect())
                .unwrap_or_default();
            (200, json!({ "lookup": found }).to_string())
        } else {
            (404, json!({ "error": "not found" }).to_string())
        };
        (state.delay, status, answer)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let response = tiny_http::Response::from_string(answer)
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        );
    let _ = request.respond(response);
}
