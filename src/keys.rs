//! The long-term ed25519 signing keys: loaded from the key file, generated on first run.
//!
//! The file holds one key per line, `ed25519 <identifier> <unpadded base64 seed>` (the format
//! Synapse and sydent use for their signing keys, so keys can be moved between them). The first
//! line is the key that signs; later lines are older keys that still answer `/pubkey` and
//! `/pubkey/isvalid`. The file is created with mode 0600 and written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::crypto::base64;
use crate::crypto::signing::KeyPair;

/// The server's long-term keys. [`KeyRing::rotate`] adds a new signing key while serving.
pub struct KeyRing {
    keys: RwLock<Arc<Vec<KeyPair>>>,
    path: PathBuf,
}

impl KeyRing {
    /// Loads the key file at `path`, or creates it with a new key `id` when it does not exist.
    /// Returns the ring and whether a key was generated.
    pub fn load_or_generate(path: &Path, id: &str) -> Result<(KeyRing, bool), String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((KeyRing::new(Self::parse(&text, path)?, path), false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate(id)
                    .map_err(|e| format!("cannot get randomness for a signing key: {e}"))?;
                save(path, std::slice::from_ref(&key))?;
                Ok((KeyRing::new(vec![key], path), true))
            }
            Err(e) => Err(format!("key.path: cannot read {}: {e}", path.display())),
        }
    }

    fn new(keys: Vec<KeyPair>, path: &Path) -> KeyRing {
        KeyRing {
            keys: RwLock::new(Arc::new(keys)),
            path: path.to_path_buf(),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Vec<KeyPair>, String> {
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
        Ok(keys)
    }

    fn current(&self) -> Arc<Vec<KeyPair>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes a new key the signing key (`ed25519:<n+1>` after the highest numbered one) and
    /// keeps the others answering `/pubkey` and isvalid. The key file is rewritten first, so a
    /// restart keeps the rotation. Returns the new key id.
    pub fn rotate(&self) -> Result<String, String> {
        let mut guard = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let next = guard
            .iter()
            .filter_map(|k| k.id().strip_prefix("ed25519:")?.parse::<u64>().ok())
            .max()
            .map_or(0, |n| n + 1);
        let mut id = format!("ed25519:{next}");
        while guard.iter().any(|k| k.id() == id) {
            id.push('_');
        }
        let key = KeyPair::generate(&id)
            .map_err(|e| format!("cannot get randomness for a signing key: {e}"))?;
        let mut keys = vec![key];
        keys.extend(guard.iter().cloned());
        save(&self.path, &keys)?;
        *guard = Arc::new(keys);
        Ok(id)
    }
}

fn save(path: &Path, keys: &[KeyPair]) -> Result<(), String> {
    let mut text = String::new();
    {
        for key in keys {
            let ident = key.id().trim_start_matches("ed25519:");
            text.push_str(&format!(
                "ed25519 {ident} {}\n",
                base64::encode(&key.seed())
            ));
        }
    }
    write_private_file(path, text.as_bytes())
        .map_err(|e| format!("key.path: cannot write {}: {e}", path.display()))
}

impl KeyRing {
    /// The key that signs.
    pub fn signing(&self) -> KeyPair {
        self.current()[0].clone()
    }

    /// The key with this id (`ed25519:0`), current or old.
    pub fn get(&self, id: &str) -> Option<KeyPair> {
        self.current().iter().find(|k| k.id() == id).cloned()
    }

    /// True when `public_key` (either base64 alphabet, padded or not) is one of our long-term
    /// keys.
    pub fn is_valid_public_key(&self, public_key: &str) -> bool {
        let Some(bytes) = base64::decode(public_key) else {
            return false;
        };
        self.current()
            .iter()
            .any(|k| base64::decode(&k.public_key_base64()).as_deref() == Some(&bytes))
    }

    /// All keys, the signing key first.
    pub fn all(&self) -> Vec<KeyPair> {
        self.current().to_vec()
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

    #[test]
    fn rotation_adds_a_signing_key_and_keeps_the_old_ones() {
        let dir = temp("rotate");
        let path = dir.join("signing.key");
        let (ring, _) = KeyRing::load_or_generate(&path, "ed25519:0").unwrap();
        let old = ring.signing();
        assert_eq!(ring.rotate().unwrap(), "ed25519:1");
        assert_eq!(ring.signing().id(), "ed25519:1");
        assert!(ring.is_valid_public_key(&old.public_key_base64()));
        assert_eq!(
            ring.get("ed25519:0").unwrap().public_key(),
            old.public_key()
        );
        let (again, created) = KeyRing::load_or_generate(&path, "ed25519:0").unwrap();
        assert!(!created);
        let ids: Vec<String> = again.all().iter().map(|k| k.id().to_string()).collect();
        assert_eq!(ids, ["ed25519:1", "ed25519:0"]);
        std::fs::remove_dir_all(dir).ok();
    }
}
