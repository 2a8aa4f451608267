use std::time::Duration;

use serde_json::json;

use crate::support::TestServer;
use crate::support::accounts::{
    bearer, get_authed, post_authed, register, start_with_homeserver, user_on,
};
use crate::support::homeserver::FakeHomeserver;

const V2: &str = "/_matrix/identity/v2";

fn register_body(token: &str, server: &str) -> serde_json::Value {
    json!({"access_token": token, "token_type": "Bearer", "matrix_server_name": server, "expires_in": 3600})
}

#[test]
fn register_exchanges_an_openid_token_for_an_access_token() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    hs.add_openid_token("oidc-1", &user_on(&hs, "alice"));
    let r = s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-1", &hs.server_name()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], token);
    assert!(token.len() >= 32);
    let asked = hs.wait_for_requests(
        "/_matrix/federation/v1/openid/userinfo",
        1,
        Duration::from_secs(5),
    );
    assert!(
        asked[0].path.ends_with("access_token=oidc-1"),
        "{}",
        asked[0].path
    );
    assert!(
        !asked[0].headers.iter().any(|(k, _)| k == "authorization"),
        "userinfo is unauthenticated"
    );
    // The token works as a Bearer header and as a query parameter (Synapse sends the latter).
    let me = get_authed(&s, &format!("{V2}/account"), token);
    assert_eq!(
        (me.status, me.json()),
        (200, json!({"user_id": user_on(&hs, "alice")}))
    );
    let me = s.get(&format!("{V2}/account?access_token={token}"));
    assert_eq!(me.json()["user_id"], user_on(&hs, "alice"));
    assert_eq!(
        post_authed(&s, &format!("{V2}/account"), token, &json!({})).status,
        200,
        "ruma's POST whoami"
    );
}

#[test]
fn register_refuses_a_user_of_another_server() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    hs.add_openid_token("oidc-evil", "@admin:matrix.org");
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-evil", &hs.server_name()),
    )
    .assert_error(401, "M_UNAUTHORIZED");
    hs.add_openid_token("oidc-garbage", "not a user id");
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-garbage", &hs.server_name()),
    )
    .assert_error(401, "M_UNAUTHORIZED");
}

#[test]
fn register_refuses_a_user_id_outside_the_matrix_grammar() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    let server = hs.server_name();
    for (i, sub) in [
        format!("@a b\n<script>:{server}"),
        format!("@:{server}"),
        format!("@a\u{0}:{server}"),
        format!("@a\u{e9}:{server}"),
        format!("@{}:{server}", "a".repeat(256)),
        format!("@a:{server}:1:2"),
    ]
    .iter()
    .enumerate()
    {
        let token = format!("oidc-bad-{i}");
        hs.add_openid_token(&token, sub);
        s.post_json(
            &format!("{V2}/account/register"),
            &register_body(&token, &server),
        )
        .assert_error(401, "M_UNAUTHORIZED");
    }
    // The refusal is logged on one line: the newline forges nothing.
    s.wait_for_log("which is not a user of", Duration::from_secs(5))
        .unwrap();
    let logs = s.logs();
    assert!(!logs.iter().any(|l| l.starts_with("<script>")), "{logs:#?}");
    // A historical user id (printable ASCII beyond today's lowercase set) still registers.
    hs.add_openid_token("oidc-ok", &format!("@Old_User=1:{server}"));
    let r = s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-ok", &server),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn redirects_from_https_to_http_are_not_followed() {
    let hs = FakeHomeserver::start();
    let plain = FakeHomeserver::start_plain();
    let s = start_with_homeserver(json!({}));
    // The homeserver's userinfo redirects to a plain-HTTP copy that would vouch for the user.
    plain.add_openid_token("oidc-down", &user_on(&hs, "alice"));
    hs.respond(
        "GET",
        "/_matrix/federation/v1/openid/userinfo",
        302,
        json!({"location": format!("{}/_matrix/federation/v1/openid/userinfo?access_token=oidc-down", plain.base_url())}),
    );
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-down", &hs.server_name()),
    )
    .assert_error(502, "M_UNKNOWN");
    assert!(plain.requests().is_empty(), "the downgrade was followed");
    // A redirect that stays on https is followed.
    let other = FakeHomeserver::start();
    other.add_openid_token("oidc-up", &user_on(&hs, "bob"));
    hs.respond(
        "GET",
        "/_matrix/federation/v1/openid/userinfo",
        302,
        json!({"location": format!("{}/_matrix/federation/v1/openid/userinfo?access_token=oidc-up", other.base_url())}),
    );
    let r = s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-up", &hs.server_name()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn register_with_an_unknown_openid_token_is_unauthorized() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("nope", &hs.server_name()),
    )
    .assert_error(401, "M_UNAUTHORIZED");
}

