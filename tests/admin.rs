//! The admin listener and `oxisd admin`: authentication, bindings, export, erasure, key
//! rotation, backups and metrics, against a running server.

use std::net::TcpListener;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::sessions::{V1, V2, validate_email_via_log};
use crate::support::{TempDir, TestServer, http, run_cli};

pub const TOKEN: &str = "admin-token-for-the-tests-0123456789";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with the admin listener on a known port.
fn start_admin(dir: Arc<TempDir>) -> TestServer {
    TestServer::start_in(
        dir,
        json!({"admin": {"enabled": true, "port": free_port(), "token": TOKEN}}),
    )
}

/// `oxisd admin -c <the server's config> ARGS`: exit code and stdout parsed as JSON (or text).
pub fn admin(s: &TestServer, args: &[&str]) -> (i32, Value, String) {
    let config = s.config_path.to_str().unwrap();
    let mut all = vec!["admin", "-c", config];
    all.extend_from_slice(args);
    let (code, out, err) = run_cli(&all, s.dir.path());
    let json = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, json, format!("{out}{err}"))
}

fn bind(s: &TestServer, email: &str, mxid: &str) {
    let sid = validate_email_via_log(s, email, "secret");
    let r = s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": "secret", "mxid": mxid}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn v1_lookup(s: &TestServer, email: &str) -> Value {
    s.get(&format!("{V1}/lookup?medium=email&address={email}"))
        .json()
}

pub fn admin_port(s: &TestServer) -> u16 {
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config_path).unwrap()).unwrap();
    config["admin"]["port"].as_u64().unwrap() as u16
}

