use std::time::Duration;

use serde_json::{Value, json};

use crate::support::twilio::TwilioStandIn;
use crate::support::{Resp, TempDir, TestServer, at_once, merge, run_cli};

const V1: &str = "/_matrix/identity/api/v1";
const WAIT: Duration = Duration::from_secs(10);
const SID: &str = "ACtest0123";
const TOKEN: &str = "twilio-secret-token";

fn twilio_config(twilio: &TwilioStandIn) -> Value {
    json!({"threepid": {"medium": {"msisdn": {
        "connector": "twilio",
        "connectors": {"twilio": {"account_sid": SID, "auth_token": TOKEN, "number": "+15005550006", "base_url": twilio.base_url(), "timeout": 5}}
    }}}})
}

fn start(twilio: &TwilioStandIn, extra: Value) -> TestServer {
    let mut config = twilio_config(twilio);
    merge(&mut config, &extra);
    TestServer::start_with(config)
}

fn request_token(
    s: &TestServer,
    mount: &str,
    country: &str,
    number: &str,
    secret: &str,
    attempt: u64,
) -> Resp {
    s.post_json(
        &format!("{mount}/validate/msisdn/requestToken"),
        &json!({"client_secret": secret, "country": country, "phone_number": number, "send_attempt": attempt}),
    )
}

/// The code in an SMS body.
fn code_in(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .rfind(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {body:?}"))
        .to_string()
}

#[test]
fn a_phone_is_validated_with_the_code_from_the_sms() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(&twilio, json!({}));
    // Synapse's delegation: the v1 path, no authentication, JSON.
    let r = request_token(&s, V1, "GB", "07911 123456", "sec", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["msisdn"], "447911123456");
    assert_eq!(body["intl_fmt"], "+44 7911 123456");
    let sid = body["sid"].as_str().unwrap().to_string();
    let sms = &twilio.wait_for_messages(1, WAIT)[0];
    assert_eq!(sms.to, "+447911123456", "exactly one '+'");
    assert_eq!(sms.from.as_deref(), Some("+15005550006"));
    assert_eq!(sms.auth, Some((SID.to_string(), TOKEN.to_string())));
    assert!(sms.body.contains("id.test"), "{}", sms.body);
    let code = code_in(&sms.body);
    s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
    ))
    .assert_error(400, "M_SESSION_NOT_VALIDATED");
    // Typed with a space, as people do.
    let typed = format!("{} {}", &code[..3], &code[3..]);
    let r = s.post_json(
        &format!("{V1}/validate/msisdn/submitToken"),
        &json!({"sid": sid, "client_secret": "sec", "token": typed}),
    );
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
    let v = s
        .get(&format!(
            "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
        ))
        .json();
    assert_eq!(
        (v["medium"].as_str(), v["address"].as_str()),
        (Some("msisdn"), Some("447911123456"))
    );
    assert!(v["validated_at"].is_u64());
}

#[test]
fn a_phone_can_be_validated_through_the_get_link() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(&twilio, json!({}));
    let sid = request_token(&s, V1, "FR", "06 12 34 56 78", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let code = code_in(&twilio.wait_for_messages(1, WAIT)[0].body);
    let wrong = s.get(&format!(
        "{V1}/validate/msisdn/submitToken?sid={sid}&client_secret=sec&token=000000"
    ));
    assert_eq!(wrong.status, 400);
    assert!(wrong.text().contains("new code"), "{}", wrong.text());
    let page = s.get(&format!(
        "{V1}/validate/msisdn/submitToken?sid={sid}&client_secret=sec&token={code}"
    ));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        s.get(&format!(
            "{V1}/3pid/getValidated3pid?sid={sid}&client_secret=sec"
        ))
        .status,
        200
    );
}

#[test]
fn numbers_are_normalised_to_e164_digits() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"rateLimit": {"perCountryCode": {"burst": 100, "refill": 1}}}}}}),
    );
    for (n, (country, input, msisdn)) in [
        ("GB", "07911 123456", "447911123456"),
        ("GB", "+44 (0)7911 123456", "447911123456"),
        ("US", "(415) 555-2671", "14155552671"),
        ("US", "+1 234 567 8910", "12345678910"),
        ("DE", "0151 23456789", "4915123456789"),
        ("GB", "+33 6 12 34 56 78", "33612345678"),
        ("fr", "0612345679", "33612345679"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = request_token(&s, V1, country, input, &format!("s{n}"), 1);
        assert_eq!(
            (r.status, r.json()["msisdn"].as_str()),
            (200, Some(msisdn)),
            "{country} {input}: {}",
            r.text()
        );
    }
    let sent: Vec<String> = twilio
        .wait_for_messages(7, WAIT)
        .into_iter()
        .map(|m| m.to)
        .collect();
    assert!(
        sent.iter()
            .all(|to| to.starts_with('+') && !to.starts_with("++")),
        "{sent:?}"
    );
}

