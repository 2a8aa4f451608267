//! The `rest` identity store (oxisd::service::stores::rest) against the REST backend stand-in:
//! single and bulk lookups, id types, and backends that are down, failing, slow or answer
//! nonsense.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::TempDir;
use crate::support::rest_backend::RestBackend;
use oxisd::config::RestStoreConfig;
use oxisd::service::stores::IdentityStore;
use oxisd::service::stores::rest::{BULK_CHUNK, BULK_PATH, RestStore, SINGLE_PATH};
use oxisd::store::Store;
use oxisd::store::bindings::BindingRecord;
use oxisd::threepid::Medium;
use oxisd::util::time::now_ms;
use serde_json::json;

const DOMAIN: &str = "example.org";

fn rest_store(url: &str, timeout: u64) -> RestStore {
    let config = RestStoreConfig {
        enabled: true,
        url: url.into(),
        timeout,
    };
    RestStore::new(&config, DOMAIN).unwrap()
}

fn threepids(list: &[(&str, &str)]) -> Vec<(Medium, String)> {
    list.iter()
        .map(|(m, a)| (Medium::parse(m).unwrap(), a.to_string()))
        .collect()
}

/// Asserts a record's 3PID, user and validity window (made in the last 10 s).
fn assert_record(r: &BindingRecord, medium: &str, address: &str, mxid: &str) {
    assert_eq!((r.medium.as_str(), r.address.as_str()), (medium, address));
    assert_eq!(r.mxid, mxid);
    let now = now_ms();
    assert!(r.ts <= now && r.ts + 10_000 > now, "{r:?}");
    assert_eq!(r.not_before, r.ts - 60_000);
    assert_eq!(r.not_after, r.ts + 5 * 60_000);
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn single_lookup_finds_each_id_type() {
    let backend = RestBackend::start();
    backend.add("email", "alice@example.org", "mxid", "@alice:other.test");
    backend.add("email", "bob@example.org", "localpart", "bob");
    backend.add("msisdn", "447700900123", "uid", "carol");
    let store = rest_store(&format!("{}/", backend.base_url()), 5);

    let r = store.find(Medium::Email, "alice@example.org").unwrap();
    assert_record(&r, "email", "alice@example.org", "@alice:other.test");
    let r = store.find(Medium::Email, "bob@example.org").unwrap();
    assert_record(&r, "email", "bob@example.org", "@bob:example.org");
    let r = store.find(Medium::Msisdn, "447700900123").unwrap();
    assert_record(&r, "msisdn", "447700900123", "@carol:example.org");

    let requests = backend.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].0, SINGLE_PATH);
    assert_eq!(
        requests[0].1,
        json!({ "lookup": { "medium": "email", "address": "alice@example.org" } })
    );
    assert_eq!(
        requests[2].1,
        json!({ "lookup": { "medium": "msisdn", "address": "447700900123" } })
    );
}

#[test]
fn single_lookup_of_an_unknown_threepid_is_none() {
    let backend = RestBackend::start();
    backend.add("email", "alice@example.org", "localpart", "alice");
    let store = rest_store(&backend.base_url(), 5);
    assert_eq!(store.find(Medium::Email, "nobody@example.org"), None);
    assert_eq!(store.find(Medium::Msisdn, "alice@example.org"), None);
    assert_eq!(backend.requests().len(), 2);
}

#[test]
fn bulk_lookup_keeps_the_order_and_matches_emails_without_case() {
    let backend = RestBackend::start();
    backend.add("email", "Alice@Example.ORG", "localpart", "alice");
    backend.add("msisdn", "447700900123", "mxid", "@bob:hs.test");
    backend.add("email", "carol@example.org", "uid", "carol");
    let store = rest_store(&backend.base_url(), 5);
    let asked = threepids(&[
        ("email", "nobody@example.org"),
        ("email", "alice@example.org"),
        ("msisdn", "447700900999"),
        ("msisdn", "447700900123"),
        ("email", "carol@example.org"),
        ("email", "447700900123"),
    ]);
    let found = store.find_many(&asked);
    assert_eq!(found.len(), asked.len());
    assert_eq!(found[0], None);
    assert_record(
        found[1].as_ref().unwrap(),
        "email",
        "alice@example.org",
        "@alice:example.org",
    );
    assert_eq!(found[2], None);
    assert_record(
        found[3].as_ref().unwrap(),
        "msisdn",
        "447700900123",
        "@bob:hs.test",
    );
    assert_record(
        found[4].as_ref().unwrap(),
        "email",
        "carol@example.org",
        "@carol:example.org",
    );
    assert_eq!(found[5], None);

    let requests = backend.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, BULK_PATH);
    let items: Vec<_> = asked
        .iter()
        .map(|(m, a)| json!({ "medium": m, "address": a }))
        .collect();
    assert_eq!(requests[0].1, json!({ "lookup": items }));
}

