use std::time::Duration;

use serde_json::{Value, json};

use oxisd::crypto::lookup_hash::sha256_lookup_hash;

use crate::support::accounts::{bearer, register, start_with_homeserver};
use crate::support::homeserver::FakeHomeserver;
use crate::support::sessions::{V1, V2};
use crate::support::{Resp, TestServer};

/// Three bound addresses, from the static store.
fn mappings() -> Value {
    json!({"static": {"mappings": [
        {"medium": "email", "address": "alice@example.org", "mxid": "@alice:example.org"},
        {"medium": "email", "address": "bob@example.org", "mxid": "@bob:example.org"},
        {"medium": "msisdn", "address": "447700900123", "mxid": "@carol:example.org"},
    ]}})
}

/// A v1 bulk lookup of `pairs` from `client` (sent as `X-Forwarded-For`; the tests trust
/// 127.0.0.1 as a proxy).
fn bulk_from(s: &TestServer, client: &str, pairs: &[(&str, String)]) -> Resp {
    let pairs: Vec<[&str; 2]> = pairs.iter().map(|(m, a)| [*m, a.as_str()]).collect();
    s.request(
        "POST",
        &format!("{V1}/bulk_lookup"),
        &[
            ("Content-Type", "application/json"),
            ("X-Forwarded-For", client),
        ],
        json!({ "threepids": pairs }).to_string().as_bytes(),
    )
}

/// `n` unbound email addresses.
fn addresses(n: usize) -> Vec<(&'static str, String)> {
    (0..n)
        .map(|i| ("email", format!("nobody{i}@example.org")))
        .collect()
}

/// A server that trusts 127.0.0.1 as a proxy, takes 100 addresses per lookup, and gives each
/// client 100 addresses at once and one more a second.
fn budgeted(extra: Value) -> TestServer {
    let mut config = json!({
        "server": {"trustedProxies": ["127.0.0.1/32"]},
        "lookup": {
            "maxAddresses": 100,
            "rateLimit": {"perClient": {"addressesPerSecond": 1, "burst": 100}},
        },
        "stores": mappings(),
    });
    crate::support::merge(&mut config, &extra);
    TestServer::start_with(config)
}

#[test]
fn duplicates_in_a_bulk_lookup_are_answered_once_in_request_order() {
    let s = TestServer::start_with(json!({"stores": mappings()}));
    let r = s.post_json(
        &format!("{V1}/bulk_lookup"),
        &json!({"threepids": [
            ["email", "bob@example.org"],
            ["email", "nobody@example.org"],
            ["msisdn", "447700900123"],
            ["email", "alice@example.org"],
            ["email", "bob@example.org"],
            // Another spelling of alice: looked up and answered as sent.
            ["email", "Alice@Example.org"],
            ["msisdn", "447700900123"],
            ["email", "alice@example.org"],
            ["email", "not an address"],
            ["fax", "alice@example.org"],
        ]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"threepids": [
            ["email", "bob@example.org", "@bob:example.org"],
            ["msisdn", "447700900123", "@carol:example.org"],
            ["email", "alice@example.org", "@alice:example.org"],
            ["email", "Alice@Example.org", "@alice:example.org"],
        ]})
    );
    // A full batch of the same few addresses over and over: each answered once.
    let many: Vec<[&str; 2]> = (0..9_000)
        .map(|i| match i % 4 {
            0 => ["email", "alice@example.org"],
            1 => ["email", "nobody@example.org"],
            2 => ["email", "bob@example.org"],
            _ => ["email", "ALICE@example.org"],
        })
        .collect();
    let r = s.post_json(&format!("{V1}/bulk_lookup"), &json!({ "threepids": many }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"threepids": [
            ["email", "alice@example.org", "@alice:example.org"],
            ["email", "bob@example.org", "@bob:example.org"],
            ["email", "ALICE@example.org", "@alice:example.org"],
        ]})
    );
}

