//! Remote 3PID sessions with two real servers: a 3PID validated here is validated and bound at
//! an upstream oxisd through our pages, and binds and unbinds are forwarded there (through a
//! durable outbox, retried while the upstream is down).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admin::{TOKEN, admin, free_port};
use crate::support::sessions::{V1, WAIT, link_in, path_of, request_token, smtp_config};
use crate::support::smtp::SmtpSink;
use crate::support::{TempDir, TestServer, merge};

const SECRET: &str = "downstreamsecret";

/// The upstream: another oxisd with its own mail.
fn upstream(sink: &SmtpSink) -> TestServer {
    let mut config = smtp_config(sink);
    merge(&mut config, &json!({"server": {"name": "upstream.test"}}));
    TestServer::start_with(config)
}

/// Our server, publishing remote 3PIDs (`forRemote`) at `upstream_url`; `to_local` as given.
fn downstream(sink: &SmtpSink, upstream_url: &str, to_local: bool) -> TestServer {
    TestServer::start_with(downstream_config(sink, upstream_url, to_local))
}

fn downstream_config(sink: &SmtpSink, upstream_url: &str, to_local: bool) -> Value {
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
            "invite": {"delivery": {"initialBackoff": 1, "maxBackoff": 1}},
        }),
    );
    config
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

fn unbind(s: &TestServer, sid: &str, email: &str, mxid: &str) -> crate::support::Resp {
    s.post_json(
        &format!("{V1}/3pid/unbind"),
        &json!({"sid": sid, "client_secret": SECRET, "mxid": mxid,
                "threepid": {"medium": "email", "address": email}}),
    )
}

/// Waits up to `WAIT` for the lookup of `email` at `s` to answer `want` (the mxid, or None).
fn wait_for_lookup(s: &TestServer, email: &str, want: Option<&str>) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = lookup(s, email);
        if found["mxid"].as_str() == want || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Validates `email` here and publishes it at the upstream through our pages, up to
/// "Verified at upstream": the sid here, and the check link.
fn publish_upstream(
    down: &TestServer,
    down_mail: &SmtpSink,
    up: &TestServer,
    up_mail: &SmtpSink,
    email: &str,
) -> (String, String) {
    let (sid, page) = validate_here(down, down_mail, email);
    let before = up_mail.mails().len();
    let started = down.get(&path_of(&button(&page)));
    assert_eq!(started.status, 200, "{}", started.text());
    let check = button(&started.text());
    let mail = up_mail.wait_for_mails(before + 1, WAIT).pop().unwrap();
    assert_eq!(up.get(&path_of(&link_in(&mail))).status, 200);
    let done = down.get(&path_of(&check));
    assert!(
        done.text().contains("Verified at upstream"),
        "{}",
        done.text()
    );
    (sid, check)
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

    // An unbind through us removes it there.
    let r = unbind(&down, &sid, "frank@example.org", "@frank:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        wait_for_lookup(&up, "frank@example.org", None),
        json!({}),
        "the upstream still has the address"
    );
}

#[test]
fn an_unbind_here_is_forwarded_upstream() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);
    let (sid, _) = publish_upstream(&down, &down_mail, &up, &up_mail, "ivan@example.org");
    let r = bind(&down, &sid, "@ivan:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lookup(&up, "ivan@example.org")["mxid"], "@ivan:example.org");

    let r = unbind(&down, &sid, "ivan@example.org", "@ivan:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lookup(&down, "ivan@example.org"), json!({}));
    assert_eq!(
        wait_for_lookup(&up, "ivan@example.org", None),
        json!({}),
        "the upstream still has the address"
    );
    assert!(down.wait_for_log("forwarded the unbind", WAIT).is_some());
}

#[test]
fn reopening_the_start_page_keeps_the_forwarding() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);
    let (sid, check) = publish_upstream(&down, &down_mail, &up, &up_mail, "judy@example.org");
    // Back to the start page (a reload, the browser's back button): the same upstream session.
    let start = check.replace("/remote/check?", "/remote/start?");
    let again = down.get(&path_of(&start));
    assert_eq!(again.status, 200, "{}", again.text());
    // Bound without checking again: still forwarded.
    let r = bind(&down, &sid, "@judy:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        wait_for_lookup(&up, "judy@example.org", Some("@judy:example.org"))["mxid"],
        "@judy:example.org",
        "the bind was not forwarded"
    );
}

