//! Secrets from the operating system's random source, and constant-time comparison of them.

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// `n` random bytes.
pub fn bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| Error::internal(format_args!("no randomness: {e}")))?;
    Ok(buf)
}

/// A URL-safe random string carrying `n_bytes * 8` bits (unpadded URL-safe base64, so it fits
/// the spec's `[0-9a-zA-Z.=_-]` grammar for sids and tokens).
pub fn token(n_bytes: usize) -> Result<String> {
    Ok(super::base64::encode_url(&bytes(n_bytes)?))
}

/// `n` random characters of `[a-zA-Z0-9]` (about 5.95 bits each).
pub fn alphanumeric(n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        out.extend(token(n)?.chars().filter(char::is_ascii_alphanumeric));
    }
    out.truncate(n);
    Ok(out)
}

/// `n` random decimal digits, uniformly distributed (rejection sampling, no modulo bias).
pub fn digits(n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in bytes(n * 2)? {
            // 250 is the largest multiple of 10 below 256.
            if b < 250 && out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// Compares two secrets in time that depends only on their lengths (slices of different
/// lengths are unequal at once).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = token(24).unwrap();
        let b = token(24).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn digits_are_digits() {
        let d = digits(6).unwrap();
        assert_eq!(d.len(), 6);
        assert!(d.bytes().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