#[test]
fn large_bulk_lookups_go_in_chunks() {
    let backend = RestBackend::start();
    let n = BULK_CHUNK * 2 + 7;
    let asked: Vec<(Medium, String)> = (0..n)
        .map(|i| (Medium::Email, format!("user{i}@example.org")))
        .collect();
    for i in (0..n).step_by(3) {
        backend.add(
            "email",
            &format!("user{i}@example.org"),
            "localpart",
            &format!("u{i}"),
        );
    }
    let store = rest_store(&backend.base_url(), 5);
    let found = store.find_many(&asked);
    assert_eq!(found.len(), n);
    for (i, r) in found.iter().enumerate() {
        match r {
            Some(r) if i % 3 == 0 => {
                assert_eq!(r.address, format!("user{i}@example.org"));
                assert_eq!(r.mxid, format!("@u{i}:example.org"));
            }
            None if i % 3 != 0 => {}
            other => panic!("{i}: {other:?}"),
        }
    }
    let sizes: Vec<usize> = backend
        .requests()
        .iter()
        .map(|(_, body)| body["lookup"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [BULK_CHUNK, BULK_CHUNK, 7]);
}

#[test]
fn empty_bulk_lookup_asks_nothing() {
    let backend = RestBackend::start();
    let store = rest_store(&backend.base_url(), 5);
    assert!(store.find_many(&[]).is_empty());
    assert!(backend.requests().is_empty());
}

#[test]
fn backend_down_finds_nothing() {
    let store = rest_store(&dead_url(), 5);
    let started = Instant::now();
    assert_eq!(store.find(Medium::Email, "alice@example.org"), None);
    let asked = threepids(&[("email", "a@example.org"), ("msisdn", "1234")]);
    assert_eq!(store.find_many(&asked), vec![None, None]);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn backend_failing_finds_nothing_then_recovers() {
    let backend = RestBackend::start();
    backend.add("email", "alice@example.org", "localpart", "alice");
    let store = rest_store(&backend.base_url(), 5);
    backend.set_failing(true);
    assert_eq!(store.find(Medium::Email, "alice@example.org"), None);
    let asked: Vec<(Medium, String)> = (0..BULK_CHUNK * 3)
        .map(|i| (Medium::Email, format!("user{i}@example.org")))
        .collect();
    assert!(store.find_many(&asked).iter().all(Option::is_none));
    // A failed chunk stops the bulk lookup: one single and one bulk request.
    assert_eq!(backend.requests().len(), 2);

    backend.set_failing(false);
    assert!(store.find(Medium::Email, "alice@example.org").is_some());
    let asked = threepids(&[("email", "x@example.org"), ("email", "alice@example.org")]);
    assert!(store.find_many(&asked)[1].is_some());
}

#[test]
fn other_statuses_find_nothing() {
    let backend = RestBackend::start();
    let store = rest_store(&backend.base_url(), 5);
    let asked = threepids(&[("email", "alice@example.org")]);
    let good = r#"{"lookup":{"medium":"email","address":"alice@example.org","id":{"type":"localpart","value":"alice"}}}"#;
    for status in [201, 302, 404, 400, 503] {
        backend.set_raw_answer(Some((status, good)));
        let found = store.find(Medium::Email, "alice@example.org");
        assert_eq!(found.is_some(), status == 201, "HTTP {status}");
        assert_eq!(store.find_many(&asked), vec![None], "HTTP {status}");
    }
}

#[test]
fn malformed_single_answers_find_nothing() {
    let backend = RestBackend::start();
    let store = rest_store(&backend.base_url(), 5);
    let huge = format!(
        r#"{{"lookup":{{"id":{{"type":"localpart","value":"alice"}},"pad":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    let answers = [
        "",
        "not json",
        "<html>oops</html>",
        "null",
        "[]",
        "42",
        r#"{"lookup":"alice"}"#,
        r#"{"lookup":[{"id":{"type":"localpart","value":"alice"}}]}"#,
        r#"{"lookup":{"medium":"email","address":"alice@example.org"}}"#,
        r#"{"lookup":{"id":"@alice:example.org"}}"#,
        r#"{"lookup":{"id":{"type":"mxid"}}}"#,
        r#"{"lookup":{"id":{"type":"mxid","value":42}}}"#,
        r#"{"lookup":{"id":{"type":"mxid","value":"alice"}}}"#,
        r#"{"lookup":{"id":{"type":"mxid","value":"@alice"}}}"#,
        r#"{"lookup":{"id":{"type":"localpart","value":""}}}"#,
        r#"{"lookup":{"id":{"type":"localpart","value":"a:b"}}}"#,
        r#"{"lookup":{"id":{"type":"email","value":"alice@example.org"}}}"#,
        r#"{"lookup":{"id":{"type":"localpart","value":"alice"}}"#,
        huge.as_str(),
    ];
    for answer in answers {
        backend.set_raw_answer(Some((200, answer)));
        assert_eq!(
            store.find(Medium::Email, "alice@example.org"),
            None,
            "{}",
            &answer[..answer.len().min(100)]
        );
    }
    // The same answer within the size limit is fine.
    backend.set_raw_answer(Some((
        200,
        r#"{"lookup":{"id":{"type":"localpart","value":"alice"},"pad":"x"}}"#,
    )));
    let r = store.find(Medium::Email, "alice@example.org").unwrap();
    assert_eq!(r.mxid, "@alice:example.org");
}

#[test]
fn malformed_bulk_answers_find_nothing() {
    let backend = RestBackend::start();
    let store = rest_store(&backend.base_url(), 5);
    let asked = threepids(&[("email", "alice@example.org"), ("msisdn", "1234")]);
    for answer in [
        "",
        "not json",
        "[]",
        "null",
        "{}",
        r#"{"lookup":null}"#,
        r#"{"lookup":{}}"#,
        r#"{"lookup":"x"}"#,
        r#"{"lookup":[1,"x",null,{}]}"#,
        r#"{"lookup":[{"medium":"email","id":{"type":"localpart","value":"a"}}]}"#,
        r#"{"lookup":[{"medium":"email","address":"alice@example.org"}]}"#,
        r#"{"lookup":[{"medium":"email","address":"alice@example.org","id":{"type":"mxid","value":"a"}}]}"#,
        r#"{"lookup":[{"medium":"email","address":"bob@example.org","id":{"type":"uid","value":"bob"}}]}"#,
    ] {
        backend.set_raw_answer(Some((200, answer)));
        assert_eq!(store.find_many(&asked), vec![None, None], "{answer}");
    }
    // Unusable entries are skipped; the usable ones still count.
    backend.set_raw_answer(Some((
        200,
        r#"{"lookup":[
            {"medium":"email","address":"alice@example.org","id":{"type":"mxid","value":"nope"}},
            42,
            {"medium":"msisdn","address":"1234","id":{"type":"localpart","value":"dave"}},
            {"medium":"msisdn","address":"1234","id":{"type":"localpart","value":"eve"}}
        ]}"#,
    )));
    let found = store.find_many(&asked);
    assert_eq!(found[0], None);
    assert_eq!(found[1].as_ref().unwrap().mxid, "@dave:example.org");
}

