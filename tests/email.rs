use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::sessions::*;
use crate::support::smtp::{Behaviour, SmtpSink};
use crate::support::{TempDir, TestServer};

#[test]
fn request_token_sends_a_mail_whose_link_validates_the_session() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let r = request_token(&s, V1, "Alice@Example.ORG", "secret1", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "id@id.test");
    assert_eq!(mail.to, vec!["alice@example.org".to_string()]);
    let (head, _) = mail.data.split_once("\r\n\r\n").unwrap();
    for h in [
        "From: Test Identity <id@id.test>",
        "To: alice@example.org",
        "Subject: ",
        "Date: ",
        "Message-ID: <",
        "MIME-Version: 1.0",
    ] {
        assert!(head.contains(h), "{h} missing:\n{head}");
    }
    // The host name keeps its case (it was "Id.test", from mxisd's %DOMAIN_PRETTY%).
    assert!(
        head.contains("Subject: Confirm your email address for id.test\r\n"),
        "{head}"
    );
    assert!(
        !mail.data.replace("\r\n", "").contains('\n'),
        "bare LF in the message"
    );
    let link = link_in(mail);
    assert!(
        link.starts_with("http://localhost:") || link.starts_with("https://id.test/"),
        "{link}"
    );
    assert_eq!(query_param(&link, "sid"), sid);
    assert_eq!(query_param(&link, "client_secret"), "secret1");

    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=secret1"
    ))
    .assert_error(400, "M_SESSION_NOT_VALIDATED");
    let page = s.get(&path_of(&link));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    let v = s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=secret1"
    ));
    assert_eq!(v.status, 200, "{}", v.text());
    let body = v.json();
    assert_eq!(
        (body["medium"].as_str(), body["address"].as_str()),
        (Some("email"), Some("alice@example.org"))
    );
    assert!(body["validated_at"].as_u64().unwrap() > 1_700_000_000_000);
}

#[test]
fn send_attempt_repeats_nothing_and_increments_resend_the_same_token() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let first = request_token(&s, V1, "carol@example.org", "sec", 1).json();
    sink.wait_for_mails(1, WAIT);
    let again = request_token(&s, V1, "carol@example.org", "sec", 1).json();
    let lower = request_token(&s, V1, "carol@example.org", "sec", 0).json();
    assert_eq!(first, again);
    assert_eq!(first, lower);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink.mails().len(),
        1,
        "a repeated send_attempt must not send again"
    );
    // ... but says so at debug level.
    let line = s.wait_for_log("requestToken sends nothing", WAIT).unwrap();
    assert!(
        line.contains(&format!("sid={}", first["sid"].as_str().unwrap())),
        "{line}"
    );
    assert!(line.contains("send_attempt=1 "), "{line}");
    let more = request_token(&s, V1, "carol@example.org", "sec", 2).json();
    assert_eq!(more, first);
    let mails = sink.wait_for_mails(2, WAIT);
    assert_eq!(mails.len(), 2);
    assert_eq!(
        query_param(&link_in(&mails[0]), "token"),
        query_param(&link_in(&mails[1]), "token")
    );
    // Another client secret is another session.
    let other = request_token(&s, V1, "carol@example.org", "other", 1).json();
    assert_ne!(other["sid"], first["sid"]);
}

#[test]
fn a_failed_send_can_be_retried_with_the_same_attempt() {
    let sink = SmtpSink::start_with(Behaviour::FailData);
    let s = start(&sink, json!({}));
    request_token(&s, V1, "dave@example.org", "sec", 1).assert_error(500, "M_EMAIL_SEND_ERROR");
    let log = s
        .wait_for_log("sending a validation email failed", WAIT)
        .unwrap();
    assert!(
        log.contains("554"),
        "the log should tell the operator what the server said: {log}"
    );
    sink.set_behaviour(Behaviour::Accept);
    let r = request_token(&s, V1, "dave@example.org", "sec", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sink.wait_for_mails(1, WAIT).len(), 1);
}

#[test]
fn an_unreachable_mail_server_is_a_send_error() {
    let sink = SmtpSink::start();
    let port = sink.port();
    drop(sink);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = TestServer::start_with(json!({"threepid": {"medium": {"email": {
        "connector": "smtp", "connectors": {"smtp": {"host": "127.0.0.1", "port": dead_port, "tls": 0, "timeout": 2}}}}}}));
    let _ = port;
    let r = request_token(&s, V1, "erin@example.org", "sec", 1);
    r.assert_error(500, "M_EMAIL_SEND_ERROR");
    assert!(
        !r.text().contains("127.0.0.1"),
        "internal details must stay in the log: {}",
        r.text()
    );
    let log = s
        .wait_for_log("sending a validation email failed", WAIT)
        .unwrap();
    assert!(log.contains(&dead_port.to_string()), "{log}");
}

