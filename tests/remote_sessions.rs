//! Remote 3PID sessions with two real servers: a 3PID validated here is validated and bound at
//! an upstream oxisd through our pages, and binds are forwarded there.

use serde_json::{Value, json};

use crate::support::sessions::{V1, WAIT, link_in, path_of, request_token, smtp_config};
use crate::support::smtp::SmtpSink;
use crate::support::{TestServer, merge};

const SECRET: &str = "downstreamsecret";

/// The upstream: another oxisd with its own mail.
fn upstream(sink: &SmtpSink) -> TestServer {
    let mut config = smtp_config(sink);
    merge(&mut config, &json!({"server": {"name": "upstream.test"}}));
    TestServer::start_with(config)
}

/// Our server, publishing remote 3PIDs (`forRemote`) at `upstream_url`; `to_local` as given.
fn downstream(sink: &SmtpSink, upstream_url: &str, to_local: bool) -> TestServer {
    let mut config = smtp_config(sink);
    merge(
        &mut config,
        &json!({
            "matrix": {"identity": {"servers": {"upstream": [upstream_url]}}},
            "session": {"policy": {"validation": {"forRemote": {
                "toLocal": to_local,
                "toRemote": {"enabled": true, "server": "upstream"},
            }}}},
            "outbound": {"allowedRanges": ["127.0.0.1/32"]},
        }),
    );
    TestServer::start_with(config)
}

/// Requests a token here and opens the link from the mail: the page that follows.
fn validate_here(s: &TestServer, sink: &SmtpSink, email: &str) -> (String, String) {
    let before = sink.mails().len();
    let r = request_token(s, V1, email, SECRET, 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let mail = sink.wait_for_mails(before + 1, WAIT).pop().unwrap();
    let page = s.get(&path_of(&link_in(&mail)));
    assert_eq!(page.status, 200, "{}", page.text());
    (sid, page.text())
}

/// The href of the page's button.
fn button(page: &str) -> String {
    let start = page.find("class=\"button\" href=\"").expect("no button") + 21;
    let href = &page[start..];
    href[..href.find('"').unwrap()].replace("&amp;", "&")
}

fn bind(s: &TestServer, sid: &str, mxid: &str) -> crate::support::Resp {
    s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": SECRET, "mxid": mxid}),
    )
}

fn lookup(s: &TestServer, email: &str) -> Value {
    s.get(&format!("{V1}/lookup?medium=email&address={email}"))
        .json()
}

#[test]
fn a_3pid_validated_here_is_validated_and_bound_upstream() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);

    let (sid, page) = validate_here(&down, &down_mail, "bob@example.org");
    assert!(page.contains("Publish at upstream"), "{page}");
    let start = button(&page);
    assert!(
        start.contains("/_matrix/identity/_oxisd/remote/start?sid="),
        "{start}"
    );

    // Start: the upstream mails its own token to the same address.
    let page = down.get(&path_of(&start));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("Check your messages from upstream"));
    let upstream_mail = up_mail.wait_for_mails(1, WAIT).pop().unwrap();
    assert_eq!(upstream_mail.to, ["bob@example.org"]);
    let check = button(&page.text());

    // Checked before the person confirmed at the upstream: not yet.
    let pending = down.get(&path_of(&check));
    assert!(
        pending.text().contains("Not verified at upstream yet"),
        "{}",
        pending.text()
    );
    // The person follows the upstream's link; the check page then says so.
    assert_eq!(up.get(&path_of(&link_in(&upstream_mail))).status, 200);
    let done = down.get(&path_of(&check));
    assert_eq!(done.status, 200);
    assert!(
        done.text().contains("Verified at upstream"),
        "{}",
        done.text()
    );

    // The bind here is forwarded: both servers find bob.
    let r = bind(&down, &sid, "@bob:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["signatures"]["id.test"].is_object(),
        "{}",
        r.text()
    );
    assert_eq!(lookup(&down, "bob@example.org")["mxid"], "@bob:example.org");
    assert_eq!(lookup(&up, "bob@example.org")["mxid"], "@bob:example.org");
    assert!(down.wait_for_log("forwarded the bind", WAIT).is_some());
}

