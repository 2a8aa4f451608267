//! Starting on an existing data directory after a loss: a missing signing key file, a damaged
//! journal, and store-open errors that say what they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::sessions::{V1, V2, request_token};
use crate::support::{TempDir, TestServer, binary};

/// Runs `oxisd serve` on the config a [`TestServer`] left in `dir`, with `flags`, and expects
/// it to exit within 20 seconds: its exit code and its log. `None` when it kept running (it
/// started), after killing it.
fn serve_expecting_exit(dir: &Path, flags: &[&str]) -> Option<(i32, String)> {
    let mut child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(dir.join("config.yaml"))
        .args(flags)
        .env_remove("OXISD_CONFIG")
        .env_remove("OXISD_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oxisd");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut log = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
            return Some((status.code().unwrap_or(-1), log));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn public_key(s: &TestServer, id: &str) -> Value {
    s.get(&format!("{V2}/pubkey/{id}")).json()["public_key"].clone()
}

fn is_valid(s: &TestServer, key: &Value) -> Value {
    let key = key
        .as_str()
        .unwrap()
        .replace('+', "%2B")
        .replace('/', "%2F");
    s.get(&format!("{V2}/pubkey/isvalid?public_key={key}"))
        .json()["valid"]
        .clone()
}

/// A server that wrote something, stopped: its data directory, and the public key ed25519:0.
fn used_store(tag: &str) -> (Arc<TempDir>, Value) {
    let dir = Arc::new(TempDir::new(tag));
    let s = TestServer::start_in(dir.clone(), json!({}));
    let key = public_key(&s, "ed25519:0");
    assert_eq!(
        request_token(&s, V1, "a@example.org", "secret", 1).status,
        200
    );
    assert!(s.stop().success());
    (dir, key)
}

#[test]
fn a_missing_key_file_on_a_used_store_refuses_to_start() {
    let (dir, _) = used_store("key-missing");
    let key_file = dir.path().join("data/signing.key");
    std::fs::remove_file(&key_file).unwrap();
    let (code, log) = serve_expecting_exit(dir.path(), &[])
        .expect("oxisd started with a new key in place of the missing one");
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("signing key file")
            && log.contains("missing")
            && log.contains("oxisd admin backup")
            && log.contains("--new-signing-key"),
        "{log}"
    );
    assert!(!key_file.exists(), "no key may be generated");
}

#[test]
fn a_new_signing_key_on_purpose_gets_a_new_id_and_the_lost_key_stays_valid() {
    let (dir, old) = used_store("key-new");
    std::fs::remove_file(dir.path().join("data/signing.key")).unwrap();
    let s = TestServer::start_in_with(dir.clone(), json!({}), |c| {
        c.arg("--new-signing-key");
    });
    let new = public_key(&s, "ed25519:1");
    assert!(new.is_string() && new != old, "{new} {old}");
    // The lost key still answers under its id and through isvalid; the new one signs.
    assert_eq!(public_key(&s, "ed25519:0"), old);
    assert_eq!(is_valid(&s, &old), json!(true));
    assert_eq!(is_valid(&s, &new), json!(true));
    assert!(
        s.logs()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("ed25519:1")),
        "{:#?}",
        s.logs()
    );
    assert!(s.stop().success());
    // Later starts need no flag and keep both.
    let s = TestServer::start_in(dir.clone(), json!({}));
    assert_eq!(public_key(&s, "ed25519:0"), old);
    assert_eq!(public_key(&s, "ed25519:1"), new);
    assert_eq!(is_valid(&s, &old), json!(true));
}

#[test]
fn keys_made_by_rotation_are_recorded_and_stay_valid_after_the_file_is_lost() {
    let dir = Arc::new(TempDir::new("key-rotated"));
    let admin = json!({"admin": {"enabled": true, "port": crate::admin::free_port(), "token": crate::admin::TOKEN}});
    let s = TestServer::start_in(dir.clone(), admin.clone());
    let (code, out, text) = crate::admin::admin(&s, &["keys", "rotate"]);
    assert_eq!(
        (code, &out["signing_key"]),
        (0, &json!("ed25519:1")),
        "{text}"
    );
    let (k0, k1) = (public_key(&s, "ed25519:0"), public_key(&s, "ed25519:1"));
    assert!(s.stop().success());
    std::fs::remove_file(dir.path().join("data/signing.key")).unwrap();
    let s = TestServer::start_in_with(dir.clone(), admin, |c| {
        c.arg("--new-signing-key");
    });
    let k2 = public_key(&s, "ed25519:2");
    assert!(k2.is_string() && k2 != k0 && k2 != k1);
    assert_eq!(public_key(&s, "ed25519:1"), k1);
    assert_eq!(is_valid(&s, &k0), json!(true));
    assert_eq!(is_valid(&s, &k1), json!(true));
    let (_, out, _) = crate::admin::admin(&s, &["keys", "list"]);
    let listed: Vec<(String, bool)> = out["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["lost"] == json!(true),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("ed25519:2".to_string(), false),
            ("ed25519:0".to_string(), true),
            ("ed25519:1".to_string(), true)
        ]
    );
}