#[test]
fn a_refused_recipient_is_an_invalid_email() {
    let sink = SmtpSink::start_with(Behaviour::RejectRecipient);
    let s = start(&sink, json!({}));
    request_token(&s, V1, "nobody@example.org", "sec", 1).assert_error(400, "M_INVALID_EMAIL");
}

#[test]
fn request_token_rejects_bad_input_with_matrix_errors() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let path = format!("{V1}/validate/email/requestToken");
    for email in [
        "not-an-email",
        "Alice <alice@example.org>",
        "a@b.org, c@d.org",
        "alice@example.org\r\nBcc: victim@example.org",
        "a b@example.org",
        "",
    ] {
        s.post_json(
            &path,
            &json!({"client_secret": "s", "email": email, "send_attempt": 1}),
        )
        .assert_error(400, "M_INVALID_EMAIL");
    }
    let long = format!("{}@example.org", "a".repeat(300));
    s.post_json(
        &path,
        &json!({"client_secret": "s", "email": long, "send_attempt": 1}),
    )
    .assert_error(400, "M_INVALID_EMAIL");
    for secret in ["has space", "", "ünicode", &"a".repeat(256)] {
        s.post_json(
            &path,
            &json!({"client_secret": secret, "email": "a@example.org", "send_attempt": 1}),
        )
        .assert_error(400, "M_INVALID_PARAM");
    }
    s.post_json(
        &path,
        &json!({"client_secret": "s", "email": "a@example.org", "send_attempt": "x"}),
    )
    .assert_error(400, "M_INVALID_PARAM");
    s.post_json(
        &path,
        &json!({"client_secret": "s", "email": "a@example.org", "send_attempt": -1}),
    )
    .assert_error(400, "M_INVALID_PARAM");
    s.post_json(
        &path,
        &json!({"client_secret": "s", "email": "a@example.org"}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
    s.post_json(&path, &json!({"client_secret": "s", "send_attempt": 1}))
        .assert_error(400, "M_MISSING_PARAMS");
    s.post_json(
        &path,
        &json!({"client_secret": 5, "email": "a@example.org", "send_attempt": 1}),
    )
    .assert_error(400, "M_INVALID_PARAM");
    for link in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "//evil.example",
        "https://x\r\nLocation: y",
    ] {
        s.post_json(&path, &json!({"client_secret": "s", "email": "a@example.org", "send_attempt": 1, "next_link": link}))
            .assert_error(400, "M_INVALID_PARAM");
    }
    s.request(
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .assert_error(400, "M_NOT_JSON");
    s.request(
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        b"[1,2]",
    )
    .assert_error(400, "M_BAD_JSON");
    std::thread::sleep(Duration::from_millis(200));
    assert!(sink.mails().is_empty(), "no mail for rejected requests");
}

#[test]
fn next_link_hosts_can_be_restricted() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"session": {"nextLink": {"allowedHosts": ["app.example.org"]}}}),
    );
    let path = format!("{V1}/validate/email/requestToken");
    let ok = s.post_json(&path, &json!({"client_secret": "s", "email": "a@example.org", "send_attempt": 1, "next_link": "https://app.example.org/x"}));
    assert_eq!(ok.status, 200);
    s.post_json(&path, &json!({"client_secret": "t", "email": "a@example.org", "send_attempt": 1, "next_link": "https://evil.example/x"}))
        .assert_error(400, "M_INVALID_PARAM");
}

