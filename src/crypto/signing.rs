//! Ed25519 key pairs and signed JSON (appendix "Signing JSON").
//!
//! This module owns the server's signing keys in memory ([`KeyPair`]) and the two JSON operations
//! built on them:
//!
//! * [`sign_json`]: signs an object over the canonical JSON of the object without its
//!   `signatures` and `unsigned` members and stores the signature at
//!   `signatures[<entity>][<key id>]`, keeping any signatures already present;
//! * [`verify_json`]: checks such a signature against a known public key.
//!
//! Signatures and public keys are exchanged as unpadded standard Base64; incoming Base64 is decoded
//! leniently (see [`crate::crypto::base64::decode`]). Verification uses Ed25519 "strict"
//! verification, which also rejects small-order keys and non-canonical signatures.
//!
//! Loading and storing keys, key rotation and the `/pubkey` endpoints live elsewhere.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value};

use super::base64;
use super::canonical_json::{self, CanonicalJsonError};

/// The top-level members that a signature does not cover.
const UNSIGNED_MEMBERS: &[&str] = &["signatures", "unsigned"];

/// The only signing algorithm the server knows.
const ED25519: &str = "ed25519";

/// An Ed25519 signing key together with its key ID (for example `ed25519:0`).
///
/// The key ID should have the form `ed25519:<version>`; it is used as given, both as the key
/// under `signatures[<entity>]` and in `/pubkey/<key id>`. The secret is zeroised on drop and is
/// not shown by the [`Debug`](fmt::Debug) implementation.
#[derive(Clone)]
pub struct KeyPair {
    id: String,
    signing_key: SigningKey,
}

impl KeyPair {
    /// Builds a key pair from a 32-byte Ed25519 seed (the secret key, not the 64-byte expanded
    /// form) and a key ID such as `ed25519:0`.
    pub fn from_seed(id: impl Into<String>, seed: &[u8; 32]) -> Self {
        Self {
            id: id.into(),
            signing_key: SigningKey::from_bytes(seed),
        }
    }

    /// Generates a new key pair with a seed drawn from the operating system's random source.
    ///
    /// # Errors
    ///
    /// Returns the [`getrandom::Error`] if the system random source fails.
    pub fn generate(id: impl Into<String>) -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let key = Self::from_seed(id, &seed);
        seed.fill(0);
        Ok(key)
    }

    /// The key ID, for example `ed25519:0`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The 32-byte secret seed, for persisting the key. Handle with care.
    pub fn seed(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// The public key as unpadded standard Base64, as served by `/pubkey/<key id>`.
    pub fn public_key_base64(&self) -> String {
        base64::encode(&self.public_key())
    }

    /// Signs `message` and returns the 64-byte signature as unpadded standard Base64.
    pub fn sign_bytes(&self, message: &[u8]) -> String {
        base64::encode(&self.signing_key.sign(message).to_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("id", &self.id)
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

/// Why signing or verifying JSON failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningError {
    /// The value to sign or verify is not a JSON object.
    NotAnObject,
    /// `signatures` is not an object of objects, or the signature itself is not a string.
    InvalidSignaturesField,
    /// The object cannot be encoded as canonical JSON.
    Canonical(CanonicalJsonError),
    /// There is no signature for the requested entity and key ID.
    SignatureNotFound,
    /// The key ID names an algorithm other than `ed25519`. Holds the key ID.
    UnsupportedAlgorithm(String),
    /// The signature is not valid Base64 or does not decode to 64 bytes.
    InvalidSignatureEncoding,
    /// The public key is not a valid Ed25519 point.
    InvalidPublicKey,
    /// The signature does not match the object and public key.
    BadSignature,
}

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("signed JSON must be an object"),
            Self::InvalidSignaturesField => f.write_str("malformed `signatures` member"),
            Self::Canonical(e) => write!(f, "cannot canonicalise JSON: {e}"),
            Self::SignatureNotFound => f.write_str("no signature for this entity and key ID"),
            Self::UnsupportedAlgorithm(id) => {
                write!(f, "unsupported signing algorithm in key ID {id:?}")
            }
            Self::InvalidSignatureEncoding => {
                f.write_str("signature is not 64 bytes of valid base64")
            }
            Self::InvalidPublicKey => f.write_str("invalid Ed25519 public key"),
            Self::BadSignature => f.write_str("signature verification failed"),
        }
    }
}

