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
mod tests;