#[test]
fn an_operator_template_replaces_the_built_in_one() {
    let sink = SmtpSink::start();
    let dir = TempDir::new("tpl");
    let tpl = dir.path().join("validation.eml");
    std::fs::write(
        &tpl,
        "From: %FROM_NAME% <%FROM_EMAIL%>\nTo: %RECIPIENT_ADDRESS%\nSubject: Custom check for %DOMAIN%\nDate: %DATE%\n\nHi %RECIPIENT_ADDRESS%, code %VALIDATION_TOKEN%.\n%VALIDATION_LINK%\nEncoded: %RECIPIENT_ADDRESS_URL_ENCODED%\n",
    )
    .unwrap();
    let s = start(
        &sink,
        json!({"threepid": {"medium": {"email": {"generators": {"template": {"session": {"validation": tpl}}}}}}}),
    );
    request_token(&s, V1, "jo+tag@example.org", "sec", 1);
    let mail = &sink.wait_for_mails(1, WAIT)[0];
    assert!(
        mail.data.contains("Subject: Custom check for id.test\r\n"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("Hi jo+tag@example.org, code "),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("Encoded: jo%2Btag%40example.org\r\n"),
        "{}",
        mail.data
    );
    assert!(link_in(mail).contains("/submitToken?sid="));
}

#[test]
fn issue_19_a_template_that_is_only_a_body_gets_the_headers_and_a_subject() {
    let sink = SmtpSink::start();
    let dir = TempDir::new("tpl-body");
    // HTML, with a subject from the config.
    let html = dir.path().join("validation.html");
    std::fs::write(
        &html,
        "<!DOCTYPE html>\n<p>Hello %RECIPIENT_ADDRESS%: <a href=\"%VALIDATION_LINK%\">confirm</a>, code %VALIDATION_TOKEN%</p>\n",
    )
    .unwrap();
    let s = start(
        &sink,
        json!({"threepid": {"medium": {"email": {"generators": {
            "template": {"session": {"validation": html}},
            "subject": {"session": {"validation": "Your code for %DOMAIN%"}}
        }}}}}),
    );
    request_token(&s, V1, "ann@example.org", "sec", 1);
    let mail = &sink.wait_for_mails(1, WAIT)[0];
    let (head, body) = mail.data.split_once("\r\n\r\n").unwrap();
    for h in [
        "Subject: Your code for id.test\r\n",
        "To: ann@example.org\r\n",
        "Content-Type: text/html; charset=UTF-8\r\n",
        "MIME-Version: 1.0\r\n",
        "Date: ",
        "Message-ID: <",
        "From: ",
    ] {
        assert!(head.contains(h), "{h} missing in {head}");
    }
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(body.contains("Hello ann@example.org: "), "{body}");
    // The link is escaped for HTML, as in the built-in template's HTML part.
    assert!(body.contains("/submitToken?sid="), "{body}");
    assert!(body.contains("&amp;client_secret=sec"), "{body}");
    drop(s);

    // Plain text, no subject configured: the built-in template's subject.
    let sink = SmtpSink::start();
    let text = dir.path().join("validation.txt");
    std::fs::write(&text, "Hello,\n\nyour code is %VALIDATION_TOKEN%.\n").unwrap();
    let s = start(
        &sink,
        json!({"threepid": {"medium": {"email": {"generators": {"template": {"session": {"validation": text}}}}}}}),
    );
    request_token(&s, V1, "bo@example.org", "sec", 1);
    let mail = &sink.wait_for_mails(1, WAIT)[0];
    let (head, body) = mail.data.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("subject: confirm your email address for id.test\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Content-Type: text/plain; charset=UTF-8\r\n"),
        "{head}"
    );
    assert!(body.starts_with("Hello,\r\n\r\nyour code is "), "{body}");
}

#[test]
fn validation_can_be_disabled_by_policy() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"session": {"policy": {"validation": {"enabled": false}}}}),
    );
    let r = request_token(&s, V1, "kim@example.org", "sec", 1);
    let body = r.assert_error(403, "M_FORBIDDEN");
    assert!(body["error"].as_str().unwrap().contains("disabled"));
    s.post_json(
        &format!("{V1}/validate/email/submitToken"),
        &json!({"sid": "a", "client_secret": "b", "token": "c"}),
    )
    .assert_error(403, "M_FORBIDDEN");
}

#[test]
fn messages_are_rate_limited_per_recipient() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"session": {"rateLimit": {"perRecipient": {"burst": 2, "refill": 3600}}}}),
    );
    for attempt in 1..=2 {
        assert_eq!(
            request_token(&s, V1, "max@example.org", "sec", attempt).status,
            200
        );
    }
    let body =
        request_token(&s, V1, "max@example.org", "sec", 3).assert_error(429, "M_LIMIT_EXCEEDED");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    // A repeat of an attempt already sent is not a new message and is not limited.
    assert_eq!(
        request_token(&s, V1, "max@example.org", "sec", 2).status,
        200
    );
    assert_eq!(
        request_token(&s, V1, "other@example.org", "sec", 1).status,
        200
    );
    assert_eq!(sink.wait_for_mails(3, WAIT).len(), 3);
}

