use crate::support::TestServer;
use serde_json::json;

#[test]
fn versions_lists_the_supported_spec_versions() {
    let s = TestServer::start();
    let r = s.get("/_matrix/identity/versions");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let versions = r.json()["versions"].as_array().unwrap().clone();
    assert!(
        versions.contains(&json!("v1.19")) && versions.contains(&json!("r0.3.0")),
        "{versions:?}"
    );
}

#[test]
fn status_answers_empty_object_on_both_mounts() {
    let s = TestServer::start();
    for path in [
        "/_matrix/identity/v2",
        "/_matrix/identity/v2/",
        "/_matrix/identity/api/v1",
        "/_matrix/identity/api/v1/",
    ] {
        let r = s.get(path);
        assert_eq!((r.status, r.json()), (200, json!({})), "{path}");
    }
}

#[test]
fn health_reports_ok_with_version() {
    let s = TestServer::start();
    let r = s.get("/health");
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}
