//! The `sha256` algorithm of hashed 3PID lookup (`POST /_matrix/identity/v2/lookup`, MSC2134).
//!
//! This module owns the hash function only (and its raw digest, which the store indexes). The caller must normalise the address first (email:
//! Unicode case folding; msisdn: E.164 digits without `+`) and pass the lowercase medium string;
//! this function hashes exactly the bytes it is given.

use sha2::{Digest, Sha256};

use super::base64;

/// Computes the lookup hash of a 3PID: URL-safe unpadded Base64 of
/// `SHA-256("<address> <medium> <pepper>")`.
///
/// `address` must already be normalised; it is hashed as-is.
pub fn sha256_lookup_hash(address: &str, medium: &str, pepper: &str) -> String {
    base64::encode_url(&lookup_digest(address, medium, pepper))
}

/// The raw SHA-256 of the lookup string `"<address> <medium> <pepper>"`: the bytes that
/// [`sha256_lookup_hash`] encodes, and the key the store indexes bindings by.
pub fn lookup_digest(address: &str, medium: &str, pepper: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(address.as_bytes());
    hasher.update(b" ");
    hasher.update(medium.as_bytes());
    hasher.update(b" ");
    hasher.update(pepper.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vectors: &[(&str, &str, &str, &str)]) {
        for (address, medium, pepper, expected) in vectors {
            assert_eq!(
                sha256_lookup_hash(address, medium, pepper),
                *expected,
                "{address} {medium} {pepper}"
            );
        }
    }

    #[test]
    fn spec_vectors() {
        check(&[
            (
                "alice@example.com",
                "email",
                "matrixrocks",
                "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc",
            ),
            (
                "bob@example.com",
                "email",
                "matrixrocks",
                "LJwSazmv46n0hlMlsb_iYxI0_HXEqy_yj6Jm636cdT8",
            ),
            (
                "18005552067",
                "msisdn",
                "matrixrocks",
                "nlo35_T5fzSGZzJApqu8lgIudJvmOQtDaHtr-I4rU7I",
            ),
        ]);
    }

    #[test]
    fn msc2134_vectors() {
        check(&[
            (
                "carl@example.com",
                "email",
                "matrixrocks",
                "jDh2YLwYJg3vg9pEn3kaaXAP9jx-LlcotoH51Zgb9MA",
            ),
            (
                "12345678910",
                "msisdn",
                "matrixrocks",
                "S11EvvwnUWBDZtI4MTRKgVuiRx76Z9HnkbyRlWkBqJs",
            ),
            (
                "denny@example.com",
                "email",
                "matrixrocks",
                "2tZto1arl2fUYtF6tQPJND69il3xke9OBlgFgnUt2ww",
            ),
        ]);
    }

    #[test]
    fn derived_vectors() {
        check(&[
            (
                "strauss@example.com",
                "email",
                "matrixrocks",
                "Wvo9OL_UvrDZsRecvnhshdTeilXXGbhk0J5l5rX55Ok",
            ),
            (
                "447700900001",
                "msisdn",
                "matrixrocks",
                "dF473qZAKqcTbTZct7YzrjGHYgV1YM1hdw68D7pSskg",
            ),
            (
                "alice@example.org",
                "email",
                "ThePepperGoesHere",
                "iJK11SbwK5LKiXtlKNuI9fAihYq6F5WOPy0EthOmFxs",
            ),
        ]);
    }

    #[test]
    fn unnormalised_address_hashes_differently() {
        let raw = sha256_lookup_hash("Strauß@Example.com", "email", "matrixrocks");
        assert_eq!(raw, "fb09a97zH8Mj8w5bA9ctif3ZAxDuA6CXB5oldRxm1Ks");
        assert_ne!(
            raw,
            sha256_lookup_hash("strauss@example.com", "email", "matrixrocks")
        );
    }

    #[test]
    fn output_is_url_safe_unpadded_digest() {
        let hash = sha256_lookup_hash("alice@example.com", "email", "matrixrocks");
        assert_eq!(hash.len(), 43);
        assert!(!hash.contains(['+', '/', '=']));
        assert_eq!(base64::decode(&hash).map(|d| d.len()), Some(32));
    }
}
