//! Tests of signing and verification against the spec appendix vectors.
use super::*;
use serde_json::json;

const SEED_B64: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const KEY_ID: &str = "ed25519:1";
const ENTITY: &str = "domain";
const PUBLIC_KEY_B64: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

fn test_key() -> KeyPair {
    let seed: [u8; 32] = base64::decode(SEED_B64)
        .expect("seed decodes")
        .try_into()
        .expect("seed is 32 bytes");
    KeyPair::from_seed(KEY_ID, &seed)
}

fn public_key() -> [u8; 32] {
    test_key().public_key()
}

fn signature_of(value: &Value) -> &str {
    value["signatures"][ENTITY][KEY_ID]
        .as_str()
        .expect("signature present")
}

#[test]
fn derived_public_key() {
    let key = test_key();
    assert_eq!(key.id(), KEY_ID);
    assert_eq!(key.public_key_base64(), PUBLIC_KEY_B64);
    assert_eq!(
        base64::decode(PUBLIC_KEY_B64).as_deref(),
        Some(&key.public_key()[..])
    );
}

#[test]
fn seed_round_trip() {
    let key = test_key();
    let again = KeyPair::from_seed("ed25519:x", &key.seed());
    assert_eq!(again.public_key(), key.public_key());
    assert_eq!(again.id(), "ed25519:x");
    assert_eq!(
        base64::encode(&key.seed()),
        "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0"
    );
}

#[test]
fn generate_gives_distinct_working_keys() {
    let a = KeyPair::generate("ed25519:a").expect("OS randomness");
    let b = KeyPair::generate("ed25519:b").expect("OS randomness");
    assert_ne!(a.seed(), b.seed());
    assert_eq!(a.id(), "ed25519:a");
    let sig = a.sign_bytes(b"hello");
    assert!(verify_bytes(&a.public_key(), b"hello", &sig));
    assert!(!verify_bytes(&b.public_key(), b"hello", &sig));
}

#[test]
fn debug_hides_secret() {
    let key = test_key();
    let debug = format!("{key:?}");
    assert!(debug.contains(KEY_ID));
    assert!(debug.contains(PUBLIC_KEY_B64));
    assert!(!debug.contains("YJDBA9Xnr2sV"));
}

#[test]
fn appendix_sign_empty_object() {
    let mut value = json!({});
    sign_json(&mut value, ENTITY, &test_key()).expect("signs");
    assert_eq!(
        value,
        json!({
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                }
            }
        })
    );
}

#[test]
fn appendix_sign_simple_object() {
    let mut value = json!({"one": 1, "two": "Two"});
    sign_json(&mut value, ENTITY, &test_key()).expect("signs");
    assert_eq!(
        value,
        json!({
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
                }
            },
            "two": "Two"
        })
    );
}

#[test]
fn derived_identity_server_signatures() {
    let rows: &[(&str, &str)] = &[
        (
            r#"{"address":"louise@bobs.burgers","medium":"email","mxid":"@ears:matrix.org","not_after":4582425849161,"not_before":1428825849161,"ts":1428825849161}"#,
            "h2QHOGcKSH3OHlhuLi0NnWhbHQpEzIUJt6aGNgXu0gPqmwpamdYpzCT3RwfsoLmR2NzO/fZWrV18G7ypGR08AQ",
        ),
        (
            r#"{"mxid":"@alice:example.org","token":"abc123"}"#,
            "bcYkW6mDNbs7yv/GNpvyxql/P1EWGcNiIy9tJllJQkc8cTsboPenZpQ9FOF1STsNTwsslwo4B1NjYcmSx9IGDw",
        ),
        (
            r#"{"mxid":"@foo:bar.com","sender":"@baz:bar.com","token":"abc123"}"#,
            "m6rWIAk7XyOljo72hR/3FbuNaq4j8B3FLzrskNgvdOYnXquLyCkljF+40RewSZbMKfF8FugVJOn8SVZxhgahCQ",
        ),
        (
            r#"{"content":{"mxid":"@ears:domain","threepid":{"address":"louise@bobs.burgers","medium":"email"}},"destination_is":"id.example.com","method":"POST","origin":"domain","uri":"/_matrix/identity/v2/3pid/unbind"}"#,
            "HKsPmoz7pClb/mEb7+wFovkRZvyStxv7JB7hFxFr4Ieb6J3V+y2xQtYWRDgWmCCZR2TCfjUcTBk8QXIwc8UlDg",
        ),
    ];
    let key = test_key();
    for (canonical, expected) in rows {
        // Signing the raw canonical bytes.
        assert_eq!(key.sign_bytes(canonical.as_bytes()), *expected);
        assert!(verify_bytes(
            &key.public_key(),
            canonical.as_bytes(),
            expected
        ));
        // Signing the parsed object through sign_json.
        let mut value: Value = serde_json::from_str(canonical).expect("valid JSON");
        assert_eq!(
            canonical_json::encode(&value).as_deref(),
            Ok(*canonical),
            "row is canonical"
        );
        sign_json(&mut value, ENTITY, &key).expect("signs");
        assert_eq!(signature_of(&value), *expected);
        assert_eq!(
            verify_json(&value, ENTITY, KEY_ID, &key.public_key()),
            Ok(())
        );
    }
}

