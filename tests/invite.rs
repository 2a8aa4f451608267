//! 3PID invites: store-invite (v1 and v2), the invite email, ephemeral keys, sign-ed25519, and
//! the delivery of claimed invites to the invitee's homeserver (onbind) with its outbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use oxisd::crypto::signing::{KeyPair, verify_bytes, verify_json};
use oxisd::crypto::{base64, canonical_json};

use crate::support::accounts::{bearer, outbound_to_loopback, post_authed, register, user_on};
use crate::support::homeserver::{FakeHomeserver, RecordedRequest};
use crate::support::sessions::{V1, V2, WAIT, link_in, path_of, query_param, request_token};
use crate::support::smtp::{ReceivedMail, SmtpSink};
use crate::support::{Resp, TempDir, TestServer, merge};

const PUBLIC_URL: &str = "https://id.example.test";
const REGISTER_URL: &str = "https://app.example.test/register";
const ONBIND: &str = "/_matrix/federation/v1/3pid/onbind";
/// How long an asynchronous onbind may take to arrive.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Mail through `sink`, loopback homeservers reachable, a known public URL and register URL,
/// quick onbind retries; `extra` merged in last.
fn config(sink: &SmtpSink, extra: Value) -> Value {
    let mut c = crate::support::sessions::smtp_config(sink);
    merge(&mut c, &outbound_to_loopback());
    merge(
        &mut c,
        &json!({
            "server": {"publicUrl": PUBLIC_URL},
            // Most tests call the unauthenticated v1 store-invite, which is off by default.
            "invite": {"registerUrl": REGISTER_URL, "v1StoreInvite": true, "delivery": {"initialBackoff": 1, "maxBackoff": 2}},
        }),
    );
    merge(&mut c, &extra);
    c
}

fn start(sink: &SmtpSink, extra: Value) -> TestServer {
    TestServer::start_with(config(sink, extra))
}

/// The minimal store-invite body.
fn invite_body(address: &str, room_id: &str, sender: &str) -> Value {
    json!({"medium": "email", "address": address, "room_id": room_id, "sender": sender})
}

/// `invite_body` with more fields merged in.
fn invite_body_with(address: &str, room_id: &str, sender: &str, extra: Value) -> Value {
    let mut body = invite_body(address, room_id, sender);
    merge(&mut body, &extra);
    body
}

/// `POST /_matrix/identity/api/v1/store-invite` (no authentication).
fn store_invite(s: &TestServer, body: &Value) -> Resp {
    s.post_json(&format!("{V1}/store-invite"), body)
}

/// `POST /_matrix/identity/v2/store-invite` with a Bearer token.
fn store_invite_v2(s: &TestServer, token: &str, body: &Value) -> Resp {
    post_authed(s, &format!("{V2}/store-invite"), token, body)
}

/// A v1 store-invite that must succeed; returns its JSON.
fn invite_ok(s: &TestServer, body: &Value) -> Value {
    let r = store_invite(s, body);
    assert_eq!(r.status, 200, "store-invite {body}: {}", r.text());
    r.json()
}

fn token_of(invite: &Value) -> String {
    invite["token"].as_str().expect("token").to_string()
}

/// The ephemeral public key of a store-invite answer (`public_keys[1]`), as sent.
fn ephemeral_of(invite: &Value) -> String {
    invite["public_keys"][1]["public_key"]
        .as_str()
        .expect("public_keys[1].public_key")
        .to_string()
}

fn key_bytes(b64: &str) -> [u8; 32] {
    base64::decode(b64)
        .unwrap_or_else(|| panic!("not base64: {b64}"))
        .try_into()
        .unwrap_or_else(|_| panic!("not 32 bytes: {b64}"))
}

