//! Issue 17: after a flood of sessions expired and was swept, the store gives the space back.
//! The sweeper compacts the session tables once it removed a wave of sessions (see
//! `maintenance::SessionCompaction`). The journal is not counted: fjall keeps one sparse
//! 64 MiB journal file and only rotates it (and then deletes the old one) when it is full.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::TestServer;
use crate::support::sessions::V1;

/// Bytes allocated below `dir`, without fjall's journal files (`*.jnl`).
fn disk_use_without_journal(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if entry.path().extension().is_none_or(|x| x != "jnl") {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[test]
fn the_store_shrinks_back_after_a_flood_of_sessions_expired() {
    // Sessions are removed two lifetimes (6 s) after their creation; the sweeper runs every
    // second.
    let s = TestServer::start_with(json!({
        "logging": {"level": "info"},
        "session": {"ttl": 3, "rateLimit": {
            "perClient": {"burst": 1_000_000_000u64, "refill": 1},
            "perRecipient": {"burst": 1_000_000_000u64, "refill": 1},
        }},
    }));
    let data = s.dir.path().join("data");
    let before = disk_use_without_journal(&data);
    // 2 000 sessions with a long next_link: about 5 MB of records, more than a memtable, so
    // they reach tables before they expire.
    let started = Instant::now();
    let flooding = std::sync::atomic::AtomicBool::new(true);
    let peak = std::thread::scope(|scope| {
        // Sampled meanwhile: the first sessions may expire before the last are made.
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                peak = disk_use_without_journal(&data).max(peak);
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        let clients: Vec<_> = (0..8).map(|c| {
            let s = &s;
            scope.spawn(move || {
                for n in 0..250 {
                    let r = s.post_json(
                        &format!("{V1}/validate/email/requestToken"),
                        &json!({
                            "client_secret": format!("flood{c}x{n}"),
                            "email": format!("flood{c}x{n}@example.org"),
                            "send_attempt": 1,
                            "next_link": format!("https://app.example.org/done?{}", "x".repeat(2000)),
                        }),
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            })
        }).collect();
        for client in clients {
            client.join().unwrap();
        }
        flooding.store(false, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let flooded_in = started.elapsed();
    let mut peak = disk_use_without_journal(&data).max(peak);
    // Wait for the sweeper's compaction of the last wave, and the space to come back.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let now = disk_use_without_journal(&data);
        peak = peak.max(now);
        let compacted = s
            .logs()
            .iter()
            .any(|l| l.contains("compacted the session tables"));
        if compacted && now * 5 <= before * 6 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not shrink back: {now} bytes now, {before} before the flood, peak {peak} (flood took {flooded_in:?}; compacted: {compacted})"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        peak > before * 2,
        "the flood grew the store: peak {peak} bytes, {before} before (else this test proves nothing)"
    );
    eprintln!("data dir without journal: {before} before, peak {peak}, {after} after the sweep");
    // The sessions are gone, and the server still works.
    let r = s.get(&format!(
        "{V1}/3pid/getValidated3pid?sid=1&client_secret=flood0x0"
    ));
    assert!(r.status == 404 || r.status == 400, "{}", r.text());
}
