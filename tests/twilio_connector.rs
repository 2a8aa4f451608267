//! The Twilio connector (oxisd::notify::twilio) against the Twilio stand-in, and against raw
//! servers that refuse, never answer or answer too much.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::twilio::TwilioStandIn;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oxisd::config::{Secret, TwilioConfig};
use oxisd::notify::twilio::{TwilioConnector, TwilioError, TwilioFailure};
use serde_json::Value;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "s3cr3t-t0k3n-value";
const FROM: &str = "+15005550006";
const WAIT: Duration = Duration::from_secs(5);

fn config(base_url: &str) -> TwilioConfig {
    TwilioConfig {
        account_sid: SID.into(),
        auth_token: Secret::new(TOKEN),
        number: Some(FROM.into()),
        base_url: base_url.into(),
        timeout: 5,
        ..TwilioConfig::default()
    }
}

fn connector(base_url: &str) -> TwilioConnector {
    TwilioConnector::new(config(base_url)).unwrap()
}

/// Asserts the error's class, and that its text is not empty and never shows the token.
fn assert_failure(error: &TwilioError, expected: TwilioFailure) -> String {
    let text = error.to_string();
    assert_eq!(error.failure(), expected, "{text}");
    assert!(!text.is_empty());
    assert!(!text.contains(TOKEN), "token in the error: {text}");
    assert!(
        !format!("{error:?}").contains(TOKEN),
        "token in Debug: {error:?}"
    );
    text
}

#[test]
fn message_is_posted_with_auth_and_form_fields() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let body = "Your code is 123 456: Grüße, 認証 ✓ & a=b+c %20 ?x#y;\nline two";
    connector(&twilio.base_url())
        .send("447700900123", body)
        .unwrap();
    let messages = twilio.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    let sms = &messages[0];
    assert_eq!(sms.account, SID);
    assert_eq!(sms.auth, Some((SID.to_string(), TOKEN.to_string())));
    assert_eq!(sms.to, "+447700900123");
    assert_eq!(sms.from.as_deref(), Some(FROM));
    assert_eq!(sms.messaging_service_sid, None);
    assert_eq!(sms.body, body);
    assert_eq!(twilio.requests(), 1);
}

#[test]
fn messaging_service_sid_is_sent_instead_of_from() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let config = TwilioConfig {
        messaging_service_sid: Some("MG0123456789abcdef0123456789abcdef".into()),
        ..config(&twilio.base_url())
    };
    TwilioConnector::new(config)
        .unwrap()
        .send("15005550010", "hello")
        .unwrap();
    let sms = &twilio.wait_for_messages(1, WAIT)[0];
    assert_eq!(sms.from, None);
    assert_eq!(
        sms.messaging_service_sid.as_deref(),
        Some("MG0123456789abcdef0123456789abcdef")
    );
    assert_eq!(sms.to, "+15005550010");
}

#[test]
fn a_leading_plus_is_not_doubled() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    connector(&twilio.base_url())
        .send("+447700900123", "hi")
        .unwrap();
    assert_eq!(twilio.wait_for_messages(1, WAIT)[0].to, "+447700900123");
}

#[test]
fn trailing_slash_in_base_url_is_ignored() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    connector(&format!("{}/", twilio.base_url()))
        .send("447700900123", "hi")
        .unwrap();
    assert_eq!(twilio.wait_for_messages(1, WAIT).len(), 1);
}