#[test]
fn invalid_numbers_and_countries_are_refused() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(&twilio, json!({}));
    for (country, number) in [
        ("US", "12"),
        ("GB", "not a number"),
        ("GB", "07700 900001"),
        ("GB", ""),
    ] {
        request_token(&s, V1, country, number, "sec", 1).assert_error(400, "M_INVALID_ADDRESS");
    }
    request_token(&s, V1, "XX", "0612345678", "sec", 1).assert_error(400, "M_INVALID_PARAM");
    request_token(&s, V1, "France", "0612345678", "sec", 1).assert_error(400, "M_INVALID_PARAM");
    s.post_json(
        &format!("{V1}/validate/msisdn/requestToken"),
        &json!({"client_secret": "s", "phone_number": "0612345678", "send_attempt": 1}),
    )
    .assert_error(400, "M_MISSING_PARAMS");
    assert_eq!(twilio.requests(), 0);
}

#[test]
fn twilio_errors_map_to_matrix_errors() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(&twilio, json!({}));
    twilio.fail_next_with(400, 21211, "The 'To' number is not a valid phone number.");
    request_token(&s, V1, "GB", "07911 123456", "a", 1).assert_error(400, "M_INVALID_ADDRESS");
    twilio.fail_next_with(
        400,
        21408,
        "Permission to send an SMS has not been enabled for the region",
    );
    request_token(&s, V1, "GB", "07911 123457", "b", 1).assert_error(400, "M_DESTINATION_REJECTED");
    twilio.fail_next_with(401, 20003, "Authenticate");
    request_token(&s, V1, "GB", "07911 123458", "c", 1).assert_error(500, "M_SEND_ERROR");
    let log = s
        .wait_for_log("sending a validation SMS failed", WAIT)
        .unwrap();
    assert!(
        log.contains("20003"),
        "Twilio's code belongs in the log: {log}"
    );
    assert!(
        !s.logs().iter().any(|l| l.contains(TOKEN)),
        "the auth token must never be logged"
    );
    twilio.fail_next_with(500, 20500, "Internal Server Error");
    request_token(&s, V1, "GB", "07911 123459", "d", 1).assert_error(500, "M_SEND_ERROR");
    // A failed send is retried with the same attempt number.
    let r = request_token(&s, V1, "GB", "07911 123459", "d", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(twilio.wait_for_messages(1, WAIT).len(), 1);
}

#[test]
fn an_unreachable_provider_is_a_send_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = TestServer::start_with(
        json!({"threepid": {"medium": {"msisdn": {"connector": "twilio",
        "connectors": {"twilio": {"account_sid": SID, "auth_token": TOKEN, "number": "+15005550006", "base_url": format!("http://127.0.0.1:{port}"), "timeout": 2}}}}}}),
    );
    request_token(&s, V1, "GB", "07911 123456", "a", 1).assert_error(500, "M_SEND_ERROR");
}

#[test]
fn send_attempt_repeats_nothing_and_increments_resend_the_same_code() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(&twilio, json!({}));
    let first = request_token(&s, V1, "GB", "07911 123456", "sec", 1).json();
    twilio.wait_for_messages(1, WAIT);
    assert_eq!(
        request_token(&s, V1, "GB", "+447911123456", "sec", 1).json(),
        first,
        "same number, other spelling"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(twilio.messages().len(), 1);
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123456", "sec", 2).json(),
        first
    );
    let sms = twilio.wait_for_messages(2, WAIT);
    assert_eq!(code_in(&sms[0].body), code_in(&sms[1].body));
}

