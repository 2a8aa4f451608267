//! The long-term ed25519 signing keys: loaded from the key file, generated on first run.
//!
//! The file holds one key per line, `ed25519 <identifier> <unpadded base64 seed>` (the format
//! Synapse and sydent use for their signing keys, so keys can be moved between them). The first
//! line is the key that signs; later lines are older keys that still answer `/pubkey` and
//! `/pubkey/isvalid`. The file is created with mode 0600 and written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::crypto::base64;
use crate::crypto::signing::KeyPair;

/// The server's long-term keys.
pub struct KeyRing {
    keys: Vec<KeyPair>,
}

impl KeyRing {
    /// Loads the key file at `path`, or creates it with a new key `id` when it does not exist.
    /// Returns the ring and whether a key was generated.
    pub fn load_or_generate(path: &Path, id: &str) -> Result<(KeyRing, bool), String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::parse(&text, path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate(id)
                    .map_err(|e| format!("cannot get randomness for a signing key: {e}"))?;
                let ring = KeyRing { keys: vec![key] };
                ring.save(path)?;
                Ok((ring, true))
            }
            Err(e) => Err(format!("key.path: cannot read {}: {e}", path.display())),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<KeyRing, String> {
        let mut keys: Vec<KeyPair> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("{} line {}: {why}", path.display(), n + 1);
            let mut parts = line.split_whitespace();
            let (Some(alg), Some(ident), Some(seed), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected 'ed25519 <identifier> <base64 seed>'"));
            };
            if alg != "ed25519" {
                return Err(bad("only ed25519 keys are supported"));
            }
            let seed: [u8; 32] = base64::decode(seed)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("the seed is not 32 bytes of base64"))?;
            let id = format!("ed25519:{ident}");
            if keys.iter().any(|k| k.id() == id) {
                return Err(bad("duplicate key identifier"));
            }
            keys.push(KeyPair::from_seed(&id, &seed));
        }
        if keys.is_empty() {
            return Err(format!("{}: the key file holds no key", path.display()));
        }
        Ok(KeyRing { keys })
    }

    fn save(&self, path: &Path) -> Result<(), String> {
        let mut text = String::new();
        for key in &self.keys {
            let ident = key.id().trim_start_matches("ed25519:");
            text.push_str(&format!(
                "ed25519 {ident} {}\n",
                base64::encode(&key.seed())
            ));
        }
        write_private_file(path, text.as_bytes())
            .map_err(|e| format!("key.path: cannot write {}: {e}", path.display()))
    }

    /// The key that signs.
    pub fn signing(&self) -> &KeyPair {
        &self.keys[0]
    }

    /// The key with this id (`ed25519:0`), current or old.
    pub fn get(&self, id: &str) -> Option<&KeyPair> {
        self.keys.iter().find(|k| k.id() == id)
    }

    /// True when `public_key` (either base64 alphabet, padded or not) is one of our long-term
    /// keys.
    pub fn is_valid_public_key(&self, public_key: &str) -> bool {
        let Some(bytes) = base64::decode(public_key) else {
            return false;
        };
        self.keys
            .iter()
            .any(|k| base64::decode(&k.public_key_base64()).as_deref() == Some(&bytes))
    }

    /// All keys, the signing key first.
    pub fn all(&self) -> &[KeyPair] {
        &self.keys
    }
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in the same folder is
/// written, synced and renamed over the target, then the folder is synced.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxisd-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn generated_key_is_persisted_private_and_reloaded() {
        let dir = temp("gen");
        let path = dir.join("signing.key");
        let (ring, created) = KeyRing::load_or_generate(&path, "ed25519:0").unwrap();
        assert!(created);
        let (again, created) = KeyRing::load_or_generate(&path, "ed25519:0").unwrap();
        assert!(!created);
        assert_eq!(
            ring.signing().public_key_base64(),
            again.signing().public_key_base64()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn key_file_with_old_keys_serves_all_of_them() {
        let dir = temp("old");
        let path = dir.join("k");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &path,
            "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n# retired\ned25519 0 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
        )
        .unwrap();
        let (ring, _) = KeyRing::load_or_generate(&path, "ed25519:0").unwrap();
        assert_eq!(ring.signing().id(), "ed25519:1");
        assert_eq!(
            ring.signing().public_key_base64(),
            "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"
        );
        assert!(ring.get("ed25519:0").is_some());
        assert!(ring.is_valid_public_key("XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"));
        assert!(ring.is_valid_public_key("XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI="));
        assert!(!ring.is_valid_public_key("AAAA"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn corrupt_key_files_are_reported_with_the_line() {
        let dir = temp("bad");
        let path = dir.join("k");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "ed25519 0 tooshort\n").unwrap();
        let err = KeyRing::load_or_generate(&path, "ed25519:0").err().unwrap();
        assert!(err.contains("line 1"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