#[test]
fn messages_are_rate_limited_per_client() {
    let sink = SmtpSink::start();
    let s = start(
        &sink,
        json!({"session": {"rateLimit": {"perClient": {"burst": 2, "refill": 3600}}}}),
    );
    for n in 0..2 {
        assert_eq!(
            request_token(&s, V1, &format!("u{n}@example.org"), "sec", 1).status,
            200
        );
    }
    request_token(&s, V1, "u9@example.org", "sec", 1).assert_error(429, "M_LIMIT_EXCEEDED");
}

#[test]
fn the_log_only_notifier_writes_the_link_to_the_log() {
    let s = TestServer::start();
    let r = request_token(&s, V1, "nina@example.org", "sec", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let line = s
        .wait_for_log("(log-only notifier, not sent)", WAIT)
        .unwrap();
    assert!(line.contains("nina@example.org"), "{line}");
    let logs = s.logs().join("\n");
    let link = logs
        .lines()
        .find(|l| l.starts_with("http") && l.contains("/submitToken?"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(s.get(&path_of(&link)).status, 200);
}

#[test]
fn v1_accepts_form_encoded_requests() {
    let sink = SmtpSink::start();
    let s = start(&sink, json!({}));
    let r = s.request(
        "POST",
        &format!("{V1}/validate/email/requestToken"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"client_secret=abc&email=olga%40example.org&send_attempt=1",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        sink.wait_for_mails(1, WAIT)[0].to,
        vec!["olga@example.org".to_string()]
    );
}

#[test]
fn concurrent_requests_for_one_session_send_one_mail() {
    let sink = SmtpSink::start();
    let s = Arc::new(start(&sink, json!({})));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                request_token(&s, V1, "pat@example.org", "sec", 1).json()["sid"].clone()
            })
        })
        .collect();
    let sids: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(sids.iter().all(|sid| sid == &sids[0]), "{sids:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.mails().len(), 1);
}

/// Enough handler threads that 16 requests really run at once, and a per-client limit out of
/// the way (every test request comes from 127.0.0.1).
fn concurrent_config(per_recipient_burst: u32) -> Value {
    json!({
        "server": {"workers": 32},
        "session": {"rateLimit": {
            "perRecipient": {"burst": per_recipient_burst, "refill": 3600},
            "perClient": {"burst": 1000, "refill": 1}
        }}
    })
}

#[test]
fn concurrent_requests_to_one_address_send_no_more_than_its_limit() {
    let sink = SmtpSink::start();
    let s = Arc::new(start(&sink, concurrent_config(5)));
    let statuses = {
        let s = s.clone();
        crate::support::at_once(16, move |n| {
            request_token(&s, V1, "quinn@example.org", &format!("sec{n}"), 1).status
        })
    };
    // Every answer is in, so every send is done; wait a little anyway for stragglers.
    let mails = sink.wait_for_mails(6, Duration::from_millis(500));
    assert_eq!(mails.len(), 5, "mails delivered; statuses {statuses:?}");
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == 200).count(),
            statuses.iter().filter(|s| **s == 429).count()
        ),
        (5, 11),
        "{statuses:?}"
    );
}

#[test]
fn a_failed_send_gives_its_tokens_back_under_concurrency() {
    let sink = SmtpSink::start();
    let s = Arc::new(start(&sink, concurrent_config(5)));
    // The first three messages the sink sees are refused (554): M_EMAIL_SEND_ERROR.
    sink.fail_next(3);
    let statuses = {
        let s = s.clone();
        crate::support::at_once(16, move |n| {
            request_token(&s, V1, "rita@example.org", &format!("a{n}"), 1).status
        })
    };
    assert!(
        statuses.iter().all(|s| [200, 429, 500].contains(s)),
        "{statuses:?}"
    );
    // Then one at a time until the address is limited: the failed sends did not use up any
    // of its 5 messages, so exactly 5 arrive in all, never more.
    let mut last = 0;
    for n in 0..10 {
        last = request_token(&s, V1, "rita@example.org", &format!("b{n}"), 1).status;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429, "the address must end up limited");
    let mails = sink.wait_for_mails(6, Duration::from_millis(500));
    assert_eq!(mails.len(), 5, "concurrent statuses {statuses:?}");
}