#[test]
fn a_code_cannot_be_brute_forced() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(&twilio, json!({"session": {"maxTokenAttempts": 3}}));
    let sid = request_token(&s, V1, "GB", "07911 123456", "sec", 1).json()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let code = code_in(&twilio.wait_for_messages(1, WAIT)[0].body);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        let body = s
            .post_json(
                &format!("{V1}/validate/msisdn/submitToken"),
                &json!({"sid": sid, "client_secret": "sec", "token": wrong}),
            )
            .assert_error(400, "M_TOKEN_INCORRECT");
        assert_eq!(body["success"], false);
    }
    s.post_json(
        &format!("{V1}/validate/msisdn/submitToken"),
        &json!({"sid": sid, "client_secret": "sec", "token": code}),
    )
    .assert_error(400, "M_TOKEN_INCORRECT");
}

#[test]
fn codes_have_the_configured_length() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"tokenLength": 8}}}}),
    );
    request_token(&s, V1, "GB", "07911 123456", "sec", 1);
    let body = &twilio.wait_for_messages(1, WAIT)[0].body;
    assert!(
        body.split(|c: char| !c.is_ascii_digit())
            .any(|w| w.len() == 8),
        "{body}"
    );
}

#[test]
fn sms_to_one_number_are_rate_limited() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"rateLimit": {"perNumber": {"burst": 2, "refill": 3600}}}}}}),
    );
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123456", "a", 1).status,
        200
    );
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123456", "b", 1).status,
        200
    );
    let body =
        request_token(&s, V1, "GB", "07911 123456", "c", 1).assert_error(429, "M_LIMIT_EXCEEDED");
    let retry = body["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 3_600_000, "{retry}");
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123457", "a", 1).status,
        200,
        "other numbers are not affected"
    );
    assert_eq!(twilio.wait_for_messages(3, WAIT).len(), 3);
}

#[test]
fn sms_to_one_country_code_are_rate_limited() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"rateLimit": {"perCountryCode": {"burst": 2, "refill": 3600}}}}}}),
    );
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123451", "a", 1).status,
        200
    );
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123452", "a", 1).status,
        200
    );
    request_token(&s, V1, "GB", "07911 123453", "a", 1).assert_error(429, "M_LIMIT_EXCEEDED");
    assert_eq!(
        request_token(&s, V1, "FR", "06 12 34 56 78", "a", 1).status,
        200
    );
}

#[test]
fn the_global_sms_cap_stops_a_flood() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"rateLimit": {"globalPerHour": 3}}}}}),
    );
    let statuses: Vec<u16> = (0..6)
        .map(|n| request_token(&s, V1, "GB", &format!("07911 12345{n}"), "a", 1).status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(twilio.messages().len(), 3);
}

#[test]
fn a_flood_from_one_client_is_stopped() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"session": {"rateLimit": {"perClient": {"burst": 2, "refill": 3600}}}}),
    );
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123451", "a", 1).status,
        200
    );
    assert_eq!(
        request_token(&s, V1, "FR", "06 12 34 56 78", "a", 1).status,
        200
    );
    request_token(&s, V1, "DE", "0151 23456789", "a", 1).assert_error(429, "M_LIMIT_EXCEEDED");
    // The same client is limited for email too: one limiter per client.
    let r = s.post_json(
        &format!("{V1}/validate/email/requestToken"),
        &json!({"client_secret": "a", "email": "a@example.org", "send_attempt": 1}),
    );
    r.assert_error(429, "M_LIMIT_EXCEEDED");
}

#[test]
fn only_allowed_countries_get_sms() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"allowedCountries": ["fr", "DE"]}}}}),
    );
    request_token(&s, V1, "GB", "07911 123456", "a", 1).assert_error(400, "M_DESTINATION_REJECTED");
    request_token(&s, V1, "FR", "+44 7911 123456", "a", 1)
        .assert_error(400, "M_DESTINATION_REJECTED");
    assert_eq!(
        request_token(&s, V1, "GB", "+33 6 12 34 56 78", "a", 1).status,
        200
    );
    assert_eq!(twilio.wait_for_messages(1, WAIT)[0].to, "+33612345678");
}

#[test]
fn the_messaging_service_can_be_the_sender_and_camel_case_keys_work() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = TestServer::start_with(
        json!({"threepid": {"medium": {"msisdn": {"connector": "twilio",
        "connectors": {"twilio": {"accountSid": SID, "authToken": TOKEN, "messagingServiceSid": "MG123", "baseUrl": twilio.base_url()}}}}}}),
    );
    assert_eq!(
        request_token(&s, V1, "GB", "07911 123456", "a", 1).status,
        200
    );
    let sms = &twilio.wait_for_messages(1, WAIT)[0];
    assert_eq!(
        (sms.messaging_service_sid.as_deref(), sms.from.as_deref()),
        (Some("MG123"), None)
    );
}

