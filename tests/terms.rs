use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::accounts::{bearer, outbound_to_loopback, register};
use crate::support::homeserver::FakeHomeserver;
use crate::support::{TempDir, TestServer, merge};

const V2: &str = "/_matrix/identity/v2";
const TOS_EN: &str = "https://example.org/terms-1.0-en.html";
const TOS_FR: &str = "https://example.org/terms-1.0-fr.html";
const PRIVACY_EN: &str = "https://example.org/privacy-1.2-en.html";

fn policies(tos_version: &str) -> Value {
    json!({"policy": {"policies": {
        "terms_of_service": {"version": tos_version, "terms": {
            "en": {"name": "Terms of Service", "url": TOS_EN},
            "fr": {"name": "Conditions d'utilisation", "url": TOS_FR}}},
        "privacy_policy": {"version": "1.2", "terms": {"en": {"name": "Privacy Policy", "url": PRIVACY_EN}}}
    }}})
}

fn config(extra: Value) -> Value {
    let mut c = outbound_to_loopback();
    merge(&mut c, &extra);
    c
}

fn accept(s: &TestServer, token: &str, urls: &[&str]) -> crate::support::Resp {
    let (k, v) = bearer(token);
    s.request(
        "POST",
        &format!("{V2}/terms"),
        &[(k, &v)],
        json!({"user_accepts": urls}).to_string().as_bytes(),
    )
}

fn whoami_status(s: &TestServer, token: &str) -> u16 {
    let (k, v) = bearer(token);
    let r = s.request("GET", &format!("{V2}/account"), &[(k, &v)], b"");
    if r.status == 403 {
        r.assert_error(403, "M_TERMS_NOT_SIGNED");
    }
    r.status
}

#[test]
fn without_terms_nothing_needs_accepting() {
    let hs = FakeHomeserver::start();
    let s = TestServer::start_with(config(json!({})));
    let r = s.get(&format!("{V2}/terms"));
    assert_eq!((r.status, r.json()), (200, json!({"policies": {}})));
    let token = register(&s, &hs, "a");
    assert_eq!(whoami_status(&s, &token), 200);
}

#[test]
fn terms_are_listed_in_the_spec_shape() {
    let s = TestServer::start_with(config(policies("1.0")));
    let r = s.get(&format!("{V2}/terms"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"policies": {
            "privacy_policy": {"version": "1.2", "en": {"name": "Privacy Policy", "url": PRIVACY_EN}},
            "terms_of_service": {"version": "1.0", "en": {"name": "Terms of Service", "url": TOS_EN}, "fr": {"name": "Conditions d'utilisation", "url": TOS_FR}}
        }})
    );
}

#[test]
fn every_policy_must_be_accepted_in_any_language_and_calls_add_up() {
    let hs = FakeHomeserver::start();
    let s = TestServer::start_with(config(policies("1.0")));
    let token = register(&s, &hs, "b");
    assert_eq!(whoami_status(&s, &token), 403);
    // Protected session endpoints are gated too.
    let (k, v) = bearer(&token);
    s.request(
        "POST",
        &format!("{V2}/validate/email/requestToken"),
        &[(k, &v)],
        br#"{"client_secret":"s","email":"a@b.org","send_attempt":1}"#,
    )
    .assert_error(403, "M_TERMS_NOT_SIGNED");
    // Accepting one policy (in French) is not enough.
    let r = accept(&s, &token, &[TOS_FR]);
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(whoami_status(&s, &token), 403);
    // The second call adds to the first.
    assert_eq!(accept(&s, &token, &[PRIVACY_EN]).status, 200);
    assert_eq!(whoami_status(&s, &token), 200);
    // Accepting again is harmless.
    assert_eq!(accept(&s, &token, &[TOS_EN, PRIVACY_EN]).status, 200);
    assert_eq!(whoami_status(&s, &token), 200);
}

#[test]
fn unknown_urls_are_refused() {
    let hs = FakeHomeserver::start();
    let s = TestServer::start_with(config(policies("1.0")));
    let token = register(&s, &hs, "c");
    accept(&s, &token, &["https://evil.example/terms.html"]).assert_error(400, "M_INVALID_PARAM");
    assert_eq!(whoami_status(&s, &token), 403);
}

#[test]
fn accepting_terms_and_logging_out_never_need_the_terms() {
    let hs = FakeHomeserver::start();
    let s = TestServer::start_with(config(policies("1.0")));
    let token = register(&s, &hs, "d");
    assert_eq!(accept(&s, &token, &[]).status, 200);
    let (k, v) = bearer(&token);
    assert_eq!(
        s.request("POST", &format!("{V2}/account/logout"), &[(k, &v)], b"")
            .status,
        200
    );
}

#[test]
fn a_new_version_must_be_accepted_again() {
    let hs = FakeHomeserver::start();
    let dir = Arc::new(TempDir::new("terms"));
    let first = TestServer::start_in(dir.clone(), config(policies("1.0")));
    let token = register(&first, &hs, "e");
    assert_eq!(accept(&first, &token, &[TOS_EN, PRIVACY_EN]).status, 200);
    assert_eq!(whoami_status(&first, &token), 200);
    assert!(first.stop().success());
    // Same URL, new version: the earlier acceptance does not count.
    let second = TestServer::start_in(dir, config(policies("2.0")));
    assert_eq!(whoami_status(&second, &token), 403);
    assert_eq!(accept(&second, &token, &[TOS_EN]).status, 200);
    assert_eq!(whoami_status(&second, &token), 200);
}
