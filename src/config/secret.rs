//! A secret configuration value: given inline or read from a file, never printed.
//!
//! In YAML a secret is written either inline (`password: hunter2`) or as a sibling key with the
//! `_file` suffix (`password_file: /run/secrets/smtp`), so the config file itself can be public.
//! The sibling is resolved by [`resolve`] during validation.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string. `Debug` and `Serialize` print a mask instead of the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"********\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "********" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Fills `secret` from `file` when a file is configured. `key` is the config path of the
/// secret, used in error messages. Giving both an inline value and a file is an error.
pub fn resolve(secret: &mut Secret, file: Option<&Path>, key: &str) -> Result<(), String> {
    let Some(file) = file else { return Ok(()) };
    if !secret.is_empty() {
        return Err(format!("{key}: give either {key} or {key}_file, not both"));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{key}_file: cannot read {}: {e}", file.display()))?;
    // A trailing newline is what editors and `echo` leave behind; it is never part of a secret.
    *secret = Secret(text.trim_end_matches(['\r', '\n']).to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_debug_and_yaml() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"********\"");
        assert_eq!(serde_norway::to_string(&s).unwrap().trim(), "'********'");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secret_from_file_drops_the_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("oxisd-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut s = Secret::default();
        resolve(&mut s, Some(&path), "x.password").unwrap();
        assert_eq!(s.expose(), "s3cret");
        let err = resolve(&mut s, Some(&path), "x.password").unwrap_err();
        assert!(err.contains("not both"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