#[test]
fn an_operator_sms_template_replaces_the_built_in_one() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let dir = TempDir::new("sms-tpl");
    let tpl = dir.path().join("sms.txt");
    std::fs::write(
        &tpl,
        "%DOMAIN_PRETTY% code: %VALIDATION_TOKEN% (for %RECIPIENT_ADDRESS%)\n",
    )
    .unwrap();
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"generators": {"template": {"session": {"validation": tpl}}}}}}}),
    );
    request_token(&s, V1, "GB", "07911 123456", "a", 1);
    let body = &twilio.wait_for_messages(1, WAIT)[0].body;
    assert!(
        body.starts_with("Id.test code: ") && body.ends_with("(for 447911123456)"),
        "{body:?}"
    );
}

#[test]
fn the_log_only_notifier_writes_the_sms_to_the_log() {
    let s = TestServer::start();
    let r = request_token(&s, V1, "GB", "07911 123456", "sec", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let line = s
        .wait_for_log("SMS to +447911123456 (log-only notifier, not sent)", WAIT)
        .unwrap();
    let code = code_in(&line);
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let r = s.post_json(
        &format!("{V1}/validate/msisdn/submitToken"),
        &json!({"sid": sid, "client_secret": "sec", "token": code}),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn twilio_without_its_settings_is_a_start_up_error_naming_the_key() {
    let dir = TempDir::new("twilio-cfg");
    for (yaml, key) in [
        (
            "threepid:\n  medium:\n    msisdn:\n      connector: twilio\n",
            "threepid.medium.msisdn.connectors.twilio.account_sid",
        ),
        (
            "threepid:\n  medium:\n    msisdn:\n      connector: twilio\n      connectors:\n        twilio:\n          account_sid: AC1\n",
            "threepid.medium.msisdn.connectors.twilio.auth_token",
        ),
        (
            "threepid:\n  medium:\n    msisdn:\n      connector: twilio\n      connectors:\n        twilio:\n          account_sid: AC1\n          auth_token: x\n",
            "threepid.medium.msisdn.connectors.twilio.number",
        ),
        (
            "threepid:\n  medium:\n    msisdn:\n      allowedCountries: [Great Britain]\n",
            "threepid.medium.msisdn.allowedCountries",
        ),
    ] {
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, yaml).unwrap();
        let (code, _, err) = run_cli(
            &["check-config", "--config", file.to_str().unwrap()],
            dir.path(),
        );
        assert_eq!(code, 1, "{yaml}");
        assert!(err.contains(key), "{key} not in: {err}");
    }
}

/// Enough handler threads that 16 requests really run at once, a per-client limit out of the
/// way (every test request comes from 127.0.0.1), and `limits` as `...msisdn.rateLimit`. The
/// stand-in takes 50 ms per SMS, as a real provider takes its time.
fn concurrent(twilio: &TwilioStandIn, limits: Value) -> std::sync::Arc<TestServer> {
    twilio.respond_after(Duration::from_millis(50));
    std::sync::Arc::new(start(
        twilio,
        json!({
            "server": {"workers": 32},
            "session": {"rateLimit": {"perClient": {"burst": 1000, "refill": 1}}},
            "threepid": {"medium": {"msisdn": {"rateLimit": limits}}}
        }),
    ))
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn concurrent_requests_to_one_number_send_no_more_than_its_limit() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = concurrent(&twilio, json!({"perNumber": {"burst": 3, "refill": 3600}}));
    let statuses = {
        let s = s.clone();
        at_once(16, move |n| {
            request_token(&s, V1, "GB", "07911 123456", &format!("s{n}"), 1).status
        })
    };
    let sms = twilio.wait_for_messages(4, Duration::from_millis(500));
    assert_eq!(sms.len(), 3, "SMS delivered; statuses {statuses:?}");
    assert_eq!(
        (count(&statuses, 200), count(&statuses, 429)),
        (3, 13),
        "{statuses:?}"
    );
}

#[test]
fn the_per_country_cap_holds_under_concurrent_requests() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = concurrent(
        &twilio,
        json!({"perCountryCode": {"burst": 4, "refill": 3600}}),
    );
    let statuses = {
        let s = s.clone();
        at_once(16, move |n| {
            request_token(&s, V1, "GB", &format!("07911 1234{n:02}"), "s", 1).status
        })
    };
    let sms = twilio.wait_for_messages(5, Duration::from_millis(500));
    assert_eq!(sms.len(), 4, "SMS delivered; statuses {statuses:?}");
    assert_eq!(
        (count(&statuses, 200), count(&statuses, 429)),
        (4, 12),
        "{statuses:?}"
    );
    // The cap is per calling code: France is not affected.
    assert_eq!(
        request_token(&s, V1, "FR", "06 12 34 56 78", "s", 1).status,
        200
    );
}

#[test]
fn the_global_sms_cap_holds_under_concurrent_requests() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    // Only the global cap can refuse: one number each, a per-country cap out of the way. (One
    // country: the phonenumber crate compiles each country's patterns under one global lock,
    // which spreads requests for many countries out in time and hides the race.)
    let s = concurrent(
        &twilio,
        json!({"globalPerHour": 3, "perCountryCode": {"burst": 100, "refill": 1}}),
    );
    let statuses = {
        let s = s.clone();
        at_once(16, move |n| {
            request_token(&s, V1, "GB", &format!("07911 1234{n:02}"), "s", 1).status
        })
    };
    let sms = twilio.wait_for_messages(4, Duration::from_millis(500));
    assert_eq!(sms.len(), 3, "SMS delivered; statuses {statuses:?}");
    assert_eq!(
        (count(&statuses, 200), count(&statuses, 429)),
        (3, 13),
        "{statuses:?}"
    );
}

