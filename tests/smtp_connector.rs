//! The SMTP connector (oxisd::notify::smtp) against the SMTP sink, every TLS mode.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::smtp::{Behaviour, SinkTls, SmtpSink};
use oxisd::config::{Secret, SmtpConfig, SmtpTls};
use oxisd::notify::smtp::{SmtpConnector, SmtpError};

const WAIT: Duration = Duration::from_secs(5);
const RAW: &str = "From: Sydent <noreply@example.org>\r\n\
To: alice@example.com\r\n\
Subject: =?UTF-8?Q?V=C3=A9rification?=\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
\r\n\
Your code is 123456. Grüße.\r\n\
.leading dot\r\n\
.\r\n\
..two dots\r\n\
last line\r\n";

fn config(port: u16, tls: SmtpTls) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls,
        timeout: 5,
        ..SmtpConfig::default()
    }
}

fn send(config: SmtpConfig) -> Result<(), SmtpError> {
    SmtpConnector::new(config).unwrap().send(
        "noreply@example.org",
        "alice@example.com",
        RAW.as_bytes(),
    )
}

#[test]
fn plain_send_is_recorded_byte_exact() {
    let sink = SmtpSink::start();
    send(config(sink.port(), SmtpTls::None)).unwrap();
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "noreply@example.org");
    assert_eq!(mails[0].to, vec!["alice@example.com".to_string()]);
    assert_eq!(mails[0].data, RAW);
    assert_eq!(mails[0].auth, None);
    assert!(!mails[0].tls);
}

#[test]
fn message_without_final_crlf_is_terminated() {
    let sink = SmtpSink::start();
    let connector = SmtpConnector::new(config(sink.port(), SmtpTls::None)).unwrap();
    connector
        .send("a@b.c", "d@e.f", b"Subject: x\r\n\r\nno newline")
        .unwrap();
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(mails[0].data, "Subject: x\r\n\r\nno newline\r\n");
}

#[test]
fn starttls_if_offered_falls_back_to_plain() {
    let sink = SmtpSink::start();
    send(config(sink.port(), SmtpTls::StartTlsIfOffered)).unwrap();
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].data, RAW);
    assert!(!mails[0].tls);
}

