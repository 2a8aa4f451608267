use std::time::Duration;

use serde_json::{Value, json};

use oxisd::crypto::base64;
use oxisd::crypto::signing::{KeyPair, sign_json, verify_json};

use crate::support::accounts::{post_authed, register, start_with_homeserver, user_on};
use crate::support::homeserver::FakeHomeserver;
use crate::support::sessions::{V1, V2, validate_email_via_log};
use crate::support::smtp::SmtpSink;
use crate::support::{Resp, TestServer, merge};

fn server_key(s: &TestServer) -> [u8; 32] {
    let key = s.get(&format!("{V2}/pubkey/ed25519:0")).json()["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    base64::decode(&key).unwrap().try_into().unwrap()
}

fn bind_v1(s: &TestServer, sid: &str, secret: &str, mxid: &str) -> Resp {
    s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": secret, "mxid": mxid}),
    )
}

#[test]
fn bind_answers_a_signed_association_that_v1_lookups_return() {
    let s = TestServer::start();
    let sid = validate_email_via_log(&s, "alice@example.org", "sec");
    let r = bind_v1(&s, &sid, "sec", "@alice:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    let assoc = r.json();
    assert_eq!(
        (
            assoc["address"].as_str(),
            assoc["medium"].as_str(),
            assoc["mxid"].as_str()
        ),
        (
            Some("alice@example.org"),
            Some("email"),
            Some("@alice:example.org")
        )
    );
    let ts = assoc["ts"].as_u64().unwrap();
    assert!(ts > 1_700_000_000_000, "milliseconds: {ts}");
    assert_eq!(assoc["not_before"].as_u64(), Some(ts));
    assert!(assoc["not_after"].as_u64().unwrap() > ts + 50 * 365 * 24 * 3600 * 1000);
    assert!(
        verify_json(&assoc, "id.test", "ed25519:0", &server_key(&s)).is_ok(),
        "signed by id.test with ed25519:0: {assoc}"
    );
    let found = s
        .get(&format!(
            "{V1}/lookup?medium=email&address=Alice%40Example.org"
        ))
        .json();
    assert_eq!(found["mxid"], "@alice:example.org");
    assert!(verify_json(&found, "id.test", "ed25519:0", &server_key(&s)).is_ok());
    assert_eq!(
        s.get(&format!(
            "{V1}/lookup?medium=email&address=nobody%40example.org"
        ))
        .json(),
        json!({})
    );
    let bulk = s.post_json(&format!("{V1}/bulk_lookup"), &json!({"threepids": [["email", "alice@example.org"], ["email", "bob@example.org"], ["email", "alice@example.org"], ["msisdn", "12345"]]}));
    assert_eq!(
        bulk.json(),
        json!({"threepids": [["email", "alice@example.org", "@alice:example.org"]]})
    );
}

#[test]
fn bind_errors() {
    let s = TestServer::start();
    bind_v1(&s, "nosuchsid", "sec", "@a:example.org").assert_error(404, "M_NO_VALID_SESSION");
    let r = crate::support::sessions::request_token(&s, V1, "bob@example.org", "sec", 1);
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    bind_v1(&s, &sid, "sec", "@bob:example.org").assert_error(400, "M_SESSION_NOT_VALIDATED");
    let sid = validate_email_via_log(&s, "carol@example.org", "sec");
    for bad in ["carol", "@carol", "@:example.org", "@ca rol:example.org"] {
        bind_v1(&s, &sid, "sec", bad).assert_error(400, "M_INVALID_PARAM");
    }
    s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": "sec"}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
}

#[test]
fn a_new_bind_replaces_the_old_one() {
    let s = TestServer::start();
    let sid = validate_email_via_log(&s, "dan@example.org", "s1");
    assert_eq!(bind_v1(&s, &sid, "s1", "@old:example.org").status, 200);
    let sid = validate_email_via_log(&s, "dan@example.org", "s2");
    assert_eq!(bind_v1(&s, &sid, "s2", "@new:example.org").status, 200);
    assert_eq!(
        s.get(&format!(
            "{V1}/lookup?medium=email&address=dan%40example.org"
        ))
        .json()["mxid"],
        "@new:example.org"
    );
}

#[test]
fn binds_can_be_limited_to_listed_homeservers_and_kept_out_of_the_store() {
    let s = TestServer::start_with(
        json!({"bind": {"allowedServers": ["example.org"], "store": false}}),
    );
    let sid = validate_email_via_log(&s, "eve@example.org", "sec");
    bind_v1(&s, &sid, "sec", "@eve:elsewhere.org").assert_error(403, "M_FORBIDDEN");
    assert_eq!(bind_v1(&s, &sid, "sec", "@eve:example.org").status, 200);
    // mxisd's behaviour: the association is signed but not kept.
    assert_eq!(
        s.get(&format!(
            "{V1}/lookup?medium=email&address=eve%40example.org"
        ))
        .json(),
        json!({})
    );
}

/// Two users of one homeserver find each other by hashed lookup after binding (v2 end to end).
#[test]
fn users_find_each_other_by_hashed_lookup() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    let alice = register(&s, &hs, "alice");
    let bob = register(&s, &hs, "bob");
    let r = post_authed(
        &s,
        &format!("{V2}/validate/email/requestToken"),
        &alice,
        &json!({"client_secret": "sec", "email": "alice@example.com", "send_attempt": 1}),
    );
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    s.wait_for_log("email to alice@example.com", Duration::from_secs(5))
        .unwrap();
    let logs = s.logs().join("\n");
    let link = logs
        .lines()
        .find(|l| l.starts_with("http") && l.contains(&sid))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(s.get(&link[link.find("/_matrix").unwrap()..]).status, 200);
    // Alice may only bind to herself: 403 M_UNAUTHORIZED, as sydent answers (and as
    // store-invite answers for another user's sender).
    post_authed(
        &s,
        &format!("{V2}/3pid/bind"),
        &alice,
        &json!({"sid": sid, "client_secret": "sec", "mxid": user_on(&hs, "bob")}),
    )
    .assert_error(403, "M_UNAUTHORIZED");
    let r = post_authed(
        &s,
        &format!("{V2}/3pid/bind"),
        &alice,
        &json!({"sid": sid, "client_secret": "sec", "mxid": user_on(&hs, "alice")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Bob asks, with the query-string token Synapse uses for hash_details.
    let details = s
        .get(&format!("{V2}/hash_details?access_token={bob}"))
        .json();
    let pepper = details["lookup_pepper"].as_str().unwrap().to_string();
    assert!(
        !pepper.is_empty() && pepper.chars().all(|c| c.is_ascii_alphanumeric()),
        "{pepper}"
    );
    assert_eq!(details["algorithms"], json!(["sha256", "none"]));
    let hash =
        oxisd::crypto::lookup_hash::sha256_lookup_hash("alice@example.com", "email", &pepper);
    let missing =
        oxisd::crypto::lookup_hash::sha256_lookup_hash("nobody@example.com", "email", &pepper);
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &bob,
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": [hash, missing, "not-a-hash"]}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"mappings": {hash.clone(): user_on(&hs, "alice")}})
        )
    );
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &bob,
        &json!({"algorithm": "none", "pepper": pepper, "addresses": ["alice@example.com email", "bad entry here", "x@y.z email"]}),
    );
    assert_eq!(
        r.json(),
        json!({"mappings": {"alice@example.com email": user_on(&hs, "alice")}})
    );
    // Errors.
    let body = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &bob,
        &json!({"algorithm": "sha256", "pepper": "wrong", "addresses": [hash]}),
    )
    .assert_error(400, "M_INVALID_PEPPER");
    assert_eq!(
        (body["algorithm"].as_str(), body["lookup_pepper"].as_str()),
        (Some("sha256"), Some(pepper.as_str()))
    );
    post_authed(
        &s,
        &format!("{V2}/lookup"),
        &bob,
        &json!({"algorithm": "md5", "pepper": pepper, "addresses": []}),
    )
    .assert_error(400, "M_INVALID_PARAM");
    post_authed(
        &s,
        &format!("{V2}/lookup"),
        &bob,
        &json!({"algorithm": "sha256", "pepper": pepper}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
    s.post_json(
        &format!("{V2}/lookup"),
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": []}),
    )
    .assert_error(401, "M_UNAUTHORIZED");
}

#[test]
fn lookups_are_limited_in_size_and_none_can_be_disabled() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({"lookup": {"maxAddresses": 2, "allowNone": false}}));
    let token = register(&s, &hs, "u");
    let details = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json();
    assert_eq!(details["algorithms"], json!(["sha256"]));
    let pepper = details["lookup_pepper"].as_str().unwrap();
    post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": ["a", "b", "c"]}),
    )
    .assert_error(413, "M_TOO_LARGE");
    post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "none", "pepper": pepper, "addresses": ["a@b.c email"]}),
    )
    .assert_error(400, "M_INVALID_PARAM");
    s.post_json(
        &format!("{V1}/bulk_lookup"),
        &json!({"threepids": [["email", "a@b.c"], ["email", "d@e.f"], ["email", "g@h.i"]]}),
    )
    .assert_error(413, "M_TOO_LARGE");
    s.post_json(
        &format!("{V1}/bulk_lookup"),
        &json!({"threepids": [["email"]]}),
    )
    .assert_error(400, "M_INVALID_PARAM");
}