#[test]
fn a_new_store_still_gets_a_key_and_a_restored_key_file_starts() {
    let (dir, old) = used_store("key-restore");
    let key_file = dir.path().join("data/signing.key");
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    assert!(serve_expecting_exit(dir.path(), &[]).is_some());
    std::fs::write(&key_file, saved).unwrap();
    let s = TestServer::start_in(dir.clone(), json!({}));
    assert_eq!(public_key(&s, "ed25519:0"), old);
}

/// The journal file written last below `dir`.
fn newest_journal(dir: &Path) -> PathBuf {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "jnl") {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    found
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a journal file")
}

/// The offset of a batch start (fjall's journal: tag 1, u32 item count, u64 seqno, then the
/// first item's tag 2 with no compression) at or before `near`.
fn batch_start_before(bytes: &[u8], near: usize) -> usize {
    (0..=near.min(bytes.len() - 16))
        .rev()
        .find(|&p| {
            let count = u32::from_le_bytes(bytes[p + 1..p + 5].try_into().unwrap());
            let seqno = u64::from_le_bytes(bytes[p + 5..p + 13].try_into().unwrap());
            bytes[p] == 1
                && (1..=64).contains(&count)
                && seqno < 1_000_000
                && bytes[p + 13] == 2
                && bytes[p + 15] == 0
        })
        .expect("a batch start in the journal")
}

#[test]
fn a_damaged_journal_refuses_to_start_until_the_loss_is_accepted() {
    let dir = Arc::new(TempDir::new("journal"));
    let patch = json!({"session": {"rateLimit": {"perClient": {"burst": 100000, "refill": 1}}}});
    let s = TestServer::start_in(dir.clone(), patch.clone());
    let db = dir.path().join("data/db");
    // Acknowledged writes (validation sessions), until the journal holds well over 40 KB.
    let mut n = 0;
    while std::fs::metadata(newest_journal(&db)).unwrap().len() < 100 * 1024 && n < 2000 {
        let r = request_token(&s, V1, &format!("user{n}@example.org"), "secret", 1);
        assert_eq!(r.status, 200, "{}", r.text());
        n += 1;
    }
    // kill -9, then 64 bytes overwritten 40 KB before the end of the journal.
    drop(s);
    let journal = newest_journal(&db);
    let mut bytes = std::fs::read(&journal).unwrap();
    let at = batch_start_before(&bytes, bytes.len() - 40 * 1024);
    bytes[at..at + 64].fill(0xff);
    std::fs::write(&journal, &bytes).unwrap();

    let (code, log) = serve_expecting_exit(dir.path(), &[])
        .expect("oxisd started on a journal that lost acknowledged writes");
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("ERROR")
            && log.contains("lost writes it had acknowledged")
            && log.contains("--accept-data-loss")
            && log.contains("backup"),
        "{log}"
    );
    // Refusing does not make the loss go away: it is reported again.
    let (code, log) = serve_expecting_exit(dir.path(), &[]).expect("refused again");
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("lost writes it had acknowledged"), "{log}");

    // The operator accepts the loss: it starts, says so, and the next start is clean.
    let s = TestServer::start_in_with(dir.clone(), patch.clone(), |c| {
        c.arg("--accept-data-loss");
    });
    assert!(
        s.logs()
            .iter()
            .any(|l| l.contains("ERROR") && l.contains("lost writes it had acknowledged")),
        "{:#?}",
        s.logs()
    );
    assert!(s.stop().success());
    let s = TestServer::start_in(dir.clone(), patch);
    assert!(
        !s.logs().iter().any(|l| l.contains("lost writes")),
        "{:#?}",
        s.logs()
    );
}

#[test]
fn a_clean_restart_and_a_kill_lose_nothing_and_start() {
    let dir = Arc::new(TempDir::new("journal-clean"));
    let s = TestServer::start_in(dir.clone(), json!({}));
    for n in 0..5 {
        assert_eq!(
            request_token(&s, V1, &format!("u{n}@example.org"), "secret", 1).status,
            200
        );
    }
    drop(s); // kill -9
    let s = TestServer::start_in(dir.clone(), json!({}));
    assert_eq!(
        request_token(&s, V1, "after@example.org", "secret", 1).status,
        200
    );
    assert!(s.stop().success());
    let s = TestServer::start_in(dir.clone(), json!({}));
    assert!(!s.logs().iter().any(|l| l.contains("lost writes")));
}

#[test]
fn store_open_errors_say_what_they_are() {
    let (dir, _) = used_store("open-errors");
    // Held by a running server: the lock hint.
    let running = TestServer::start_in(dir.clone(), json!({}));
    let (code, log) = serve_expecting_exit(dir.path(), &[]).expect("a second server started");
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("another oxisd running"), "{log}");
    assert!(running.stop().success());
    // Damaged: no lock hint, but what it is and what to do.
    std::fs::write(dir.path().join("data/db/version"), b"garbage").unwrap();
    let (code, log) = serve_expecting_exit(dir.path(), &[]).expect("started on a damaged store");
    assert_eq!(code, 1, "{log}");
    assert!(!log.contains("another oxisd"), "{log}");
    assert!(log.contains("damaged") && log.contains("backup"), "{log}");
}
