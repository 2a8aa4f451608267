//! Helpers for the tests of validation sessions: a server wired to an SMTP sink, requestToken,
//! and reading the link out of a mail.

use std::time::Duration;

use serde_json::{Value, json};

use super::smtp::{ReceivedMail, SmtpSink};
use super::{Resp, TestServer, merge};

pub const V2: &str = "/_matrix/identity/v2";
pub const V1: &str = "/_matrix/identity/api/v1";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn smtp_config(sink: &SmtpSink) -> Value {
    json!({"threepid": {"medium": {"email": {
        "identity": {"from": "id@id.test", "name": "Test Identity"},
        "connector": "smtp",
        "connectors": {"smtp": {"host": "127.0.0.1", "port": sink.port(), "tls": 0, "timeout": 5}}
    }}}})
}

pub fn start(sink: &SmtpSink, extra: Value) -> TestServer {
    let mut config = smtp_config(sink);
    merge(&mut config, &extra);
    TestServer::start_with(config)
}

pub fn request_token(s: &TestServer, mount: &str, email: &str, secret: &str, attempt: u64) -> Resp {
    s.post_json(
        &format!("{mount}/validate/email/requestToken"),
        &json!({"client_secret": secret, "email": email, "send_attempt": attempt}),
    )
}

/// The validation link in a mail's text part.
pub fn link_in(mail: &ReceivedMail) -> String {
    mail.data
        .lines()
        .find(|l| l.starts_with("http") && l.contains("/submitToken?"))
        .unwrap_or_else(|| panic!("no link in mail:\n{}", mail.data))
        .trim()
        .to_string()
}

/// The path and query of a link, and one decoded query parameter.
pub fn path_of(link: &str) -> String {
    let rest = link.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

pub fn query_param(link: &str, name: &str) -> String {
    let query = link.split_once('?').unwrap().1;
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| oxisd::http::percent_decode(v, true))
        .unwrap_or_else(|| panic!("no {name} in {link}"))
}

/// With the log-only notifier: requests a token for `email`, opens the link from the log, and
/// returns the validated session's sid.
pub fn validate_email_via_log(s: &TestServer, email: &str, secret: &str) -> String {
    let r = request_token(s, V1, email, secret, 1);
    assert_eq!(r.status, 200, "requestToken: {}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let marker = format!("email to {email} (log-only notifier");
    s.wait_for_log(&marker, WAIT)
        .expect("the validation email in the log");
    // The mail's lines reach the log one by one: wait for the link's.
    let sid_param = format!("sid={sid}");
    let deadline = std::time::Instant::now() + WAIT;
    let link = loop {
        let logs = s.logs();
        let start = logs.iter().rposition(|l| l.contains(&marker)).unwrap();
        let found = logs[start..]
            .iter()
            .find(|l| l.starts_with("http") && l.contains(&sid_param))
            .map(|l| l.trim().to_string());
        match found {
            Some(link) => break link,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            None => panic!("the link in the logged email"),
        }
    };
    assert_eq!(s.get(&path_of(&link)).status, 200, "validation link");
    sid
}

/// Waits (up to 8 s) until the sweeper removed session `sid`: getValidated3pid answers 404
/// `M_NO_VALID_SESSION` instead of "expired". Panics with `what` and the last answer otherwise.
pub fn wait_until_swept(s: &TestServer, sid: &str, secret: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let r = s.get(&format!(
            "{V1}/3pid/getValidated3pid?sid={sid}&client_secret={secret}"
        ));
        if r.status == 404 {
            r.assert_error(404, "M_NO_VALID_SESSION");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} ({})",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