#[test]
fn verify_round_trip() {
    let key = test_key();
    let mut value = json!({"mxid": "@alice:example.org", "nested": {"b": [1, 2], "a": "é"}});
    sign_json(&mut value, ENTITY, &key).expect("signs");
    assert_eq!(verify_json(&value, ENTITY, KEY_ID, &public_key()), Ok(()));
    // Re-parsing from text (different map order, padding added) still verifies.
    let mut text = serde_json::to_string_pretty(&value).expect("serialises");
    let sig = signature_of(&value).to_owned();
    text = text.replace(&sig, &format!("{sig}=="));
    let reparsed: Value = serde_json::from_str(&text).expect("parses");
    assert_eq!(
        verify_json(&reparsed, ENTITY, KEY_ID, &public_key()),
        Ok(())
    );
}

#[test]
fn tampered_value_fails() {
    let key = test_key();
    let mut value = json!({"mxid": "@alice:example.org", "token": "abc123"});
    sign_json(&mut value, ENTITY, &key).expect("signs");

    let mut tampered = value.clone();
    tampered["mxid"] = json!("@mallory:example.org");
    assert_eq!(
        verify_json(&tampered, ENTITY, KEY_ID, &public_key()),
        Err(SigningError::BadSignature)
    );

    let mut added = value.clone();
    added["extra"] = json!(1);
    assert_eq!(
        verify_json(&added, ENTITY, KEY_ID, &public_key()),
        Err(SigningError::BadSignature)
    );

    let other = KeyPair::generate(KEY_ID).expect("OS randomness");
    assert_eq!(
        verify_json(&value, ENTITY, KEY_ID, &other.public_key()),
        Err(SigningError::BadSignature)
    );

    let mut bad_sig = value.clone();
    let mut sig_bytes = base64::decode(signature_of(&value)).expect("decodes");
    sig_bytes[0] ^= 1;
    bad_sig["signatures"][ENTITY][KEY_ID] = json!(base64::encode(&sig_bytes));
    assert_eq!(
        verify_json(&bad_sig, ENTITY, KEY_ID, &public_key()),
        Err(SigningError::BadSignature)
    );
}

#[test]
fn existing_signatures_are_kept() {
    let key = test_key();
    let mut value = json!({
        "one": 1,
        "two": "Two",
        "signatures": {
            "other.server": {"ed25519:0": "c29tZXNpZw"},
            "domain": {"ed25519:0": "b2xkc2ln"}
        }
    });
    sign_json(&mut value, ENTITY, &key).expect("signs");
    assert_eq!(
        value["signatures"],
        json!({
            "other.server": {"ed25519:0": "c29tZXNpZw"},
            "domain": {
                "ed25519:0": "b2xkc2ln",
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }
        })
    );
    assert_eq!(verify_json(&value, ENTITY, KEY_ID, &public_key()), Ok(()));
}

#[test]
fn resigning_replaces_own_signature() {
    let key = test_key();
    let mut value = json!({"one": 1, "two": "Two", "signatures": {"domain": {"ed25519:1": "old"}}});
    sign_json(&mut value, ENTITY, &key).expect("signs");
    assert_eq!(
        signature_of(&value),
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
    );
}

#[test]
fn unsigned_preserved_and_not_covered() {
    let key = test_key();
    let mut value = json!({"one": 1, "two": "Two", "unsigned": {"age": 5}});
    sign_json(&mut value, ENTITY, &key).expect("signs");
    assert_eq!(value["unsigned"], json!({"age": 5}));
    // Same signature as without `unsigned`.
    assert_eq!(
        signature_of(&value),
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
    );
    // Changing or removing `unsigned` does not affect verification.
    value["unsigned"] = json!({"age": 99, "other": true});
    assert_eq!(verify_json(&value, ENTITY, KEY_ID, &public_key()), Ok(()));
    if let Value::Object(map) = &mut value {
        map.remove("unsigned");
    }
    assert_eq!(verify_json(&value, ENTITY, KEY_ID, &public_key()), Ok(()));
}

