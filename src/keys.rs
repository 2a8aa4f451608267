//! The long-term ed25519 signing keys: loaded from the key file, generated on first run.
//!
//! The file holds one key per line, `ed25519 <identifier> <unpadded base64 seed>` (the format
//! Synapse and sydent use for their signing keys, so keys can be moved between them). The first
//! line is the key that signs; later lines are older keys that still answer `/pubkey` and
//! `/pubkey/isvalid`. The file is created with mode 0600 and written atomically.
//!
//! The public half of every key is also recorded in the store (see `App::build`), so a key
//! whose file was lost can keep answering `/pubkey` and isvalid as a *lost* key: one that no
//! longer signs and whose private half is gone. A missing key file is only replaced by a new
//! key for a new store; otherwise the server refuses to start unless told to make a new key
//! (`--new-signing-key`), which then gets the next free id, never the lost key's id.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::crypto::base64;
use crate::crypto::signing::KeyPair;
use crate::error::StartError;

/// The config key of the key file.
const KEY_PATH: &str = "key.path";

/// The server's long-term keys. [`KeyRing::rotate`] adds a new signing key while serving.
pub struct KeyRing {
    keys: RwLock<Arc<Vec<KeyPair>>>,
    /// Keys whose private half is lost: `(id, unpadded base64 public key)`. They answer
    /// `/pubkey` and isvalid, and their ids are never given out again.
    lost: RwLock<Vec<(String, String)>>,
    path: PathBuf,
}

/// The id after the highest numbered `ed25519:N` among `ids` (`ed25519:0` for none), made
/// unique against `ids`.
pub fn next_key_id<'a>(ids: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let next = ids
        .clone()
        .into_iter()
        .filter_map(|id| id.strip_prefix("ed25519:")?.parse::<u64>().ok())
        .max()
        .map_or(0, |n| n + 1);
    let mut id = format!("ed25519:{next}");
    while ids.clone().into_iter().any(|k| k == id) {
        id.push('_');
    }
    id
}

impl KeyRing {
    /// Loads the key file at `path`, or creates it with a new key `id` when it does not exist.
    /// Returns the ring and whether a key was generated.
    pub fn load_or_generate(path: &Path, id: &str) -> Result<(KeyRing, bool), StartError> {
        match KeyRing::load(path)? {
            Some(ring) => Ok((ring, false)),
            None => Ok((KeyRing::generate(path, id)?, true)),
        }
    }

    /// Loads the key file at `path`; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<KeyRing>, StartError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(KeyRing::new(
                Self::parse(&text, path).map_err(StartError::other)?,
                path,
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StartError::setting(
                KEY_PATH,
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }

    /// Creates the key file at `path` with one new key `id`.
    pub fn generate(path: &Path, id: &str) -> Result<KeyRing, StartError> {
        let key = KeyPair::generate(id).map_err(|e| {
            StartError::other(format!("cannot get randomness for a signing key: {e}"))
        })?;
        save(path, std::slice::from_ref(&key))?;
        Ok(KeyRing::new(vec![key], path))
    }

    fn new(keys: Vec<KeyPair>, path: &Path) -> KeyRing {
        KeyRing {
            keys: RwLock::new(Arc::new(keys)),
            lost: RwLock::new(Vec::new()),
            path: path.to_path_buf(),
        }
    }

    /// Adds keys whose private half is lost, `(id, public key)`, to answer `/pubkey` and
    /// isvalid. Ids the key file holds are skipped.
    pub fn add_lost(&self, keys: Vec<(String, String)>) {
        let have = self.current();
        let mut lost = self.lost.write().unwrap_or_else(|p| p.into_inner());
        for (id, public) in keys {
            if !have.iter().any(|k| k.id() == id) && !lost.iter().any(|(i, _)| *i == id) {
                lost.push((id, public));
            }
        }
    }

    /// The lost keys, `(id, public key)`.
    pub fn lost(&self) -> Vec<(String, String)> {
        self.lost.read().unwrap_or_else(|p| p.into_inner()).clone()
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
        let lost = self.lost();
        let ids: Vec<&str> = guard
            .iter()
            .map(|k| k.id())
            .chain(lost.iter().map(|(id, _)| id.as_str()))
            .collect();
        let id = next_key_id(ids.iter().copied());
        let key = KeyPair::generate(&id)
            .map_err(|e| format!("cannot get randomness for a signing key: {e}"))?;
        let mut keys = vec![key];
        keys.extend(guard.iter().cloned());
        save(&self.path, &keys).map_err(|e| e.to_string())?;
        *guard = Arc::new(keys);
        Ok(id)
    }
}

fn save(path: &Path, keys: &[KeyPair]) -> Result<(), StartError> {
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
        .map_err(|e| StartError::setting(KEY_PATH, format!("cannot write {}: {e}", path.display())))
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

    /// The unpadded base64 public key of the key `id`, current, old or lost.
    pub fn public_key(&self, id: &str) -> Option<String> {
        if let Some(key) = self.get(id) {
            return Some(key.public_key_base64());
        }
        self.lost()
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, public)| public)
    }

    /// True when `public_key` (either base64 alphabet, padded or not) is one of our long-term
    /// keys, lost ones included.
    pub fn is_valid_public_key(&self, public_key: &str) -> bool {
        let Some(bytes) = base64::decode(public_key) else {
            return false;
        };
        let same = |k: &str| base64::decode(k).as_deref() == Some(&bytes);
        self.current().iter().any(|k| same(&k.public_key_base64()))
            || self.lost().iter().any(|(_, k)| same(k))
    }

    /// All keys, the signing key first.
    pub fn all(&self) -> Vec<KeyPair> {
        self.current().to_vec()
    }

    /// `(id, public key)` of the keys of the key file, the signing key first.
    pub fn public_keys(&self) -> Vec<(String, String)> {
        self.current()
            .iter()
            .map(|k| (k.id().to_string(), k.public_key_base64()))
            .collect()
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
        let err = KeyRing::load_or_generate(&path, "ed25519:0")
            .err()
            .unwrap()
            .to_string();
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

    #[test]
    fn lost_keys_answer_and_their_ids_are_not_given_out_again() {
        let dir = temp("lost");
        let path = dir.join("signing.key");
        assert!(KeyRing::load(&path).unwrap().is_none());
        let ring = KeyRing::generate(&path, "ed25519:1").unwrap();
        let gone = KeyPair::generate("ed25519:0").unwrap();
        let far = KeyPair::generate("ed25519:7").unwrap();
        ring.add_lost(vec![
            ("ed25519:0".into(), gone.public_key_base64()),
            ("ed25519:7".into(), far.public_key_base64()),
            ("ed25519:1".into(), "not this one".into()),
        ]);
        assert_eq!(ring.lost().len(), 2);
        assert!(ring.is_valid_public_key(&gone.public_key_base64()));
        assert_eq!(ring.public_key("ed25519:0"), Some(gone.public_key_base64()));
        assert_eq!(ring.signing().id(), "ed25519:1");
        assert_eq!(ring.rotate().unwrap(), "ed25519:8");
        assert_eq!(next_key_id(["ed25519:0", "ed25519:abc"]), "ed25519:1");
        assert_eq!(next_key_id(["ed25519:abc"]), "ed25519:0");
        std::fs::remove_dir_all(dir).ok();
    }
}
