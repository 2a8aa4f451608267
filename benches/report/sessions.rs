//! The sessions part of the benchmark page: start-up on an empty store, the status ping, and
//! requestToken (mail really sent over SMTP), submitToken and bind under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::common::{self, connect, request, rss_mib};
use super::{Row, V1, measure, note_start, part_dir, smtp, write_config};

/// The `token=` of the link in a mail.
fn token_in(mail: &smtp::ReceivedMail) -> (String, String) {
    let link = mail
        .data
        .lines()
        .find(|l| l.starts_with("http") && l.contains("/submitToken?"))
        .expect("a link in the mail");
    let param = |name: &str| {
        link.split(['?', '&'])
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    (param("sid"), param("token"))
}

/// Sessions, with mail really sent over SMTP.
pub fn sessions(rows: &mut Vec<Row>, notes: &mut Vec<String>, seconds: u64) {
    let sink = smtp::SmtpSink::start();
    let dir = part_dir("sessions");
    let config = write_config(&dir, Some(sink.port()));
    let first = common::start(&config);
    notes.push(format!(
        "first start (creates the store and the signing key, with fsyncs): {:.1} ms",
        first.started_in.as_secs_f64() * 1000.0
    ));
    drop(first);
    let server = common::start(&config);
    note_start(
        notes,
        &server,
        "start-up to the first answer, empty store",
        "idle RSS after start",
    );
    eprintln!("ping ({seconds} s per measurement)");
    measure(
        rows,
        &server,
        "ping (GET /_matrix/identity/v2)",
        seconds,
        None,
        Arc::new(|_, _| ("GET", "/_matrix/identity/v2".to_string(), String::new())),
    );
    eprintln!("sessions ({seconds} s per measurement)");
    let run = Arc::new(AtomicU64::new(0));
    let r = run.clone();
    measure(
        rows,
        &server,
        "requestToken (email sent over SMTP)",
        seconds,
        None,
        Arc::new(move |c, n| {
            let k = r.fetch_add(1, Ordering::Relaxed);
            (
                "POST",
                format!("{V1}/validate/email/requestToken"),
                format!(
                    r#"{{"client_secret":"bench{c}x{k}","email":"user{c}x{n}x{k}@bench.test","send_attempt":1}}"#
                ),
            )
        }),
    );
    // Sessions to submit tokens for and to bind: 1 000 fresh ones.
    let before = sink.mails().len();
    let mut conn = connect(server.addr);
    for i in 0..1000 {
        let body = format!(
            r#"{{"client_secret":"submit{i}","email":"submit{i}@bench.test","send_attempt":1}}"#
        );
        let r = request(
            &mut conn,
            "POST",
            &format!("{V1}/validate/email/requestToken"),
            None,
            &body,
        );
        assert!(r.starts_with("HTTP/1.1 200"));
    }
    let mails = sink.wait_for_mails(before + 1000, Duration::from_secs(30));
    let sessions: Arc<Vec<(String, String, String)>> = Arc::new(
        mails[before..]
            .iter()
            .map(|m| {
                let (sid, token) = token_in(m);
                let i: String = m.to[0]
                    .trim_start_matches("submit")
                    .split('@')
                    .next()
                    .unwrap()
                    .to_string();
                (sid, format!("submit{i}"), token)
            })
            .collect(),
    );
    let s = sessions.clone();
    measure(
        rows,
        &server,
        "submitToken",
        seconds,
        None,
        Arc::new(move |c, n| {
            let (sid, secret, token) = &s[((c * 131 + n) % s.len() as u64) as usize];
            (
                "POST",
                format!("{V1}/validate/email/submitToken"),
                format!(r#"{{"sid":"{sid}","client_secret":"{secret}","token":"{token}"}}"#),
            )
        }),
    );
    let s = sessions.clone();
    measure(
        rows,
        &server,
        "bind (signed, stored, durable)",
        seconds,
        None,
        Arc::new(move |c, n| {
            let k = ((c * 131 + n) % s.len() as u64) as usize;
            let (sid, secret, _) = &s[k];
            (
                "POST",
                format!("{V1}/3pid/bind"),
                format!(
                    r#"{{"sid":"{sid}","client_secret":"{secret}","mxid":"@user{k}:bench.test"}}"#
                ),
            )
        }),
    );
    std::thread::sleep(Duration::from_secs(2));
    notes.push(format!(
        "RSS 2 s after the session load: {:.1} MiB",
        rss_mib(server.child.id())
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
