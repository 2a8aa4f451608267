//! Background tasks under a panic boundary, and `/health` watching them. Panics are provoked
//! through the debug-build test seam `OXISD_TEST_PANIC_TASK` (`name` or `name:N`). With
//! `session.ttl: 1` the maintenance tick is 1 s, so the sweeper is late 7 s (twice its period
//! plus 5 s) after it last completed an iteration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::sessions::{V1, request_token, wait_until_swept};
use crate::support::{TempDir, TestServer};

/// A server with a 1 s session lifetime (so a 1 s maintenance tick) and `panic` as the seam.
fn start_panicking(panic: &str, extra: Value) -> TestServer {
    let mut config = json!({"session": {"ttl": 1}});
    crate::support::merge(&mut config, &extra);
    let panic = panic.to_string();
    TestServer::start_in_with(Arc::new(TempDir::new("bg")), config, move |command| {
        command.env("OXISD_TEST_PANIC_TASK", panic);
    })
}

fn count(s: &TestServer, needle: &str) -> usize {
    s.logs().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_task_that_panics_once_goes_on_with_its_work() {
    let s = start_panicking("sweeper:1", json!({}));
    let r = request_token(&s, V1, "pat@example.org", "sec", 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.json()["sid"].as_str().unwrap().to_string();
    let line = s
        .wait_for_log("background task 'sweeper' panicked", Duration::from_secs(5))
        .expect("the caught panic is logged with the task's name");
    assert!(line.contains("ERROR"), "logged at error: {line}");
    assert!(line.contains("OXISD_TEST_PANIC_TASK"), "{line}");
    // The sweeper goes on: the session expires after 1 s, and one more lifetime later it is
    // removed (404 instead of "expired").
    wait_until_swept(
        &s,
        &sid,
        "sec",
        "the sweeper stopped after its panic: the session was never swept",
    );
    assert_eq!(
        count(&s, "background task 'sweeper' panicked"),
        1,
        "it panicked only once"
    );
    let r = s.get("/health");
    assert_eq!((r.status, &r.json()["status"]), (200, &json!("ok")));
}

#[test]
fn a_task_that_panics_every_time_makes_health_answer_503_naming_it() {
    let s = start_panicking("sweeper", json!({}));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(12);
    let body = loop {
        let r = s.get("/health");
        if r.status == 503 {
            break r.assert_error(503, "M_UNKNOWN");
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "/health still answers 200 after {:?} of a sweeper that panics every time: {}",
            started.elapsed(),
            r.text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // Only the failing task is named; the others on the same thread still complete theirs.
    assert_eq!(body["late_tasks"], json!(["sweeper"]), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("sweeper"),
        "{body}"
    );
    // The loop went on (panicking again after each pause) instead of dying or spinning.
    let panics = count(&s, "background task 'sweeper' panicked");
    let secs = started.elapsed().as_secs() as usize + 1;
    assert!(
        panics >= 2 && panics <= secs + 1,
        "{panics} panics in {secs} s"
    );
    // The server itself still works.
    let r = request_token(&s, V1, "quinn@example.org", "sec", 1);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn health_is_200_with_its_tasks_when_they_run_on_time() {
    // Short periods everywhere, and longer than their expected intervals (7 s) of running.
    let s = TestServer::start_with(json!({
        "session": {"ttl": 1},
        "lookup": {"pepper": {"rotateEvery": 1}},
    }));
    std::thread::sleep(Duration::from_secs(8));
    let r = s.get("/health");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let mut tasks: Vec<String> = body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {body}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tasks.sort();
    // store-sync is off (no synapse store), so it is not watched.
    assert_eq!(
        tasks,
        [
            "courier",
            "invite-expiry",
            "invite-resolution",
            "memory",
            "pepper-rotation",
            "remote-courier",
            "sweeper"
        ],
        "{body}"
    );
    assert!(
        s.wait_for_log("panicked", Duration::ZERO).is_none(),
        "{:?}",
        s.logs()
    );
}
