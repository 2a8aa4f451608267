//! Helpers for v2 tests: an oxisd wired to a fake homeserver, and registering a user there.

use serde_json::{Value, json};

use super::homeserver::FakeHomeserver;
use super::{TestServer, merge};

/// Config that lets oxisd reach a fake homeserver on loopback with its self-signed cert.
pub fn outbound_to_loopback() -> Value {
    json!({"outbound": {"allowedRanges": ["127.0.0.1/32"], "insecureSkipTlsVerify": true, "timeout": 5}})
}

/// Starts oxisd allowed to reach loopback homeservers, with `extra` merged in.
pub fn start_with_homeserver(extra: Value) -> TestServer {
    let mut config = outbound_to_loopback();
    merge(&mut config, &extra);
    TestServer::start_with(config)
}

/// The user id of `localpart` on the fake homeserver.
pub fn user_on(hs: &FakeHomeserver, localpart: &str) -> String {
    format!("@{localpart}:{}", hs.server_name())
}

/// Registers `localpart` through an OpenID token and returns oxisd's access token.
pub fn register(s: &TestServer, hs: &FakeHomeserver, localpart: &str) -> String {
    let openid = format!("openid-{localpart}");
    hs.add_openid_token(&openid, &user_on(hs, localpart));
    let r = s.post_json(
        "/_matrix/identity/v2/account/register",
        &json!({"access_token": openid, "token_type": "Bearer", "matrix_server_name": hs.server_name(), "expires_in": 3600}),
    );
    assert_eq!(r.status, 200, "register: {}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// `GET path` with a Bearer token.
pub fn get_authed(s: &TestServer, path: &str, token: &str) -> super::Resp {
    let (k, v) = bearer(token);
    s.request("GET", path, &[(k, &v)], b"")
}

/// `POST path` with a Bearer token and a JSON body.
pub fn post_authed(s: &TestServer, path: &str, token: &str, body: &Value) -> super::Resp {
    let (k, v) = bearer(token);
    s.request(
        "POST",
        path,
        &[(k, &v), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}