#[test]
fn one_connector_serves_many_threads() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let connector = Arc::new(connector(&twilio.base_url()));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let connector = connector.clone();
            std::thread::spawn(move || {
                for j in 0..3 {
                    connector
                        .send(&format!("4477009001{i}{j}"), &format!("message {i}/{j}"))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let messages = twilio.wait_for_messages(24, WAIT);
    assert_eq!(messages.len(), 24);
    assert_eq!(twilio.requests(), 24);
}

#[test]
fn malformed_recipients_are_refused_without_a_request() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let connector = connector(&twilio.base_url());
    for to in [
        "",
        "+",
        "++447700900123",
        "44 7700 900123",
        "44-7700",
        "1234567890123456",
    ] {
        let e = connector.send(to, "x").unwrap_err();
        assert_failure(&e, TwilioFailure::InvalidNumber);
    }
    assert_eq!(twilio.requests(), 0);
}

#[test]
fn twilio_error_codes_map_to_failure_classes() {
    let cases = [
        (400, 21211, TwilioFailure::InvalidNumber),
        (400, 21614, TwilioFailure::InvalidNumber),
        (400, 21408, TwilioFailure::Rejected),
        (400, 21610, TwilioFailure::Rejected),
        (400, 21612, TwilioFailure::Rejected),
        (401, 20003, TwilioFailure::Failed),
        (400, 21606, TwilioFailure::Failed),
        (429, 20429, TwilioFailure::Failed),
        (500, 20500, TwilioFailure::Failed),
        (503, 20503, TwilioFailure::Failed),
    ];
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let connector = connector(&twilio.base_url());
    for (i, (status, code, expected)) in cases.into_iter().enumerate() {
        twilio.fail_next_with(status, code, &format!("error number {code}"));
        let e = connector.send("447700900123", "hi").unwrap_err();
        let text = assert_failure(&e, expected);
        assert_eq!(e.code(), Some(code), "{text}");
        assert!(text.contains(&code.to_string()), "{text}");
        assert!(text.contains(&status.to_string()), "{text}");
        assert!(text.contains(&format!("error number {code}")), "{text}");
        assert_eq!(twilio.requests(), i + 1);
    }
    assert!(twilio.messages().is_empty());
    // The failures were one-shot: the next message goes through.
    connector.send("447700900123", "hi").unwrap();
    assert_eq!(twilio.messages().len(), 1);
}

#[test]
fn wrong_auth_token_fails_with_20003() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let config = TwilioConfig {
        auth_token: Secret::new("wr0ng-t0k3n"),
        ..config(&twilio.base_url())
    };
    let e = TwilioConnector::new(config)
        .unwrap()
        .send("447700900123", "hi")
        .unwrap_err();
    let text = assert_failure(&e, TwilioFailure::Failed);
    assert!(text.contains("20003"), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("wr0ng"), "{text}");
    assert_eq!(twilio.requests(), 1);
    assert!(twilio.messages().is_empty());
}

#[test]
fn wrong_account_sid_fails() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let config = TwilioConfig {
        account_sid: "ACffffffffffffffffffffffffffffffff".into(),
        ..config(&twilio.base_url())
    };
    let e = TwilioConnector::new(config)
        .unwrap()
        .send("447700900123", "hi")
        .unwrap_err();
    assert_failure(&e, TwilioFailure::Failed);
    assert_eq!(e.code(), Some(20003));
}

#[test]
fn connection_refused_fails_naming_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let e = connector(&base).send("447700900123", "hi").unwrap_err();
    let text = assert_failure(&e, TwilioFailure::Failed);
    assert!(text.contains(&base), "{text}");
    assert!(text.contains("Messages.json"), "{text}");
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

/// Reads one request (head and Content-Length body) and returns its head.
fn read_request(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    head
}

/// A server that answers every connection with `head` and then `body_len` bytes of `x`,
/// written as fast as the client reads. Returns its base URL and the bytes it managed to write.
fn flooding_server(head: String, body_len: u64) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            read_request(&mut stream);
            if stream.write_all(head.as_bytes()).is_err() {
                continue;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < body_len {
                match stream.write(&chunk) {
                    Ok(n) if n > 0 => {
                        sent += n as u64;
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
        }
    });
    (base, written)
}

const GIB: u64 = 1024 * 1024 * 1024;