#[test]
fn slow_backend_times_out() {
    let backend = RestBackend::start();
    backend.add("email", "alice@example.org", "localpart", "alice");
    backend.set_delay(Duration::from_millis(2500));
    let store = rest_store(&backend.base_url(), 1);
    let started = Instant::now();
    assert_eq!(store.find(Medium::Email, "alice@example.org"), None);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2400),
        "{elapsed:?}"
    );
}

#[test]
fn works_as_an_identity_store() {
    let backend = RestBackend::start();
    backend.add("email", "alice@example.org", "localpart", "alice");
    let rest = rest_store(&backend.base_url(), 5);
    let dir = TempDir::new("rest-store");
    let store = Store::open(dir.path()).unwrap();
    let dynamic: &dyn IdentityStore = &rest;
    assert_eq!(dynamic.name(), "rest");
    assert!(!dynamic.is_local());
    let r = dynamic
        .lookup(&store, Medium::Email, "alice@example.org")
        .unwrap();
    assert_eq!(r.unwrap().mxid, "@alice:example.org");
    assert_eq!(
        dynamic
            .lookup(&store, Medium::Email, "bob@example.org")
            .unwrap(),
        None
    );
    let asked = threepids(&[("email", "bob@example.org"), ("email", "alice@example.org")]);
    let found = dynamic.bulk_lookup(&store, &asked).unwrap();
    assert_eq!(found[0], None);
    assert_eq!(found[1].as_ref().unwrap().mxid, "@alice:example.org");
    backend.set_failing(true);
    assert_eq!(
        dynamic
            .lookup(&store, Medium::Email, "alice@example.org")
            .unwrap(),
        None
    );
    assert_eq!(
        dynamic.bulk_lookup(&store, &asked).unwrap(),
        vec![None, None]
    );
}

#[test]
fn new_refuses_bad_settings() {
    let config = |url: &str, timeout: u64| RestStoreConfig {
        enabled: true,
        url: url.into(),
        timeout,
    };
    for (url, timeout) in [
        ("", 5),
        ("backend:8090", 5),
        ("ftp://backend", 5),
        ("http://back end", 5),
        ("http://backend?x=1", 5),
        ("http://backend", 0),
    ] {
        assert!(
            RestStore::new(&config(url, timeout), DOMAIN).is_err(),
            "{url}"
        );
    }
    assert!(RestStore::new(&config("http://backend", 5), "").is_err());
    assert!(RestStore::new(&config("https://backend:8090/prefix/", 5), DOMAIN).is_ok());
}