/// Our long-term key as published at `/pubkey/ed25519:0`.
fn long_term_key_b64(s: &TestServer) -> String {
    s.get(&format!("{V2}/pubkey/ed25519:0")).json()["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `GET <mount>/pubkey/ephemeral/isvalid?public_key=<key>` (the key percent-encoded).
fn ephemeral_valid(s: &TestServer, mount: &str, key: &str) -> bool {
    let q = key.replace('+', "%2B").replace('/', "%2F");
    let r = s.get(&format!("{mount}/pubkey/ephemeral/isvalid?public_key={q}"));
    assert_eq!(r.status, 200, "ephemeral isvalid: {}", r.text());
    r.json()["valid"].as_bool().expect("valid: bool")
}

/// Polls until the ephemeral key is reported invalid; false if it still is valid at `timeout`.
fn becomes_invalid(s: &TestServer, key: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !ephemeral_valid(s, V2, key) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST /_matrix/identity/api/v1/sign-ed25519` (no authentication).
fn sign(s: &TestServer, mxid: &str, token: &str, private_key: &str) -> Resp {
    s.post_json(
        &format!("{V1}/sign-ed25519"),
        &json!({"mxid": mxid, "token": token, "private_key": private_key}),
    )
}

/// Waits for the first mail that `pred` accepts.
fn wait_mail(sink: &SmtpSink, what: &str, pred: impl Fn(&ReceivedMail) -> bool) -> ReceivedMail {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = sink.mails().into_iter().find(|m| pred(m)) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no {what}; mails so far:\n{:#?}",
            sink.mails()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The invite email carrying `token`.
fn invite_mail(sink: &SmtpSink, token: &str) -> ReceivedMail {
    wait_mail(sink, &format!("invite mail with token {token}"), |m| {
        m.data.contains(token)
    })
}

/// The unfolded value of the top-level header `name`.
fn header(mail: &ReceivedMail, name: &str) -> String {
    let (head, _) = mail.data.split_once("\r\n\r\n").expect("header end");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if line.to_ascii_lowercase().starts_with(&prefix) {
            let mut value = line[prefix.len()..].trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return value;
        }
    }
    panic!("no {name} header in:\n{head}");
}

/// The body of the MIME part with this content type (`text/plain`, `text/html`), or the whole
/// body of a single-part message of that type.
fn mime_part(mail: &ReceivedMail, content_type: &str) -> String {
    let data = &mail.data;
    // ASCII lower-casing keeps byte offsets, so indexes found in `lower` hold in `data`.
    let lower = data.to_ascii_lowercase();
    let boundary = lower.find("boundary=").map(|i| {
        let rest = &data[i + "boundary=".len()..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        rest[..rest.find(['"', ';', '\r']).unwrap()].to_string()
    });
    let at = lower
        .find(&format!("content-type: {content_type}"))
        .unwrap_or_else(|| panic!("no {content_type} part in:\n{data}"));
    let start = at + data[at..].find("\r\n\r\n").expect("part body") + 4;
    let rest = &data[start..];
    let end = boundary
        .and_then(|b| rest.find(&format!("\r\n--{b}")))
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The ephemeral private key from the built-in invite mail's link (`private_key=` in the
/// text/plain part), URL-decoded.
fn private_key_in(mail: &ReceivedMail) -> String {
    let sign_url = sign_url_in(mail);
    let (_, query) = sign_url.split_once('?').expect("a query in the sign URL");
    oxisd::http::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "private_key")
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no private_key in the sign URL {sign_url}"))
}

/// The web client's room link in the plain-text part of an invite mail.
fn room_link_in(mail: &ReceivedMail) -> String {
    let text = mime_part(mail, "text/plain");
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/#/room/"))
        .unwrap_or_else(|| panic!("no room link in the invite mail:\n{text}"))
        .to_string()
}

/// A query parameter of the room link, decoded.
fn room_link_param(link: &str, name: &str) -> Option<String> {
    let (_, query) = link.split_once('?')?;
    oxisd::http::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The sign URL the room link carries (`signurl`), decoded.
fn sign_url_in(mail: &ReceivedMail) -> String {
    let link = room_link_in(mail);
    room_link_param(&link, "signurl").unwrap_or_else(|| panic!("no signurl in {link}"))
}

/// Requests a token for `email` through the sink, opens the link, returns the sid.
fn validate_email(s: &TestServer, sink: &SmtpSink, email: &str, secret: &str) -> String {
    let r = request_token(s, V1, email, secret, 1);
    assert_eq!(r.status, 200, "requestToken: {}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let mail = wait_mail(sink, &format!("validation mail for {email}"), |m| {
        m.data.contains("/submitToken?") && query_param(&link_in(m), "sid") == sid
    });
    let page = s.get(&path_of(&link_in(&mail)));
    assert_eq!(page.status, 200, "validation link: {}", page.text());
    sid
}

fn bind(s: &TestServer, sid: &str, secret: &str, mxid: &str) -> Resp {
    s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": secret, "mxid": mxid}),
    )
}

/// Validates `email` and binds it to `mxid`.
fn validate_and_bind(s: &TestServer, sink: &SmtpSink, email: &str, mxid: &str) {
    let secret = "bindsecret";
    let sid = validate_email(s, sink, email, secret);
    let r = bind(s, &sid, secret, mxid);
    assert_eq!(r.status, 200, "bind: {}", r.text());
}

/// Checks that `signed` is `{mxid, token, signatures}` signed by `id.test` with `ed25519:0`
/// over the canonical JSON of `{mxid, token}`, with `key`.
fn assert_signed_by(signed: &Value, key: &[u8; 32]) {
    let mut keys: Vec<&str> = signed
        .as_object()
        .expect("signed is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["mxid", "signatures", "token"], "{signed}");
    let message =
        canonical_json::encode(&json!({"mxid": signed["mxid"], "token": signed["token"]})).unwrap();
    let sig = signed["signatures"]["id.test"]["ed25519:0"]
        .as_str()
        .unwrap_or_else(|| panic!("no id.test ed25519:0 signature: {signed}"));
    assert!(
        verify_bytes(key, message.as_bytes(), sig),
        "signature does not verify: {signed}"
    );
}

/// The onbind requests received so far.
fn onbinds(hs: &FakeHomeserver) -> Vec<RecordedRequest> {
    hs.requests()
        .into_iter()
        .filter(|r| r.path_only() == ONBIND)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// store-invite
// ---------------------------------------------------------------------------------------------

/// The answer has the token, both keys with their validity URLs, the legacy `public_key` and a
/// redacted display name; the ephemeral key is valid in either alphabet on both mounts.
#[test]
fn store_invite_answers_a_token_both_keys_and_a_redacted_name() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let r = invite_ok(
        &s,
        &invite_body(
            "carol.longname@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    );
    let token = token_of(&r);
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()),
        "token: {token}"
    );
    let long_term = long_term_key_b64(&s);
    assert_eq!(r["public_key"], long_term.as_str(), "{r}");
    let keys = r["public_keys"].as_array().expect("public_keys array");
    assert_eq!(keys.len(), 2, "{r}");
    assert_eq!(
        keys[0],
        json!({"public_key": long_term, "key_validity_url": format!("{PUBLIC_URL}/_matrix/identity/v2/pubkey/isvalid")})
    );
    assert_eq!(
        keys[1]["key_validity_url"],
        format!("{PUBLIC_URL}/_matrix/identity/v2/pubkey/ephemeral/isvalid")
    );
    let ephemeral = ephemeral_of(&r);
    assert_eq!(
        ephemeral.len(),
        43,
        "unpadded base64 of 32 bytes: {ephemeral}"
    );
    assert!(
        ephemeral
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "URL-safe alphabet: {ephemeral}"
    );
    assert_ne!(ephemeral, long_term);
    assert_eq!(r["display_name"], "car...@exa...");

    let standard = ephemeral.replace('-', "+").replace('_', "/");
    for mount in [V1, V2] {
        assert!(ephemeral_valid(&s, mount, &ephemeral), "{mount} URL-safe");
        assert!(ephemeral_valid(&s, mount, &standard), "{mount} standard");
        let random = base64::encode_url(&[7u8; 32]);
        assert!(!ephemeral_valid(&s, mount, &random), "{mount} random key");
    }
    // Each invite gets its own token and ephemeral key.
    let other = invite_ok(
        &s,
        &invite_body(
            "dave@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    );
    assert_ne!(token_of(&other), token);
    assert_ne!(ephemeral_of(&other), ephemeral);
}

/// The redaction rule, per part: longer than N → first N chars + "..."; otherwise length > 1 →
/// first len/4 chars + "..."; otherwise "...".
#[test]
fn display_names_are_redacted_per_part() {
    let sink = SmtpSink::start();
    let cases_default = [
        ("carol.longname@example.test", "car...@exa..."),
        ("bo@x.io", "...@x.i..."),
        ("a@b.cd", "...@b.c..."),
        ("abc@ex.org", "...@ex...."),
    ];
    let cases_local5 = [
        ("carol.longname@example.test", "carol...@exa..."),
        ("abcd@example.test", "a...@exa..."),
        ("abcde@example.test", "a...@exa..."),
        ("abcdef@example.test", "abcde...@exa..."),
    ];
    for (extra, cases) in [
        (json!({}), &cases_default[..]),
        (
            json!({"invite": {"displayName": {"localPart": 5}}}),
            &cases_local5[..],
        ),
    ] {
        let s = start(&sink, extra.clone());
        for (n, (address, expected)) in cases.iter().enumerate() {
            let sender = format!("@s{n}:server{n}.example");
            let r = invite_ok(&s, &invite_body(address, "!room:example.org", &sender));
            assert_eq!(r["display_name"], *expected, "{address} with {extra}");
        }
    }
}

#[test]
fn store_invite_rejects_bad_input() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let good = invite_body(
        "erin@example.test",
        "!room:example.org",
        "@alice:example.org",
    );

    let mut msisdn = good.clone();
    msisdn["medium"] = json!("msisdn");
    msisdn["address"] = json!("15551234567");
    store_invite(&s, &msisdn).assert_error(400, "M_UNRECOGNIZED");

    for field in ["medium", "address", "room_id", "sender"] {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        store_invite(&s, &body).assert_error(400, "M_MISSING_PARAMS");
    }
    for address in [
        "not-an-email",
        "erin@example.test\r\nBcc: victim@evil.example",
        "Erin <erin@example.test>",
    ] {
        let mut body = good.clone();
        body["address"] = json!(address);
        store_invite(&s, &body).assert_error(400, "M_INVALID_EMAIL");
    }
    // "!opaque" alone is a room version 12 id, so it is accepted (see the e2e suite).
    for room in ["room:example.org", "!", "!two words", "#alias:example.org"] {
        let mut body = good.clone();
        body["room_id"] = json!(room);
        store_invite(&s, &body).assert_error(400, "M_INVALID_PARAM");
    }
    for sender in ["alice", "@alice", "alice:example.org", "@:example.org"] {
        let mut body = good.clone();
        body["sender"] = json!(sender);
        store_invite(&s, &body).assert_error(400, "M_INVALID_PARAM");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sink.mails().is_empty(),
        "no mail for refused invites: {:#?}",
        sink.mails()
    );
    // Extra keys are allowed.
    let with_extra = invite_body_with(
        "erin@example.test",
        "!room:example.org",
        "@alice:example.org",
        json!({"org.matrix.web_client_location": "https://app.example.test", "room_type": "m.space"}),
    );
    assert_eq!(store_invite(&s, &with_extra).status, 200);
}

#[test]
fn an_address_already_bound_is_in_use() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    validate_and_bind(&s, &sink, "bound@example.test", "@bound:example.org");
    for address in ["bound@example.test", "Bound@Example.TEST"] {
        let body = store_invite(
            &s,
            &invite_body(address, "!room:example.org", "@alice:example.org"),
        )
        .assert_error(400, "M_THREEPID_IN_USE");
        assert_eq!(body["mxid"], "@bound:example.org", "{address}");
    }
}

/// v2 needs a token whose user is the sender, and accepted terms.
#[test]
fn v2_store_invite_needs_the_senders_token_and_the_terms() {
    let hs = FakeHomeserver::start();
    let sink = SmtpSink::start();
    let tos = "https://example.org/terms-1.0-en.html";
    let s = start(
        &sink,
        json!({"policy": {"policies": {"terms_of_service": {"version": "1.0", "terms": {"en": {"name": "Terms", "url": tos}}}}}}),
    );
    let alice = register(&s, &hs, "alice");
    let body = invite_body(
        "frank@example.test",
        "!room:example.org",
        &user_on(&hs, "alice"),
    );
    s.post_json(&format!("{V2}/store-invite"), &body)
        .assert_error(401, "M_UNAUTHORIZED");
    store_invite_v2(&s, &alice, &body).assert_error(403, "M_TERMS_NOT_SIGNED");
    let (k, v) = bearer(&alice);
    let accepted = s.request(
        "POST",
        &format!("{V2}/terms"),
        &[(k, &v), ("Content-Type", "application/json")],
        json!({"user_accepts": [tos]}).to_string().as_bytes(),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text());

    let as_bob = invite_body(
        "frank@example.test",
        "!room:example.org",
        &user_on(&hs, "bob"),
    );
    store_invite_v2(&s, &alice, &as_bob).assert_error(403, "M_UNAUTHORIZED");
    let r = store_invite_v2(&s, &alice, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let invite = r.json();
    assert!(ephemeral_valid(&s, V2, &ephemeral_of(&invite)));

    // sign-ed25519 on v2 is authenticated too.
    let key = private_key_in(&invite_mail(&sink, &token_of(&invite)));
    let sign_body =
        json!({"mxid": "@frank:example.org", "token": token_of(&invite), "private_key": key});
    s.post_json(&format!("{V2}/sign-ed25519"), &sign_body)
        .assert_error(401, "M_UNAUTHORIZED");
    let r = post_authed(&s, &format!("{V2}/sign-ed25519"), &alice, &sign_body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn blocked_rooms_and_servers_cannot_invite() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"invite": {"blocked": {"rooms": ["!bad:example.org"], "servers": ["evil.example"]}}}),
    );
    store_invite(
        &s,
        &invite_body(
            "gina@example.test",
            "!bad:example.org",
            "@alice:example.org",
        ),
    )
    .assert_error(403, "M_FORBIDDEN");
    store_invite(
        &s,
        &invite_body(
            "gina@example.test",
            "!good:example.org",
            "@mal:evil.example",
        ),
    )
    .assert_error(403, "M_FORBIDDEN");
    invite_ok(
        &s,
        &invite_body(
            "gina@example.test",
            "!good:example.org",
            "@alice:example.org",
        ),
    );
}

#[test]
fn invites_are_rate_limited_per_sender() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"invite": {"rateLimit": {"perSender": {"burst": 2, "refill": 3600}}}}),
    );
    for n in 0..2 {
        invite_ok(
            &s,
            &invite_body(
                &format!("guest{n}@example.test"),
                "!room:example.org",
                "@alice:example.org",
            ),
        );
    }
    store_invite(
        &s,
        &invite_body(
            "guest9@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    )
    .assert_error(429, "M_LIMIT_EXCEEDED");
    invite_ok(
        &s,
        &invite_body(
            "guest9@example.test",
            "!room:example.org",
            "@bob:example.org",
        ),
    );
}

#[test]
fn invites_are_rate_limited_per_server() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"invite": {"rateLimit": {"perServer": {"burst": 2, "refill": 3600}}}}),
    );
    for user in ["a", "b"] {
        invite_ok(
            &s,
            &invite_body(
                &format!("{user}@example.test"),
                "!room:example.org",
                &format!("@{user}:one.example"),
            ),
        );
    }
    store_invite(
        &s,
        &invite_body("c@example.test", "!room:example.org", "@c:one.example"),
    )
    .assert_error(429, "M_LIMIT_EXCEEDED");
    invite_ok(
        &s,
        &invite_body("c@example.test", "!room:example.org", "@c:two.example"),
    );
}

// ---------------------------------------------------------------------------------------------
// The invite email
// ---------------------------------------------------------------------------------------------

#[test]
fn the_invite_mail_names_the_inviter_and_room_and_carries_the_links() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let named = invite_ok(
        &s,
        &invite_body_with(
            "hank@example.test",
            "!club:example.org",
            "@alice:example.org",
            json!({"room_name": "Book club", "sender_display_name": "Alice Smith"}),
        ),
    );
    let mail = invite_mail(&sink, &token_of(&named));
    assert_eq!(mail.to, vec!["hank@example.test".to_string()]);
    assert!(
        header(&mail, "Subject").contains("Alice Smith"),
        "{}",
        mail.data
    );
    let text = mime_part(&mail, "text/plain");
    for needle in [
        "Book club",
        "@alice:example.org",
        REGISTER_URL,
        &token_of(&named),
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // The private key in the mail is the ephemeral key's.
    let seed = key_bytes(&private_key_in(&mail));
    assert_eq!(
        KeyPair::from_seed("ed25519:0", &seed).public_key(),
        key_bytes(&ephemeral_of(&named))
    );

    // Without a room name or display name: the room id and the sender id.
    let bare = invite_ok(
        &s,
        &invite_body("ivy@example.test", "!plain:example.org", "@bob:example.org"),
    );
    let mail = invite_mail(&sink, &token_of(&bare));
    assert_eq!(mail.to, vec!["ivy@example.test".to_string()]);
    assert!(
        header(&mail, "Subject").contains("@bob:example.org"),
        "{}",
        mail.data
    );
    assert!(
        mime_part(&mail, "text/plain").contains("!plain:example.org"),
        "{}",
        mail.data
    );
}

/// The link a person opens is the web client's room link (as in sydent's stock template); the
/// client posts its user id to the `signurl` it carries and joins with the signature. No link
/// in the mail is our POST-only sign URL.
#[test]
fn the_mail_links_to_the_room_in_the_web_client_with_a_sign_url_that_signs() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let invite = invite_ok(
        &s,
        &invite_body_with(
            "hank@example.test",
            "!club:example.org",
            "@alice:example.org",
            json!({
                "room_name": "Book club & friends",
                "sender_display_name": "Alice Smith",
                "room_avatar_url": "mxc://example.org/avatar",
                "room_type": "m.space",
                "org.matrix.web_client_location": "https://chat.example.org/",
            }),
        ),
    );
    let token = token_of(&invite);
    let mail = invite_mail(&sink, &token);
    let link = room_link_in(&mail);
    assert!(
        link.starts_with("https://chat.example.org/#/room/%21club%3Aexample.org?"),
        "{link}"
    );
    let param = |name: &str| room_link_param(&link, name);
    assert_eq!(param("email").as_deref(), Some("hank@example.test"));
    assert_eq!(param("room_name").as_deref(), Some("Book club & friends"));
    assert_eq!(param("inviter_name").as_deref(), Some("Alice Smith"));
    assert_eq!(
        param("room_avatar_url").as_deref(),
        Some("mxc://example.org/avatar")
    );
    assert_eq!(param("room_type").as_deref(), Some("m.space"));
    // The HTML part's button is the same link.
    let html = mime_part(&mail, "text/html");
    assert!(
        html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))),
        "{html}"
    );
    // No link for people points at the sign URL (it answers POST only).
    for part in [mime_part(&mail, "text/plain"), html] {
        assert!(!part.contains("sign-ed25519?"), "{part}");
    }

    // What Element does with the link: POST {mxid} to the signurl.
    let sign_url = param("signurl").unwrap();
    let path = sign_url
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("the sign URL is ours: {sign_url}"));
    assert!(
        path.starts_with(&format!("{V1}/sign-ed25519?token={token}&private_key=")),
        "{path}"
    );
    let r = s.post_json(path, &json!({"mxid": "@hank:example.org"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let signed = r.json();
    assert_eq!(signed["token"], json!(token));
    assert_eq!(signed["mxid"], json!("@hank:example.org"));
    assert!(
        verify_json(
            &signed,
            "id.test",
            "ed25519:0",
            &key_bytes(&ephemeral_of(&invite))
        )
        .is_ok(),
        "{signed}"
    );

    // Without a usable web client from the homeserver, the configured one.
    for location in [
        None,
        Some("javascript:alert(1)"),
        Some("https://evil.example/?x#y"),
    ] {
        let mut extra = json!({});
        if let Some(l) = location {
            extra = json!({"org.matrix.web_client_location": l});
        }
        let other = invite_ok(
            &s,
            &invite_body_with(
                "ivy@example.test",
                "!room:example.org",
                "@bob:example.org",
                extra,
            ),
        );
        let link = room_link_in(&invite_mail(&sink, &token_of(&other)));
        assert!(
            link.starts_with("https://app.element.io/#/room/"),
            "{location:?}: {link}"
        );
    }
}

#[test]
fn v1_store_invite_is_off_unless_configured() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({"invite": {"v1StoreInvite": false}}));
    let body = invite_body(
        "olga@example.test",
        "!room:example.org",
        "@mallory:evil.example",
    );
    store_invite(&s, &body).assert_error(403, "M_FORBIDDEN");
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.mails().is_empty(), "no mail without v1StoreInvite");
    // The default config has it off too.
    let plain = TestServer::start();
    plain
        .post_json(&format!("{V1}/store-invite"), &body)
        .assert_error(403, "M_FORBIDDEN");
}

/// Made-up senders cannot turn the server into a mail relay: one address gets at most its
/// per-recipient share, and one client at most its per-client share, whatever senders they name.
#[test]
fn invite_mails_are_limited_per_recipient_and_per_client_whatever_the_sender() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"invite": {"rateLimit": {"perRecipient": {"burst": 3, "refill": 3600}}}}),
    );
    let mut accepted = 0;
    for n in 0..30 {
        let body = invite_body(
            "victim@example.test",
            "!room:example.org",
            &format!("@sender{n}:server{n}.example"),
        );
        let r = store_invite(&s, &body);
        match r.status {
            200 => accepted += 1,
            _ => {
                r.assert_error(429, "M_LIMIT_EXCEEDED");
            }
        }
    }
    assert_eq!(accepted, 3);
    std::thread::sleep(Duration::from_millis(300));
    let to_victim = sink
        .mails()
        .iter()
        .filter(|m| m.to == vec!["victim@example.test".to_string()])
        .count();
    assert_eq!(to_victim, 3);

    let s = start(
        &sink,
        json!({"invite": {"rateLimit": {"perClient": {"burst": 4, "refill": 3600}}}}),
    );
    let statuses: Vec<u16> = (0..6)
        .map(|n| {
            let body = invite_body(
                &format!("person{n}@example.test"),
                "!room:example.org",
                &format!("@sender{n}:server{n}.example"),
            );
            store_invite(&s, &body).status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

/// 16 invites at once from one sender: no more mails than its burst, whatever the timing.
#[test]
fn concurrent_invites_never_exceed_the_burst() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({
            "server": {"workers": 32},
            "invite": {"rateLimit": {"perSender": {"burst": 4, "refill": 3600}}},
        }),
    );
    let addr = s.addr;
    let statuses = crate::support::at_once(16, move |n| {
        let body = invite_body(
            &format!("crowd{n}@example.test"),
            "!room:example.org",
            "@alice:example.org",
        )
        .to_string();
        crate::support::http(
            addr,
            "POST",
            &format!("{V1}/store-invite"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .status
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let crowd = sink
        .mails()
        .iter()
        .filter(|m| m.to.iter().any(|t| t.starts_with("crowd")))
        .count();
    assert_eq!(crowd, 4);
}

#[test]
fn hostile_invite_fields_are_escaped_cut_and_kept_out_of_headers() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let r = invite_ok(
        &s,
        &invite_body_with(
            "jack@example.test",
            "!room:example.org",
            "@mallory:example.org",
            json!({
                "room_name": "<script>alert(1)</script>",
                "sender_display_name": "Mallory\r\nBcc: victim@evil.example",
            }),
        ),
    );
    let mail = invite_mail(&sink, &token_of(&r));
    assert_eq!(mail.to, vec!["jack@example.test".to_string()], "envelope");
    assert!(
        !mail
            .data
            .split("\r\n")
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "a Bcc header was injected:\n{}",
        mail.data
    );
    let html = mime_part(&mail, "text/html");
    assert!(html.contains("&lt;script&gt;"), "not escaped:\n{html}");
    assert!(!html.contains("<script>"), "raw script in HTML:\n{html}");

    let long = "r".repeat(1000);
    let r = invite_ok(
        &s,
        &invite_body_with(
            "kate@example.test",
            "!room:example.org",
            "@alice:example.org",
            json!({"room_name": long}),
        ),
    );
    let mail = invite_mail(&sink, &token_of(&r));
    assert!(
        !mail.data.contains(&long),
        "the 1000-char room name was not cut"
    );
    assert!(
        mail.data.contains("rrrrrrrrrr"),
        "the room name should still show, cut:\n{}",
        mail.data
    );
}

#[test]
fn an_operator_invite_template_replaces_the_built_in_one() {
    let sink = SmtpSink::start();
    let dir = TempDir::new("invite-tpl");
    let tpl = dir.path().join("invite.eml");
    std::fs::write(
        &tpl,
        "From: %FROM_NAME% <%FROM_EMAIL%>\nTo: %RECIPIENT_ADDRESS%\nSubject: Custom invite\nDate: %DATE%\n\nKey: %EPHEMERAL_PRIVATE_KEY%\nJoin at %REGISTER_URL%\n",
    )
    .unwrap();
    let s = start(
        &sink,
        json!({"threepid": {"medium": {"email": {"generators": {"template": {"invite": tpl}}}}}}),
    );
    let r = invite_ok(
        &s,
        &invite_body(
            "lena@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    );
    let mail = wait_mail(&sink, "custom invite mail", |m| {
        m.to == ["lena@example.test"]
    });
    assert!(
        mail.data.contains("Subject: Custom invite\r\n"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains(&format!("Join at {REGISTER_URL}\r\n")),
        "{}",
        mail.data
    );
    let key = mail
        .data
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Key: "))
        .unwrap_or_else(|| panic!("no key line:\n{}", mail.data));
    assert_eq!(
        KeyPair::from_seed("ed25519:0", &key_bytes(key)).public_key(),
        key_bytes(&ephemeral_of(&r))
    );
}

// ---------------------------------------------------------------------------------------------
// sign-ed25519
// ---------------------------------------------------------------------------------------------

#[test]
fn sign_ed25519_signs_with_the_ephemeral_key_from_the_mail() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let invite = invite_ok(
        &s,
        &invite_body(
            "mia@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    );
    let token = token_of(&invite);
    let private_key = private_key_in(&invite_mail(&sink, &token));
    let ephemeral = key_bytes(&ephemeral_of(&invite));

    let r = sign(&s, "@mia:example.org", &token, &private_key);
    assert_eq!(r.status, 200, "{}", r.text());
    let signed = r.json();
    assert_eq!(
        (&signed["mxid"], &signed["sender"], &signed["token"]),
        (
            &json!("@mia:example.org"),
            &json!("@alice:example.org"),
            &json!(token)
        ),
        "{signed}"
    );
    assert!(
        verify_json(&signed, "id.test", "ed25519:0", &ephemeral).is_ok(),
        "not signed with the ephemeral key: {signed}"
    );
    // The private key is accepted in the standard alphabet as well.
    let standard = private_key.replace('-', "+").replace('_', "/");
    assert_eq!(sign(&s, "@mia:example.org", &token, &standard).status, 200);
    // Everything in the query string and a JSON body of `null` (or nothing) works too.
    let query = format!("mxid=%40mia%3Aexample.org&token={token}&private_key={private_key}");
    for body in [&b"null"[..], b" null\n", b""] {
        let r = s.request(
            "POST",
            &format!("{V1}/sign-ed25519?{query}"),
            &[("Content-Type", "application/json")],
            body,
        );
        assert_eq!(r.status, 200, "{:?}: {}", body, r.text());
        assert_eq!(r.json()["mxid"], "@mia:example.org");
    }
    // Other bodies that are not objects stay refused.
    let r = s.request(
        "POST",
        &format!("{V1}/sign-ed25519?{query}"),
        &[("Content-Type", "application/json")],
        b"[]",
    );
    r.assert_error(400, "M_BAD_JSON");

    // Unknown token, or a key that is not this invite's.
    sign(&s, "@mia:example.org", "nosuchtoken", &private_key).assert_error(404, "M_UNRECOGNIZED");
    let other = invite_ok(
        &s,
        &invite_body(
            "nora@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    );
    let other_key = private_key_in(&invite_mail(&sink, &token_of(&other)));
    sign(&s, "@mia:example.org", &token, &other_key).assert_error(404, "M_UNRECOGNIZED");
    sign(
        &s,
        "@mia:example.org",
        &token,
        &base64::encode_url(&[9u8; 32]),
    )
    .assert_error(404, "M_UNRECOGNIZED");
    s.post_json(
        &format!("{V1}/sign-ed25519"),
        &json!({"mxid": "@mia:example.org", "token": token}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
}

// ---------------------------------------------------------------------------------------------
// onbind
// ---------------------------------------------------------------------------------------------

/// Two invites for one address arrive in two onbind calls, one invite each (a homeserver that
/// refuses one invite must not make us send the other again), each signed with the long-term
/// key; after delivery the ephemeral keys are gone and nothing is sent again.
#[test]
fn binding_an_invited_address_delivers_each_invite_in_its_own_onbind() {
    let hs = FakeHomeserver::start();
    hs.respond("POST", ONBIND, 200, json!({}));
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let address = "olive@example.test";
    let first = invite_ok(
        &s,
        &invite_body(address, "!one:example.org", "@alice:example.org"),
    );
    let second = invite_ok(
        &s,
        &invite_body(address, "!two:example.org", "@bob:example.org"),
    );
    let mxid = user_on(&hs, "olive");
    validate_and_bind(&s, &sink, address, &mxid);

    let got = hs.wait_for_requests(ONBIND, 2, DELIVERY_WAIT);
    let long_term = key_bytes(&long_term_key_b64(&s));
    let mut seen = Vec::new();
    for call in &got {
        assert_eq!(call.method, "POST");
        let body = call.json();
        assert_eq!(
            (&body["medium"], &body["address"], &body["mxid"]),
            (&json!("email"), &json!(address), &json!(mxid)),
            "{body}"
        );
        let invites = body["invites"].as_array().expect("invites array");
        assert_eq!(invites.len(), 1, "one invite per onbind call: {body}");
        let invite = &invites[0];
        assert_eq!(invite["medium"], "email", "{invite}");
        assert_eq!(invite["address"], address, "{invite}");
        assert_eq!(invite["mxid"], mxid.as_str(), "{invite}");
        assert_eq!(invite["signed"]["mxid"], mxid.as_str(), "{invite}");
        assert_signed_by(&invite["signed"], &long_term);
        seen.push((
            invite["signed"]["token"].as_str().unwrap().to_string(),
            invite["room_id"].as_str().unwrap().to_string(),
            invite["sender"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    let mut expected = vec![
        (
            token_of(&first),
            "!one:example.org".to_string(),
            "@alice:example.org".to_string(),
        ),
        (
            token_of(&second),
            "!two:example.org".to_string(),
            "@bob:example.org".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected, "oxisd log:\n{}", s.logs().join("\n"));

    for invite in [&first, &second] {
        assert!(
            becomes_invalid(&s, &ephemeral_of(invite), Duration::from_secs(5)),
            "ephemeral key still valid after delivery"
        );
    }
    let key = private_key_in(&invite_mail(&sink, &token_of(&first)));
    sign(&s, &mxid, &token_of(&first), &key).assert_error(404, "M_UNRECOGNIZED");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(onbinds(&hs).len(), 2, "delivered more than once");
}

/// Homeservers that only take PUT (404 or 405 to POST) get the same body by PUT.
#[test]
fn onbind_falls_back_to_put_on_404_and_405() {
    let hs405 = FakeHomeserver::start();
    hs405.respond(
        "POST",
        ONBIND,
        405,
        json!({"errcode": "M_UNRECOGNIZED", "error": "Method not allowed"}),
    );
    hs405.respond("PUT", ONBIND, 200, json!({}));
    let hs404 = FakeHomeserver::start(); // POST falls through to the default 404.
    hs404.respond("PUT", ONBIND, 200, json!({}));
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    for (hs, local) in [(&hs405, "pat"), (&hs404, "quinn")] {
        let address = format!("{local}@example.test");
        let invite = invite_ok(
            &s,
            &invite_body(&address, "!room:example.org", "@alice:example.org"),
        );
        validate_and_bind(&s, &sink, &address, &user_on(hs, local));
        let got = hs.wait_for_requests(ONBIND, 2, DELIVERY_WAIT);
        let methods: Vec<&str> = got.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["POST", "PUT"], "{local}");
        assert_eq!(got[0].json(), got[1].json(), "{local}: same body");
        assert_eq!(
            got[1].json()["invites"][0]["signed"]["token"],
            token_of(&invite).as_str()
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        onbinds(&hs405).len(),
        2,
        "PUT answered 200: no more attempts"
    );
    assert_eq!(
        onbinds(&hs404).len(),
        2,
        "PUT answered 200: no more attempts"
    );
}

/// A failing homeserver is retried from a persistent outbox, across a restart, and the invite
/// is delivered exactly once when it answers 200.
#[test]
fn undelivered_onbinds_survive_a_restart_and_are_delivered_once() {
    let hs = FakeHomeserver::start();
    let down = json!({"errcode": "M_UNKNOWN", "error": "down"});
    hs.respond("POST", ONBIND, 503, down.clone());
    hs.respond("PUT", ONBIND, 503, down);
    let sink = SmtpSink::start();
    let dir = Arc::new(TempDir::new("invite-outbox"));
    let cfg = config(&sink, json!({}));
    let s = TestServer::start_in(dir.clone(), cfg.clone());
    let address = "rita@example.test";
    let invite = invite_ok(
        &s,
        &invite_body(address, "!room:example.org", "@alice:example.org"),
    );
    let private_key = private_key_in(&invite_mail(&sink, &token_of(&invite)));
    let mxid = user_on(&hs, "rita");
    validate_and_bind(&s, &sink, address, &mxid);
    // The first attempt and, one backoff later, a retry.
    let failed = hs.wait_for_requests(ONBIND, 2, DELIVERY_WAIT);
    assert!(
        failed.len() >= 2,
        "expected a failed attempt and a retry, got {}; log:\n{}",
        failed.len(),
        s.logs().join("\n")
    );
    assert!(s.stop().success());

    hs.respond("POST", ONBIND, 200, json!({}));
    hs.respond("PUT", ONBIND, 200, json!({}));
    hs.clear_requests();
    let s = TestServer::start_in(dir.clone(), cfg);
    let got = hs.wait_for_requests(ONBIND, 1, DELIVERY_WAIT);
    assert_eq!(
        got.len(),
        1,
        "not delivered after the restart; log:\n{}",
        s.logs().join("\n")
    );
    let body = got[0].json();
    assert_eq!(body["mxid"], mxid.as_str());
    assert_eq!(
        body["invites"][0]["signed"]["token"],
        token_of(&invite).as_str()
    );
    assert_signed_by(
        &body["invites"][0]["signed"],
        &key_bytes(&long_term_key_b64(&s)),
    );
    // Several backoff periods later: still exactly one delivery.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(onbinds(&hs).len(), 1, "delivered more than once");
    assert!(
        becomes_invalid(&s, &ephemeral_of(&invite), Duration::from_secs(5)),
        "ephemeral key still valid after delivery"
    );
    sign(&s, &mxid, &token_of(&invite), &private_key).assert_error(404, "M_UNRECOGNIZED");
}

/// An unclaimed invite expires: its ephemeral key goes, sign-ed25519 forgets it, and a later
/// bind of the address sends no onbind.
#[test]
fn expired_invites_are_forgotten() {
    let hs = FakeHomeserver::start();
    hs.respond("POST", ONBIND, 200, json!({}));
    hs.respond("PUT", ONBIND, 200, json!({}));
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        // A short session lifetime makes the maintenance tick short (half of it, at least 1 s).
        json!({"session": {"ttl": 4}, "invite": {"expiration": {"afterSeconds": 2}}}),
    );
    let invite = invite_ok(
        &s,
        &invite_body(
            "sara@example.test",
            "!room:example.org",
            "@alice:example.org",
        ),
    );
    let ephemeral = ephemeral_of(&invite);
    let private_key = private_key_in(&invite_mail(&sink, &token_of(&invite)));
    assert!(ephemeral_valid(&s, V2, &ephemeral), "valid before expiry");
    assert!(
        becomes_invalid(&s, &ephemeral, Duration::from_secs(8)),
        "ephemeral key still valid 8 s after a 2 s expiry"
    );
    sign(&s, "@sara:example.org", &token_of(&invite), &private_key)
        .assert_error(404, "M_UNRECOGNIZED");
    validate_and_bind(&s, &sink, "sara@example.test", &user_on(&hs, "sara"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        onbinds(&hs).is_empty(),
        "an expired invite was delivered: {:?}",
        onbinds(&hs)
    );
}

/// The oxisd log lines that contain every one of `needles`.
fn log_lines(s: &TestServer, needles: &[&str]) -> Vec<String> {
    s.logs()
        .into_iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// A 4xx answer (Synapse's 403 for an invite the user can no longer take) is final: the call is
/// not made again, and the answer is logged at warn. A 500 is retried.
#[test]
fn a_refused_onbind_is_not_retried_and_a_failed_one_is() {
    let refusing = FakeHomeserver::start();
    refusing.respond(
        "POST",
        ONBIND,
        403,
        json!({"errcode": "M_FORBIDDEN", "error": "You are not invited to this room."}),
    );
    let failing = FakeHomeserver::start();
    failing.respond(
        "POST",
        ONBIND,
        500,
        json!({"errcode": "M_UNKNOWN", "error": "Internal server error"}),
    );
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    for (hs, local) in [(&refusing, "uma"), (&failing, "vera")] {
        let address = format!("{local}@example.test");
        invite_ok(
            &s,
            &invite_body(&address, "!room:example.org", "@alice:example.org"),
        );
        validate_and_bind(&s, &sink, &address, &user_on(hs, local));
    }
    // initialBackoff is 1 s, maxBackoff 2 s: a retry would come within 2 s.
    let retried = failing.wait_for_requests(ONBIND, 2, DELIVERY_WAIT);
    assert!(
        retried.len() >= 2,
        "a 500 is retried; oxisd log:\n{}",
        s.logs().join("\n")
    );
    assert!(
        !refusing
            .wait_for_requests(ONBIND, 1, DELIVERY_WAIT)
            .is_empty(),
        "no onbind to the refusing homeserver"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        onbinds(&refusing).len(),
        1,
        "a 403 was retried; oxisd log:\n{}",
        s.logs().join("\n")
    );
    let refused = log_lines(
        &s,
        &[
            "WARN",
            &refusing.server_name(),
            "403",
            "M_FORBIDDEN",
            "You are not invited to this room.",
        ],
    );
    assert_eq!(
        refused.len(),
        1,
        "one warn line with the homeserver's answer; oxisd log:\n{}",
        s.logs().join("\n")
    );
    assert!(onbinds(&failing).len() >= 3, "the 500 is still retried");
}

/// A homeserver on an address the guard refuses gets no call, and the delivery is dropped at
/// once instead of being retried for days.
#[test]
fn an_onbind_to_a_destination_the_guard_refuses_is_dropped_at_once() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let address = "wanda@example.test";
    invite_ok(
        &s,
        &invite_body(address, "!room:example.org", "@alice:example.org"),
    );
    let server = "10.0.0.1:8448"; // private, not in outbound.allowedRanges
    validate_and_bind(&s, &sink, address, &format!("@wanda:{server}"));
    let dropped = s.wait_for_log("refused, not retried", DELIVERY_WAIT);
    assert!(
        dropped.as_deref().is_some_and(|l| l.contains(server)
            && l.contains("WARN")
            && l.contains("address guard")),
        "no warn line about the refused destination: {dropped:?}; oxisd log:\n{}",
        s.logs().join("\n")
    );
    // Past a few backoff periods: nothing tried again.
    std::thread::sleep(Duration::from_secs(3));
    let about = log_lines(&s, &["onbind to", server]);
    assert_eq!(
        about.len(),
        1,
        "the refused destination was tried again: {about:#?}"
    );
}

/// An invite the invitee's client signed through sign-ed25519 is redeemed by joining with that
/// signature: a later bind does not deliver it, and a delivery queued before the signature is
/// dropped when its turn comes. sign-ed25519 keeps answering for it.
#[test]
fn an_invite_signed_through_sign_ed25519_is_not_delivered_by_onbind() {
    let hs = FakeHomeserver::start();
    hs.respond("POST", ONBIND, 200, json!({}));
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let address = "xena@example.test";
    let mxid = user_on(&hs, "xena");
    let signed_invite = invite_ok(
        &s,
        &invite_body(address, "!signed:example.org", "@alice:example.org"),
    );
    let other = invite_ok(
        &s,
        &invite_body(address, "!other:example.org", "@bob:example.org"),
    );
    let private_key = private_key_in(&invite_mail(&sink, &token_of(&signed_invite)));
    let first = sign(&s, &mxid, &token_of(&signed_invite), &private_key);
    assert_eq!(first.status, 200, "{}", first.text());

    validate_and_bind(&s, &sink, address, &mxid);
    let got = hs.wait_for_requests(ONBIND, 1, DELIVERY_WAIT);
    assert!(!got.is_empty(), "the unsigned invite was not delivered");
    std::thread::sleep(Duration::from_secs(2));
    let tokens: Vec<String> = onbinds(&hs)
        .iter()
        .flat_map(|r| r.json()["invites"].as_array().cloned().unwrap_or_default())
        .map(|i| i["signed"]["token"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        tokens,
        [token_of(&other)],
        "only the unsigned invite is delivered; oxisd log:\n{}",
        s.logs().join("\n")
    );
    // Asked again: the same kind of answer, and the ephemeral key stays valid (the homeserver
    // checks it when the invitee joins).
    let again = sign(&s, &mxid, &token_of(&signed_invite), &private_key);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), first.json());
    assert!(ephemeral_valid(&s, V2, &ephemeral_of(&signed_invite)));

    // Queued before the signature (the homeserver was down), signed, then due again: dropped.
    let down = FakeHomeserver::start();
    down.respond(
        "POST",
        ONBIND,
        503,
        json!({"errcode": "M_UNKNOWN", "error": "down"}),
    );
    let address = "yara@example.test";
    let mxid = user_on(&down, "yara");
    let queued = invite_ok(
        &s,
        &invite_body(address, "!queued:example.org", "@alice:example.org"),
    );
    let private_key = private_key_in(&invite_mail(&sink, &token_of(&queued)));
    validate_and_bind(&s, &sink, address, &mxid);
    assert_eq!(down.wait_for_requests(ONBIND, 1, DELIVERY_WAIT).len(), 1);
    let r = sign(&s, &mxid, &token_of(&queued), &private_key);
    assert_eq!(r.status, 200, "{}", r.text());
    down.respond("POST", ONBIND, 200, json!({}));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        onbinds(&down).len(),
        1,
        "a signed invite was delivered when its retry came; oxisd log:\n{}",
        s.logs().join("\n")
    );
}

/// One slow homeserver holds up only its own invites: while a call to it is in progress, an
/// invite to another homeserver arrives at once.
#[test]
fn a_slow_homeserver_does_not_delay_invites_to_another() {
    let slow = FakeHomeserver::start();
    slow.respond("POST", ONBIND, 200, json!({}));
    slow.set_delay(Duration::from_secs(4));
    let fast = FakeHomeserver::start();
    fast.respond("POST", ONBIND, 200, json!({}));
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let secret = "bindsecret";
    let mut sids = Vec::new();
    for local in ["zoe", "amy"] {
        let address = format!("{local}@example.test");
        invite_ok(
            &s,
            &invite_body(&address, "!room:example.org", "@alice:example.org"),
        );
        sids.push(validate_email(&s, &sink, &address, secret));
    }
    let r = bind(&s, &sids[0], secret, &user_on(&slow, "zoe"));
    assert_eq!(r.status, 200, "bind: {}", r.text());
    // The slow homeserver has the call and sits on it for 4 s.
    assert_eq!(slow.wait_for_requests(ONBIND, 1, DELIVERY_WAIT).len(), 1);
    let bound = Instant::now();
    let r = bind(&s, &sids[1], secret, &user_on(&fast, "amy"));
    assert_eq!(r.status, 200, "bind: {}", r.text());
    let got = fast.wait_for_requests(ONBIND, 1, Duration::from_secs(10));
    let took = bound.elapsed();
    assert_eq!(got.len(), 1, "no onbind to the second homeserver");
    assert!(
        took < Duration::from_millis(1500),
        "the second homeserver's onbind waited {took:?} for the slow one; oxisd log:\n{}",
        s.logs().join("\n")
    );
}
