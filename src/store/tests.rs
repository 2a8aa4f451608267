//! The store's own tests: schema versions, open errors and the recorded public keys.

use super::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxisd-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn schema_version_is_recorded_and_kept() {
    let dir = temp_dir("schema");
    {
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        store.durable().unwrap();
        store.close().unwrap();
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn open_errors_name_their_cause() {
    let what = "the store at /x";
    let locked = describe_open_error(what, &fjall::Error::Locked);
    assert!(locked.contains("another oxisd"), "{locked}");
    let denied = describe_open_error(
        what,
        &fjall::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
    );
    assert!(
        denied.contains("permission denied") && !denied.contains("another oxisd"),
        "{denied}"
    );
    let damaged = describe_open_error(
        what,
        &fjall::Error::JournalRecovery(fjall::JournalRecoveryError::ChecksumMismatch),
    );
    assert!(
        damaged.contains("damaged") && !damaged.contains("another oxisd"),
        "{damaged}"
    );
}

#[test]
fn public_keys_are_recorded_kept_and_marked_lost() {
    let dir = temp_dir("pubkeys");
    let store = Store::open(&dir).unwrap();
    assert!(store.created());
    let k = |id: &str, key: &str| (id.to_string(), key.to_string());
    store
        .record_public_keys(&[k("ed25519:0", "A")], &[])
        .unwrap();
    store
        .record_public_keys(&[k("ed25519:1", "B")], &[])
        .unwrap();
    store
        .record_public_keys(
            &[k("ed25519:2", "C")],
            &["ed25519:0".into(), "ed25519:1".into()],
        )
        .unwrap();
    let lost: Vec<(String, bool)> = store
        .recorded_public_keys()
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.lost))
        .collect();
    assert_eq!(
        lost,
        [
            ("ed25519:0".into(), true),
            ("ed25519:1".into(), true),
            ("ed25519:2".into(), false)
        ]
    );
    store.close().unwrap();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert!(!store.created());
    assert_eq!(store.recorded_public_keys().unwrap().len(), 3);
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = temp_dir("newer");
    {
        let store = Store::open(&dir).unwrap();
        store
            .meta
            .insert(SCHEMA_KEY, (SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        store.close().unwrap();
    }
    let err = Store::open(&dir).err().unwrap().0;
    assert!(err.contains("newer"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