#[test]
fn a_bind_that_is_not_forwarded_is_logged_at_warn() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let down = downstream(&down_mail, &format!("http://{}", up.addr), true);
    let (sid, page) = validate_here(&down, &down_mail, "kim@example.org");
    // Started at the upstream, never confirmed there.
    assert_eq!(down.get(&path_of(&button(&page))).status, 200);
    let r = bind(&down, &sid, "@kim:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    let line = down
        .wait_for_log("bind was not forwarded", WAIT)
        .expect("no log line");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("not verified at upstream"), "{line}");
    assert_eq!(lookup(&up, "kim@example.org"), json!({}));
}

#[test]
fn the_check_page_before_a_start_offers_the_start() {
    let down_mail = SmtpSink::start();
    let down = downstream(&down_mail, "http://127.0.0.1:9", true);
    let (_, page) = validate_here(&down, &down_mail, "lena@example.org");
    let check = button(&page).replace("/remote/start?", "/remote/check?");
    let r = down.get(&path_of(&check));
    let text = r.text();
    assert!(!text.contains("Verify your address here first"), "{text}");
    assert!(text.contains("Publish at upstream"), "{text}");
}

/// An upstream that went down, and how to start it again on the same port and data.
struct StoppedUpstream {
    dir: Arc<TempDir>,
    config: Value,
    port: u16,
}

impl StoppedUpstream {
    fn restart(&mut self) -> TestServer {
        merge(&mut self.config, &json!({"server": {"port": self.port}}));
        TestServer::start_in(self.dir.clone(), self.config.clone())
    }
}

/// A downstream server (with the admin listener) where `address` was validated and published
/// at an upstream, which then stopped; the downstream, the session id and the upstream.
fn published_then_upstream_down(address: &str) -> (TestServer, String, StoppedUpstream) {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let dir = Arc::new(TempDir::new("upstream"));
    let mut config = smtp_config(&up_mail);
    merge(&mut config, &json!({"server": {"name": "upstream.test"}}));
    let up = TestServer::start_in(dir.clone(), config.clone());
    let port = up.addr.port();
    let mut down_config = downstream_config(&down_mail, &format!("http://{}", up.addr), true);
    merge(
        &mut down_config,
        &json!({"admin": {"enabled": true, "port": free_port(), "token": TOKEN}}),
    );
    let down = TestServer::start_with(down_config);
    let (sid, _) = publish_upstream(&down, &down_mail, &up, &up_mail, address);
    up.stop();
    (down, sid, StoppedUpstream { dir, config, port })
}

#[test]
fn a_bind_made_while_the_upstream_is_down_is_delivered_when_it_is_back() {
    let (down, sid, mut upstream) = published_then_upstream_down("mona@example.org");
    let r = bind(&down, &sid, "@mona:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        lookup(&down, "mona@example.org")["mxid"],
        "@mona:example.org"
    );

    // Back on the same port and data: the bind arrives.
    let up = upstream.restart();
    assert_eq!(
        wait_for_lookup(&up, "mona@example.org", Some("@mona:example.org"))["mxid"],
        "@mona:example.org",
        "the queued bind was not delivered"
    );
    // Recorded here once the upstream's answer is in.
    assert!(down.wait_for_log("forwarded the bind", WAIT).is_some());
    let (_, _, metrics) = admin(&down, &["metrics"]);
    for line in ["oxisd_remote_outbox_depth 0", "oxisd_remote_binds_total 1"] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
    assert!(
        !metrics
            .lines()
            .any(|l| l == "oxisd_remote_bind_failures_total 0"),
        "{metrics}"
    );
    assert!(down.logs().iter().any(|l| l.contains("retrying in")));
}

