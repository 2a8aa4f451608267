//! `oxisd admin import`: bindings from sydent and ma1sd databases (the fixtures written by
//! tests/fixtures/make_import_fixtures.py) reach lookups, bad rows are reported, a second import
//! changes nothing, and broken files fail cleanly.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::admin::{TOKEN, admin, admin_port, free_port};
use crate::support::accounts::{outbound_to_loopback, post_authed, register};
use crate::support::homeserver::FakeHomeserver;
use crate::support::sessions::{V1, V2, validate_email_via_log};
use crate::support::{TempDir, TestServer, http, merge, run_cli};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A server with the admin listener and `extra` merged in.
fn start(extra: Value) -> TestServer {
    let mut config = json!({"admin": {"enabled": true, "port": free_port(), "token": TOKEN}});
    merge(&mut config, &extra);
    TestServer::start_with(config)
}

/// `oxisd admin -c <config> import ARGS`: (exit code, stdout, stderr).
fn import(s: &TestServer, args: &[&str]) -> (i32, String, String) {
    let config = s.config_path.to_str().unwrap();
    let mut all = vec!["admin", "-c", config, "import"];
    all.extend_from_slice(args);
    run_cli(&all, s.dir.path())
}

fn lookup(s: &TestServer, medium: &str, address: &str) -> Value {
    let address = address.replace('@', "%40").replace('+', "%2B");
    s.get(&format!("{V1}/lookup?medium={medium}&address={address}"))
        .json()
}

fn all_bindings(s: &TestServer) -> Value {
    let (code, out, text) = admin(s, &["bindings", "list", "--limit", "100000"]);
    assert_eq!(code, 0, "{text}");
    out["bindings"].clone()
}