#[test]
fn register_reports_a_homeserver_that_is_down_or_slow() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = start_with_homeserver(json!({"outbound": {"timeout": 1}}));
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-secret-down", &format!("127.0.0.1:{port}")),
    )
    .assert_error(502, "M_UNKNOWN");
    let hs = FakeHomeserver::start();
    hs.add_openid_token("oidc-secret-slow", &user_on(&hs, "slow"));
    hs.set_delay(Duration::from_secs(3));
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("oidc-secret-slow", &hs.server_name()),
    )
    .assert_error(504, "M_UNKNOWN");
    // The failures are logged with their URL, but never with the OpenID token in it.
    let down = s
        .wait_for_log("unreachable", Duration::from_secs(5))
        .unwrap();
    assert!(down.contains("access_token=<redacted>"), "{down}");
    s.wait_for_log("did not answer in time", Duration::from_secs(5))
        .unwrap();
    let logs = s.logs();
    assert!(!logs.iter().any(|l| l.contains("oidc-secret")), "{logs:#?}");
}

#[test]
fn calls_to_a_slow_homeserver_beyond_its_share_fail_at_once() {
    let s = start_with_homeserver(json!({"outbound": {"timeout": 5, "maxPerDestination": 2}}));
    let hs = FakeHomeserver::start();
    hs.add_openid_token("slow", &user_on(&hs, "slow"));
    hs.set_delay(Duration::from_secs(3));
    let body = register_body("slow", &hs.server_name());
    let path = format!("{V2}/account/register");
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let (addr, body, path) = (s.addr, body.clone(), path.clone());
            std::thread::spawn(move || {
                let bytes = body.to_string();
                crate::support::http(
                    addr,
                    "POST",
                    &path,
                    &[("Content-Type", "application/json")],
                    bytes.as_bytes(),
                )
            })
        })
        .collect();
    hs.wait_for_requests(
        "/_matrix/federation/v1/openid/userinfo",
        2,
        Duration::from_secs(5),
    );
    // Two calls wait on the homeserver: a third is not queued behind them.
    let started = std::time::Instant::now();
    let r = s.post_json(&path, &body);
    r.assert_error(502, "M_UNKNOWN");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(hs.requests().len(), 2, "the third call never left");
    // The slow ones get their answers, and then the homeserver has its share again.
    for w in waiting {
        assert_eq!(w.join().unwrap().status, 200);
    }
    hs.set_delay(Duration::ZERO);
    assert_eq!(s.post_json(&path, &body).status, 200);
}