#[test]
fn a_large_lookup_fits_through_the_body_limit() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({}));
    let token = register(&s, &hs, "big");
    let pepper = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json()["lookup_pepper"]
        .as_str()
        .unwrap()
        .to_string();
    let hashes: Vec<String> = (0..5000)
        .map(|n| {
            oxisd::crypto::lookup_hash::sha256_lookup_hash(
                &format!("u{n}@example.org"),
                "email",
                &pepper,
            )
        })
        .collect();
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": hashes}),
    );
    assert_eq!((r.status, r.json()), (200, json!({"mappings": {}})));
}

#[test]
fn the_pepper_rotates_and_old_peppers_are_refused() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(json!({"lookup": {"pepper": {"rotateEvery": 1}}}));
    let token = register(&s, &hs, "rot");
    let sid = validate_email_via_log(&s, "rot@example.org", "sec");
    assert_eq!(bind_v1(&s, &sid, "sec", "@rot:example.org").status, 200);
    let first = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json()["lookup_pepper"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        let p = s
            .get(&format!("{V2}/hash_details?access_token={token}"))
            .json()["lookup_pepper"]
            .as_str()
            .unwrap()
            .to_string();
        if p != first {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pepper never rotated"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let old = oxisd::crypto::lookup_hash::sha256_lookup_hash("rot@example.org", "email", &first);
    let body = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": first, "addresses": [old]}),
    );
    // The pepper may have rotated again in between; either way the old one is refused.
    let body = body.assert_error(400, "M_INVALID_PEPPER");
    let current = body["lookup_pepper"].as_str().unwrap().to_string();
    assert_ne!(current, first);
    let _ = second;
    let hash = oxisd::crypto::lookup_hash::sha256_lookup_hash("rot@example.org", "email", &current);
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": current, "addresses": [hash]}),
    );
    if r.status == 200 {
        assert_eq!(
            r.json()["mappings"][&hash],
            "@rot:example.org",
            "the new index holds the binding"
        );
    } else {
        r.assert_error(400, "M_INVALID_PEPPER");
    }
}

