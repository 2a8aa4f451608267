//! The LDAP identity store and the homeserver's password checks against a real OpenLDAP slapd
//! (tests/support/slapd.rs): lookups of directory users (v1, v2 sha256; plain LDAP, StartTLS and
//! ldaps), users who leave, changes picked up by incremental syncs, pending invites, bad
//! service passwords, filter injection, and `check_credentials` with its secret, listener and
//! rate limits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::accounts::{outbound_to_loopback, post_authed, register};
use crate::support::homeserver::FakeHomeserver;
use crate::support::sessions::{V1, V2};
use crate::support::slapd::{
    CONTRACTORS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd, USER_FILTER,
};
use crate::support::{Resp, TestServer, http, merge};
use oxisd::crypto::lookup_hash::sha256_lookup_hash;

/// How long a sync may take to show.
const SYNC_WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "test-auth-shared-secret-0123456789";
const CHECK: &str = "/_matrix-internal/identity/v1/check_credentials";

/// `stores.ldap` for `slapd` over `url`, syncing every second, users of `domain`.
fn ldap_config(slapd: &Slapd, url: &str, domain: &str) -> Value {
    json!({
        "matrix": {"domain": domain},
        "session": {"policy": {"validation": {"enabled": false}}},
        "stores": {"ldap": {
            "enabled": true,
            "connection": {
                "urls": [url],
                "caFile": slapd.ca_file,
                "bindDn": SERVICE_DN,
                "bindPassword": SERVICE_PASSWORD,
                "baseDNs": [PEOPLE, CONTRACTORS],
                "timeout": 5,
                "pageSize": 2,
            },
            "filter": USER_FILTER,
            "attribute": {
                "uid": {"type": "uid", "value": "uid"},
                "name": "displayName",
                "threepid": {"email": ["mail"], "msisdn": ["telephoneNumber", "mobile"]},
            },
            "defaultRegion": "GB",
            "sync": {"interval": 1},
        }},
    })
}

/// `ldap_config` with the password checks on their own loopback listener (port 0) and `extra`.
fn auth_config(slapd: &Slapd, extra: Value) -> Value {
    let mut c = ldap_config(slapd, &slapd.url, "example.org");
    merge(
        &mut c,
        &json!({"auth": {"enabled": true, "port": 0, "sharedSecret": SECRET}}),
    );
    merge(&mut c, &extra);
    c
}

/// The v1 lookup's mxid for a 3PID, if any.
fn v1_lookup(s: &TestServer, medium: &str, address: &str) -> Option<String> {
    let r = s.get(&format!(
        "{V1}/lookup?medium={medium}&address={}",
        address.replace('+', "%2B").replace('@', "%40")
    ));
    assert_eq!(r.status, 200, "lookup {address}: {}", r.text());
    r.json()["mxid"].as_str().map(String::from)
}