#[test]
fn a_huge_error_answer_is_not_read_to_the_end() {
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n"
    );
    let (base, written) = flooding_server(head, GIB);
    let config = TwilioConfig {
        timeout: 30,
        ..config(&base)
    };
    let started = Instant::now();
    let e = TwilioConnector::new(config)
        .unwrap()
        .send("447700900123", "hi")
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = assert_failure(&e, TwilioFailure::Failed);
    assert!(text.contains("400"), "{text}");
    assert!(text.contains("64 KiB"), "{text}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // The connection was dropped after the limit: the server could not write the gigabyte.
    std::thread::sleep(Duration::from_millis(300));
    let written = written.load(Ordering::SeqCst);
    assert!(written < GIB / 4, "the client read {written} bytes");
}

#[test]
fn a_huge_success_answer_still_counts_as_sent() {
    let head = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n".to_string();
    let (base, written) = flooding_server(head, GIB);
    let started = Instant::now();
    connector(&base).send("447700900123", "hi").unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let written = written.load(Ordering::SeqCst);
    assert!(written < GIB / 4, "the client read {written} bytes");
}

#[test]
fn a_non_twilio_error_answer_fails_with_its_status() {
    let html = "<html><body>Bad gateway</body></html>";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            read_request(&mut stream);
            let _ = write!(
                stream,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{html}",
                html.len()
            );
        }
    });
    let e = connector(&base).send("447700900123", "hi").unwrap_err();
    let text = assert_failure(&e, TwilioFailure::Failed);
    assert_eq!(e.code(), None);
    assert!(text.contains("502"), "{text}");
    assert!(text.contains("Bad gateway"), "{text}");
}

#[test]
fn a_silent_server_fails_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            // Accept, read nothing, answer nothing, keep the connection open.
            held.push(stream);
        }
    });
    let config = TwilioConfig {
        timeout: 1,
        ..config(&base)
    };
    let started = Instant::now();
    let e = TwilioConnector::new(config)
        .unwrap()
        .send("447700900123", "hi")
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = assert_failure(&e, TwilioFailure::Failed);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(text.contains(&base), "{text}");
    assert!(text.contains("1 s"), "{text}");
}

/// The stand-in itself, spoken to directly: what it refuses and how it answers.
#[test]
fn stand_in_checks_like_twilio() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "{}/2010-04-01/Accounts/{SID}/Messages.json",
        twilio.base_url()
    );
    let basic = format!("Basic {}", BASE64.encode(format!("{SID}:{TOKEN}")));
    let post = |url: &str, auth: Option<&str>, form: &[(&str, &str)]| -> (u16, Value) {
        let mut request = agent.post(url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request.send_form(form.iter().copied()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let ok = [("To", "+447700900123"), ("From", FROM), ("Body", "hi")];

    let (status, json) = post(&url, None, &ok);
    assert_eq!(
        (status, json["code"].as_u64()),
        (401, Some(20003)),
        "{json}"
    );
    let (status, json) = post(&url, Some("Basic Zm9vOmJhcg=="), &ok);
    assert_eq!(
        (status, json["code"].as_u64()),
        (401, Some(20003)),
        "{json}"
    );
    let other = url.replace("Messages.json", "Calls.json");
    let (status, _) = post(&other, Some(&basic), &ok);
    assert_eq!(status, 404);
    for to in ["447700900123", "++447700900123", "+44 7700", "+"] {
        let form = [("To", to), ("From", FROM), ("Body", "hi")];
        let (status, json) = post(&url, Some(&basic), &form);
        assert_eq!(
            (status, json["code"].as_u64()),
            (400, Some(21211)),
            "{to}: {json}"
        );
    }
    let (status, json) = post(
        &url,
        Some(&basic),
        &[("To", "+447700900123"), ("Body", "hi")],
    );
    assert_eq!(
        (status, json["code"].as_u64()),
        (400, Some(21603)),
        "{json}"
    );
    assert_eq!(twilio.requests(), 8);
    assert!(twilio.messages().is_empty());

    let (status, json) = post(&url, Some(&basic), &ok);
    assert_eq!(status, 201, "{json}");
    let sid = json["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
    assert_eq!(json["status"], "queued");
    assert_eq!(json["to"], "+447700900123");
    assert_eq!(json["body"], "hi");
    assert_eq!(twilio.messages().len(), 1);
}
