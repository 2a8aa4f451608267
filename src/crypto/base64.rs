//! Unpadded Base64 as used throughout Matrix (appendix "Unpadded Base64").
//!
//! This module owns the choice of Base64 engines for the whole server:
//!
//! * [`encode`]: RFC 4648 standard alphabet (`+`, `/`), no `=` padding. Used for public keys and
//!   signatures.
//! * [`encode_url`]: RFC 4648 URL-safe alphabet (`-`, `_`), no `=` padding. Used for lookup hashes.
//! * [`decode`]: a lenient decoder that accepts either alphabet, with or without padding, and
//!   ignores non-zero trailing bits (the spec's own test seed needs that). Input that mixes both
//!   alphabets is rejected.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{NO_PAD_INDIFFERENT, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Standard alphabet, padding optional, trailing bits allowed.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    NO_PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
);

/// URL-safe alphabet, padding optional, trailing bits allowed.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    NO_PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
);

/// Encodes `bytes` as unpadded Base64 with the standard alphabet (`+`, `/`).
pub fn encode(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

/// Encodes `bytes` as unpadded Base64 with the URL-safe alphabet (`-`, `_`).
pub fn encode_url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes Base64 leniently.
///
/// Accepts the standard or the URL-safe alphabet, with or without `=` padding, and ignores
/// non-zero trailing bits in the last symbol. Returns `None` for anything else: characters outside
/// both alphabets (including whitespace), a mix of standard-only (`+`, `/`) and URL-safe-only
/// (`-`, `_`) characters, an impossible length, or misplaced / excess padding.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let has_standard = s.bytes().any(|b| b == b'+' || b == b'/');
    let has_url_safe = s.bytes().any(|b| b == b'-' || b == b'_');
    let engine = match (has_standard, has_url_safe) {
        (true, true) => return None,
        (false, true) => &URL_SAFE_LENIENT,
        _ => &STANDARD_LENIENT,
    };
    engine.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appendix "Unpadded Base64" vectors.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn appendix_vectors_encode() {
        for (plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), *encoded, "encode {plain:?}");
            assert_eq!(
                encode_url(plain.as_bytes()),
                *encoded,
                "encode_url {plain:?}"
            );
        }
    }

    #[test]
    fn appendix_vectors_decode() {
        for (plain, encoded) in VECTORS {
            assert_eq!(
                decode(encoded).as_deref(),
                Some(plain.as_bytes()),
                "decode {encoded:?}"
            );
        }
    }

    #[test]
    fn decode_accepts_padding() {
        assert_eq!(decode("Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(decode("Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(decode("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(decode("Zm9vYmE=").as_deref(), Some(&b"fooba"[..]));
        assert_eq!(decode("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
    }

    #[test]
    fn decode_rejects_bad_padding() {
        assert_eq!(decode("Zm9v="), None);
        assert_eq!(decode("Zm9v===="), None);
        assert_eq!(decode("Z=g="), None);
        assert_eq!(decode("=Zg"), None);
    }

    #[test]
    fn url_safe_encoding_uses_url_alphabet() {
        let bytes = [0xfb, 0xff, 0xbf];
        assert_eq!(encode(&bytes), "+/+/");
        assert_eq!(encode_url(&bytes), "-_-_");
    }

    #[test]
    fn decode_accepts_url_safe_input() {
        let bytes = [0xfb, 0xff, 0xbf, 0xfe];
        assert_eq!(decode("-_-__g").as_deref(), Some(&bytes[..]));
        assert_eq!(decode("-_-__g==").as_deref(), Some(&bytes[..]));
        assert_eq!(decode("+/+//g").as_deref(), Some(&bytes[..]));
        // A §4 lookup hash (URL-safe) decodes to a 32-byte SHA-256 digest.
        let hash = decode("LJwSazmv46n0hlMlsb_iYxI0_HXEqy_yj6Jm636cdT8");
        assert_eq!(hash.map(|h| h.len()), Some(32));
    }

    #[test]
    fn round_trip_all_byte_values() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            let slice = &bytes[..len];
            assert_eq!(decode(&encode(slice)).as_deref(), Some(slice));
            assert_eq!(decode(&encode_url(slice)).as_deref(), Some(slice));
        }
    }

    #[test]
    fn decode_appendix_seed_with_trailing_bits() {
        let seed = decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
        assert_eq!(seed.as_ref().map(Vec::len), Some(32));
        // The trailing bits are ignored: `...XA0` decodes to the same bytes.
        assert_eq!(seed, decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0"));
        // Re-encoding gives the canonical form.
        assert_eq!(
            seed.map(|s| encode(&s)).as_deref(),
            Some("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0")
        );
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(decode("+/-_"), None, "mixed alphabets");
        assert_eq!(decode("ab+c-d"), None, "mixed alphabets");
        assert_eq!(decode("Zm9v Yg"), None, "whitespace");
        assert_eq!(decode("Zm9v\n"), None, "newline");
        assert_eq!(decode("Zm9v!"), None, "invalid symbol");
        assert_eq!(decode("Z"), None, "impossible length");
        assert_eq!(decode("Zm9vY"), None, "impossible length");
        assert_eq!(decode("日本"), None, "non-ASCII");
    }
}
