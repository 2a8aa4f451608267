use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::sessions::*;
use crate::support::smtp::SmtpSink;
use crate::support::{TempDir, TestServer};

#[test]
fn link_with_next_link_redirects_there_with_the_sid() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let r = s.post_json(
        &format!("{V1}/validate/email/requestToken"),
        &json!({"client_secret": "s", "email": "bob@example.org", "send_attempt": 0, "next_link": "https://app.example.org/#/done"}),
    );
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let link = link_in(&sink.wait_for_mails(1, WAIT)[0]);
    // A next_link in the clicked URL is ignored: only the stored one is used.
    let r = s.get(&format!(
        "{}&next_link=https%3A%2F%2Fevil.example",
        path_of(&link)
    ));
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("Location").unwrap(),
        format!("https://app.example.org/?sid={sid}#/done")
    );
}

#[test]
fn a_non_ascii_next_link_is_percent_encoded_in_the_redirect() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let r = s.post_json(
        &format!("{V1}/validate/email/requestToken"),
        &json!({"client_secret": "s", "email": "bob@example.org", "send_attempt": 0, "next_link": "https://app.example.org/caf\u{e9}?q=\u{2713}#/f\u{fc}r"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let link = link_in(&sink.wait_for_mails(1, WAIT)[0]);
    let r = s.get(&path_of(&link));
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("Location").unwrap(),
        format!("https://app.example.org/caf%C3%A9?q=%E2%9C%93&sid={sid}#/f%C3%BCr")
    );
    // A browser (here the WHATWG parser of the url crate) reads the redirect as the link the
    // client gave, with the sid added to its query.
    let mut want =
        url::Url::parse("https://app.example.org/caf\u{e9}?q=\u{2713}#/f\u{fc}r").unwrap();
    want.query_pairs_mut().append_pair("sid", &sid);
    assert_eq!(url::Url::parse(r.header("Location").unwrap()), Ok(want));
}

#[test]
fn an_internationalised_domain_is_one_3pid_in_either_spelling() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    // Requested with the ASCII spelling; mailed to it; stored in the Unicode form.
    let sid = request_token(&s, V1, "Kim@XN--BCHER-KVA.example", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let mail = &sink.wait_for_mails(1, WAIT)[0];
    assert_eq!(mail.to, vec!["kim@xn--bcher-kva.example".to_string()]);
    assert_eq!(s.get(&path_of(&link_in(mail))).status, 200);
    let r = s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
    ));
    assert_eq!(r.json()["address"], "kim@bücher.example", "{}", r.text());
    let r = s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": "sec", "mxid": "@kim:example.org"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Found by either spelling.
    for address in ["kim%40b%C3%BCcher.example", "KIM%40xn--bcher-kva.EXAMPLE"] {
        let r = s.get(&format!("{V1}/lookup?medium=email&address={address}"));
        assert_eq!(
            r.json()["mxid"],
            "@kim:example.org",
            "{address}: {}",
            r.text()
        );
    }
    // Not Punycode of anything, or of an ASCII label: not an address.
    for bad in ["kim@xn--bcher-kv!.example", "kim@xn--abc-.example"] {
        request_token(&s, V1, bad, "sec", 1).assert_error(400, "M_INVALID_EMAIL");
    }
}

#[test]
fn post_submit_token_validates_on_both_mounts() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    for (n, mount) in [V1, V1].into_iter().enumerate() {
        let email = format!("user{n}@example.org");
        let sid = request_token(&s, mount, &email, "sec", 1).json()["sid"]
            .as_str()
            .unwrap()
            .to_string();
        let token = query_param(&link_in(&sink.wait_for_mails(n + 1, WAIT)[n]), "token");
        assert!(token.len() >= 22, "token too short for 128 bits: {token}");
        let r = s.post_json(
            &format!("{mount}/validate/email/submitToken"),
            &json!({"sid": sid, "client_secret": "sec", "token": token}),
        );
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"success": true})),
            "{mount}"
        );
        // Submitting again is harmless.
        let r = s.post_json(
            &format!("{mount}/validate/email/submitToken"),
            &json!({"sid": sid, "client_secret": "sec", "token": token}),
        );
        assert_eq!(r.status, 200);
    }
}

#[test]
fn submit_token_errors_and_the_attempt_limit() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({"session": {"maxTokenAttempts": 3}}));
    let sid = request_token(&s, V1, "frank@example.org", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let token = query_param(&link_in(&sink.wait_for_mails(1, WAIT)[0]), "token");
    let submit = |sid: &str, secret: &str, token: &str| {
        s.post_json(
            &format!("{V1}/validate/email/submitToken"),
            &json!({"sid": sid, "client_secret": secret, "token": token}),
        )
    };
    let unknown = submit("nosuchsid", "sec", &token);
    let body = unknown.assert_error(404, "M_NO_VALID_SESSION");
    assert_eq!(body["success"], false);
    let wrong_secret = submit(&sid, "other", &token);
    assert_eq!(
        (wrong_secret.status, wrong_secret.json()),
        (unknown.status, unknown.json()),
        "must not reveal that the sid exists"
    );
    submit(&sid, "bad secret!", &token).assert_error(400, "M_INVALID_PARAM");
    s.post_json(
        &format!("{V1}/validate/email/submitToken"),
        &json!({"sid": sid, "client_secret": "sec"}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
    for _ in 0..3 {
        let body = submit(&sid, "sec", "wrong-token").assert_error(400, "M_TOKEN_INCORRECT");
        assert_eq!(body["success"], false);
    }
    // Locked: the right token no longer works.
    submit(&sid, "sec", &token).assert_error(400, "M_TOKEN_INCORRECT");
    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
    ))
    .assert_error(400, "M_SESSION_NOT_VALIDATED");
    // A new request replaces the locked session with a fresh one.
    let fresh = request_token(&s, V1, "frank@example.org", "sec", 2).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, sid);
    let new_token = query_param(&link_in(&sink.wait_for_mails(2, WAIT)[1]), "token");
    assert_eq!(submit(&fresh, "sec", &new_token).status, 200);
}