#[test]
fn sign_errors_leave_value_unchanged() {
    let key = test_key();
    let mut not_object = json!([1, 2]);
    assert_eq!(
        sign_json(&mut not_object, ENTITY, &key),
        Err(SigningError::NotAnObject)
    );

    for original in [
        json!({"a": 1, "signatures": "nope"}),
        json!({"a": 1, "signatures": {"domain": []}}),
        json!({"a": 1, "signatures": null}),
    ] {
        let mut value = original.clone();
        assert_eq!(
            sign_json(&mut value, ENTITY, &key),
            Err(SigningError::InvalidSignaturesField)
        );
        assert_eq!(value, original);
    }

    let original = json!({"a": 1.5});
    let mut value = original.clone();
    assert!(matches!(
        sign_json(&mut value, ENTITY, &key),
        Err(SigningError::Canonical(CanonicalJsonError::NotAnInteger(_)))
    ));
    assert_eq!(value, original);
}

#[test]
fn verify_errors() {
    let key = test_key();
    let pk = key.public_key();
    let mut value = json!({"a": 1});
    sign_json(&mut value, ENTITY, &key).expect("signs");

    assert_eq!(
        verify_json(&json!("x"), ENTITY, KEY_ID, &pk),
        Err(SigningError::NotAnObject)
    );
    assert_eq!(
        verify_json(&json!({"a": 1}), ENTITY, KEY_ID, &pk),
        Err(SigningError::SignatureNotFound)
    );
    assert_eq!(
        verify_json(&value, "other.server", KEY_ID, &pk),
        Err(SigningError::SignatureNotFound)
    );
    assert_eq!(
        verify_json(&value, ENTITY, "ed25519:2", &pk),
        Err(SigningError::SignatureNotFound)
    );
    assert_eq!(
        verify_json(&value, ENTITY, "curve25519:1", &pk),
        Err(SigningError::UnsupportedAlgorithm("curve25519:1".into()))
    );
    assert_eq!(
        verify_json(&value, ENTITY, "ed25519", &pk),
        Err(SigningError::UnsupportedAlgorithm("ed25519".into()))
    );
    assert_eq!(
        verify_json(&json!({"signatures": []}), ENTITY, KEY_ID, &pk),
        Err(SigningError::InvalidSignaturesField)
    );
    assert_eq!(
        verify_json(
            &json!({"signatures": {"domain": {"ed25519:1": 5}}}),
            ENTITY,
            KEY_ID,
            &pk
        ),
        Err(SigningError::InvalidSignaturesField)
    );
    assert_eq!(
        verify_json(
            &json!({"signatures": {"domain": {"ed25519:1": "!!"}}}),
            ENTITY,
            KEY_ID,
            &pk
        ),
        Err(SigningError::InvalidSignatureEncoding)
    );
    assert_eq!(
        verify_json(
            &json!({"signatures": {"domain": {"ed25519:1": "Zm9v"}}}),
            ENTITY,
            KEY_ID,
            &pk
        ),
        Err(SigningError::InvalidSignatureEncoding)
    );
    let mut with_float = value.clone();
    with_float["a"] = json!(0.5);
    assert!(matches!(
        verify_json(&with_float, ENTITY, KEY_ID, &pk),
        Err(SigningError::Canonical(_))
    ));
    // Roughly half of all y-coordinates are not on the curve; take the first small one.
    let bad_key = (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
        .expect("some small y is not on the curve");
    assert_eq!(
        verify_json(&value, ENTITY, KEY_ID, &bad_key),
        Err(SigningError::InvalidPublicKey)
    );
}

#[test]
fn verify_bytes_accepts_lenient_base64_and_rejects_garbage() {
    let key = test_key();
    let pk = key.public_key();
    let sig = key.sign_bytes(b"{}");
    assert_eq!(
        sig,
        "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
    );
    assert!(verify_bytes(&pk, b"{}", &sig));
    assert!(verify_bytes(&pk, b"{}", &format!("{sig}==")));
    let url_safe = sig.replace('+', "-").replace('/', "_");
    assert!(verify_bytes(&pk, b"{}", &url_safe));
    assert!(!verify_bytes(&pk, b"{ }", &sig));
    assert!(!verify_bytes(&pk, b"{}", "not base64!"));
    assert!(!verify_bytes(&pk, b"{}", "Zm9v"));
    assert!(!verify_bytes(&[0u8; 32], b"{}", &sig), "small-order key");
}

#[test]
fn error_display_and_source() {
    use std::error::Error as _;
    let err = SigningError::Canonical(CanonicalJsonError::NotAnInteger("0.5".into()));
    assert!(err.to_string().contains("0.5"));
    assert!(err.source().is_some());
    assert!(SigningError::BadSignature.source().is_none());
    assert!(
        !SigningError::UnsupportedAlgorithm("x:1".into())
            .to_string()
            .is_empty()
    );
}