#[test]
fn static_mappings_are_found_by_plain_and_hashed_lookups() {
    let hs = FakeHomeserver::start();
    let s = start_with_homeserver(
        json!({"stores": {"static": {"mappings": [{"medium": "email", "address": "Boss@Example.org", "mxid": "@boss:example.org"}]}}}),
    );
    assert_eq!(
        s.get(&format!(
            "{V1}/lookup?medium=email&address=boss%40example.org"
        ))
        .json()["mxid"],
        "@boss:example.org"
    );
    let token = register(&s, &hs, "emp");
    let pepper = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json()["lookup_pepper"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = oxisd::crypto::lookup_hash::sha256_lookup_hash("boss@example.org", "email", &pepper);
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": [hash]}),
    );
    assert_eq!(r.json()["mappings"][&hash], "@boss:example.org");
    // Plain v2 lookups normalise as v1 does: any case finds the binding, keyed as sent.
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "none", "pepper": pepper, "addresses": ["Boss@Example.org email", "BOSS@example.ORG email", "boss@example.org email"]}),
    );
    assert_eq!(
        r.json()["mappings"],
        json!({
            "Boss@Example.org email": "@boss:example.org",
            "BOSS@example.ORG email": "@boss:example.org",
            "boss@example.org email": "@boss:example.org",
        })
    );
}