#[test]
fn without_an_upstream_validation_binds_stay_local() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);
    let (sid, _) = validate_here(&down, &down_mail, "carol@example.org");
    let r = bind(&down, &sid, "@carol:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        lookup(&down, "carol@example.org")["mxid"],
        "@carol:example.org"
    );
    assert_eq!(lookup(&up, "carol@example.org"), json!({}));
    assert!(up_mail.mails().is_empty(), "the upstream was contacted");
}

#[test]
fn local_3pids_get_the_plain_success_page_and_no_upstream() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);
    // id.test is the server's own domain: local, and forLocal has no upstream.
    let (_, page) = validate_here(&down, &down_mail, "dave@id.test");
    assert!(!page.contains("Publish at"), "{page}");
    assert!(page.contains("Your address is verified"));
}

#[test]
fn a_down_upstream_gives_a_clear_page_and_the_local_bind_still_works() {
    let down_mail = SmtpSink::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = downstream(&down_mail, &url, true);
    let (sid, page) = validate_here(&down, &down_mail, "erin@example.org");
    let failed = down.get(&path_of(&button(&page)));
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert!(failed.text().contains("not answering"), "{}", failed.text());
    let r = bind(&down, &sid, "@erin:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn remote_only_3pids_are_bound_at_the_upstream_only() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), false);
    let (sid, page) = validate_here(&down, &down_mail, "frank@example.org");
    assert!(
        page.contains("it must also be verified at the identity server upstream"),
        "{page}"
    );
    // Not validated upstream yet: no bind anywhere.
    let r = bind(&down, &sid, "@frank:example.org");
    r.assert_error(400, "M_SESSION_NOT_VALIDATED");

    let started = down.get(&path_of(&button(&page)));
    let check = button(&started.text());
    let mail = up_mail.wait_for_mails(1, WAIT).pop().unwrap();
    assert_eq!(up.get(&path_of(&link_in(&mail))).status, 200);
    assert!(
        down.get(&path_of(&check))
            .text()
            .contains("Verified at upstream")
    );

    let r = bind(&down, &sid, "@frank:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    // The association is the upstream's, and only the upstream knows it.
    assert!(
        r.json()["signatures"]["upstream.test"].is_object(),
        "{}",
        r.text()
    );
    assert_eq!(
        lookup(&up, "frank@example.org")["mxid"],
        "@frank:example.org"
    );
    assert_eq!(lookup(&down, "frank@example.org"), json!({}));
}

#[test]
fn a_scope_with_nowhere_to_validate_refuses_sessions() {
    let s = TestServer::start_with(json!({"session": {"policy": {"validation": {
        "forRemote": {"toLocal": false}
    }}}}));
    let r = request_token(&s, V1, "gina@example.org", SECRET, 1);
    r.assert_error(403, "M_FORBIDDEN");
    // A naming mistake in the policy is a configuration error.
    let dir = crate::support::TempDir::new("remote-config");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "session:\n  policy:\n    validation:\n      forRemote:\n        toRemote: {enabled: true, server: nowhere}\n",
    )
    .unwrap();
    let (code, _, err) =
        crate::support::run_cli(&["check-config", "-c", path.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(
        err.contains("toRemote.server") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn starting_the_upstream_session_is_rate_limited() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);
    let (_, page) = validate_here(&down, &down_mail, "hana@example.org");
    let start = path_of(&button(&page));
    for _ in 0..3 {
        assert_eq!(down.get(&start).status, 200);
    }
    let refused = down.get(&start);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(
        refused.text().contains("Too many attempts"),
        "{}",
        refused.text()
    );
    assert_eq!(up_mail.wait_for_mails(3, WAIT).len(), 3);
}
