//! A Synapse admin API stand-in for tests: an HTTP server on 127.0.0.1 port 0 that answers
//! `GET /_synapse/admin/v2/users?from=&limit=` (a small page size, so every sync paginates,
//! with `next_token` while more accounts follow) and `GET /_synapse/admin/v2/users/<user id>`
//! (the account with its `threepids` and `deactivated`).
//!
//! Requests need `Authorization: Bearer <admin token>`; anything else gets 401
//! `M_UNKNOWN_TOKEN`, like Synapse. Unlike Synapse, the list also shows deactivated accounts
//! (marked `deactivated: 1`, the integer form older Synapses use; the detail answer uses
//! `true`), so the syncer's own check is what keeps them out.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::stand_in::StandIn;

/// Most accounts on one page of the list, whatever `limit` asks for.
pub const PAGE_SIZE: usize = 2;

#[derive(Clone)]
struct Account {
    /// (medium, address), as Synapse would return them.
    threepids: Vec<(String, String)>,
    deactivated: bool,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, Account>,
    requests: usize,
    /// Every request target (path and query), in order.
    paths: Vec<String>,
    /// Accounts whose detail request answers 500.
    failing: BTreeSet<String>,
}

struct Shared {
    state: Mutex<State>,
    admin_token: String,
}

/// A running stand-in. Stops when dropped.
pub struct SynapseAdmin {
    shared: Arc<Shared>,
    stand_in: StandIn,
}

impl SynapseAdmin {
    /// Starts a stand-in that accepts `admin_token`.
    pub fn start(admin_token: &str) -> SynapseAdmin {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            admin_token: admin_token.to_string(),
        });
        let stand_in = {
            let shared = shared.clone();
            StandIn::spawn(move |request| handle(&shared, request))
        };
        SynapseAdmin { shared, stand_in }
    }

    /// The URL to configure (`http://127.0.0.1:PORT`, no trailing slash).
    pub fn base_url(&self) -> String {
        self.stand_in.base_url()
    }

    /// Adds (or replaces) an account with these (medium, address) 3PIDs.
    pub fn add_user(&self, user_id: &str, threepids: &[(&str, &str)], deactivated: bool) {
        let account = Account {
            threepids: threepids
                .iter()
                .map(|(m, a)| (m.to_string(), a.to_string()))
                .collect(),
            deactivated,
        };
        let mut state = self.shared.state.lock().unwrap();
        state.users.insert(user_id.to_string(), account);
    }

    /// Removes an account (its detail request then answers 404 `M_NOT_FOUND`).
    pub fn remove_user(&self, user_id: &str) {
        self.shared.state.lock().unwrap().users.remove(user_id);
    }

    /// Makes the detail request of `user_id` answer 500 from now on.
    pub fn fail_user(&self, user_id: &str) {
        let mut state = self.shared.state.lock().unwrap();
        state.failing.insert(user_id.to_string());
    }

    /// How many requests arrived so far.
    pub fn requests(&self) -> usize {
        self.shared.state.lock().unwrap().requests
    }

    /// Every request target (path and query) so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().paths.clone()
    }
}

fn handle(shared: &Shared, request: tiny_http::Request) {
    let target = request.url().to_string();
    let auth = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let (status, body) = answer(shared, request.method(), &target, auth.as_deref());
    let response = tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap(),
        );
    let _ = request.respond(response);
}

fn error(status: u16, errcode: &str, message: &str) -> (u16, Value) {
    (status, json!({"errcode": errcode, "error": message}))
}

fn answer(
    shared: &Shared,
    method: &tiny_http::Method,
    target: &str,
    auth: Option<&str>,
) -> (u16, Value) {
    let mut state = shared.state.lock().unwrap();
    state.requests += 1;
    state.paths.push(target.to_string());
    if auth != Some(&format!("Bearer {}", shared.admin_token)) {
        return error(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.");
    }
    if *method != tiny_http::Method::Get {
        return error(405, "M_UNRECOGNIZED", "Unrecognized request");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/_synapse/admin/v2/users" {
        return list(&state, query);
    }
    let Some(encoded) = path.strip_prefix("/_synapse/admin/v2/users/") else {
        return error(404, "M_UNRECOGNIZED", "Unrecognized request");
    };
    let user_id = percent_decode(encoded);
    if state.failing.contains(&user_id) {
        return error(500, "M_UNKNOWN", "Internal server error");
    }
    match state.users.get(&user_id) {
        None => error(404, "M_NOT_FOUND", "User not found"),
        Some(account) => {
            let threepids: Vec<Value> = account
                .threepids
                .iter()
                .map(|(m, a)| json!({"medium": m, "address": a, "added_at": 1, "validated_at": 1}))
                .collect();
            (
                200,
                json!({
                    "name": user_id,
                    "displayname": null,
                    "threepids": threepids,
                    "is_guest": 0,
                    "admin": 0,
                    "deactivated": account.deactivated,
                    "erased": false,
                }),
            )
        }
    }
}

fn list(state: &State, query: &str) -> (u16, Value) {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    };
    let Ok(from) = param("from").unwrap_or_else(|| "0".into()).parse::<usize>() else {
        return error(
            400,
            "M_INVALID_PARAM",
            "Query parameter from must be a number",
        );
    };
    let limit = match param("limit").map(|l| l.parse::<usize>()) {
        None => PAGE_SIZE,
        Some(Ok(l)) if l > 0 => l.min(PAGE_SIZE),
        Some(_) => return error(400, "M_INVALID_PARAM", "Query parameter limit is invalid"),
    };
    let users: Vec<Value> = state
        .users
        .iter()
        .skip(from)
        .take(limit)
        .map(|(name, a)| json!({"name": name, "is_guest": 0, "admin": 0, "deactivated": u8::from(a.deactivated)}))
        .collect();
    let mut body = json!({"users": users, "total": state.users.len()});
    if from + users.len() < state.users.len() {
        body["next_token"] = json!((from + users.len()).to_string());
    }
    (200, body)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