impl std::error::Error for SigningError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Canonical(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CanonicalJsonError> for SigningError {
    fn from(e: CanonicalJsonError) -> Self {
        Self::Canonical(e)
    }
}

/// Signs the JSON object `value` in place as `entity` (a server name) with `key`.
///
/// The signature covers the canonical JSON of the object without its `signatures` and `unsigned`
/// members. It is stored at `signatures[entity][key.id()]`, replacing a previous signature with
/// the same entity and key ID; all other signatures and `unsigned` are kept unchanged.
///
/// # Errors
///
/// [`SigningError::NotAnObject`] if `value` is not an object,
/// [`SigningError::InvalidSignaturesField`] if `signatures` or `signatures[entity]` exists but is
/// not an object, and [`SigningError::Canonical`] if the object is not canonicalisable. On error
/// `value` is left unchanged.
pub fn sign_json(value: &mut Value, entity: &str, key: &KeyPair) -> Result<(), SigningError> {
    let Value::Object(map) = value else {
        return Err(SigningError::NotAnObject);
    };
    let canonical = canonical_json::encode_object_excluding(map, UNSIGNED_MEMBERS)?;
    let signature = key.sign_bytes(canonical.as_bytes());

    // Each `entry` below either finds an existing member (and fails without mutating anything if
    // it is not an object) or inserts an empty object that is then filled, so an error never
    // leaves `value` modified.
    let Value::Object(signatures) = map
        .entry("signatures")
        .or_insert_with(|| Value::Object(Map::new()))
    else {
        return Err(SigningError::InvalidSignaturesField);
    };
    let Value::Object(entity_signatures) = signatures
        .entry(entity)
        .or_insert_with(|| Value::Object(Map::new()))
    else {
        return Err(SigningError::InvalidSignaturesField);
    };
    entity_signatures.insert(key.id().to_owned(), Value::String(signature));
    Ok(())
}

/// Verifies the signature of `entity` with key `key_id` on the JSON object `value`.
///
/// Follows the spec's verification steps: `signatures[entity]` must exist; the key ID's algorithm
/// must be `ed25519`; `signatures[entity][key_id]` must be a string that decodes (leniently) to a
/// 64-byte signature; finally the canonical JSON of the object without `signatures` and
/// `unsigned` must verify (strictly) against `public_key`.
///
/// # Errors
///
/// Any [`SigningError`] except [`SigningError::Canonical`] raised by signing; `Ok(())` means the
/// signature is valid.
pub fn verify_json(
    value: &Value,
    entity: &str,
    key_id: &str,
    public_key: &[u8; 32],
) -> Result<(), SigningError> {
    let Value::Object(map) = value else {
        return Err(SigningError::NotAnObject);
    };
    let entity_signatures = match map.get("signatures") {
        None => return Err(SigningError::SignatureNotFound),
        Some(Value::Object(signatures)) => match signatures.get(entity) {
            None => return Err(SigningError::SignatureNotFound),
            Some(Value::Object(entity_signatures)) => entity_signatures,
            Some(_) => return Err(SigningError::InvalidSignaturesField),
        },
        Some(_) => return Err(SigningError::InvalidSignaturesField),
    };
    match key_id.split_once(':') {
        Some((ED25519, _)) => {}
        _ => return Err(SigningError::UnsupportedAlgorithm(key_id.to_owned())),
    }
    let signature_b64 = match entity_signatures.get(key_id) {
        None => return Err(SigningError::SignatureNotFound),
        Some(Value::String(s)) => s,
        Some(_) => return Err(SigningError::InvalidSignaturesField),
    };
    let signature = decode_signature(signature_b64)?;
    let verifying_key =
        VerifyingKey::from_bytes(public_key).map_err(|_| SigningError::InvalidPublicKey)?;
    let canonical = canonical_json::encode_object_excluding(map, UNSIGNED_MEMBERS)?;
    verifying_key
        .verify_strict(canonical.as_bytes(), &signature)
        .map_err(|_| SigningError::BadSignature)
}

/// Returns whether `signature_b64` (Base64, decoded leniently) is a valid Ed25519 signature of
/// `message` by `public_key`. Uses strict verification.
pub fn verify_bytes(public_key: &[u8; 32], message: &[u8], signature_b64: &str) -> bool {
    let Ok(signature) = decode_signature(signature_b64) else {
        return false;
    };
    let Ok(verifying_key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    verifying_key.verify_strict(message, &signature).is_ok()
}

fn decode_signature(signature_b64: &str) -> Result<Signature, SigningError> {
    let bytes = base64::decode(signature_b64).ok_or(SigningError::InvalidSignatureEncoding)?;
    let bytes: [u8; 64] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SigningError::InvalidSignatureEncoding)?;
    Ok(Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
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
        let mut value =
            json!({"one": 1, "two": "Two", "signatures": {"domain": {"ed25519:1": "old"}}});
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
}