#[test]
fn a_sydent_database_is_imported_once_and_again_changes_nothing() {
    let hs = FakeHomeserver::start();
    let s = start(outbound_to_loopback());
    let file = fixture("sydent.db");
    let (code, out, err) = import(&s, &["sydent", &file, "--batch-size", "500"]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "read:     2013 rows (local_threepid_associations 2006, global_threepid_associations 7)",
        "imported: 2005 bindings (2005 new or changed, 0 already there, 0 kept because the binding here is newer)",
        "skipped:  8 rows (3 invalid, 1 expired, 3 superseded, 1 unbound)",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // The first reasons name the table, the row and what is wrong.
    assert!(
        out.contains(
            "local_threepid_associations row 4: 'not-a-user-id' is not a valid Matrix user id"
        ),
        "{out}"
    );
    assert!(
        out.contains("(5002 bytes)") && out.contains("Unknown medium 'fax'"),
        "{out}"
    );
    // Not a terminal: one progress line per batch.
    assert!(err.contains("sent 500/2005 bindings"), "{err}");
    assert!(err.contains("sent 2005/2005 bindings"), "{err}");

    assert_eq!(
        lookup(&s, "email", "alice@example.org")["mxid"],
        "@alice:example.org"
    );
    let bob = lookup(&s, "email", "Bob.Upper@Example.ORG");
    assert_eq!(bob["mxid"], "@bob:example.org");
    assert_eq!(bob["address"], "bob.upper@example.org");
    assert_eq!(bob["ts"], 1_600_000_000_001u64);
    assert!(bob["signatures"]["id.test"].is_object(), "{bob}");
    assert_eq!(
        lookup(&s, "msisdn", "447700900123")["mxid"],
        "@carol:example.org"
    );
    assert_eq!(
        lookup(&s, "email", "gina@example.org")["mxid"],
        "@gina:example.org"
    );
    assert_eq!(
        lookup(&s, "email", "frank@remote.example")["mxid"],
        "@frank:remote.example"
    );
    for gone in ["erin@example.org", "dave@example.org", "henry@example.org"] {
        assert_eq!(lookup(&s, "email", gone), json!({}), "{gone}");
    }
    // Hashed lookups find them too.
    let token = register(&s, &hs, "asker");
    let pepper = s
        .get(&format!("{V2}/hash_details?access_token={token}"))
        .json()["lookup_pepper"]
        .as_str()
        .unwrap()
        .to_string();
    let hash =
        oxisd::crypto::lookup_hash::sha256_lookup_hash("user1999@bulk.example", "email", &pepper);
    let r = post_authed(
        &s,
        &format!("{V2}/lookup"),
        &token,
        &json!({"algorithm": "sha256", "pepper": pepper, "addresses": [hash]}),
    );
    assert_eq!(r.json()["mappings"][&hash], "@user1999:example.org");

    let before = all_bindings(&s);
    assert_eq!(before.as_array().unwrap().len(), 2005);
    let (code, again, err) = import(&s, &["sydent", &file]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("imported: 2005 bindings (0 new or changed, 2005 already there, 0 kept"),
        "{again}"
    );
    assert!(again.contains("read:     2013 rows"), "{again}");
    assert!(again.contains("skipped:  8 rows"), "{again}");
    assert_eq!(all_bindings(&s), before);
}

#[test]
fn a_binding_made_here_after_the_migration_is_kept() {
    let s = start(json!({}));
    let sid = validate_email_via_log(&s, "alice@example.org", "secret");
    let r = s.post_json(
        &format!("{V1}/3pid/bind"),
        &json!({"sid": sid, "client_secret": "secret", "mxid": "@alice-new:example.org"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (code, out, err) = import(&s, &["sydent", &fixture("sydent.db")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "(2004 new or changed, 0 already there, 1 kept because the binding here is newer)"
        ),
        "{out}"
    );
    assert_eq!(
        lookup(&s, "email", "alice@example.org")["mxid"],
        "@alice-new:example.org"
    );
}

#[test]
fn ma1sd_hashes_are_imported_and_mxisd_has_nothing_to_import() {
    let s = start(json!({}));
    let (code, out, err) = import(&s, &["ma1sd", &fixture("ma1sd.db")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("read:     5 rows (hashes 5)"), "{out}");
    assert!(
        out.contains("imported: 3 bindings (3 new or changed"),
        "{out}"
    );
    assert!(out.contains("skipped:  2 rows (2 invalid"), "{out}");
    assert!(out.contains("not imported: 1 validation sessions"), "{out}");
    assert_eq!(
        lookup(&s, "email", "lee@example.org")["mxid"],
        "@lee:example.org"
    );
    assert_eq!(
        lookup(&s, "msisdn", "33612345678")["mxid"],
        "@mia:example.org"
    );

    let (code, out, err) = import(&s, &["mxisd", &fixture("mxisd.db")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported: 0 bindings"), "{out}");
    assert!(out.contains("holds no bindings"), "{out}");
    assert!(out.contains("docs/MIGRATION.md"), "{out}");
}

#[test]
fn broken_files_and_wrong_commands_fail_cleanly() {
    let s = start(json!({}));
    let dir = TempDir::new("import-broken");
    let original = std::fs::read(fixture("sydent.db")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let fails = |args: &[&str], needle: &str| {
        let (code, out, err) = import(&s, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains(needle),
            "{args:?}: missing {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    };
    fails(
        &["sydent", &write("cut.db", &original[..50_000])],
        "the database is corrupt",
    );
    let noise: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fails(
        &["sydent", &write("noise.db", &noise)],
        "not an SQLite 3 database",
    );
    let live = write("live.db", &original);
    write("live.db-wal", b"frames not yet checkpointed");
    fails(&["sydent", &live], "PRAGMA wal_checkpoint(TRUNCATE)");
    fails(&["sydent", &fixture("ma1sd.db")], "not a sydent database");
    fails(&["sydent", &fixture("utf16.db")], "UTF-16");
    fails(&["mxisd", "/nonexistent/ma1sd.db"], "cannot open");
    // Nothing reached the store.
    assert_eq!(all_bindings(&s), json!([]));

    let (code, _, err) = import(&s, &["oracle", "x.db"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("usage"), "{err}");

    // Without the admin listener: an error before reading, unless it is a dry run.
    let off = TestServer::start();
    let (code, _, err) = import(&off, &["sydent", &fixture("sydent.db")]);
    assert_eq!(code, 1);
    assert!(err.contains("admin listener is off"), "{err}");
    let (code, out, err) = import(&off, &["sydent", &fixture("sydent.db"), "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("imported: 0 bindings (2005 would be, --dry-run)"),
        "{out}"
    );
}

#[test]
fn the_import_endpoint_checks_its_body() {
    let s = start(json!({}));
    let addr = format!("127.0.0.1:{}", admin_port(&s)).parse().unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let post = |body: &[u8], auth: &str| {
        http(
            addr,
            "POST",
            "/_oxisd/admin/v1/import/bindings",
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let record = |address: &str, mxid: &str| json!({"medium": "email", "address": address, "mxid": mxid, "ts": 1, "not_before": 1, "not_after": 4_000_000_000_000u64});
    let body = json!({"bindings": [
        record("ok@example.org", "@ok:example.org"),
        record("Upper@example.org", "@up:example.org"),
        record("bad@example.org", "nobody"),
    ]});
    post(
        body.to_string().as_bytes(),
        "Bearer wrong-token-wrong-token",
    )
    .assert_error(401, "M_UNAUTHORIZED");
    let r = post(body.to_string().as_bytes(), &bearer);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(
        (answer["received"].clone(), answer["written"].clone()),
        (json!(3), json!(1))
    );
    let rejected: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [1, 2]);
    assert_eq!(
        lookup(&s, "email", "ok@example.org")["mxid"],
        "@ok:example.org"
    );

    post(b"{\"bindings\": 5}", &bearer).assert_error(400, "M_BAD_JSON");
    let huge = vec![b' '; 9 * 1024 * 1024];
    post(&huge, &bearer).assert_error(413, "M_TOO_LARGE");
}