// ---- unbind ----

fn unbind_body(mxid: &str, address: &str) -> Value {
    json!({"mxid": mxid, "threepid": {"medium": "email", "address": address}})
}

/// A homeserver key, published by the fake homeserver as Synapse would.
pub(crate) fn publish_key(hs: &FakeHomeserver) -> KeyPair {
    let key = KeyPair::generate("ed25519:hs1").unwrap();
    let mut answer = json!({
        "server_name": hs.server_name(),
        "verify_keys": {"ed25519:hs1": {"key": key.public_key_base64()}},
        "old_verify_keys": {},
        "valid_until_ts": 4_102_444_800_000u64,
    });
    sign_json(&mut answer, &hs.server_name(), &key).unwrap();
    hs.respond("GET", "/_matrix/key/v2/server", 200, answer);
    key
}

pub(crate) fn x_matrix(
    origin: &str,
    key: &KeyPair,
    uri: &str,
    destination: &str,
    content: &Value,
) -> String {
    let mut signed = json!({"method": "POST", "uri": uri, "origin": origin, "destination_is": destination, "content": content});
    sign_json(&mut signed, origin, key).unwrap();
    let sig = signed["signatures"][origin][key.id()]
        .as_str()
        .unwrap()
        .to_string();
    format!(
        "X-Matrix origin=\"{origin}\",key=\"{}\",sig=\"{sig}\",destination=\"{destination}\"",
        key.id()
    )
}

fn bound(s: &TestServer, address: &str) -> bool {
    s.get(&format!(
        "{V1}/lookup?medium=email&address={}",
        address.replace('@', "%40")
    ))
    .json()
    .get("mxid")
    .is_some()
}

#[test]
fn unbind_with_the_validated_session() {
    let s = TestServer::start();
    let sid = validate_email_via_log(&s, "fay@example.org", "sec");
    assert_eq!(bind_v1(&s, &sid, "sec", "@fay:example.org").status, 200);
    let mut body = unbind_body("@fay:example.org", "Fay@Example.org");
    merge(&mut body, &json!({"sid": sid, "client_secret": "sec"}));
    let r = s.post_json(&format!("{V2}/3pid/unbind"), &body);
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert!(!bound(&s, "fay@example.org"));
    // Unbinding what is not bound is fine.
    assert_eq!(s.post_json(&format!("{V2}/3pid/unbind"), &body).status, 200);
    // A session for another address is no proof.
    let other = validate_email_via_log(&s, "gus@example.org", "sec");
    let mut body = unbind_body("@fay:example.org", "fay@example.org");
    merge(&mut body, &json!({"sid": other, "client_secret": "sec"}));
    s.post_json(&format!("{V2}/3pid/unbind"), &body)
        .assert_error(403, "M_FORBIDDEN");
}