#[test]
fn a_failed_sms_gives_its_tokens_back_under_concurrency() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    let s = concurrent(&twilio, json!({"perNumber": {"burst": 3, "refill": 3600}}));
    // The first two requests Twilio sees fail: one is refused for the region, one is an outage.
    twilio.fail_next_with(
        400,
        21408,
        "Permission to send an SMS has not been enabled for the region",
    );
    twilio.fail_next_with(500, 20500, "Internal Server Error");
    let statuses = {
        let s = s.clone();
        at_once(16, move |n| {
            request_token(&s, V1, "GB", "07911 123456", &format!("a{n}"), 1).status
        })
    };
    assert!(
        statuses.iter().all(|s| [200, 400, 429, 500].contains(s)),
        "{statuses:?}"
    );
    // Then one at a time until the number is limited: the failed sends did not use up any of
    // its 3 SMS, so exactly 3 arrive in all, never more.
    let mut last = 0;
    for n in 0..10 {
        last = request_token(&s, V1, "GB", "07911 123456", &format!("b{n}"), 1).status;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429, "the number must end up limited");
    let sms = twilio.wait_for_messages(4, Duration::from_millis(500));
    assert_eq!(sms.len(), 3, "concurrent statuses {statuses:?}");
    assert_eq!(twilio.requests(), 5, "two failed requests and three SMS");
}

#[test]
fn premium_rate_numbers_are_refused_unless_allowed() {
    let twilio = TwilioStandIn::start(SID, TOKEN);
    // allowedCountries is empty: every country, but not every kind of number.
    let s = start(&twilio, json!({}));
    for (country, number) in [
        ("GB", "0909 879 0000"), // premium rate (Ofcom's drama range)
        ("GB", "+44 901 234 5678"),
        ("FR", "08 91 12 34 56"), // premium rate
        ("FR", "08 84 01 23 45"), // shared cost
        ("GB", "0300 123 4567"),  // UAN
    ] {
        request_token(&s, V1, country, number, "a", 1).assert_error(400, "M_DESTINATION_REJECTED");
    }
    assert_eq!(twilio.requests(), 0);
    // Also when the country is allowed.
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"allowedCountries": ["GB"]}}}}),
    );
    request_token(&s, V1, "GB", "0909 879 0000", "a", 1)
        .assert_error(400, "M_DESTINATION_REJECTED");
    // The operator can allow premium-rate numbers, and only those.
    let s = start(
        &twilio,
        json!({"threepid": {"medium": {"msisdn": {"allowNumberTypes": ["premiumRate"]}}}}),
    );
    let r = request_token(&s, V1, "GB", "0909 879 0000", "a", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(twilio.wait_for_messages(1, WAIT)[0].to, "+449098790000");
    request_token(&s, V1, "GB", "0300 123 4567", "a", 1)
        .assert_error(400, "M_DESTINATION_REJECTED");
}