/// Waits until the v1 lookup of a 3PID answers `want`.
fn wait_lookup(s: &TestServer, medium: &str, address: &str, want: Option<&str>) {
    let deadline = Instant::now() + SYNC_WAIT;
    loop {
        let got = v1_lookup(s, medium, address);
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "lookup of {address} gives {got:?}, not {want:?}; logs: {:#?}",
            tail(s)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(s: &TestServer) -> Vec<String> {
    let logs = s.logs();
    logs[logs.len().saturating_sub(30)..].to_vec()
}

/// The address the auth listener logged.
fn auth_addr(s: &TestServer) -> SocketAddr {
    let prefix = "password checks (auth.*) at http://";
    let line = s
        .wait_for_log(prefix, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no auth listener: {:#?}", tail(s)));
    line.split(prefix)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap()
}

/// `check_credentials` at `addr` with the shared secret.
fn check_at(addr: SocketAddr, id: &str, password: &str) -> Resp {
    let auth = format!("Bearer {SECRET}");
    let body = json!({"user": {"id": id, "password": password}}).to_string();
    http(
        addr,
        "POST",
        CHECK,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn refused(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"auth": {"success": false}}),
        "{}",
        r.text()
    );
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

#[test]
fn directory_users_are_found_by_v1_and_v2_lookups_without_sessions() {
    let Some(slapd) = Slapd::start() else { return };
    let hs = FakeHomeserver::start();
    let mut config = ldap_config(&slapd, &slapd.url, "example.org");
    merge(&mut config, &outbound_to_loopback());
    let s = TestServer::start_with(config);
    wait_lookup(&s, "email", "alice@example.org", Some("@alice:example.org"));
    // Case-folded like every 3PID; a second mail value; phone numbers in E.164 (one written
    // nationally, in the default region); the second base DN.
    assert_eq!(
        v1_lookup(&s, "email", "Alice.Work@example.org").as_deref(),
        Some("@alice:example.org")
    );
    assert_eq!(
        v1_lookup(&s, "msisdn", "447700900123").as_deref(),
        Some("@alice:example.org")
    );
    assert_eq!(
        v1_lookup(&s, "msisdn", "447700900456").as_deref(),
        Some("@bob:example.org")
    );
    assert_eq!(
        v1_lookup(&s, "email", "carol@contractors.example.org").as_deref(),
        Some("@carol:example.org")
    );
    // The disabled user is outside the filter.
    assert_eq!(v1_lookup(&s, "email", "dave@example.org"), None);
    // v2, hashed with the pepper.
    let token = register(&s, &hs, "asker");
    let details = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json();
    let pepper = details["lookup_pepper"].as_str().unwrap();
    let alice = sha256_lookup_hash("alice@example.org", "email", pepper);
    let bob = sha256_lookup_hash("447700900456", "msisdn", pepper);
    let dave = sha256_lookup_hash("dave@example.org", "email", pepper);
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": [alice, bob, dave]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["mappings"],
        json!({alice: "@alice:example.org", bob: "@bob:example.org"})
    );
    // Sessions are off: requestToken is refused, lookups did not need one.
    let r = s.post_json(
        &format!("{V1}/validate/email/requestToken"),
        &json!({"email": "alice@example.org", "client_secret": "abcdefgh", "send_attempt": 1}),
    );
    r.assert_error(403, "M_FORBIDDEN");
}

#[test]
fn starttls_and_ldaps_with_the_test_ca_work() {
    let Some(slapd) = Slapd::start() else { return };
    let mut starttls = ldap_config(&slapd, &slapd.url, "example.org");
    merge(
        &mut starttls,
        &json!({"stores": {"ldap": {"connection": {"startTls": true}}}}),
    );
    let s = TestServer::start_with(starttls);
    wait_lookup(&s, "email", "bob@example.org", Some("@bob:example.org"));
    drop(s);
    let s = TestServer::start_with(ldap_config(&slapd, &slapd.ldaps_url, "example.org"));
    wait_lookup(&s, "email", "bob@example.org", Some("@bob:example.org"));
    drop(s);
    // Without the CA file the system's trust store does not know the test CA: the sync fails
    // and says why, and nothing is published.
    let mut untrusted = ldap_config(&slapd, &slapd.ldaps_url, "example.org");
    untrusted["stores"]["ldap"]["connection"]
        .as_object_mut()
        .unwrap()
        .remove("caFile");
    let s = TestServer::start_with(untrusted);
    let line = s
        .wait_for_log("syncing the directory (stores.ldap) failed", SYNC_WAIT)
        .unwrap_or_else(|| panic!("no sync error: {:#?}", tail(&s)));
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    assert_eq!(v1_lookup(&s, "email", "bob@example.org"), None);
}

#[test]
fn users_who_leave_or_change_are_followed_by_the_next_syncs() {
    let Some(slapd) = Slapd::start() else { return };
    let s = TestServer::start_with(ldap_config(&slapd, &slapd.url, "example.org"));
    wait_lookup(&s, "email", "bob@example.org", Some("@bob:example.org"));
    // Bob leaves: his email and phone disappear.
    slapd.delete(&format!("uid=bob,{PEOPLE}"));
    wait_lookup(&s, "email", "bob@example.org", None);
    assert_eq!(v1_lookup(&s, "msisdn", "447700900456"), None);
    // Alice gets another address, and a newcomer arrives: picked up by incremental syncs.
    slapd.modify(&format!(
        "dn: uid=alice,{PEOPLE}\nchangetype: modify\nadd: mail\nmail: alice.new@example.org\n"
    ));
    slapd.add(&format!(
        "dn: uid=erin,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: erin\ncn: Erin\nsn: E\nmail: erin@example.org\nuserPassword: erin-password\n"
    ));
    wait_lookup(
        &s,
        "email",
        "alice.new@example.org",
        Some("@alice:example.org"),
    );
    wait_lookup(&s, "email", "erin@example.org", Some("@erin:example.org"));
    assert!(
        s.wait_for_log("full: false", Duration::ZERO).is_some(),
        "no incremental sync: {:#?}",
        tail(&s)
    );
    // Dave is enabled: he now matches the filter.
    slapd.modify(&format!(
        "dn: uid=dave,{PEOPLE}\nchangetype: modify\nreplace: employeeType\nemployeeType: staff\n"
    ));
    wait_lookup(&s, "email", "dave@example.org", Some("@dave:example.org"));
}

#[test]
fn a_failed_sync_keeps_the_last_good_data_and_a_wrong_service_password_says_so() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let s = TestServer::start_with(ldap_config(&slapd, &slapd.url, "example.org"));
    wait_lookup(&s, "email", "alice@example.org", Some("@alice:example.org"));
    slapd.stop();
    s.wait_for_log("no directory server answered", SYNC_WAIT)
        .unwrap_or_else(|| panic!("no sync failure logged: {:#?}", tail(&s)));
    assert_eq!(
        v1_lookup(&s, "email", "alice@example.org").as_deref(),
        Some("@alice:example.org")
    );
    slapd.restart();
    drop(s);
    let mut wrong = ldap_config(&slapd, &slapd.url, "example.org");
    wrong["stores"]["ldap"]["connection"]["bindPassword"] = json!("not-the-password");
    let s = TestServer::start_with(wrong);
    let line = s
        .wait_for_log("refused the service account", SYNC_WAIT)
        .unwrap_or_else(|| panic!("no clear error: {:#?}", tail(&s)));
    assert!(line.contains("invalid credentials"), "{line}");
    assert!(line.contains("bindPassword"), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
}

#[test]
fn a_pending_invite_reaches_a_user_who_joins_the_directory() {
    let Some(slapd) = Slapd::start() else { return };
    let hs = FakeHomeserver::start();
    let mut config = ldap_config(&slapd, &slapd.url, &hs.server_name());
    merge(&mut config, &outbound_to_loopback());
    merge(
        &mut config,
        &json!({"invite": {"v1StoreInvite": true, "delivery": {"initialBackoff": 1, "maxBackoff": 2}},
                "server": {"publicUrl": "https://id.test"}}),
    );
    let s = TestServer::start_with(config);
    let domain = hs.server_name();
    wait_lookup(
        &s,
        "email",
        "alice@example.org",
        Some(&format!("@alice:{domain}")),
    );
    let r = s.post_json(
        &format!("{V1}/store-invite"),
        &json!({"medium": "email", "address": "frank@example.org", "room_id": "!room:example.org",
                "sender": format!("@alice:{domain}")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    slapd.add(&format!(
        "dn: uid=frank,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: frank\ncn: Frank\nsn: F\nmail: frank@example.org\n"
    ));
    let deadline = Instant::now() + SYNC_WAIT;
    loop {
        let onbinds: Vec<_> = hs
            .requests()
            .into_iter()
            .filter(|r| r.path_only() == "/_matrix/federation/v1/3pid/onbind")
            .collect();
        if let Some(r) = onbinds.first() {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["mxid"], format!("@frank:{domain}"), "{body}");
            assert_eq!(body["address"], "frank@example.org");
            break;
        }
        assert!(Instant::now() < deadline, "no onbind: {:#?}", tail(&s));
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// Password checks
// ---------------------------------------------------------------------------------------------

#[test]
fn check_credentials_accepts_the_right_password_and_refuses_the_rest() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let s = TestServer::start_with(auth_config(&slapd, json!({})));
    let addr = auth_addr(&s);
    let r = check_at(addr, "@alice:example.org", "alice-password");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"auth": {"success": true, "mxid": "@alice:example.org", "profile": {
        "display_name": "Alice Liddell",
        "three_pids": [
            {"medium": "email", "address": "alice@example.org"},
            {"medium": "email", "address": "alice.work@example.org"},
            {"medium": "msisdn", "address": "447700900123"},
        ]}}})
    );
    // A bare localpart, any case; the second base DN.
    assert_eq!(
        check_at(addr, "Carol", "carol-password").json()["auth"]["mxid"],
        "@carol:example.org"
    );
    // Wrong password, unknown user, disabled user, another domain, empty password.
    refused(&check_at(addr, "@alice:example.org", "wrong"));
    refused(&check_at(addr, "@nobody:example.org", "alice-password"));
    refused(&check_at(addr, "@dave:example.org", "dave-password"));
    refused(&check_at(addr, "@alice:elsewhere.org", "alice-password"));
    refused(&check_at(addr, "@bob:example.org", ""));
    // Filter injection in the id finds nothing, whatever the password.
    for id in [
        "*",
        "@*:example.org",
        "*)(uid=*",
        "@*)(uid=*:example.org",
        "alice)(|(uid=*",
        "ali*",
    ] {
        refused(&check_at(addr, id, "alice-password"));
    }
    // Bad bodies are client errors.
    let auth = format!("Bearer {SECRET}");
    let headers = [("Authorization", auth.as_str())];
    http(addr, "POST", CHECK, &headers, b"not json").assert_error(400, "M_NOT_JSON");
    http(
        addr,
        "POST",
        CHECK,
        &headers,
        br#"{"user": {"id": "@a:example.org"}}"#,
    )
    .assert_error(400, "M_MISSING_PARAMS");
    http(addr, "POST", CHECK, &headers, br#"{"user": "alice"}"#)
        .assert_error(400, "M_INVALID_PARAM");
    // The directory down is the server's problem, not the client's: 502.
    slapd.stop();
    check_at(addr, "@alice:example.org", "alice-password").assert_error(502, "M_UNKNOWN");
    // The password never reaches the log.
    assert!(
        !s.logs()
            .iter()
            .any(|l| l.contains("alice-password") || l.contains("carol-password")),
        "a password was logged"
    );
}

#[test]
fn check_credentials_needs_the_secret_and_stays_off_the_public_listener() {
    let Some(slapd) = Slapd::start() else { return };
    let s = TestServer::start_with(auth_config(&slapd, json!({})));
    let addr = auth_addr(&s);
    let body =
        json!({"user": {"id": "@alice:example.org", "password": "alice-password"}}).to_string();
    http(addr, "POST", CHECK, &[], body.as_bytes()).assert_error(401, "M_UNAUTHORIZED");
    http(
        addr,
        "POST",
        CHECK,
        &[("Authorization", "Bearer wrong-secret-0123456789")],
        body.as_bytes(),
    )
    .assert_error(401, "M_UNAUTHORIZED");
    // Not on the public listener unless auth.public.
    let r = s.request(
        "POST",
        CHECK,
        &[("Authorization", &format!("Bearer {SECRET}"))],
        body.as_bytes(),
    );
    r.assert_error(404, "M_UNRECOGNIZED");
    drop(s);
    let s = TestServer::start_with(auth_config(&slapd, json!({"auth": {"public": true}})));
    let r = s.request(
        "POST",
        CHECK,
        &[("Authorization", &format!("Bearer {SECRET}"))],
        body.as_bytes(),
    );
    assert_eq!(r.json()["auth"]["success"], true, "{}", r.text());
    s.request("POST", CHECK, &[], body.as_bytes())
        .assert_error(401, "M_UNAUTHORIZED");
}

#[test]
fn check_credentials_is_off_unless_configured() {
    let Some(slapd) = Slapd::start() else { return };
    // The directory store alone: no auth listener, nothing on the public one.
    let s = TestServer::start_with(ldap_config(&slapd, &slapd.url, "example.org"));
    let body =
        json!({"user": {"id": "@alice:example.org", "password": "alice-password"}}).to_string();
    s.request("POST", CHECK, &[], body.as_bytes())
        .assert_error(404, "M_UNRECOGNIZED");
    assert!(
        s.wait_for_log("password checks (auth.*) at", Duration::ZERO)
            .is_none()
    );
}

#[test]
fn failed_checks_are_rate_limited_per_user_and_per_client() {
    let Some(slapd) = Slapd::start() else { return };
    let s = TestServer::start_with(auth_config(
        &slapd,
        json!({"auth": {"rateLimit": {"perUser": {"burst": 3, "refill": 3600}, "perClient": {"burst": 6, "refill": 3600}}}}),
    ));
    let addr = auth_addr(&s);
    // Right passwords do not count.
    for _ in 0..5 {
        assert_eq!(
            check_at(addr, "alice", "alice-password").json()["auth"]["success"],
            true
        );
    }
    for _ in 0..3 {
        refused(&check_at(addr, "alice", "guess"));
    }
    let r = check_at(addr, "alice", "alice-password");
    r.assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(r.json()["retry_after_ms"].as_u64().unwrap() > 0);
    // Another user is not held up by alice's limit, until the client's runs out.
    for _ in 0..3 {
        refused(&check_at(addr, "bob", "guess"));
    }
    check_at(addr, "carol", "guess").assert_error(429, "M_LIMIT_EXCEEDED");
}

#[test]
fn unknown_users_and_wrong_passwords_take_similar_time() {
    let Some(slapd) = Slapd::start() else { return };
    let s = TestServer::start_with(auth_config(
        &slapd,
        json!({"auth": {"rateLimit": {"perUser": {"burst": 100, "refill": 1}}}}),
    ));
    let addr = auth_addr(&s);
    let time = |id: &str| {
        let t = Instant::now();
        refused(&check_at(addr, id, "guess"));
        t.elapsed()
    };
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..15 {
        unknown.push(time(&format!("nobody{i}")));
        wrong.push(time("alice"));
    }
    unknown.sort();
    wrong.sort();
    let (u, w) = (unknown[7], wrong[7]);
    let (lo, hi) = if u < w { (u, w) } else { (w, u) };
    assert!(
        hi <= lo * 2 + Duration::from_millis(10),
        "median unknown user {u:?}, wrong password {w:?}"
    );
}