#[test]
fn unbind_signed_by_the_users_homeserver() {
    let hs = FakeHomeserver::start();
    let key = publish_key(&hs);
    let s = start_with_homeserver(json!({}));
    let mxid = user_on(&hs, "hal");
    let sid = validate_email_via_log(&s, "hal@example.org", "sec");
    assert_eq!(bind_v1(&s, &sid, "sec", &mxid).status, 200);
    let body = unbind_body(&mxid, "hal@example.org");
    let uri = "/_matrix/identity/v2/3pid/unbind";
    // A bad signature (signed over another body) is refused.
    let forged = x_matrix(
        &hs.server_name(),
        &key,
        uri,
        "id.test",
        &unbind_body(&mxid, "other@example.org"),
    );
    s.request(
        "POST",
        uri,
        &[
            ("Authorization", &forged),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .assert_error(403, "M_FORBIDDEN");
    // Signed for another identity server.
    let elsewhere = x_matrix(&hs.server_name(), &key, uri, "vector.im", &body);
    s.request(
        "POST",
        uri,
        &[("Authorization", &elsewhere)],
        body.to_string().as_bytes(),
    )
    .assert_error(403, "M_FORBIDDEN");
    // The right signature from the wrong origin: a homeserver speaks only for its own users.
    let other_user = unbind_body("@hal:matrix.org", "hal@example.org");
    let wrong_origin = x_matrix(&hs.server_name(), &key, uri, "id.test", &other_user);
    s.request(
        "POST",
        uri,
        &[("Authorization", &wrong_origin)],
        other_user.to_string().as_bytes(),
    )
    .assert_error(403, "M_FORBIDDEN");
    // A key id the homeserver does not publish: a bad signature (403), not a gateway error.
    let unknown = KeyPair::generate("ed25519:nope").unwrap();
    let unknown = x_matrix(&hs.server_name(), &unknown, uri, "id.test", &body);
    s.request(
        "POST",
        uri,
        &[("Authorization", &unknown)],
        body.to_string().as_bytes(),
    )
    .assert_error(403, "M_FORBIDDEN");
    // The scheme needs a space after it.
    let glued = x_matrix(&hs.server_name(), &key, uri, "id.test", &body).replacen(
        "X-Matrix ",
        "X-Matrix",
        1,
    );
    s.request(
        "POST",
        uri,
        &[("Authorization", &glued)],
        body.to_string().as_bytes(),
    )
    .assert_error(403, "M_FORBIDDEN");
    assert!(bound(&s, "hal@example.org"));
    // The scheme is case-insensitive (RFC 9110, 11.1).
    let good = x_matrix(&hs.server_name(), &key, uri, "id.test", &body)
        .replacen("X-Matrix", "X-MATRIX", 1);
    let r = s.request(
        "POST",
        uri,
        &[
            ("Authorization", &good),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!((r.status, r.json()), (200, json!({})), "{}", r.text());
    assert!(!bound(&s, "hal@example.org"));
    assert!(
        hs.requests()
            .iter()
            .any(|r| r.path == "/_matrix/key/v2/server")
    );
}

#[test]
fn a_forged_unbind_warns_the_owner_once() {
    let sink = SmtpSink::start();
    let s = crate::support::sessions::start(&sink, json!({}));
    // Bind through SMTP-delivered validation.
    let sid =
        crate::support::sessions::request_token(&s, V1, "ivy@example.org", "sec", 1).json()["sid"]
            .as_str()
            .unwrap()
            .to_string();
    let link =
        crate::support::sessions::link_in(&sink.wait_for_mails(1, Duration::from_secs(5))[0]);
    assert_eq!(s.get(&crate::support::sessions::path_of(&link)).status, 200);
    assert_eq!(bind_v1(&s, &sid, "sec", "@ivy:example.org").status, 200);
    let body = unbind_body("@ivy:example.org", "ivy@example.org");
    for _ in 0..2 {
        s.post_json(&format!("{V2}/3pid/unbind"), &body)
            .assert_error(403, "M_FORBIDDEN");
    }
    let mails = sink.wait_for_mails(2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let mails = if mails.len() < sink.mails().len() {
        sink.mails()
    } else {
        mails
    };
    assert_eq!(
        mails.len(),
        2,
        "one validation mail and exactly one warning"
    );
    assert_eq!(mails[1].to, vec!["ivy@example.org".to_string()]);
    assert!(mails[1].data.contains("unlink"), "{}", mails[1].data);
    assert!(bound(&s, "ivy@example.org"), "nothing changed");
    // Not bound: refused, but nobody to warn.
    s.post_json(
        &format!("{V2}/3pid/unbind"),
        &unbind_body("@x:example.org", "stranger@example.org"),
    )
    .assert_error(403, "M_FORBIDDEN");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.mails().len(), 2);
}

#[test]
fn warnings_can_be_switched_off() {
    let sink = SmtpSink::start();
    let s = crate::support::sessions::start(
        &sink,
        json!({"session": {"policy": {"unbind": {"fraudulent": {"sendWarning": false}}}}}),
    );
    let sid =
        crate::support::sessions::request_token(&s, V1, "jo@example.org", "sec", 1).json()["sid"]
            .as_str()
            .unwrap()
            .to_string();
    let link =
        crate::support::sessions::link_in(&sink.wait_for_mails(1, Duration::from_secs(5))[0]);
    s.get(&crate::support::sessions::path_of(&link));
    assert_eq!(bind_v1(&s, &sid, "sec", "@jo:example.org").status, 200);
    s.post_json(
        &format!("{V2}/3pid/unbind"),
        &unbind_body("@jo:example.org", "jo@example.org"),
    )
    .assert_error(403, "M_FORBIDDEN");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.mails().len(), 1);
}