#[test]
fn get_validated_3pid_errors() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid=nope&client_secret=sec"
    ))
    .assert_error(404, "M_NO_VALID_SESSION");
    s.get(&format!("{V1}/3pid/getValidated3pid?sid=nope"))
        .assert_error(400, "M_MISSING_PARAMS");
    let sid = request_token(&s, V1, "gina@example.org", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=wrong"
    ))
    .assert_error(404, "M_NO_VALID_SESSION");
    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
    ))
    .assert_error(400, "M_SESSION_NOT_VALIDATED");
}

#[test]
fn sessions_expire_and_are_swept() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({"session": {"ttl": 1}}));
    let sid = request_token(&s, V1, "hank@example.org", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let token = query_param(&link_in(&sink.wait_for_mails(1, WAIT)[0]), "token");
    std::thread::sleep(Duration::from_millis(1200));
    s.post_json(
        &format!("{V1}/validate/email/submitToken"),
        &json!({"sid": sid, "client_secret": "sec", "token": token}),
    )
    .assert_error(400, "M_SESSION_EXPIRED");
    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
    ))
    .assert_error(400, "M_SESSION_EXPIRED");
    let page = s.get(&format!(
        "{V1}/validate/email/submitToken?sid={sid}&client_secret=sec&token={token}"
    ));
    assert_eq!(page.status, 400);
    assert!(page.text().contains("expired"), "{}", page.text());
    // Kept one more lifetime, then removed by the sweeper.
    wait_until_swept(&s, &sid, "sec", "the expired session was never swept");
    // An expired session is replaced by a new one on the next request.
    let again = request_token(&s, V1, "hank@example.org", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(again, sid);
}

#[test]
fn a_session_survives_a_restart() {
    let sink = SmtpSink::start();
    let dir = Arc::new(TempDir::new("restart"));
    let first = TestServer::start_in(dir.clone(), smtp_config(&sink));
    let sid = request_token(&first, V1, "ivy@example.org", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let token = query_param(&link_in(&sink.wait_for_mails(1, WAIT)[0]), "token");
    // Killed, not stopped: an acknowledged session must already be on disk.
    drop(first);
    let second = TestServer::start_in(dir, smtp_config(&sink));
    let r = second.post_json(
        &format!("{V1}/validate/email/submitToken"),
        &json!({"sid": sid, "client_secret": "sec", "token": token}),
    );
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    assert_eq!(
        request_token(&second, V1, "ivy@example.org", "sec", 1).json()["sid"],
        sid.as_str()
    );
}

#[test]
fn the_failure_page_is_html_and_says_what_to_do() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let sid = request_token(&s, V1, "lee@example.org", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = s.get(&format!(
        "{V1}/validate/email/submitToken?sid={sid}&client_secret=sec&token=nope"
    ));
    assert_eq!(wrong.status, 400);
    assert!(
        wrong
            .header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        wrong.text().contains("new verification email"),
        "{}",
        wrong.text()
    );
    let incomplete = s.get(&format!("{V1}/validate/email/submitToken?sid={sid}"));
    assert_eq!(incomplete.status, 400);
    assert!(
        incomplete.text().contains("incomplete"),
        "{}",
        incomplete.text()
    );
    let unknown = s.get(&format!(
        "{V1}/validate/email/submitToken?sid=zzz&client_secret=sec&token=x"
    ));
    assert_eq!(unknown.status, 404);
    // Hostile values in the query never reach the page unescaped.
    let hostile = s.get(&format!("{V1}/validate/email/submitToken?sid=%3Cscript%3E&client_secret=sec&token=%3Cscript%3Ealert(1)%3C/script%3E"));
    assert!(!hostile.text().contains("<script>"), "{}", hostile.text());
}

#[test]
fn the_pages_link_their_style_and_logo_which_are_served() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let page = s
        .get(&format!(
            "{V1}/validate/email/submitToken?sid=zzz&client_secret=sec&token=x"
        ))
        .text();
    for asset in ["style.css", "logo.svg"] {
        let path = format!("/_matrix/identity/_oxisd/static/{asset}");
        assert!(page.contains(&path), "{asset} not linked:\n{page}");
        let r = s.get(&path);
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.header("Cache-Control").unwrap().contains("max-age"));
    }
    assert!(
        s.get("/_matrix/identity/_oxisd/static/style.css")
            .header("Content-Type")
            .unwrap()
            .starts_with("text/css")
    );
    s.get("/_matrix/identity/_oxisd/static/..%2FCargo.toml")
        .assert_error(404, "M_NOT_FOUND");
    s.get("/_matrix/identity/_oxisd/static/nope.css")
        .assert_error(404, "M_NOT_FOUND");
}