#[test]
fn register_checks_the_server_name_and_the_body() {
    let s = start_with_homeserver(json!({}));
    for name in [
        "exa mple.org",
        "example.org:0",
        "example.org:04242",
        "[:::]",
        "example.org/x",
        "",
    ] {
        s.post_json(&format!("{V2}/account/register"), &register_body("x", name))
            .assert_error(400, "M_INVALID_PARAM");
    }
    s.post_json(
        &format!("{V2}/account/register"),
        &json!({"access_token": "x"}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
    s.request("POST", &format!("{V2}/account/register"), &[], b"{oops")
        .assert_error(400, "M_NOT_JSON");
}

#[test]
fn the_address_guard_refuses_private_targets_unless_allowed() {
    let hs = FakeHomeserver::start();
    hs.add_openid_token("t", &user_on(&hs, "a"));
    // Nothing allowed: loopback in every spelling, private and link-local ranges are refused
    // before any connection is made.
    let s =
        TestServer::start_with(json!({"outbound": {"insecureSkipTlsVerify": true, "timeout": 2}}));
    let port = hs.port();
    for name in [
        hs.server_name(),
        format!("localhost:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("[::1]:{port}"),
        "10.0.0.1:8448".to_string(),
        "192.168.1.1".to_string(),
        "169.254.169.254".to_string(),
        "[fd00::1]:8448".to_string(),
    ] {
        let started = std::time::Instant::now();
        let body = s
            .post_json(
                &format!("{V2}/account/register"),
                &register_body("t", &name),
            )
            .assert_error(400, "M_INVALID_PARAM");
        assert!(
            body["error"].as_str().unwrap().contains("may not contact"),
            "{name}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{name} was not refused up front"
        );
    }
    assert!(hs.requests().is_empty(), "the guard let a request through");
    let log = s.wait_for_log("address guard", Duration::from_secs(5));
    assert!(log.is_some(), "refusals are logged for the operator");
}

#[test]
fn homeserver_certificates_are_checked_by_default() {
    let hs = FakeHomeserver::start();
    hs.add_openid_token("t", &user_on(&hs, "a"));
    let s = TestServer::start_with(
        json!({"outbound": {"allowedRanges": ["127.0.0.1/32"], "timeout": 5}}),
    );
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("t", &hs.server_name()),
    )
    .assert_error(502, "M_UNKNOWN");
    assert!(
        s.logs()
            .iter()
            .all(|l| !l.contains("insecureSkipTlsVerify is on"))
    );
    let insecure = start_with_homeserver(json!({}));
    assert!(
        insecure
            .wait_for_log("insecureSkipTlsVerify is on", Duration::from_secs(5))
            .is_some()
    );
}

#[test]
fn an_override_reaches_a_homeserver_without_discovery() {
    let hs = FakeHomeserver::start_plain();
    hs.add_openid_token("t", "@bob:example.org");
    // No allowed ranges: an operator's override is trusted as written.
    let s =
        TestServer::start_with(json!({"outbound": {"overrides": {"example.org": hs.base_url()}}}));
    let r = s.post_json(
        &format!("{V2}/account/register"),
        &register_body("t", "example.org"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn only_allowed_homeservers_may_register() {
    let hs = FakeHomeserver::start();
    hs.add_openid_token("t", &user_on(&hs, "a"));
    let s = start_with_homeserver(json!({"account": {"allowedServers": ["example.org"]}}));
    s.post_json(
        &format!("{V2}/account/register"),
        &register_body("t", &hs.server_name()),
    )
    .assert_error(403, "M_FORBIDDEN");
    assert!(hs.requests().is_empty());
}

#[test]
fn v2_endpoints_need_a_valid_token() {
    let s = start_with_homeserver(json!({}));
    let email = json!({"client_secret": "s", "email": "a@example.org", "send_attempt": 1});
    let msisdn = json!({"client_secret": "s", "country": "GB", "phone_number": "07911123456", "send_attempt": 1});
    let submit = json!({"sid": "a", "client_secret": "s", "token": "t"});
    for (method, path, body) in [
        ("POST", "/validate/email/requestToken", email.clone()),
        ("POST", "/validate/msisdn/requestToken", msisdn),
        ("POST", "/validate/email/submitToken", submit.clone()),
        ("POST", "/validate/msisdn/submitToken", submit),
        (
            "GET",
            "/3pid/getValidated3pid?sid=a&client_secret=s",
            json!(null),
        ),
        ("GET", "/account", json!(null)),
        ("POST", "/terms", json!({"user_accepts": []})),
    ] {
        let path = format!("{V2}{path}");
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        s.request(method, &path, &[], &body)
            .assert_error(401, "M_UNAUTHORIZED");
        s.request(
            method,
            &path,
            &[("Authorization", "Bearer not-a-token")],
            &body,
        )
        .assert_error(401, "M_UNAUTHORIZED");
    }
    // Open v2 endpoints stay open.
    for path in [
        "",
        "/terms",
        "/pubkey/ed25519:0",
        "/pubkey/isvalid?public_key=x",
        "/validate/email/submitToken?sid=a&client_secret=b&token=c",
    ] {
        assert_ne!(s.get(&format!("{V2}{path}")).status, 401, "{path}");
    }
}

#[test]
fn logout_forgets_the_token() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    let token = register(&s, &hs, "carol");
    let other = register(&s, &hs, "dave");
    // No body at all is allowed.
    let (k, v) = bearer(&token);
    let r = s.request("POST", &format!("{V2}/account/logout"), &[(k, &v)], b"");
    assert_eq!((r.status, r.json()), (200, json!({})));
    get_authed(&s, &format!("{V2}/account"), &token).assert_error(401, "M_UNAUTHORIZED");
    s.request("POST", &format!("{V2}/account/logout"), &[(k, &v)], b"")
        .assert_error(401, "M_UNKNOWN_TOKEN");
    s.request("POST", &format!("{V2}/account/logout"), &[], b"")
        .assert_error(401, "M_UNKNOWN_TOKEN");
    assert_eq!(
        get_authed(&s, &format!("{V2}/account"), &other).status,
        200,
        "other tokens are untouched"
    );
}

#[test]
fn a_registered_client_validates_an_email_on_v2() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    let token = register(&s, &hs, "erin");
    let r = post_authed(
        &s,
        &format!("{V2}/validate/email/requestToken"),
        &token,
        &json!({"client_secret": "sec", "email": "erin@example.org", "send_attempt": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    s.wait_for_log("(log-only notifier, not sent)", Duration::from_secs(5))
        .unwrap();
    let logs = s.logs().join("\n");
    let link = logs
        .lines()
        .find(|l| l.starts_with("http") && l.contains("/submitToken?"))
        .unwrap()
        .trim()
        .to_string();
    let path = &link[link.find("/_matrix").unwrap()..];
    // The browser has no token.
    assert_eq!(s.get(path).status, 200);
    let v = get_authed(
        &s,
        &format!("{V2}/3pid/getValidated3pid?sid={sid}&client_secret=sec"),
        &token,
    );
    assert_eq!(
        (v.status, v.json()["address"].as_str()),
        (200, Some("erin@example.org"))
    );
    // v2 speaks JSON only; forms are a v1 legacy.
    let (k, v) = bearer(&token);
    s.request(
        "POST",
        &format!("{V2}/validate/email/requestToken"),
        &[
            (k, &v),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"client_secret=abc",
    )
    .assert_error(400, "M_NOT_JSON");
}

#[test]
fn rate_limits_follow_the_account_on_v2() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(
        json!({"session": {"rateLimit": {"perClient": {"burst": 1, "refill": 3600}}}}),
    );
    let first = register(&s, &hs, "f1");
    let second = register(&s, &hs, "f2");
    let ask = |token: &str, email: &str| {
        post_authed(
            &s,
            &format!("{V2}/validate/email/requestToken"),
            token,
            &json!({"client_secret": "s", "email": email, "send_attempt": 1}),
        )
    };
    assert_eq!(ask(&first, "a@example.org").status, 200);
    ask(&first, "b@example.org").assert_error(429, "M_LIMIT_EXCEEDED");
    assert_eq!(
        ask(&second, "c@example.org").status,
        200,
        "another account from the same address has its own budget"
    );
}

#[test]
fn v1_can_be_switched_off() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({"api": {"v1": {"enabled": false}}}));
    s.post_json(
        "/_matrix/identity/api/v1/validate/email/requestToken",
        &json!({"client_secret": "s", "email": "a@example.org", "send_attempt": 1}),
    )
    .assert_error(403, "M_FORBIDDEN");
    let token = register(&s, &hs, "gil");
    let r = post_authed(
        &s,
        &format!("{V2}/validate/email/requestToken"),
        &token,
        &json!({"client_secret": "s", "email": "a@example.org", "send_attempt": 1}),
    );
    assert_eq!(r.status, 200);
}