#[test]
fn a_bind_and_an_unbind_queued_while_the_upstream_is_down_arrive_in_order() {
    let (down, sid, mut upstream) = published_then_upstream_down("nina@example.org");
    assert_eq!(bind(&down, &sid, "@nina:example.org").status, 200);
    let r = unbind(&down, &sid, "nina@example.org", "@nina:example.org");
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, _, metrics) = admin(&down, &["metrics"]);
    assert!(
        metrics.lines().any(|l| l == "oxisd_remote_outbox_depth 2"),
        "{metrics}"
    );

    let up = upstream.restart();
    assert!(down.wait_for_log("forwarded the unbind", WAIT).is_some());
    assert_eq!(lookup(&up, "nina@example.org"), json!({}));
    // The upstream saw the bind, then the unbind.
    let logs = up.logs();
    let bound = logs
        .iter()
        .position(|l| l.contains("bound a email to @nina"));
    let unbound = logs
        .iter()
        .position(|l| l.contains("unbound a email from @nina"));
    assert!(
        bound.is_some() && unbound.is_some() && bound < unbound,
        "{}",
        logs.join("\n")
    );
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

#[test]
fn an_erasure_here_unbinds_the_address_upstream_too() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let up = upstream(&up_mail);
    let mut config = downstream_config(&down_mail, &format!("http://{}", up.addr), true);
    merge(
        &mut config,
        &json!({"admin": {"enabled": true, "port": free_port(), "token": TOKEN}}),
    );
    let down = TestServer::start_with(config);
    let (sid, _) = publish_upstream(&down, &down_mail, &up, &up_mail, "olga@example.org");
    assert_eq!(bind(&down, &sid, "@olga:example.org").status, 200);
    assert_eq!(lookup(&up, "olga@example.org")["mxid"], "@olga:example.org");

    let (code, out, text) = admin(&down, &["export", "email", "olga@example.org"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        out["published_upstream"],
        json!([{"server": "upstream", "mxid": "@olga:example.org"}]),
        "{text}"
    );
    let (code, out, text) = admin(&down, &["erase", "email", "olga@example.org", "--yes"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["erased"]["upstream_unbinds"], 1, "{text}");
    assert_eq!(
        wait_for_lookup(&up, "olga@example.org", None),
        json!({}),
        "the upstream still has the address"
    );
    let (_, out, _) = admin(&down, &["export", "email", "olga@example.org"]);
    assert_eq!(out["published_upstream"], json!([]));
}

#[test]
fn an_unbind_signed_by_the_homeserver_is_forwarded_upstream() {
    let (up_mail, down_mail) = (SmtpSink::start(), SmtpSink::start());
    let hs = crate::support::homeserver::FakeHomeserver::start();
    let key = crate::bind::publish_key(&hs);
    let up = upstream(&up_mail);
    let mut config = downstream_config(&down_mail, &format!("http://{}", up.addr), true);
    merge(
        &mut config,
        &json!({"outbound": {"insecureSkipTlsVerify": true}}),
    );
    let down = TestServer::start_with(config);
    let mxid = format!("@jan:{}", hs.server_name());
    let (sid, _) = publish_upstream(&down, &down_mail, &up, &up_mail, "jan@example.org");
    let r = bind(&down, &sid, &mxid);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lookup(&up, "jan@example.org")["mxid"], mxid.as_str());
    // The homeserver unbinds (the user removed the address there): no session, its signature.
    let body = json!({"mxid": mxid, "threepid": {"medium": "email", "address": "jan@example.org"}});
    let uri = "/_matrix/identity/v2/3pid/unbind";
    let auth = crate::bind::x_matrix(&hs.server_name(), &key, uri, "id.test", &body);
    let r = down.request(
        "POST",
        uri,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lookup(&down, "jan@example.org"), json!({}));
    assert_eq!(
        wait_for_lookup(&up, "jan@example.org", None),
        json!({}),
        "the upstream still has the address"
    );
}
