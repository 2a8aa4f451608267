use std::sync::Arc;

use crate::support::{TempDir, TestServer};
use serde_json::json;

#[test]
fn pubkey_is_served_on_both_mounts_with_encoded_key_id() {
    let s = TestServer::start();
    let v2 = s.get("/_matrix/identity/v2/pubkey/ed25519:0");
    assert_eq!(v2.status, 200);
    let key = v2.json()["public_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 43, "unpadded base64 of 32 bytes: {key}");
    let encoded = s.get("/_matrix/identity/v2/pubkey/ed25519%3A0");
    assert_eq!(encoded.json()["public_key"], key.as_str());
    let v1 = s.get("/_matrix/identity/api/v1/pubkey/ed25519%3a0");
    assert_eq!(v1.json()["public_key"], key.as_str());
}

#[test]
fn pubkey_unknown_key_is_not_found() {
    let s = TestServer::start();
    s.get("/_matrix/identity/v2/pubkey/ed25519:nope")
        .assert_error(404, "M_NOT_FOUND");
}

#[test]
fn pubkey_isvalid_accepts_our_key_in_either_alphabet() {
    let s = TestServer::start();
    let key = s.get("/_matrix/identity/v2/pubkey/ed25519:0").json()["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let url_safe = key.replace('+', "-").replace('/', "_");
    let q = |k: &str| k.replace('+', "%2B").replace('/', "%2F");
    for mount in ["/_matrix/identity/v2", "/_matrix/identity/api/v1"] {
        for k in [&key, &url_safe] {
            let r = s.get(&format!("{mount}/pubkey/isvalid?public_key={}", q(k)));
            assert_eq!(
                (r.status, r.json()),
                (200, json!({"valid": true})),
                "{mount} {k}"
            );
        }
        let r = s.get(&format!(
            "{mount}/pubkey/isvalid?public_key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        assert_eq!(r.json(), json!({"valid": false}));
        let r = s.get(&format!("{mount}/pubkey/isvalid?public_key=not%20base64"));
        assert_eq!(r.json(), json!({"valid": false}));
    }
}

#[test]
fn pubkey_isvalid_without_key_is_missing_params() {
    let s = TestServer::start();
    s.get("/_matrix/identity/v2/pubkey/isvalid")
        .assert_error(400, "M_MISSING_PARAMS");
    s.get("/_matrix/identity/v2/pubkey/ephemeral/isvalid")
        .assert_error(400, "M_MISSING_PARAMS");
}

#[test]
fn pubkey_ephemeral_isvalid_is_false_for_unknown_keys() {
    let s = TestServer::start();
    let key = s.get("/_matrix/identity/v2/pubkey/ed25519:0").json()["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    // The long-term key is not an ephemeral key.
    let r = s.get(&format!(
        "/_matrix/identity/v2/pubkey/ephemeral/isvalid?public_key={}",
        key.replace('+', "%2B").replace('/', "%2F")
    ));
    assert_eq!((r.status, r.json()), (200, json!({"valid": false})));
}

#[test]
fn pubkey_survives_a_restart_and_the_key_file_is_private() {
    let dir = Arc::new(TempDir::new("keep"));
    let first = TestServer::start_in(dir.clone(), json!({}));
    let key = first.get("/_matrix/identity/v2/pubkey/ed25519:0").json()["public_key"].clone();
    assert!(first.stop().success());
    let second = TestServer::start_in(dir.clone(), json!({}));
    assert_eq!(
        second.get("/_matrix/identity/v2/pubkey/ed25519:0").json()["public_key"],
        key
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn pubkey_custom_key_id_is_used_for_new_keys() {
    let s = TestServer::start_with(json!({"key": {"id": "ed25519:abc"}}));
    assert_eq!(s.get("/_matrix/identity/v2/pubkey/ed25519:abc").status, 200);
    assert_eq!(s.get("/_matrix/identity/v2/pubkey/ed25519:0").status, 404);
}