#[test]
fn admin_takes_the_config_in_every_form_and_names_unknown_options() {
    let s = start_admin(Arc::new(TempDir::new("admin-args")));
    let config = s.config_path.to_str().unwrap().to_string();
    let joined = format!("--config={config}");
    for args in [
        vec!["admin", joined.as_str(), "stats"],
        vec!["admin", "--config", &config, "stats"],
        vec!["admin", "stats", joined.as_str()],
        vec![joined.as_str(), "admin", "stats"],
        vec!["admin", "-c", &config, "stats"],
    ] {
        let (code, out, err) = run_cli(&args, s.dir.path());
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        let stats: Value = serde_json::from_str(&out).unwrap();
        assert!(stats.is_object(), "{args:?}: {out}");
    }
    let (code, _, err) = run_cli(&["admin", joined.as_str(), "stats", "--frob"], s.dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("unknown option '--frob'"), "{err}");
    let (code, _, err) = run_cli(
        &["admin", joined.as_str(), "keys", "list", "--limit", "3"],
        s.dir.path(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--limit is not an option of 'keys list'"),
        "{err}"
    );
    let (code, out, _) = run_cli(&["admin", joined.as_str(), "--help"], s.dir.path());
    assert_eq!(code, 0);
    assert!(out.contains("COMMANDS:"), "{out}");
}

#[test]
fn the_admin_listener_is_off_by_default_and_needs_its_token() {
    let s = TestServer::start();
    let (code, _, out) = admin(&s, &["stats"]);
    assert_eq!(code, 1);
    assert!(out.contains("admin listener is off"), "{out}");

    let s = start_admin(Arc::new(TempDir::new("admin-auth")));
    let addr = format!("127.0.0.1:{}", admin_port(&s)).parse().unwrap();
    let r = http(addr, "GET", "/_oxisd/admin/v1/stats", &[], b"");
    r.assert_error(401, "M_UNAUTHORIZED");
    let r = http(
        addr,
        "GET",
        "/_oxisd/admin/v1/stats",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        b"",
    );
    r.assert_error(401, "M_UNAUTHORIZED");
    let bearer = format!("Bearer {TOKEN}");
    let r = http(
        addr,
        "GET",
        "/_oxisd/admin/v1/stats",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["records"].is_object(), "{}", r.text());
    // The scheme is compared without regard to case (RFC 9110), the token exactly.
    let lower = format!("bearer {TOKEN}");
    let r = http(
        addr,
        "GET",
        "/_oxisd/admin/v1/stats",
        &[("Authorization", &lower)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let upper_token = format!("Bearer {}", TOKEN.to_uppercase());
    let r = http(
        addr,
        "GET",
        "/_oxisd/admin/v1/stats",
        &[("Authorization", &upper_token)],
        b"",
    );
    r.assert_error(401, "M_UNAUTHORIZED");
    // Without the token, not even which paths exist is told.
    http(addr, "GET", "/_oxisd/admin/v1/nope", &[], b"").assert_error(401, "M_UNAUTHORIZED");
    let r = http(
        addr,
        "GET",
        "/_oxisd/admin/v1/nope",
        &[("Authorization", &bearer)],
        b"",
    );
    r.assert_error(404, "M_UNRECOGNIZED");
    // The public listener does not serve the admin API.
    assert_eq!(s.get("/_oxisd/admin/v1/stats").status, 404);
}

#[test]
fn a_non_loopback_admin_listener_is_refused() {
    let dir = TempDir::new("admin-config");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!("admin:\n  enabled: true\n  hostname: 0.0.0.0\n  token: {TOKEN}\n"),
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check-config", "-c", path.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("admin.hostname"), "{err}");
}

#[test]
fn bindings_can_be_shown_exported_deleted_and_erased() {
    let s = start_admin(Arc::new(TempDir::new("admin-bindings")));
    bind(&s, "alice@example.org", "@alice:example.org");
    bind(&s, "alice2@example.org", "@alice:example.org");
    bind(&s, "bob@example.org", "@bob:example.org");

    let (code, out, text) = admin(&s, &["bindings", "show", "email", "Alice@Example.org"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["bindings"][0]["mxid"], "@alice:example.org");
    let (_, out, _) = admin(&s, &["bindings", "list", "--limit", "2"]);
    assert_eq!(out["bindings"].as_array().unwrap().len(), 2);
    let (_, out, _) = admin(&s, &["bindings", "show", "--mxid", "@alice:example.org"]);
    assert_eq!(out["bindings"].as_array().unwrap().len(), 2);

    // A GDPR access request: bindings, sessions (without secrets), tokens, invites.
    let (code, out, text) = admin(&s, &["export", "email", "alice@example.org"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["bindings"].as_array().unwrap().len(), 1);
    assert_eq!(out["sessions"].as_array().unwrap().len(), 1);
    assert!(
        !text.contains("\"secret\"") && !text.contains("client_secret"),
        "{text}"
    );
    let (_, out, _) = admin(&s, &["export", "--mxid", "@alice:example.org"]);
    assert_eq!(out["bindings"].as_array().unwrap().len(), 2);

    let (code, _, _) = admin(&s, &["bindings", "delete", "email", "bob@example.org"]);
    assert_eq!(code, 0);
    assert_eq!(v1_lookup(&s, "bob@example.org"), json!({}));

    // Erasure needs --yes, then removes the user's bindings everywhere.
    let (code, _, _) = admin(&s, &["erase", "--mxid", "@alice:example.org"]);
    assert_eq!(code, 2);
    assert_eq!(
        v1_lookup(&s, "alice@example.org")["mxid"],
        "@alice:example.org"
    );
    let (code, out, text) = admin(&s, &["erase", "--mxid", "@alice:example.org", "--yes"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["erased"]["bindings"], 2);
    assert_eq!(v1_lookup(&s, "alice@example.org"), json!({}));
    assert_eq!(v1_lookup(&s, "alice2@example.org"), json!({}));
    let (_, out, _) = admin(&s, &["erase", "email", "alice@example.org", "--yes"]);
    assert_eq!(out["erased"]["sessions"], 1);
    let (_, out, _) = admin(&s, &["export", "email", "alice@example.org"]);
    assert_eq!(out["sessions"], json!([]));
}

#[test]
fn keys_rotate_while_old_keys_keep_answering() {
    let s = start_admin(Arc::new(TempDir::new("admin-keys")));
    let old = s.get(&format!("{V2}/pubkey/ed25519:0")).json()["public_key"].clone();
    let (code, out, text) = admin(&s, &["keys", "rotate"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(out["signing_key"], "ed25519:1");
    let new = s.get(&format!("{V2}/pubkey/ed25519:1")).json()["public_key"].clone();
    assert!(new.is_string() && new != old);
    let valid = |key: &Value| {
        s.get(&format!(
            "{V2}/pubkey/isvalid?public_key={}",
            key.as_str()
                .unwrap()
                .replace('+', "%2B")
                .replace('/', "%2F")
        ))
        .json()["valid"]
            .clone()
    };
    assert_eq!(valid(&old), json!(true));
    assert_eq!(valid(&new), json!(true));
    // Binds are signed with the new key.
    bind(&s, "carol@example.org", "@carol:example.org");
    let assoc = v1_lookup(&s, "carol@example.org");
    let key_ids: Vec<&String> = assoc["signatures"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_object().unwrap().keys())
        .collect();
    assert_eq!(key_ids, ["ed25519:1"], "{assoc}");
    let (_, out, _) = admin(&s, &["keys", "list"]);
    let ids: Vec<&str> = out["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ed25519:1", "ed25519:0"]);
}

#[test]
fn a_backup_taken_while_serving_starts_a_server_with_the_same_data() {
    let s = start_admin(Arc::new(TempDir::new("admin-backup")));
    bind(&s, "dave@example.org", "@dave:example.org");
    let backup = TempDir::new("admin-backup-copy");
    let target = backup.path().join("copy");
    let (code, out, text) = admin(&s, &["backup", target.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(out["records"].as_u64().unwrap() > 0);
    assert!(target.join("signing.key").exists());
    // Into an existing backup: refused.
    let (code, _, _) = admin(&s, &["backup", target.to_str().unwrap()]);
    assert_eq!(code, 1);

    let key = s.get(&format!("{V2}/pubkey/ed25519:0")).json()["public_key"].clone();
    drop(s);
    let restored = TestServer::start_with(json!({
        "storage": {"path": target},
        "key": {"path": target.join("signing.key")},
    }));
    assert_eq!(
        v1_lookup(&restored, "dave@example.org")["mxid"],
        "@dave:example.org"
    );
    assert_eq!(
        restored.get(&format!("{V2}/pubkey/ed25519:0")).json()["public_key"],
        key
    );
}

#[test]
fn a_failed_backup_tells_the_operator_why() {
    let s = start_admin(Arc::new(TempDir::new("admin-backup-fail")));
    let backup = TempDir::new("admin-backup-fail-copy");
    // The operator's mistake: a directory that holds a backup already is a 400 with the reason.
    std::fs::create_dir_all(backup.path().join("taken/db")).unwrap();
    let (code, _, text) = admin(
        &s,
        &["backup", backup.path().join("taken").to_str().unwrap()],
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("400 M_INVALID_PARAM") && text.contains("exists already"),
        "{text}"
    );
    assert!(!text.contains("Internal server error"), "{text}");
    // A file where the directory should be: the reason, not a bare 500.
    std::fs::write(backup.path().join("file"), b"x").unwrap();
    let (code, _, text) = admin(
        &s,
        &["backup", backup.path().join("file/copy").to_str().unwrap()],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot create"), "{text}");
    assert!(!text.contains("Internal server error"), "{text}");
}

#[test]
fn metrics_count_requests_sessions_and_lookups() {
    let s = start_admin(Arc::new(TempDir::new("admin-metrics")));
    bind(&s, "erin@example.org", "@erin:example.org");
    v1_lookup(&s, "erin@example.org");
    v1_lookup(&s, "nobody@example.org");
    let (code, _, text) = admin(&s, &["metrics"]);
    assert_eq!(code, 0, "{text}");
    for line in [
        "oxisd_sessions_created_total 1",
        "oxisd_sessions_validated_total 1",
        "oxisd_lookups_total 2",
        "oxisd_lookup_hits_total 1",
        "oxisd_onbind_outbox_depth 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains("oxisd_http_requests_total{endpoint=\"V1 /3pid/bind\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("oxisd_http_request_duration_seconds_count"));
}