#[test]
fn a_lookup_over_the_budget_is_refused_until_the_client_earned_it() {
    let s = budgeted(json!({}));
    let client = "203.0.113.1";
    // One over lookup.maxAddresses: 413, and it costs nothing.
    bulk_from(&s, client, &addresses(101)).assert_error(413, "M_TOO_LARGE");
    let mut full = addresses(99);
    full.push(("email", "alice@example.org".into()));
    let r = bulk_from(&s, client, &full);
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"threepids": [["email", "alice@example.org", "@alice:example.org"]]})
        )
    );
    // The whole burst is used: 50 more come back in 50 s, so they are refused now, and the
    // refusal counts nothing.
    let body = bulk_from(&s, client, &addresses(50)).assert_error(429, "M_LIMIT_EXCEEDED");
    let wait = body["retry_after_ms"].as_u64().unwrap();
    assert!((40_000..=50_000).contains(&wait), "{body}");
    // One address is earned in a second.
    std::thread::sleep(Duration::from_millis(1_100));
    let r = bulk_from(&s, client, &[("email", "bob@example.org".into())]);
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"threepids": [["email", "bob@example.org", "@bob:example.org"]]})
        )
    );
}

#[test]
fn single_and_bulk_lookups_share_a_budget_per_client() {
    let s = budgeted(json!({}));
    let (a, b) = ("203.0.113.1", "203.0.113.2");
    // 100 single lookups use a's whole burst.
    for _ in 0..100 {
        let r = s.request(
            "GET",
            &format!("{V1}/lookup?medium=email&address=alice%40example.org"),
            &[("X-Forwarded-For", a)],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["mxid"], "@alice:example.org");
    }
    bulk_from(&s, a, &addresses(50)).assert_error(429, "M_LIMIT_EXCEEDED");
    // Other clients have their own budget: b, and the proxy itself.
    assert_eq!(bulk_from(&s, b, &addresses(100)).status, 200);
    bulk_from(&s, b, &addresses(50)).assert_error(429, "M_LIMIT_EXCEEDED");
    let r = s.post_json(
        &format!("{V1}/bulk_lookup"),
        &json!({"threepids": [["email", "bob@example.org"]]}),
    );
    assert_eq!(
        r.json(),
        json!({"threepids": [["email", "bob@example.org", "@bob:example.org"]]})
    );
    // A client without a trusted proxy cannot pick its address.
    let untrusted = TestServer::start_with(json!({
        "lookup": {"maxAddresses": 100, "rateLimit": {"perClient": {"addressesPerSecond": 1, "burst": 100}}},
    }));
    assert_eq!(bulk_from(&untrusted, a, &addresses(100)).status, 200);
    bulk_from(&untrusted, b, &addresses(50)).assert_error(429, "M_LIMIT_EXCEEDED");
}

#[test]
fn authenticated_v2_lookups_count_against_the_same_budget() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({
        "server": {"trustedProxies": ["127.0.0.1/32"]},
        "lookup": {
            "maxAddresses": 100,
            "rateLimit": {"perClient": {"addressesPerSecond": 1, "burst": 100}},
        },
        "stores": mappings(),
    }));
    let token = register(&s, &hs, "u");
    let pepper = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json()["lookup_pepper"]
        .as_str()
        .unwrap()
        .to_string();
    let (name, value) = bearer(&token);
    let lookup = |client: &str, addresses: Vec<String>, pepper: &str| {
        s.request(
            "POST",
            &format!("{V2}/lookup"),
            &[
                ("Content-Type", "application/json"),
                (name, value.as_str()),
                ("X-Forwarded-For", client),
            ],
            json!({"algorithm": "sha256", "pepper": pepper, "addresses": addresses})
                .to_string()
                .as_bytes(),
        )
    };
    let hashes = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let address = if i == 0 {
                    "alice@example.org".to_string()
                } else {
                    format!("nobody{i}@example.org")
                };
                sha256_lookup_hash(&address, "email", &pepper)
            })
            .collect()
    };
    let client = "203.0.113.9";
    // A stale pepper is refused without counting.
    lookup(client, hashes(100), "stale").assert_error(400, "M_INVALID_PEPPER");
    let r = lookup(client, hashes(100), &pepper);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["mappings"][&hashes(1)[0]],
        json!("@alice:example.org")
    );
    lookup(client, hashes(50), &pepper).assert_error(429, "M_LIMIT_EXCEEDED");
    bulk_from(&s, client, &addresses(50)).assert_error(429, "M_LIMIT_EXCEEDED");
    assert_eq!(lookup("203.0.113.10", hashes(100), &pepper).status, 200);
}

#[test]
fn a_budget_of_zero_per_second_is_no_limit() {
    let s = budgeted(json!({"lookup": {"rateLimit": {"perClient": {"addressesPerSecond": 0}}}}));
    for _ in 0..5 {
        assert_eq!(bulk_from(&s, "203.0.113.1", &addresses(100)).status, 200);
    }
}