#[test]
fn starttls_required_fails_when_not_offered() {
    let sink = SmtpSink::start();
    let err = send(config(sink.port(), SmtpTls::StartTlsRequired)).unwrap_err();
    assert!(
        matches!(err, SmtpError::StartTlsNotOffered { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("STARTTLS"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", sink.port())),
        "{text}"
    );
    assert!(!err.is_recipient_rejected());
    assert!(sink.mails().is_empty());
}

#[test]
fn auth_credentials_reach_the_sink_and_never_the_errors() {
    let sink = SmtpSink::start();
    let mut cfg = config(sink.port(), SmtpTls::StartTlsIfOffered);
    cfg.login = Some("alice".into());
    cfg.password = Secret::new("pa55-w0rd-xyz");
    send(cfg.clone()).unwrap();
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(
        mails[0].auth,
        Some(("alice".into(), "pa55-w0rd-xyz".into()))
    );

    for behaviour in [Behaviour::RejectRecipient, Behaviour::FailData] {
        sink.set_behaviour(behaviour);
        let err = send(cfg.clone()).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("pa55-w0rd-xyz"), "{text}");
        }
    }
    let connector = SmtpConnector::new(cfg).unwrap();
    assert!(!format!("{connector:?}").contains("pa55-w0rd-xyz"));
}

#[test]
fn rejected_recipient_is_reported_as_such() {
    let sink = SmtpSink::start_with(Behaviour::RejectRecipient);
    let err = send(config(sink.port(), SmtpTls::None)).unwrap_err();
    assert!(err.is_recipient_rejected(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("RCPT TO") && text.contains("550"), "{text}");
    assert!(sink.mails().is_empty());
}

#[test]
fn failed_data_names_the_code() {
    let sink = SmtpSink::start_with(Behaviour::FailData);
    let err = send(config(sink.port(), SmtpTls::None)).unwrap_err();
    assert!(!err.is_recipient_rejected());
    let text = err.to_string();
    assert!(
        text.contains("554") && text.contains("message refused"),
        "{text}"
    );
    assert!(
        matches!(err, SmtpError::Rejected { code: 554, .. }),
        "{err:?}"
    );
}

#[test]
fn sink_can_fail_then_recover() {
    let sink = SmtpSink::start_with(Behaviour::FailData);
    let connector = SmtpConnector::new(config(sink.port(), SmtpTls::None)).unwrap();
    assert!(connector.send("a@b.c", "d@e.f", RAW.as_bytes()).is_err());
    sink.set_behaviour(Behaviour::Accept);
    connector.send("a@b.c", "d@e.f", RAW.as_bytes()).unwrap();
    assert_eq!(sink.wait_for_mails(1, WAIT).len(), 1);
}

#[test]
fn silent_server_times_out() {
    let sink = SmtpSink::start_with(Behaviour::Silent);
    for tls in [SmtpTls::None, SmtpTls::StartTlsIfOffered, SmtpTls::Implicit] {
        let mut cfg = config(sink.port(), tls);
        cfg.timeout = 1;
        cfg.accept_invalid_certs = true;
        let started = Instant::now();
        let err = send(cfg).unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(
            matches!(err, SmtpError::Timeout { seconds: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("timed out"), "{err}");
    }
}

#[test]
fn addresses_cannot_inject_commands() {
    let sink = SmtpSink::start();
    let connector = SmtpConnector::new(config(sink.port(), SmtpTls::None)).unwrap();
    let evil = "a@b.c>\r\nRCPT TO:<victim@example.com";
    let err = connector
        .send("noreply@example.org", evil, RAW.as_bytes())
        .unwrap_err();
    assert!(err.is_recipient_rejected(), "{err:?}");
    assert!(!err.to_string().contains('\n'), "{err}");
    for to in ["", "a b@c.d", "<a@b.c>"] {
        let err = connector
            .send("noreply@example.org", to, RAW.as_bytes())
            .unwrap_err();
        assert!(err.is_recipient_rejected(), "{err:?}");
    }
    let err = connector
        .send(evil, "alice@example.com", RAW.as_bytes())
        .unwrap_err();
    assert!(matches!(err, SmtpError::InvalidAddress { .. }) && !err.is_recipient_rejected());
    // The null sender is allowed.
    connector
        .send("", "alice@example.com", RAW.as_bytes())
        .unwrap();
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "");
}

#[test]
fn connection_refused_names_host_and_port() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = send(config(port, SmtpTls::None)).unwrap_err();
    assert!(matches!(err, SmtpError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[test]
fn concurrent_sends_all_arrive() {
    let sink = SmtpSink::start();
    let connector = Arc::new(SmtpConnector::new(config(sink.port(), SmtpTls::None)).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let connector = connector.clone();
            std::thread::spawn(move || {
                let to = format!("user{i}@example.com");
                connector.send("noreply@example.org", &to, RAW.as_bytes())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mails = sink.wait_for_mails(4, WAIT);
    assert_eq!(mails.len(), 4);
    let mut to: Vec<_> = mails.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "user0@example.com",
            "user1@example.com",
            "user2@example.com",
            "user3@example.com"
        ]
    );
    assert!(mails.iter().all(|m| m.data == RAW));
}

#[test]
fn tls_modes_deliver_over_tls() {
    for (sink_tls, tls) in [
        (SinkTls::StartTls, SmtpTls::StartTlsIfOffered),
        (SinkTls::StartTls, SmtpTls::StartTlsRequired),
        (SinkTls::Implicit, SmtpTls::Implicit),
    ] {
        let sink = SmtpSink::start_tls(sink_tls);
        let mut cfg = config(sink.port(), tls);
        cfg.accept_invalid_certs = true;
        cfg.login = Some("bob".into());
        cfg.password = Secret::new("tls-secret");
        send(cfg).unwrap();
        let mails = sink.wait_for_mails(1, WAIT);
        assert_eq!(mails.len(), 1, "{tls:?}");
        assert!(mails[0].tls, "{tls:?}");
        assert_eq!(mails[0].data, RAW);
        assert_eq!(mails[0].auth, Some(("bob".into(), "tls-secret".into())));
    }
}

#[test]
fn plain_mode_ignores_offered_starttls() {
    let sink = SmtpSink::start_tls(SinkTls::StartTls);
    send(config(sink.port(), SmtpTls::None)).unwrap();
    assert!(!sink.wait_for_mails(1, WAIT)[0].tls);
}

#[test]
fn self_signed_certificate_is_refused_when_checked() {
    for (sink_tls, tls) in [
        (SinkTls::Implicit, SmtpTls::Implicit),
        (SinkTls::StartTls, SmtpTls::StartTlsRequired),
    ] {
        let sink = SmtpSink::start_tls(sink_tls);
        let mut cfg = config(sink.port(), tls);
        cfg.host = "localhost".into();
        let err = send(cfg).unwrap_err();
        assert!(matches!(err, SmtpError::Tls { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("certificate"), "{text}");
        assert!(sink.mails().is_empty());
    }
}

#[test]
fn implicit_tls_against_plain_server_fails_fast() {
    let sink = SmtpSink::start();
    let mut cfg = config(sink.port(), SmtpTls::Implicit);
    cfg.accept_invalid_certs = true;
    let started = Instant::now();
    let err = send(cfg).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, SmtpError::Tls { .. } | SmtpError::Protocol { .. }),
        "{err:?}"
    );
}

#[test]
fn empty_host_is_a_config_error() {
    let err = SmtpConnector::new(config(25, SmtpTls::None)).map(|_| ());
    assert!(err.is_ok());
    let mut cfg = config(25, SmtpTls::None);
    cfg.host = " ".into();
    assert!(SmtpConnector::new(cfg).unwrap_err().contains("host"));
}

/// The sink itself: AUTH LOGIN, dot-unstuffing, RSET, NOOP, HELO, unknown commands.
#[test]
fn sink_speaks_enough_smtp() {
    use std::io::{BufRead, BufReader, Write};
    let sink = SmtpSink::start();
    let stream = std::net::TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut expect = |send: &str, code: &str| {
        if !send.is_empty() {
            w.write_all(send.as_bytes()).unwrap();
        }
        let mut line = String::new();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(line.starts_with(code), "{send:?} -> {line:?}");
    };
    expect("", "220");
    expect("HELO me\r\n", "250");
    expect("EHLO me\r\n", "250");
    expect("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6");
    expect("dXNlcg==\r\n", "334 UGFzc3dvcmQ6");
    expect("cGFzcw==\r\n", "235");
    expect("NOOP\r\n", "250");
    expect("MAIL FROM:<x@y.z>\r\n", "250");
    expect("RSET\r\n", "250");
    expect("MAIL FROM:<a@b.c> BODY=8BITMIME\r\n", "250");
    expect("RCPT TO:<d@e.f>\r\n", "250");
    expect("DATA\r\n", "354");
    expect("A: b\r\n\r\n..x\r\n...\r\nend\r\n.\r\n", "250");
    expect("BOGUS\r\n", "502");
    expect("QUIT\r\n", "221");
    let mails = sink.wait_for_mails(1, WAIT);
    assert_eq!(mails[0].from, "a@b.c");
    assert_eq!(mails[0].to, vec!["d@e.f".to_string()]);
    assert_eq!(mails[0].data, "A: b\r\n\r\n.x\r\n..\r\nend\r\n");
    assert_eq!(mails[0].auth, Some(("user".into(), "pass".into())));
}
